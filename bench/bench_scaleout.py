"""End-to-end throughput (news in -> scored) with 1, 2 and 3 ``finpulse worker`` processes.

Starts a local tansu broker and redis-server (stream_app.devenv.embedded); for each worker count
it creates fresh topics (``--partitions``, default 3), starts the workers in one consumer
group, warms them up (a few records per partition, so every partition is assigned and the
model is loaded), then produces ``--news`` records keyed by ticker in one go and times
from the first send until the workers' ``finpulse_scored_total`` + dead letters cover all
of them (read from each worker's /metrics). Models: the tiny random test model, and the
real one in artifacts/model or artifacts/model-quick when present.

    python bench/bench_scaleout.py --news 3000 --workers 1 2 3

On a small machine the workers compete for the same cores: scoring is CPU-bound (torch
uses every core within one process), so more processes mostly add contention and
per-process overhead; scale-out pays off when each worker has its own cores/GPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tqdm import tqdm

from bench._common import machine, print_footer, scrape, total
from finpulse.resources import dataset_dir
from stream_app.devenv.embedded import Service, start_broker, start_redis
from tests.support.worker_proc import (
    WorkerProcess,
    produce,
    worker_env,
)

TICKERS = [f"T{i:03d}" for i in range(60)]


def _done(workers: list[WorkerProcess]) -> int:
    done = 0
    for w in workers:
        samples = scrape(w.base_url)
        done += int(total(samples, "finpulse_scored_total"))
        done += int(total(samples, "finpulse_dead_letters_total"))
    return done


def _records(n: int, start: int, texts: list[str]) -> tuple[list[bytes], list[bytes]]:
    t0 = datetime.now(UTC) - timedelta(hours=2)
    values, keys = [], []
    for i in range(start, start + n):
        ticker = TICKERS[i % len(TICKERS)]
        row = {
            "id": f"b{i}",
            "headline": texts[i % len(texts)],
            "tickers": [ticker],
            "published_at": (t0 + timedelta(milliseconds=250 * i)).isoformat(),
        }
        values.append(json.dumps(row).encode())
        keys.append(ticker.encode())
    return values, keys


async def _wait(workers: list[WorkerProcess], target: int, within: float) -> None:
    deadline = time.monotonic() + within
    while _done(workers) < target:
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out: {_done(workers)}/{target} records done")
        for w in workers:
            if not w.running:
                raise SystemExit(f"a worker died:\n{w.log_tail()}")
        await asyncio.sleep(0.2)


async def run_one(
    broker: Service, redis: Service, model: Path, n_workers: int, args: argparse.Namespace,
    texts: list[str], tmp: Path,
) -> float:  # fmt: skip
    unique = uuid.uuid4().hex[:8]
    extra = {
        "topic_partitions": args.partitions,
        "batch_size": args.batch_size,
        "quantize": "auto",
        "broker_rebalance_timeout": 3,
        "broker_session_timeout": 6,
    }
    workers = []
    for i in range(n_workers):
        env = worker_env(broker, redis, model, unique, **extra)
        if args.split_threads:  # one process per core share instead of all cores each
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // n_workers))
        w = WorkerProcess(env, tmp / f"{unique}-{i}.log")
        w.start(timeout=180)
        workers.append(w)
    try:
        s = workers[0].settings
        warm_n = 20 * args.partitions
        values, keys = _records(warm_n, 0, texts)
        await produce(s, values, keys=keys)
        await _wait(workers, warm_n, 180)
        values, keys = _records(args.news, warm_n, texts)
        started = time.perf_counter()
        await produce(s, values, keys=keys)
        await _wait(workers, warm_n + args.news, 900)
        return args.news / (time.perf_counter() - started)
    finally:
        for w in workers:
            w.stop()


def _models(args: argparse.Namespace, tmp: Path) -> list[tuple[str, Path]]:
    from tests.support.tiny_model import make_tiny_model_dir

    out = [("tiny (test)", make_tiny_model_dir(tmp / "tiny" / "model"))]
    for name in ("artifacts/model", "artifacts/model-quick"):
        if (Path(name) / "manifest.json").exists() and not args.tiny_only:
            out.append((name, Path(name)))
            break
    return out


def _texts() -> list[str]:
    from stream_app.offline.synthetic import load_labelled_texts

    return [t.text for t in load_labelled_texts(dataset_dir())][:2000]


async def main_async(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="finpulse-bench-scaleout-"))
    broker, redis = start_broker(tmp / "broker"), start_redis(tmp / "redis")
    rows = []
    try:
        texts = _texts()
        plan = [(m, n) for m in _models(args, tmp) for n in args.workers]
        for (label, path), n in tqdm(plan, desc="runs", unit="run"):
            news = args.news if label.startswith("tiny") else args.real_news
            run_args = argparse.Namespace(**{**vars(args), "news": news})
            rate = await run_one(broker, redis, path, n, run_args, texts, tmp)
            rows.append((label, n, news, rate))
            tqdm.write(f"{label}: {n} worker(s): {rate:,.0f} news/s")
    finally:
        broker.stop()
        redis.stop()
    print()
    print_footer(machine())
    print()
    threads = "cores // workers" if args.split_threads else "torch default (all cores)"
    print("| model | workers | partitions | torch threads/worker | news | news/s (in -> scored) |")
    print("|---|---:|---:|---|---:|---:|")
    for label, n, news, rate in rows:
        print(f"| {label} | {n} | {args.partitions} | {threads} | {news} | {rate:,.0f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--news", type=int, default=3000, help="records per run (tiny model)")
    ap.add_argument("--real-news", type=int, default=1000, help="records per run (real model)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--tiny-only", action="store_true", help="skip the real model")
    ap.add_argument(
        "--split-threads",
        action="store_true",
        help="OMP_NUM_THREADS = cores // workers for each worker (less oversubscription)",
    )
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
