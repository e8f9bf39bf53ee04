"""Ablation of the training options: each one alone on top of a base profile, 3 seeds each.

Every row is ``profile`` + the row's overrides, trained once per seed in this process,
one after the other. Results are appended to a JSONL file as each run finishes, so an
interrupted ablation resumes where it stopped, and several processes can share the work:
each claims a run in ``<out>.claims`` before starting it (two processes on a busy
machine get two fair shares of the CPU). ``--table`` prints the Markdown table (mean ±
sample std over the seeds) that BENCHMARKS.md holds.

Teacher rows: ``teachers`` (the same profile with seeds 101-103, models kept under
``--work``) are trained first when a selected row needs them; the self-training and
distillation rows use those three as their ensemble teacher, so no student shares a
seed with a teacher.

    python -m bench.ablate_training --profile quick --rows all --out runs/ablation.jsonl
    python -m bench.ablate_training --out runs/ablation.jsonl --table
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["ROWS", "main", "table"]

TEACHER_SEEDS = (101, 102, 103)
SEEDS = (1, 2, 3)

# name -> overrides; "{teachers}" is replaced by the teacher dirs.
ROWS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "urls": {"text_normalization": "urls"},
    "fgm": {"fgm_epsilon": 1.0},
    "pgd": {"fgm_epsilon": 1.0, "pgd_steps": 3},
    "ema": {"ema_decay": 0.99},
    "rdrop": {"rdrop_alpha": 1.0},
    "llrd": {"layer_lr_decay": 0.8},
    "augment": {"augment_ratio": 0.5},
    "selftrain": {
        "teachers": "{teachers}",
        "pseudo_label_threshold": 0.9,
        "pseudo_label_limit": 3000,
    },
    "distill": {"teachers": "{teachers}", "distill_weight": 0.5, "distill_temperature": 2.0},
    "distill+selftrain": {
        "teachers": "{teachers}",
        "distill_weight": 0.5,
        "distill_temperature": 2.0,
        "pseudo_label_threshold": 0.9,
        "pseudo_label_limit": 3000,
    },
}


def _load(out: Path) -> list[dict[str, Any]]:
    if not out.is_file():
        return []
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


def _overrides(row: str, teacher_dirs: list[str], extra: dict[str, Any]) -> dict[str, Any]:
    over = dict(ROWS[row]) if row in ROWS else {}
    if over.get("teachers") == "{teachers}":
        over["teachers"] = tuple(teacher_dirs)
    return {**over, **extra}


def _run_one(
    profile: str, row: str, seed: int, overrides: dict[str, Any], save_to: Path | None
) -> dict[str, Any]:
    from training.config import profile_config
    from training.trainer import train

    cfg = profile_config(profile).with_overrides(seed=seed, **overrides)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ablate-") as tmp:
        result = train(cfg, save_to or Path(tmp) / "model", progress=False)
    wall = time.perf_counter() - started
    m = result.metrics
    return {
        "profile": profile,
        "row": row,
        "seed": seed,
        "overrides": {k: v for k, v in overrides.items() if k != "teachers"},
        "sentiment_acc": m["sentiment"]["accuracy"],
        "sentiment_f1": m["sentiment"]["macro_f1"],
        "topic_acc": m["topic"]["accuracy"],
        "topic_f1": m["topic"]["macro_f1"],
        "sentiment_ece_raw": m["calibration"]["sentiment"]["ece_before"],
        "sentiment_ece_crossfit": m["calibration"]["sentiment"]["ece_crossfit"],
        "topic_ece_raw": m["calibration"]["topic"]["ece_before"],
        "topic_ece_crossfit": m["calibration"]["topic"]["ece_crossfit"],
        "best_step": m["best_step"],
        "steps": result.manifest.metadata["steps"],
        "examples": result.manifest.metadata["data"]["example_kinds"],
        "wall_seconds": round(wall, 1),
        "timings": result.manifest.metadata["timings_seconds"],
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _claim(out: Path, key: tuple[str, str, int]) -> bool:
    """Atomically claim a run for this process; False when done or claimed by another."""
    import fcntl

    claims = out.with_suffix(out.suffix + ".claims")
    with claims.open("a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        taken = {tuple(json.loads(line)) for line in fh.read().splitlines() if line.strip()}
        done = {(r["profile"], r["row"], r["seed"]) for r in _load(out)}
        if key in taken or key in done:
            return False
        fh.write(json.dumps(list(key)) + "\n")
        return True


def run(args: argparse.Namespace) -> None:
    rows = list(ROWS) if args.rows == ["all"] else args.rows
    extra = json.loads(args.set) if args.set else {}
    teacher_dirs = [str(args.work / f"teacher-{args.profile}-{s}") for s in TEACHER_SEEDS]
    needs_teachers = any(ROWS.get(r, {}).get("teachers") for r in rows)
    jobs: list[tuple[str, int, Path | None]] = []
    if needs_teachers:
        jobs += [("teachers", s, Path(d)) for s, d in zip(TEACHER_SEEDS, teacher_dirs, strict=True)]
    jobs += [(r, s, None) for r in rows for s in SEEDS]
    for row, seed, save_to in jobs:
        if save_to is not None and save_to.is_dir() and (save_to / "manifest.json").is_file():
            continue
        if not _claim(args.out, (args.profile, row, seed)):
            if save_to is not None:  # a teacher another process is training: wait for it
                while not (save_to / "manifest.json").is_file():
                    time.sleep(30)
            continue
        over = {} if row == "teachers" else _overrides(row, teacher_dirs, extra)
        print(f"{datetime.now():%H:%M:%S} {args.profile} {row} seed {seed} ...", flush=True)
        rec = _run_one(args.profile, row, seed, over, save_to)
        with args.out.open("a") as fh:
            fh.write(json.dumps(rec) + "\n")
        print(
            f"  sentiment {rec['sentiment_acc']:.4f}/{rec['sentiment_f1']:.4f} "
            f"topic {rec['topic_acc']:.4f}/{rec['topic_f1']:.4f} {rec['wall_seconds']:.0f} s",
            flush=True,
        )


def _cell(values: list[float], digits: int = 3) -> str:
    if len(values) < 2:
        return f"{values[0]:.{digits}f}" if values else ""
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def table(out: Path, profile: str) -> str:
    recs = [r for r in _load(out) if r["profile"] == profile]
    base = [r for r in recs if r["row"] == "baseline"]
    base_f1 = statistics.mean(r["sentiment_f1"] for r in base) if base else None
    base_tf1 = statistics.mean(r["topic_f1"] for r in base) if base else None
    lines = [
        "| row | seeds | sentiment acc | sentiment macro-F1 | topic acc | topic macro-F1 "
        "| Δ F1 sent. / topic | ECE sent. raw → T (cross-fit) | wall (s) | load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    order = ["teachers", *ROWS]
    for row in sorted({r["row"] for r in recs}, key=lambda x: order.index(x) if x in order else 99):
        rs = [r for r in recs if r["row"] == row]
        f1 = [r["sentiment_f1"] for r in rs]
        tf1 = [r["topic_f1"] for r in rs]
        delta = (
            ""
            if base_f1 is None or base_tf1 is None
            else f"{statistics.mean(f1) - base_f1:+.3f} / {statistics.mean(tf1) - base_tf1:+.3f}"
        )
        ece = (
            f"{statistics.mean(r['sentiment_ece_raw'] for r in rs):.3f} → "
            f"{statistics.mean(r['sentiment_ece_crossfit'] for r in rs):.3f}"
        )
        lines.append(
            f"| {row} | {len(rs)} | {_cell([r['sentiment_acc'] for r in rs])} | {_cell(f1)} "
            f"| {_cell([r['topic_acc'] for r in rs])} | {_cell(tf1)} | {delta} | {ece} "
            f"| {statistics.mean(r['wall_seconds'] for r in rs):.0f} "
            f"| {statistics.mean(r['load_before'] for r in rs):.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="quick")
    p.add_argument("--rows", nargs="+", default=["all"], help=f"any of: {', '.join(ROWS)}")
    p.add_argument("--set", metavar="JSON", help="extra overrides for every non-teacher row")
    p.add_argument("--out", type=Path, default=Path("runs/ablation.jsonl"))
    p.add_argument("--work", type=Path, default=Path("runs/ablation-models"))
    p.add_argument("--table", action="store_true", help="print the table and exit")
    args = p.parse_args(argv)
    if args.table:
        print(table(args.out, args.profile))
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    run(args)
    print(table(args.out, args.profile))
    return 0


if __name__ == "__main__":
    sys.exit(main())
