"""End-to-end throughput and latency of one ``finpulse worker`` against its bare predictor.

Targets (issue "Streaming service"): the pipeline around the model costs < 15 % of the
model's own throughput at the same batch size (ratio >= 0.85), and publish-to-scored p99
< 1 s at half the sustainable rate.

1. **Throughput.** Start tansu + redis-server (``stream_app.devenv.embedded``), pre-load ``--n``
   real headlines (Twitter Financial News ``sentiment_valid.csv``; tickers from cashtags;
   event times a Poisson stream ending a minute ago) into a fresh news topic and start one
   ``finpulse worker`` subprocess on it: that warm-up pass covers model load, group join
   and the first sight of every padded tensor shape (slow on CPU). Once it has drained,
   the same headlines are published again in one go (the timed pass). The clock starts
   when the timed pass's first micro-batch was published (Kafka timestamps of
   ``news.scored``; batches told apart by ``scored_at``) and that batch is left out:
   * ``scored`` rate: until the last scored batch's publish time;
   * ``drained`` rate: until the aggregate agent has folded every entity event into the
     Redis windows (``finpulse_entity_events_total`` reaches the entity topic's end offset,
     polled on ``/metrics`` every 0.1 s) – the whole news -> scored -> windows/alerts path.
   The bare predictor (``load_worker_predictor`` with the worker's own settings, so the
   same device/quantise/precision choice) scores the same texts in chunks of the batch
   size, one untimed pass then one timed, in a one-thread executor like the worker's, in
   this process: once before the worker starts and once after it stopped; the faster run
   is the reference, so load drift cannot flatter the ratio.
2. **Latency.** Produce at ``--rate-fraction`` x the drained rate for ``--duration`` s with
   record timestamp = send time (and event time = now), then read ``news.scored``:
   latency = scored record's Kafka timestamp (the worker's publish time) minus send time.
   The worker's ``finpulse_publish_to_scored_seconds`` histogram over the same interval
   (bucket-interpolated, like Prometheus' ``histogram_quantile``) is shown beside it.

    python -m bench.bench_e2e --model artifacts/model-quick --n 2000 --duration 45 \\
        --json runs/bench_e2e.json
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import random
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from bench._common import (
    BenchError,
    Samples,
    bench_worker_env,
    headlines,
    histogram,
    histogram_quantile,
    percentile,
    print_footer,
    run_measured,
    scrape,
    total,
    wait_metrics,
    write_json,
    yes_no,
)
from models.errors import FinpulseError
from stream_app.config import Settings
from stream_app.core.entities import extract_cashtags

if TYPE_CHECKING:
    from tests.support.worker_proc import WorkerProcess


@dataclass
class Results:
    predictor_runs: list[float] = field(default_factory=list)
    predictor_precision: str = ""
    predictor_device: str = ""
    scored_rate: float = 0.0
    drained_rate: float = 0.0
    ratio_scored: float = 0.0
    ratio_drained: float = 0.0
    mean_batch: float = 0.0
    dead_letters: dict[str, float] = field(default_factory=dict)
    alerts: float = 0.0
    latency_rate: float = 0.0
    latency_records: int = 0
    latency_s: dict[str, float] = field(default_factory=dict)
    histogram_s: dict[str, float] = field(default_factory=dict)


def news_record(rid: str, text: str, event_ms: int) -> tuple[bytes, bytes]:
    """(key, value): keyed by first ticker so a ticker's news keeps its order per partition."""
    tickers = extract_cashtags(text, limit=32)
    value = {
        "id": rid,
        "headline": text,
        "tickers": tickers,
        "published_at": event_ms,
        "source": "bench",
    }
    return (tickers[0] if tickers else "market").encode(), json.dumps(value).encode()


def poisson_times_ms(n: int, gap_s: float, rng: random.Random) -> list[int]:
    """Sorted uniform times = a Poisson stream conditioned on its count; ends 60 s ago."""
    end = time.time() - 60
    return sorted(int((end - rng.random() * n * gap_s) * 1000) for _ in range(n))


def scrape_worker(worker: WorkerProcess) -> Samples:
    return scrape(worker.base_url)


def processed(samples: Samples) -> float:
    return total(samples, "finpulse_records_in_total")


