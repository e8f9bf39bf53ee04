"""``finpulse train``, ``finpulse evaluate`` and ``finpulse predict``.

Only argparse at import time: torch and transformers are imported inside the handlers.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO

from finpulse.cli.common import positive_float, positive_int
from models.errors import FinpulseError

if TYPE_CHECKING:
    from models.predictor import Prediction

__all__ = ["STDIN_CHUNK", "register"]

STDIN_CHUNK = 256  # lines scored per predictor call when streaming stdin


def register(subparsers: Any) -> None:
    _register_train(subparsers)
    _register_evaluate(subparsers)
    _register_predict(subparsers)


def _register_train(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train",
        help="fine-tune the two-head model on the vendored datasets",
        description="Multi-task fine-tuning (sentiment + topic) with early stopping on "
        "validation macro-F1; saves a self-contained model dir.",
    )
    p.add_argument("--profile", choices=("quick", "full"), required=True)
    p.add_argument("--output", type=Path, required=True, metavar="DIR")
    p.add_argument(
        "--base-model", metavar="ID_OR_PATH", help="default: the packaged all-MiniLM-L6-v2"
    )
    p.add_argument("--lora", action="store_true", help="train LoRA adapters (merged on save)")
    p.add_argument("--epochs", type=positive_float)
    p.add_argument("--lr", type=positive_float, help="encoder learning rate")
    p.add_argument("--head-lr", type=positive_float)
    p.add_argument("--batch-size", type=positive_int)
    p.add_argument("--grad-accum", type=positive_int)
    p.add_argument("--max-length", type=positive_int)
    p.add_argument("--max-steps", type=positive_int)
    p.add_argument("--seed", type=int)
    p.add_argument("--limit-train", type=positive_int, metavar="N", help="cap each task at N")
    p.add_argument("--limit-valid", type=positive_int, metavar="N", help="cap each split at N")
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=_train)


def _register_evaluate(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="score a model dir (and lexicon baselines) on validation data",
        description="Accuracy, macro/weighted F1, per-class metrics and confusion matrices "
        "for both heads on the validation splits, or for one head on --data.",
    )
    p.add_argument("model_dir", type=Path, metavar="DIR")
    p.add_argument("--data", type=Path, metavar="CSV", help="a text,label CSV to score instead")
    p.add_argument(
        "--label-map",
        metavar="SPEC",
        help="labels of --data, e.g. '0=negative,1=positive,2=neutral' or 'bearish=negative,...'"
        " (default: the dataset's integer ids)",
    )
    p.add_argument("--head", choices=("sentiment", "topic"), default="sentiment")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--output", type=Path, metavar="DIR", help="default: DIR/eval")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--no-baselines", action="store_true")
    p.set_defaults(handler=_evaluate)


def _register_predict(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "predict",
        help="score texts given as arguments or one per line on stdin",
        description="Sentiment and topic for each TEXT, or for each line of stdin when no "
        "TEXT is given (streamed in chunks, output in input order; a blank line is scored "
        "as an empty text so output lines always match input lines).",
    )
    p.add_argument("--model", type=Path, required=True, metavar="DIR")
    p.add_argument("--json", action="store_true", help="one JSON object per input line")
    p.add_argument("--device", default="auto")
    p.add_argument("--quantize", choices=("auto", "on", "off"), default="auto")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("texts", nargs="*", metavar="TEXT")
    p.set_defaults(handler=_predict)


def _train(args: argparse.Namespace) -> int:
    from training.config import profile_config
    from training.trainer import train

    cfg = profile_config(args.profile).with_overrides(
        base_model=args.base_model,
        lora=True if args.lora else None,
        epochs=args.epochs,
        lr=args.lr,
        head_lr=args.head_lr,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        max_length=args.max_length,
        max_steps=args.max_steps,
        seed=args.seed,
        sentiment_train_limit=args.limit_train,
        topic_train_limit=args.limit_train,
        valid_limit=args.limit_valid,
        device=args.device,
    )
    result = train(cfg, args.output, progress=not args.no_progress)
    m = result.metrics
    print(f"saved {result.manifest.model_version} to {result.output_dir}")
    print(
        f"validation (step {m['best_step']}): "
        f"sentiment accuracy {m['sentiment']['accuracy']:.4f} "
        f"macro-F1 {m['sentiment']['macro_f1']:.4f}; "
        f"topic accuracy {m['topic']['accuracy']:.4f} macro-F1 {m['topic']['macro_f1']:.4f}; "
        f"wall time {result.wall_seconds:.0f} s"
    )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from training.data import parse_label_map
    from training.evaluate import evaluate_model
    from training.report import format_report, write_report

    if args.label_map is not None and args.data is None:
        raise FinpulseError("--label-map needs --data (it describes the labels of that CSV)")
    label_map = parse_label_map(args.label_map, args.head) if args.label_map else None
    report = evaluate_model(
        args.model_dir,
        data=args.data,
        label_map=label_map,
        head=args.head,
        device=args.device,
        batch_size=args.batch_size,
        baselines=not args.no_baselines,
    )
    out_dir = args.output if args.output is not None else args.model_dir / "eval"
    written = write_report(report, out_dir)
    if args.json:
        print(report.model_dump_json(indent=2))
    else:
        print(format_report(report), end="")
        print(f"wrote {', '.join(str(p) for p in written)}")
    return 0


def _chunks(lines: Iterable[str], size: int) -> Iterator[list[str]]:
    it = iter(lines)
    while chunk := list(itertools.islice(it, size)):
        yield [line.rstrip("\r\n") for line in chunk]


def _emit(texts: list[str], preds: list[Prediction], as_json: bool, out: TextIO) -> None:
    for text, pred in zip(texts, preds, strict=True):
        if as_json:
            out.write(json.dumps({"text": text, **pred.to_dict()}, ensure_ascii=False) + "\n")
        else:
            short = text if len(text) <= 60 else text[:57] + "..."
            prob = pred.sentiment_probs[pred.sentiment]
            out.write(
                f"{pred.sentiment:<8} {prob:5.2f}  {pred.topic:<28} {pred.topic_prob:5.2f}  "
                f"{short}\n"
            )
    out.flush()


def _predict(args: argparse.Namespace) -> int:
    from models.checkpoint import read_manifest
    from models.predictor import load_predictor

    manifest = read_manifest(args.model)
    max_length = int(manifest.metadata.get("max_length", 128))
    quantize: bool | Literal["auto"] = "auto" if args.quantize == "auto" else args.quantize == "on"
    predictor = load_predictor(
        args.model,
        device=args.device,
        quantize=quantize,
        batch_size=args.batch_size,
        max_length=max_length,
    )
    if not args.json:
        print(f"{'sentiment':<8} {'p':>5}  {'topic':<28} {'p':>5}  text")
    source: Iterable[str] = args.texts if args.texts else sys.stdin
    for chunk in _chunks(source, STDIN_CHUNK):
        _emit(chunk, predictor.predict(chunk), args.json, sys.stdout)
    return 0
