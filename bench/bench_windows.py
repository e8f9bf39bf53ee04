"""Entity-events/s through Aggregator + RedisWindowStore from one process.

Starts a local redis-server (stream_app.devenv.embedded) unless --redis-url is given, generates
a realistic entity mix (500 tickers with a skewed popularity, 20 topics, market; 1-2
tickers per news item, so ~3.3 entity events per item; real corpus headlines with their
novelty signatures, in event-time order as the sequencer releases them), and pushes it
through the aggregator in batches of N news items. Event generation is not timed. Each
batch size runs with the configured detectors and novelty ("stories") and with novelty
off and the negative detector only ("counts"), so the cost of story-level detection is a
ratio measured in one run. Prints one Markdown table row per run. Target: >= 50,000
entity-events/s.

    python -m bench.bench_windows --news 20000 --batch-news 64 1024
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

import redis.asyncio as aioredis
from tqdm import tqdm

from bench._common import machine, markdown_table, print_footer
from models.labels import TOPIC_LABELS, topic_slug
from stream_app.config import Settings
from stream_app.core.aggregator import Aggregator, BatchOutcome
from stream_app.devenv.embedded import start_redis
from stream_app.schemas import EntityEvent
from stream_app.store.redis import RedisWindowStore

T0 = 1_790_000_000_000


def make_news_events(n_news: int, seed: int = 0) -> list[list[EntityEvent]]:
    from stream_app.core.novelty import signatures
    from stream_app.offline.synthetic import load_labelled_texts

    rng = random.Random(seed)
    corpus = list(dict.fromkeys(t.text for t in load_labelled_texts()))
    heads = [corpus[i % len(corpus)] for i in range(n_news)]
    sigs = signatures(heads)
    tickers = [f"T{i:03d}" for i in range(500)]
    weights = [1 / (i + 1) for i in range(500)]  # Zipf-like popularity
    topics = [topic_slug(t) for t in TOPIC_LABELS]
    out: list[list[EntityEvent]] = []
    t = T0
    for i in range(n_news):
        t += rng.randint(0, 400)  # ~5 news per second of event time
        syms = set(rng.choices(tickers, weights, k=rng.choice([1, 1, 2, 3])))
        ents = [f"ticker:{s}" for s in sorted(syms)] + [f"topic:{rng.choice(topics)}", "market"]
        neg = rng.random() < 0.15
        sent = "negative" if neg else rng.choice(["neutral", "positive"])
        p = rng.uniform(0.5, 1) if neg else rng.uniform(0, 0.4)
        out.append(
            [
                EntityEvent(
                    entity=e,
                    id=f"n{i}",
                    event_time_ms=t,
                    sentiment=sent,  # type: ignore[arg-type]
                    negative_prob=p,
                    headline=heads[i],
                    model_version="bench",
                    signature=sigs[i].wire,
                )
                for e in ents
            ]
        )
    return out


async def run(
    url: str, news: list[list[EntityEvent]], batch_news: int, prefix: str, stories: bool
) -> tuple[int, float, int]:
    settings = Settings()  # type: ignore[call-arg]  # pydantic-settings reads the env
    if stories:
        settings = settings.with_overrides(
            **{"detector.detect": ["negative", "positive", "volume"]}
        )
    else:
        settings = settings.with_overrides(**{"detector.novelty_window_seconds": 0})
    client = aioredis.Redis.from_url(url)
    store = RedisWindowStore(client, prefix, retention_seconds=settings.window.retention_seconds)
    agg = Aggregator(store, settings.window, settings.detector)
    alerts = 0

    async def emit(o: BatchOutcome) -> None:
        nonlocal alerts
        alerts += len(o.alerts)

    batches = [
        [e for item in news[i : i + batch_news] for e in item]
        for i in range(0, len(news), batch_news)
    ]
    total = sum(len(b) for b in batches)
    start = time.perf_counter()
    with tqdm(total=total, unit="ev", desc=f"batch={batch_news} news", file=sys.stderr) as bar:
        for b in batches:
            await agg.process(b, emit)
            bar.update(len(b))
    elapsed = time.perf_counter() - start
    await store.close()
    return total, elapsed, alerts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--news", type=int, default=20_000)
    ap.add_argument("--batch-news", type=int, nargs="+", default=[64, 1024])
    ap.add_argument("--redis-url", default=None, help="default: start a local redis-server")
    args = ap.parse_args()
    news = make_news_events(args.news)
    svc = None
    url = args.redis_url
    if url is None:
        svc = start_redis(Path(tempfile.mkdtemp(prefix="finpulse-bench-redis-")))
        url = svc.url
    try:
        rows = []
        for bn in args.batch_news:
            for stories in (True, False):
                prefix = f"bench{bn}-{int(stories)}-{time.time_ns()}"
                total, secs, alerts = asyncio.run(run(url, news, bn, prefix, stories))
                rows.append((bn, "stories" if stories else "counts", total, secs, alerts))
    finally:
        if svc is not None:
            svc.stop()
    table = [
        (f"{bn} / {total / max(1, len(range(0, args.news, bn))):.0f}", mode, total,
         f"{total / secs:,.0f}", alerts)
        for bn, mode, total, secs, alerts in rows
    ]  # fmt: skip
    header = ["batch (news / ~events)", "mode", "entity events", "events/s", "alerts"]
    print(markdown_table(header, table))
    print()
    print_footer(machine())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
