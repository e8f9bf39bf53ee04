"""``finpulse train``, ``finpulse evaluate`` and ``finpulse predict``.

Only argparse at import time: torch and transformers are imported inside the handlers,
after ``models.runtime.prefer_passive_cpu_threads`` (see there: on a shared CPU the
default spinning thread pool made training steps ~4x slower).

Everything a user can get wrong fails before any work, as one ``finpulse: error:`` line:
an unknown or absent device (``--device tpu``, ``cuda`` without a GPU), an output dir
that cannot be written, an unknown ``--set`` option. ``predict`` gives every input line a
defined output, in input order: valid UTF-8 is cleaned as the worker cleans headlines
(control characters to spaces) and scored; a line that is not UTF-8 or longer than
``MAX_LINE_BYTES`` (the worker dead-letters such records), or that the model fails on
alone, gets ``{"text": ..., "error": "..."}`` (an ``error:`` row in the table) without
costing the rest of its chunk, and the exit status is then 3 (rows skipped).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO

from finpulse.cli.common import EXIT_SKIPPED, positive_float, positive_int, stdin_lines
from models.errors import FinpulseError

if TYPE_CHECKING:
    from models.predictor import Prediction, Predictor

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
    p.add_argument(
        "--teacher",
        action="append",
        type=Path,
        metavar="DIR",
        help="a trained model dir to learn from (repeat for an ensemble; needs "
        "--set distill_weight=... and/or --set pseudo_label_threshold=...)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="any TrainConfig field, e.g. ema_decay=0.99 or text_normalization=urls "
        "(VALUE is read as JSON when it parses, else as a string); see docs/model.md",
    )
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
    p.add_argument(
        "--quantize",
        choices=("auto", "on", "off"),
        default="auto",
        help="deprecated: int8 was removed ('on' is an error); bf16 is automatic",
    )
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("texts", nargs="*", metavar="TEXT")
    p.set_defaults(handler=_predict)


def _set_options(items: list[str]) -> dict[str, Any]:
    """``FIELD=VALUE`` pairs; VALUE as JSON when it parses (numbers, lists), else a string."""
    from training.config import TrainConfig

    options: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise FinpulseError(f"--set {item!r}: expected FIELD=VALUE")
        if name not in TrainConfig.model_fields or name == "profile":
            raise FinpulseError(f"--set {name}: not a training option (see docs/model.md)")
        try:
            options[name] = json.loads(raw)
        except json.JSONDecodeError:
            options[name] = raw
    return options


def _train(args: argparse.Namespace) -> int:
    from models.runtime import prefer_passive_cpu_threads

    prefer_passive_cpu_threads()
    from models.checkpoint import check_writable
    from models.runtime import resolve_device
    from training.config import profile_config
    from training.recipe import run_recipe

    flags = dict(
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
        teachers=tuple(str(t) for t in args.teacher) if args.teacher else None,
    )
    options = _set_options(args.set)
    options.update({k: v for k, v in flags.items() if v is not None})  # flags win
    cfg = profile_config(args.profile).with_overrides(**options)
    resolve_device(cfg.device)  # before anything is written or trained
    check_writable(args.output)
    result = run_recipe(cfg, args.output, progress=not args.no_progress)
    m = result.metrics
    cal = m["calibration"]
    print(f"saved {result.manifest.model_version} to {result.output_dir}")
    print(
        f"validation (step {m['best_step']}): "
        f"sentiment accuracy {m['sentiment']['accuracy']:.4f} "
        f"macro-F1 {m['sentiment']['macro_f1']:.4f}; "
        f"topic accuracy {m['topic']['accuracy']:.4f} macro-F1 {m['topic']['macro_f1']:.4f}; "
        f"ECE sentiment {cal['sentiment']['ece_before']:.3f} -> "
        f"{cal['sentiment']['ece_crossfit']:.3f}, topic {cal['topic']['ece_before']:.3f} -> "
        f"{cal['topic']['ece_crossfit']:.3f} (temperature, cross-fitted); "
        f"wall time {result.wall_seconds:.0f} s"
    )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from models.runtime import prefer_passive_cpu_threads

    prefer_passive_cpu_threads()
    from models.runtime import resolve_device
    from training.data import parse_label_map
    from training.evaluate import evaluate_model
    from training.report import format_report, write_report

    if args.label_map is not None and args.data is None:
        raise FinpulseError("--label-map needs --data (it describes the labels of that CSV)")
    label_map = parse_label_map(args.label_map, args.head) if args.label_map else None
    resolve_device(args.device)
    report = evaluate_model(
        args.model_dir,
        data=args.data,
        label_map=label_map,
        head=args.head,
        device=args.device,
        batch_size=args.batch_size,
        baselines=not args.no_baselines,
        progress=sys.stderr.isatty(),
    )
    out_dir = args.output if args.output is not None else args.model_dir / "eval"
    written = write_report(report, out_dir)
    if args.json:
        print(report.model_dump_json(indent=2))
    else:
        print(format_report(report), end="")
        print(f"wrote {', '.join(str(p) for p in written)}")
    return 0


def _chunks(lines: Iterable[tuple[str | None, str | None]], size: int) -> Iterator[list[Any]]:
    it = iter(lines)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def _score(predictor: Predictor, texts: list[str]) -> list[Prediction | str]:
    """Predictions in input order; a text the model fails on alone gets the error instead."""
    try:
        return list(predictor.predict(texts))
    except (FinpulseError, ValueError, TypeError, RuntimeError) as exc:
        if len(texts) == 1:
            return [f"{type(exc).__name__}: {exc}"]
    half = len(texts) // 2
    return _score(predictor, texts[:half]) + _score(predictor, texts[half:])


def _emit(
    texts: list[str | None], results: list[Prediction | str], as_json: bool, out: TextIO
) -> int:
    """One output line per input line; returns how many got an error instead of a prediction."""
    failed = 0
    for text, result in zip(texts, results, strict=True):
        if isinstance(result, str):
            failed += 1
            if as_json:
                row = {"text": text, "error": result}
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
            else:
                out.write(f"error: {result}\n")
            continue
        shown = text or ""
        if as_json:
            out.write(json.dumps({"text": shown, **result.to_dict()}, ensure_ascii=False) + "\n")
        else:
            short = shown if len(shown) <= 60 else shown[:57] + "..."
            prob = result.sentiment_probs[result.sentiment]
            out.write(
                f"{result.sentiment:<8} {prob:5.2f}  {result.topic:<28} {result.topic_prob:5.2f}  "
                f"{short}\n"
            )
    out.flush()
    return failed


def _predict(args: argparse.Namespace) -> int:
    from models.runtime import prefer_passive_cpu_threads

    prefer_passive_cpu_threads()
    from models.predictor import load_predictor
    from stream_app.core.validation import clean_text

    quantize: bool | Literal["auto"] = "auto" if args.quantize == "auto" else args.quantize == "on"
    predictor = load_predictor(
        args.model, device=args.device, quantize=quantize, batch_size=args.batch_size
    )
    if not args.json:
        print(f"{'sentiment':<8} {'p':>5}  {'topic':<28} {'p':>5}  text")
    source: Iterable[tuple[str | None, str | None]] = (
        ((t, None) for t in args.texts) if args.texts else stdin_lines(sys.stdin.buffer)
    )
    failed = 0
    for chunk in _chunks(source, STDIN_CHUNK):
        # Text cleaned as the worker cleans headlines; unreadable lines keep their reason.
        texts = [None if text is None else clean_text(text) for text, _ in chunk]
        good = [t for t in texts if t is not None]
        scored = iter(_score(predictor, good) if good else [])
        results = [
            next(scored) if t is not None else str(err)
            for t, (_, err) in zip(texts, chunk, strict=True)
        ]
        failed += _emit(texts, results, args.json, sys.stdout)
    if failed:
        print(f"finpulse: {failed} line(s) could not be scored (see 'error')", file=sys.stderr)
        return EXIT_SKIPPED
    return 0
