"""Replay --speed max: records/s from a feed file into a local broker.

Starts an embedded tansu broker unless --broker is given, generates a sample feed of
--items rows (not timed), validates and sorts it (timed separately), then publishes it
into a fresh 1-partition topic with the same code as ``finpulse replay`` and checks the
topic holds every record. Target: >= 20,000 records/s into the local broker.

    python bench/bench_replay.py --items 100000
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench._common import machine, print_footer
from finpulse.resources import dataset_dir
from stream_app.config import Settings
from stream_app.devenv.embedded import start_broker
from stream_app.offline.feeds import load_feed
from stream_app.offline.replay import ReplayRecord, publish
from stream_app.offline.synthetic import generate_feed, load_labelled_texts, write_feed
from stream_app.service.broker import ensure_topics

REPO = Path(__file__).resolve().parents[1]


async def _count(settings: Settings, topic: str) -> int:
    from stream_app.offline.replay import copy_topic

    return len(await copy_topic(settings, topic, from_offset=0, idle_ms=500))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--broker", default=None, help="kafka://host:port (default: embedded)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        svc = None if args.broker else start_broker(Path(tmp) / "broker")
        broker = args.broker or (svc.url if svc else "")
        try:
            settings = Settings(broker=broker, topic_partitions=1)  # type: ignore[call-arg]
            texts = load_labelled_texts(dataset_dir())
            feed_path = Path(tmp) / "feed.jsonl"
            hours = max(48.0, args.items / 1500)
            write_feed(generate_feed(texts, items=args.items, seed=1, hours=hours), feed_path)
            t = time.perf_counter()
            loaded = load_feed(feed_path, settings)
            load_s = time.perf_counter() - t
            records = [ReplayRecord(f.event_ms, f.item.id.encode(), f.raw) for f in loaded.items]
            topic = f"bench-replay-{uuid.uuid4().hex[:8]}"
            asyncio.run(ensure_topics(settings, [topic]))
            summary = asyncio.run(publish(records, settings, topic, progress=False))
            stored = asyncio.run(_count(settings, topic))
        finally:
            if svc:
                svc.stop()
    where = "embedded tansu" if svc else broker
    print(f"\n{len(records)} records, broker {where}\n")
    print("| stage | records/s | note |\n|---|---:|---|")
    load_rate = len(records) / load_s
    print(f"| feed load + validation + sort | {load_rate:,.0f} | not part of the replay rate |")
    print(f"| publish --speed max | {summary.rate:,.0f} | target >= 20,000/s; {stored} in topic |")
    print()
    print_footer(machine())
    return 0 if stored == len(records) else 1


if __name__ == "__main__":
    sys.exit(main())
