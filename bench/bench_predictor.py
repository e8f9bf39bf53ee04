"""Texts/s and sentiment accuracy of our Predictor vs a plain transformers pipeline.

All contenders score the same real validation headlines (Twitter Financial News
``sentiment_valid.csv``) with the same weights, batch size and max length:

* ``pipeline fp32`` – ``transformers.pipeline("text-classification", batch_size=B)``
  over a thin ``PreTrainedModel`` that runs *our* encoder, mean pooling and sentiment
  head, so its outputs equal ours (the agreement column shows it); what differs is
  how the batches are built: one text at a time, unsorted padding.
* ``predictor fp32`` – ``Predictor`` forced to exact fp32.
* ``predictor auto`` – what ``load_predictor`` picks by default (bf16 autocast on CUDA
  or on CPUs with native bf16); shown only when it differs from fp32.

Predictor calls receive ``--chunk`` texts at a time, like the stream app's micro-batches.
Each contender gets one untimed warm-up batch; ``--repeats`` timed rounds run round-robin
and the best time counts. Prints a Markdown table plus machine,
date and command; ``--json`` also writes the results.

    python bench/bench_predictor.py --model artifacts/model --n 2000 --json runs/bench.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import torch
from tqdm import tqdm

from finpulse.resources import dataset_dir
from models.architecture import MultiTaskModel, mean_pool
from models.checkpoint import load_model, read_manifest
from models.labels import SENTIMENT_LABELS, sentiment_index_from_dataset
from models.predictor import load_predictor
from models.runtime import resolve_device

REPO = Path(__file__).resolve().parents[1]
VALID_CSV = dataset_dir() / "sentiment_valid.csv"


@dataclass
class Result:
    name: str
    texts_per_s: float
    seconds: float
    accuracy: float
    agreement_with_fp32: float | None = None
    speedup_vs_pipeline: float | None = None


def read_valid(n: int) -> tuple[list[str], list[str]]:
    with VALID_CSV.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))[:n]
    texts = [r["text"] for r in rows]
    gold = [SENTIMENT_LABELS[sentiment_index_from_dataset(int(r["label"]))] for r in rows]
    return texts, gold


def pipeline_model(mt: MultiTaskModel) -> Any:
    """A ``PreTrainedModel`` computing exactly our sentiment logits, for ``pipeline``."""
    from transformers import PreTrainedModel
    from transformers.modeling_outputs import SequenceClassifierOutput

    labels = mt.cfg.sentiment_labels
    encoder_config: Any = mt.encoder.config
    config = type(encoder_config).from_dict(
        {
            **encoder_config.to_dict(),
            "id2label": dict(enumerate(labels)),
            "label2id": {label: i for i, label in enumerate(labels)},
        }
    )

    class MeanPooledSentiment(PreTrainedModel):
        config_class = type(config)
        base_model_prefix = "encoder"

        def __init__(self) -> None:
            super().__init__(config)
            self.encoder = mt.encoder
            self.classifier = mt.sentiment_head

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            **_: Any,
        ) -> SequenceClassifierOutput:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
            pooled = mean_pool(hidden.last_hidden_state, attention_mask)
            return SequenceClassifierOutput(logits=self.classifier(pooled))

    return MeanPooledSentiment().eval()


def timed(
    name: str, run: Callable[[Sequence[str], Callable[[int], None]], list[str]], texts: list[str]
) -> tuple[list[str], float]:
    run(texts[:64], lambda _: None)  # warm-up: allocator, kernels, quantised packing
    with tqdm(total=len(texts), desc=name, unit="text", file=sys.stderr) as bar:
        start = time.perf_counter()
        labels = run(texts, bar.update)
        seconds = time.perf_counter() - start
    return labels, seconds


def run_pipeline(
    model_dir: Path, device: str, batch_size: int, max_length: int
) -> Callable[[Sequence[str], Callable[[int], None]], list[str]]:
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    loaded = load_model(model_dir, device="cpu")
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity(hf_logging.CRITICAL)  # "model not in the supported list": known
    try:
        pipe = pipeline(
            "text-classification",
            model=pipeline_model(loaded.model),
            tokenizer=cast(Any, loaded.tokenizer),
            device=torch.device(device),
            batch_size=batch_size,
        )
    finally:
        hf_logging.set_verbosity(verbosity)

    def run(texts: Sequence[str], progress: Callable[[int], None]) -> list[str]:
        out: list[str] = []
        for item in pipe(list(texts), truncation=True, max_length=max_length):
            out.append(str(item["label"]))
            progress(1)
        return out

    return run


def run_predictor(
    model_dir: Path, device: str, batch_size: int, max_length: int, chunk: int, **kwargs: Any
) -> tuple[Callable[[Sequence[str], Callable[[int], None]], list[str]], str]:
    predictor = load_predictor(
        model_dir, device=device, batch_size=batch_size, max_length=max_length, **kwargs
    )

    def run(texts: Sequence[str], progress: Callable[[int], None]) -> list[str]:
        out: list[str] = []
        for start in range(0, len(texts), chunk):
            part = texts[start : start + chunk]
            out.extend(p.sentiment for p in predictor.predict(part))
            progress(len(part))
        return out

    return run, predictor.precision


def machine_info(device: str) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info: dict[str, Any] = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": device,
    }
    import transformers

    info["transformers"] = transformers.__version__
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def markdown(results: list[Result], n: int, batch_size: int) -> str:
    lines = [
        f"| contender (n={n}, batch {batch_size}) | texts/s | speed vs pipeline | "
        "sentiment accuracy | agreement with predictor fp32 |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        ratio = f"{r.speedup_vs_pipeline:.2f}×" if r.speedup_vs_pipeline else "1.00×"
        agree = f"{r.agreement_with_fp32:.4f}" if r.agreement_with_fp32 is not None else "–"
        lines.append(f"| {r.name} | {r.texts_per_s:.1f} | {ratio} | {r.accuracy:.4f} | {agree} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "artifacts" / "model")
    parser.add_argument("--n", type=int, default=2000, help="validation texts (max 2486)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--chunk", type=int, default=512, help="texts per predict() call")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--repeats", type=int, default=2, help="timed rounds; best is kept")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args(argv)
    if args.n < 1 or args.repeats < 1:
        parser.error("--n and --repeats must be >= 1")

    device = resolve_device(args.device)
    texts, gold = read_valid(args.n)
    common = (args.model, device, args.batch_size, args.max_length)
    contenders: list[tuple[str, Callable[[Sequence[str], Callable[[int], None]], list[str]]]] = [
        ("pipeline fp32", run_pipeline(*common))
    ]
    fp32_run, _ = run_predictor(*common, args.chunk, precision="fp32")
    contenders.append(("predictor fp32", fp32_run))
    auto_run, auto_precision = run_predictor(*common, args.chunk)
    if auto_precision != "fp32":
        contenders.append((f"predictor auto ({auto_precision})", auto_run))

    # Round-robin repeats, best time kept: on a shared machine load drifts over minutes,
    # and running contender A fully before B would charge the drift to one of them.
    best: dict[str, float] = {}
    outputs: dict[str, list[str]] = {}
    for rep in range(args.repeats):
        for name, run in contenders:
            labels, seconds = timed(f"{name} [{rep + 1}/{args.repeats}]", run, texts)
            outputs.setdefault(name, labels)
            best[name] = min(seconds, best.get(name, float("inf")))
    results: list[Result] = []
    for name, _ in contenders:
        labels = outputs[name]
        accuracy = sum(p == g for p, g in zip(labels, gold, strict=True)) / len(gold)
        results.append(Result(name, len(texts) / best[name], best[name], accuracy))
    reference = outputs["predictor fp32"]
    base_speed = results[0].texts_per_s
    for r in results:
        same = sum(a == b for a, b in zip(outputs[r.name], reference, strict=True))
        r.agreement_with_fp32 = same / len(reference)
        r.speedup_vs_pipeline = r.texts_per_s / base_speed

    info = machine_info(device)
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    command = shlex.join(["python", *sys.argv])
    print(markdown(results, len(texts), args.batch_size))
    print()
    print(f"model: {args.model} ({read_manifest(args.model).model_version})")
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    print(f"date: {now}")
    print(f"command: {command}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "results": [asdict(r) for r in results],
            "n": len(texts),
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "chunk": args.chunk,
            "repeats": args.repeats,
            "model": str(args.model),
            "machine": info,
            "date": now,
            "command": command,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