async def read_scored(
    s: Settings, prefix: str, expect: int, within: float
) -> dict[str, tuple[int, str]]:
    """id -> (Kafka timestamp ms, scored_at) of the ``expect`` scored records of ``prefix``."""
    from aiokafka import AIOKafkaConsumer

    from stream_app.service.broker import aiokafka_kwargs

    consumer = AIOKafkaConsumer(
        s.topic_scored, **aiokafka_kwargs(s), group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    out: dict[str, tuple[int, str]] = {}
    try:
        deadline = time.monotonic() + within
        while len(out) < expect and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                for r in records:
                    row = json.loads(r.value or b"{}")
                    if str(row.get("id", "")).startswith(prefix):
                        out[row["id"]] = (r.timestamp, row["scored_at"])
    finally:
        await consumer.stop()
    if len(out) < expect:
        raise BenchError(f"only {len(out)}/{expect} scored records came back in {within:.0f}s")
    return out


async def end_offsets(s: Settings, topic: str) -> int:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from stream_app.service.broker import aiokafka_kwargs

    consumer = AIOKafkaConsumer(**aiokafka_kwargs(s), group_id=None)
    await consumer.start()
    try:
        await consumer.topics()  # fetches metadata for every topic
        parts = consumer.partitions_for_topic(topic) or set()
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in parts])
        return int(sum(ends.values()))
    finally:
        await consumer.stop()


def bare_predictor(
    s: Settings, texts: list[str], args: argparse.Namespace, res: Results, desc: str
) -> None:
    """One untimed pass (every padded shape seen once), then the timed pass over the same texts.

    By default the calls run in a one-thread executor, exactly as ``ScoreStage`` runs them:
    on a busy 2-core machine torch called from the main thread measured up to 7x slower
    than from a worker thread, which would flatter the pipeline.
    """
    from stream_app.model import load_worker_predictor

    batch = args.batch_size
    predictor = load_worker_predictor(s)

    def passes(predictor: Any) -> float:
        for i in range(0, len(texts), batch):
            predictor.predict(texts[i : i + batch])
        with tqdm(total=len(texts), desc=desc, unit="text", file=sys.stderr) as bar:
            start = time.perf_counter()
            for i in range(0, len(texts), batch):
                bar.update(len(predictor.predict(texts[i : i + batch])))
            return len(texts) / (time.perf_counter() - start)

    if args.predictor_thread == "main":
        rate = passes(predictor)
    else:
        with ThreadPoolExecutor(1, thread_name_prefix="bench-model") as pool:
            rate = pool.submit(passes, predictor).result()
    res.predictor_runs.append(rate)
    res.predictor_precision, res.predictor_device = predictor.precision, predictor.device
    del predictor  # the worker starts next: give its memory back first
    gc.collect()


async def drained(worker: WorkerProcess, s: Settings, records: int, within: float) -> float:
    """Wall time at which ``records`` news were consumed and every entity event aggregated."""
    await wait_metrics(worker, processed, records, within, "pipeline: scored")
    events = await end_offsets(s, s.topic_entity_events)  # all published: the stage awaited
    return await wait_metrics(
        worker,
        lambda x: (
            total(x, "finpulse_entity_events_total")
            + total(x, "finpulse_dead_letters_total", reason="invalid_event")
        ),
        events,
        within,
        "pipeline: windows",
    )


