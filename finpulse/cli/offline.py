"""``finpulse replay``, ``finpulse backtest`` and ``finpulse generate-feed``.

Only argparse lives here; each handler imports its (heavier) module when it runs, so
``finpulse --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    _register_generate(subparsers)
    _register_replay(subparsers)
    _register_backtest(subparsers)


def _register_generate(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "generate-feed",
        help="write a synthetic news feed with injected negative bursts and its ground truth",
        description=(
            "Build a feed from the vendored labelled tweets: daily arrival rhythm, cashtag "
            "entities, and negative bursts for chosen tickers (written to a truth side file)."
        ),
    )
    p.add_argument("--output", type=Path, required=True, help="feed file (.jsonl, .csv, .parquet)")
    p.add_argument("--items", type=int, default=3000, help="total rows, bursts included")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hours", type=float, default=48.0, help="event-time span of the feed")
    p.add_argument("--start", default=None, help="ISO start time (default 2026-11-02T00:00Z)")
    p.add_argument(
        "--bursts",
        nargs="+",
        default=["4"],
        metavar="N|TICKER@ISO/MINUTES/COUNT",
        help="a number of random bursts, or explicit bursts (e.g. TSLA@2026-11-02T15:30Z/20/30)",
    )
    p.add_argument("--truth", type=Path, default=None, help="truth file (default FEED.truth.json)")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=Path("data/twitter-financial-news"),
        help="vendored sentiment CSVs",
    )
    p.set_defaults(handler=_generate)


def _generate(args: argparse.Namespace) -> int:
    from stream_app import samples

    start = samples.DEFAULT_START
    if args.start:
        start = samples.parse_burst(f"X@{args.start}/1/1").start
    bursts: int | list[samples.BurstSpec]
    if len(args.bursts) == 1 and args.bursts[0].isdigit():
        bursts = int(args.bursts[0])
    else:
        bursts = [samples.parse_burst(b) for b in args.bursts]
    texts = samples.load_labelled_texts(args.data_dir)
    feed = samples.generate_feed(
        texts, items=args.items, seed=args.seed, start=start, hours=args.hours, bursts=bursts
    )
    truth_path = samples.write_feed(feed, args.output, args.truth)
    first, last = feed.rows[0]["published_at"], feed.rows[-1]["published_at"]
    print(f"wrote {len(feed.rows)} items ({first} .. {last}) to {args.output}")
    for ev in feed.truth["events"]:
        print(f"  burst {ev['event_id']}: {ev['entity']} {ev['start']} .. {ev['end']}")
    print(f"ground truth: {truth_path}")
    return 0


def _register_replay(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "replay",
        help="publish a historical feed (or a slice of a topic) into Kafka in event-time order",
        description=(
            "FEED mode: publish a feed file to --topic with record timestamp = event time. "
            "Topic mode (--from-topic): copy a slice of an existing topic into the input "
            "topic of an isolated run (--run-id), whose worker uses its own consumer group, "
            "Redis key prefix and alert topic; see docs/replay-backtest.md."
        ),
    )
    p.add_argument("feed", nargs="?", type=Path, help="feed file (.jsonl, .csv, .parquet)")
    p.add_argument("--topic", default=None, help="target topic (default FINPULSE_TOPIC_NEWS)")
    p.add_argument("--speed", default="max", help="N (times real time) or 'max'")
    p.add_argument("--from", dest="time_from", default=None, help="event-time start (ISO)")
    p.add_argument("--to", dest="time_to", default=None, help="event-time end, exclusive (ISO)")
    p.add_argument("--strict", action="store_true", help="a malformed row aborts the replay")
    p.add_argument("--format", dest="fmt", default=None, choices=["jsonl", "csv", "parquet"])
    p.add_argument("--partitions", type=int, default=None, help="create the topic if missing")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--from-topic", default=None, help="copy from this topic instead of a file")
    p.add_argument("--from-offset", type=int, default=None, help="first offset per partition")
    p.add_argument("--from-time", default=None, help="first record timestamp (ISO)")
    p.add_argument("--run-id", default=None, help="isolated run name (topic mode)")
    p.add_argument(
        "--print-env", action="store_true", help="print the FINPULSE_* env of the isolated run"
    )
    p.set_defaults(handler=_replay)


def _replay(args: argparse.Namespace) -> int:
    from stream_app.replay import main

    return main(args)


def _register_backtest(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "backtest",
        help="run scoring, windows and detector over a feed in process, with an HTML report",
        description=(
            "Same Scorer, Aggregator and detector as the worker, with an in-memory window "
            "store, driven by event time. Config: FINPULSE_* env plus --set overrides."
        ),
    )
    p.add_argument("feed", type=Path, help="feed file (.jsonl, .csv, .parquet)")
    p.add_argument(
        "--model", type=Path, default=None, help="model dir (default FINPULSE_MODEL_DIR)"
    )
    p.add_argument("--output", type=Path, required=True, help="output dir")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="setting override, e.g. detector.fire_z=4 or window.window_seconds=600",
    )
    p.add_argument("--batch-size", type=int, default=None, help="items per predictor call")
    p.add_argument("--truth", type=Path, default=None, help="ground truth JSON (entity spans)")
    p.add_argument(
        "--tolerance", type=float, default=None, help="truth matching tolerance, seconds"
    )
    p.add_argument("--from", dest="time_from", default=None, help="event-time start (ISO)")
    p.add_argument("--to", dest="time_to", default=None, help="event-time end, exclusive (ISO)")
    p.add_argument("--strict", action="store_true", help="a malformed row aborts the backtest")
    p.add_argument("--format", dest="fmt", default=None, choices=["jsonl", "csv", "parquet"])
    p.add_argument("--cache-dir", type=Path, default=None, help="prediction cache dir")
    p.add_argument("--no-cache", action="store_true", help="always run the model")
    p.add_argument("--no-report", action="store_true", help="skip report.html and charts")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=_backtest)


def _backtest(args: argparse.Namespace) -> int:
    from stream_app.backtest import main

    summary = main(args)
    print(json.dumps(summary, indent=2, default=str))
    return 0
