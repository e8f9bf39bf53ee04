"""``finpulse replay``, ``finpulse backtest`` and ``finpulse generate-feed``.

Only argparse lives here; each handler imports its (heavier) module when it runs, so
``finpulse --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from finpulse.cli.common import (
    EXIT_SKIPPED,
    bounded_int,
    load_settings,
    non_negative_float,
    positive_int,
    time_arg,
    topic_name,
)

__all__ = ["register"]

_EXIT_STATUS = (
    "Exit status: 0 every row was used; 3 finished, but rows were skipped (each is logged "
    "with its line, and the summary counts them by reason); 2 an error."
)


def register(subparsers: Any) -> None:
    _register_generate(subparsers)
    _register_replay(subparsers)
    _register_backtest(subparsers)


def _register_generate(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "generate-feed",
        help="write a synthetic news feed with injected events and its ground truth",
        description=(
            "Build a feed from the vendored labelled tweets (real headlines, unchanged): a "
            "daily arrival rhythm plus events for tickers the headlines name -- negative "
            "bursts, positive rallies, neutral volume surges, and duplicate storms (one story "
            "copied by many outlets, which must not alert) -- written to a truth side file."
        ),
    )
    p.add_argument("--output", type=Path, required=True, help="feed file (.jsonl, .csv, .parquet)")
    p.add_argument("--items", type=int, default=3000, help="total rows, events included")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hours", type=float, default=48.0, help="event-time span of the feed")
    p.add_argument("--start", default=None, help="ISO start time (default 2026-11-02T00:00Z)")
    p.add_argument(
        "--bursts",
        nargs="+",
        default=None,
        metavar="N|KIND=N|[KIND:]TICKER@ISO/MINUTES/COUNT",
        help="random events per kind (negative, positive, volume, storm; a bare N: N negative "
        "bursts), or explicit events, e.g. TSLA@2026-11-02T15:30Z/20/15 "
        "storm:NFLX@2026-11-03T15:00Z/15/12 (default: negative=4 positive=2 volume=2 storm=3)",
    )
    p.add_argument("--truth", type=Path, default=None, help="truth file (default FEED.truth.json)")
    p.add_argument(
        "--data-dir", type=Path, default=None, help="labelled sentiment CSVs (default: packaged)"
    )
    p.set_defaults(handler=_generate)


def _generate(args: argparse.Namespace) -> int:
    from stream_app.offline import synthetic as samples

    start = samples.DEFAULT_START
    if args.start:
        start = samples.parse_burst(f"X@{args.start}/1/1").start
    bursts: int | dict[samples.EventKind, int] | list[samples.BurstSpec]
    if args.bursts is None:
        bursts = dict(samples.DEFAULT_EVENTS)
    elif len(args.bursts) == 1 and args.bursts[0].isdigit():
        bursts = int(args.bursts[0])
    elif all("=" in b for b in args.bursts):
        bursts = samples.parse_event_counts(args.bursts)
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
        print(f"  {ev['kind']:8} {ev['event_id']}: {ev['entity']} {ev['start']} .. {ev['end']}"
              f" ({ev['items']} items)")  # fmt: skip
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
            "Redis key prefix and alert topic; see docs/replay-backtest.md. A broker that "
            "does not answer within FINPULSE_BROKER_CONNECT_TIMEOUT seconds (15) is an error."
        ),
        epilog=_EXIT_STATUS,
    )
    p.add_argument("feed", nargs="?", type=Path, help="feed file (.jsonl, .csv, .parquet)")
    p.add_argument(
        "--topic", type=topic_name, default=None, help="target topic (default FINPULSE_TOPIC_NEWS)"
    )
    p.add_argument("--speed", default="max", help="N (times real time) or 'max'")
    p.add_argument("--from", dest="time_from", default=None, help="event-time start (ISO)")
    p.add_argument("--to", dest="time_to", default=None, help="event-time end, exclusive (ISO)")
    p.add_argument("--strict", action="store_true", help="a malformed row aborts the replay")
    p.add_argument("--format", dest="fmt", default=None, choices=["jsonl", "csv", "parquet"])
    p.add_argument(
        "--partitions", type=bounded_int(1, 1024), default=None,
        help="create the topic with this many partitions if it is missing",
    )  # fmt: skip
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--from-topic", type=topic_name, default=None,
        help="copy from this topic instead of a file",
    )  # fmt: skip
    p.add_argument("--from-offset", type=int, default=None, help="first offset per partition")
    p.add_argument("--from-time", default=None, help="first record timestamp (ISO)")
    p.add_argument("--run-id", default=None, help="isolated run name (topic mode)")
    p.add_argument(
        "--print-env", action="store_true", help="print the FINPULSE_* env of the isolated run"
    )
    p.set_defaults(handler=_replay)


def _replay(args: argparse.Namespace) -> int:
    import asyncio

    from stream_app.offline.replay import (
        ReplayError,
        isolated_env,
        isolated_settings,
        parse_speed,
        replay_file,
        replay_topic,
    )

    settings = load_settings()
    speed = parse_speed(args.speed)
    progress = not args.no_progress
    time_to = time_arg(args.time_to, "--to")
    if args.from_topic:
        if args.feed is not None:
            raise ReplayError("give either a FEED file or --from-topic, not both")
        if args.run_id is None:
            raise ReplayError("--from-topic needs --run-id (the isolated run to feed)")
        run = isolated_settings(settings, args.run_id)
        if args.print_env:
            for k, v in isolated_env(settings, run).items():
                print(f"export {k}={v}")
            print("finpulse worker  # with the env above: processes this run only")
        job = replay_topic(
            settings, args.from_topic, run, from_offset=args.from_offset,
            from_time=time_arg(args.from_time, "--from-time"), time_to=time_to,
            speed=speed, progress=progress,
        )  # fmt: skip
    elif args.feed is None:
        raise ReplayError("give a FEED file, or --from-topic with --run-id")
    else:
        job = replay_file(
            args.feed, settings, topic=args.topic, speed=speed, fmt=args.fmt,
            strict=args.strict, time_from=time_arg(args.time_from, "--from"), time_to=time_to,
            partitions=args.partitions, progress=progress,
        )  # fmt: skip
    summary = asyncio.run(job)
    print(summary.line())
    return EXIT_SKIPPED if summary.skipped else 0


def _register_backtest(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "backtest",
        help="run scoring, windows and detector over a feed in process, with an HTML report",
        description=(
            "Same Scorer, Aggregator and detector as the worker, with an in-memory window "
            "store, driven by event time. Config: FINPULSE_* env plus --set overrides."
        ),
        epilog=_EXIT_STATUS + " With --assert: 1 when a condition fails (before 3).",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("feed", nargs="?", type=Path, help="feed file (.jsonl, .csv, .parquet)")
    source.add_argument(
        "--sample", action="store_true",
        help="the packaged sample feed, scored against its packaged ground truth",
    )  # fmt: skip
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
    p.add_argument("--batch-size", type=positive_int, default=None, help="items per predictor call")
    p.add_argument("--truth", type=Path, default=None, help="ground truth JSON (entity spans)")
    p.add_argument(
        "--tolerance", type=non_negative_float, default=None,
        help="truth matching tolerance, seconds",
    )  # fmt: skip
    p.add_argument("--from", dest="time_from", default=None, help="event-time start (ISO)")
    p.add_argument("--to", dest="time_to", default=None, help="event-time end, exclusive (ISO)")
    p.add_argument("--strict", action="store_true", help="a malformed row aborts the backtest")
    p.add_argument("--format", dest="fmt", default=None, choices=["jsonl", "csv", "parquet"])
    p.add_argument("--cache-dir", type=Path, default=None, help="prediction cache dir")
    p.add_argument("--no-cache", action="store_true", help="always run the model")
    p.add_argument("--no-report", action="store_true", help="skip report.html and charts")
    p.add_argument(
        "--scored", action="store_true",
        help="also write scored.jsonl: every scored record with its story id and novelty",
    )  # fmt: skip
    p.add_argument("--no-progress", action="store_true")
    prices = p.add_argument_group(
        "prices", "forward returns after alerts (see docs/replay-backtest.md for the rule)"
    )
    prices.add_argument(
        "--prices", type=Path, default=None, metavar="FILE",
        help="CSV or Parquet with ticker, timestamp, price (--sample: the packaged SYNTHETIC file)",
    )  # fmt: skip
    prices.add_argument("--no-prices", action="store_true", help="with --sample: no prices")
    prices.add_argument(
        "--price-tolerance", type=positive_int, default=120, metavar="SECONDS",
        help="oldest price that may stand for an entry or exit time (default 120)",
    )  # fmt: skip
    prices.add_argument(
        "--baseline-draws", type=positive_int, default=100, metavar="N",
        help="random times per alert on its ticker for the baseline (default 100)",
    )  # fmt: skip
    prices.add_argument(
        "--bootstrap", type=positive_int, default=2000, metavar="N",
        help="bootstrap resamples for the confidence intervals (default 2000)",
    )  # fmt: skip
    prices.add_argument("--seed", type=int, default=0, help="baseline and bootstrap seed")
    p.add_argument(
        "--assert", dest="assertions", action="append", default=[], metavar="CONDITIONS",
        help="e.g. 'precision>=0.8,recall>=0.9,delay_p90<=300': exit 1 when one fails "
        "(metrics: docs/replay-backtest.md)",
    )  # fmt: skip
    p.set_defaults(handler=_backtest)


def _backtest(args: argparse.Namespace) -> int:
    import sys

    from finpulse.resources import sample_feed, sample_prices, sample_truth
    from stream_app.offline.backtest import apply_overrides, backtest
    from stream_app.offline.gate import GateError, parse_conditions, sources
    from stream_app.offline.price_metrics import PriceOptions

    conditions = parse_conditions(args.assertions)  # malformed: exit 2 before any work
    settings = apply_overrides(load_settings(model_dir=args.model), args.overrides)
    feed, truth, prices = args.feed, args.truth, args.prices
    if args.sample:
        feed, truth = sample_feed(), truth or sample_truth()
        if prices is None and not args.no_prices:
            prices = sample_prices()
    if "prices" in sources(conditions) and prices is None:
        raise GateError("--assert uses price metrics: give --prices FILE")
    options = PriceOptions(
        tolerance_seconds=args.price_tolerance, seed=args.seed,
        bootstrap_resamples=args.bootstrap, baseline_draws=args.baseline_draws,
    )  # fmt: skip
    summary = backtest(
        feed, settings, args.output, overrides=args.overrides, truth_path=truth,
        tolerance_seconds=args.tolerance, batch_size=args.batch_size, fmt=args.fmt,
        strict=args.strict, time_from=time_arg(args.time_from, "--from"),
        time_to=time_arg(args.time_to, "--to"), cache_dir=args.cache_dir,
        use_cache=not args.no_cache, report=not args.no_report, progress=not args.no_progress,
        prices_path=prices, price_options=options, assertions=conditions,
        scored=args.scored,
    )  # fmt: skip
    print(json.dumps(summary, indent=2, default=str))
    gate = summary.get("assertions")
    if gate is not None:
        failed = [c for c in gate["conditions"] if not c["ok"]]
        if failed:
            reason = "; ".join(c["reason"] for c in failed)
            print(f"finpulse: assertion failed: {reason}", file=sys.stderr)
            return 1
        print(f"finpulse: assertions passed: {', '.join(c.text for c in conditions)}",
              file=sys.stderr)  # fmt: skip
    return EXIT_SKIPPED if summary["skipped_rows"] else 0