async def throughput(
    worker: WorkerProcess, texts: list[str], args: argparse.Namespace, res: Results
) -> None:
    """A warm-up pass (``wu-``) drained through both agents, then the timed pass (``tp-``).

    The timed pass is published in one go once the worker is idle and warm (model loaded,
    group joined, every padded shape seen once), so both stages start with empty backlogs.
    The clock starts when its first micro-batch was published, and that batch's records
    are left out, like the bare predictor's warm-up.
    """
    from stream_app.service.broker import ensure_topics
    from tests.support.worker_proc import produce

    s, n = worker.settings, len(texts)
    times = poisson_times_ms(2 * n, args.event_gap, random.Random(args.seed))
    ids = [f"wu-{i}" for i in range(n)] + [f"tp-{i}" for i in range(n)]
    records = [news_record(i, t, ms) for i, t, ms in zip(ids, texts + texts, times, strict=True)]
    keys, values = [k for k, _ in records], [v for _, v in records]
    await ensure_topics(s)  # else the broker auto-creates news with its default partitions
    await produce(s, values[:n], keys=keys[:n])
    worker.start(timeout=args.start_timeout)  # model load; group join follows
    await drained(worker, s, n, args.timeout)
    await produce(s, values[n:], keys=keys[n:])
    drained_at = await drained(worker, s, 2 * n, args.timeout)

    samples = scrape(worker.base_url)
    for name, labels, value in samples:
        if name == "finpulse_dead_letters_total" and value:
            res.dead_letters[labels.get("reason", "?")] = value
    res.alerts = total(samples, "finpulse_alerts_total")
    scored = await read_scored(s, "", int(total(samples, "finpulse_scored_total")), args.timeout)
    batches: dict[str, list[int]] = {}
    for rid, (ts, scored_at) in scored.items():
        if rid.startswith("tp-"):
            batches.setdefault(scored_at, []).append(ts)
    ordered = sorted(batches.values(), key=max)
    if len(ordered) < 2:
        raise BenchError("the timed pass was scored in one batch: raise --n")
    start_ms = max(ordered[0])
    count = sum(len(b) for b in ordered[1:])
    res.scored_rate = count / max(1e-3, (max(ordered[-1]) - start_ms) / 1000)
    res.drained_rate = count / max(1e-3, drained_at - start_ms / 1000)
    res.mean_batch = sum(len(b) for b in ordered) / len(ordered)


async def paced_produce(s: Settings, texts: list[str], rate: float, count: int) -> dict[str, int]:
    """Send ``count`` records at ``rate``/s (absolute schedule, no drift); id -> send ms."""
    from aiokafka import AIOKafkaProducer

    from stream_app.service.broker import aiokafka_kwargs

    producer = AIOKafkaProducer(**aiokafka_kwargs(s), acks="all")
    await producer.start()
    sent: dict[str, int] = {}
    try:
        pending = []
        start = time.monotonic()
        for i in tqdm(range(count), desc=f"latency: {rate:.0f}/s", unit="rec", file=sys.stderr):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            now_ms = int(time.time() * 1000)
            key, value = news_record(f"lat-{i}", texts[i % len(texts)], now_ms)
            pending.append(await producer.send(s.topic_news, value, key=key, timestamp_ms=now_ms))
            sent[f"lat-{i}"] = now_ms
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


async def latency(
    worker: WorkerProcess, texts: list[str], args: argparse.Namespace, res: Results
) -> None:
    s = worker.settings
    res.latency_rate = max(1.0, args.rate_fraction * res.drained_rate)
    res.latency_records = count = max(1, round(res.latency_rate * args.duration))
    before = scrape(worker.base_url)
    already, scored_before = processed(before), total(before, "finpulse_scored_total")
    sent = await paced_produce(s, texts, res.latency_rate, count)
    await wait_metrics(
        worker, lambda x: processed(x) - already, count, args.timeout, "latency: drain"
    )
    hist_name = "finpulse_publish_to_scored_seconds"
    now = scrape(worker.base_url)
    after, start = histogram(now, hist_name), histogram(before, hist_name)
    diff = {le: after[le] - start.get(le, 0.0) for le in after}
    expect = int(total(now, "finpulse_scored_total") - scored_before)
    scored = await read_scored(s, "lat-", expect, args.timeout)
    lat = [max(0.0, (scored[i][0] - ms) / 1000) for i, ms in sent.items() if i in scored]
    if not lat:
        raise BenchError(f"none of the {count} latency records was scored:\n{worker.log_tail()}")
    for q in (0.5, 0.95, 0.99):
        res.latency_s[f"p{round(q * 100)}"] = percentile(lat, q)
        if diff:
            res.histogram_s[f"p{round(q * 100)}"] = histogram_quantile(q, diff)
    res.latency_s["max"] = max(lat)


def markdown(res: Results, args: argparse.Namespace) -> str:
    best = max(res.predictor_runs)
    runs = ", ".join(f"{r:.1f}" for r in res.predictor_runs)
    lat, hist = res.latency_s, res.histogram_s

    def trio(d: dict[str, float]) -> str:
        return " / ".join(f"{d[k]:.3f}" for k in ("p50", "p95", "p99")) if d else "–"

    p99 = lat.get("p99", math.inf)
    rows = [
        f"| measure (n={args.n}, batch {args.batch_size}) | value | target | met |",
        "|---|---:|---|---|",
        f"| bare predictor ({res.predictor_precision}, {res.predictor_device}; runs {runs}) "
        f"| {best:.1f} texts/s | | |",
        f"| pipeline news -> news.scored | {res.scored_rate:.1f} rec/s | | |",
        f"| pipeline news -> scored -> windows/alerts (drained) | {res.drained_rate:.1f} rec/s "
        "| | |",
        f"| ratio drained / predictor | {res.ratio_drained:.3f} | >= 0.85 "
        f"| {yes_no(res.ratio_drained >= 0.85)} |",
        f"| ratio scored / predictor | {res.ratio_scored:.3f} | >= 0.85 "
        f"| {yes_no(res.ratio_scored >= 0.85)} |",
        f"| publish-to-scored p50 / p95 / p99 s ({res.latency_rate:.1f} rec/s, "
        f"{res.latency_records} rec) | {trio(lat)} | p99 < 1 s | {yes_no(p99 < 1.0)} |",
        f"| worker histogram p50 / p95 / p99 s (estimated) | {trio(hist)} | | |",
    ]
    return "\n".join(rows)


async def run(args: argparse.Namespace, res: Results, workdir: Path) -> None:
    from stream_app.devenv.embedded import start_broker, start_redis
    from tests.support.worker_proc import WorkerProcess

    texts = headlines(args.n)
    broker = start_broker(workdir / "broker")
    redis = None
    worker = None
    try:
        redis = start_redis(workdir / "redis")
        env = bench_worker_env(broker, redis, args.model.resolve(), args, "bench-e2e")
        worker = WorkerProcess(env, workdir / "worker.log")
        settings = worker.settings
        bare_predictor(settings, texts, args, res, "bare predictor [1/2]")
        try:
            await throughput(worker, texts, args, res)
            await latency(worker, texts, args, res)
        except AssertionError as exc:  # WorkerProcess.start: exited or never healthy
            raise BenchError(str(exc)) from None
        worker.stop()
        bare_predictor(settings, texts, args, res, "bare predictor [2/2]")
    finally:
        if worker is not None:
            worker.stop()
        if redis is not None:
            redis.stop()
        broker.stop()
    best = max(res.predictor_runs)
    res.ratio_scored, res.ratio_drained = res.scored_rate / best, res.drained_rate / best


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="model dir (manifest.json)")
    parser.add_argument("--n", type=int, default=2000, help="pre-loaded headlines")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batch-max-wait", type=float, default=0.25, help="worker's, seconds")
    parser.add_argument("--partitions", type=int, default=1, help="news topic partitions")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--quantize", default="auto", choices=("auto", "off"))  # int8 removed
    parser.add_argument("--rate-fraction", type=float, default=0.5, help="of the drained rate")
    parser.add_argument("--duration", type=float, default=45.0, help="latency phase, seconds")
    parser.add_argument("--event-gap", type=float, default=2.0, help="mean s between events")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--predictor-thread",
        default="executor",
        choices=("executor", "main"),
        help="where the bare predictor runs (the worker uses a one-thread executor)",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="per phase, seconds")
    parser.add_argument("--start-timeout", type=float, default=240.0, help="worker start, s")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args(argv)
    if args.n < 2 * args.batch_size:
        parser.error("--n must be at least twice --batch-size (the first batch is excluded)")
    if not 0 < args.rate_fraction <= 1 or args.duration <= 0 or args.event_gap <= 0:
        parser.error("need 0 < --rate-fraction <= 1, --duration > 0 and --event-gap > 0")

    from models.checkpoint import read_manifest

    try:
        version = read_manifest(args.model).model_version
    except FinpulseError as exc:
        print(f"error: --model {args.model}: {exc}", file=sys.stderr)
        return 2
    res = Results()
    ok, _, info = run_measured("finpulse-bench-e2e-", lambda workdir: run(args, res, workdir))
    if not ok:
        return 1
    table = markdown(res, args)
    print(table)
    print()
    print_footer(
        info,
        mean_scoring_micro_batch=f"{res.mean_batch:.1f}",
        dead_letters=res.dead_letters or 0,
        alerts=f"{res.alerts:.0f}",
        partitions=args.partitions,
        model=f"{args.model} ({version})",
    )
    if args.json:
        write_json(args.json, res, info=info, markdown=table, args=vars(args), model=version)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
