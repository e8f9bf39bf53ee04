"""``finpulse backtest``: a feed through the worker's own code, in process, by event time.

The pipeline is the live one minus the broker: ``parse_news`` (validation and dead-letter
reasons), ``Scorer`` + ``to_entity_events`` (model and entities), ``Aggregator`` over a
``MemoryWindowStore`` (windows and detector). Items are fed in event-time order; the
aggregator evaluates the detector after every event, so batch size changes speed, not
alerts. The model runs in a worker thread while the previous batch is aggregated, so a
cold run costs about what the model costs.

Outputs (in ``--output``): ``alerts.jsonl`` (the live alert JSON), ``timeseries.csv``,
``summary.json`` and ``report.html`` with PNG charts (stream_app/report.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from models.errors import FinpulseError
from stream_app.config import Settings
from stream_app.feeds import LoadedFeed, load_feed
from stream_app.schemas import Alert, EntityEvent
from stream_app.windows import Counts

__all__ = [
    "BacktestError",
    "BacktestRun",
    "apply_overrides",
    "build_predictor",
    "main",
    "run_backtest",
    "write_outputs",
]


class BacktestError(FinpulseError):
    """Bad backtest arguments (e.g. an unknown --set key) or an unusable feed."""


def _parse_value(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _known(settings: Settings, key: str) -> bool:
    model: Any = settings
    for part in key.split("."):
        fields = type(model).model_fields
        if part not in fields:
            return False
        model = getattr(model, part)
    return not hasattr(type(model), "model_fields")  # a leaf, not a whole section


def apply_overrides(settings: Settings, pairs: Sequence[str]) -> Settings:
    """``--set key=value`` (value as JSON, else text) applied and validated like the env."""
    changes: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise BacktestError(f"--set {pair!r}: expected KEY=VALUE, e.g. detector.fire_z=4")
        if not _known(settings, key):
            raise BacktestError(
                f"--set {key}: unknown setting; use a field of Settings, e.g. batch_size, "
                "window.window_seconds, detector.fire_z"
            )
        changes[key] = _parse_value(value.strip())
    try:
        return settings.with_overrides(**changes) if changes else settings
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise BacktestError(f"--set gives invalid settings: {problems}") from None


def build_predictor(
    settings: Settings, *, cache_dir: Path | None = None, use_cache: bool = True
) -> Any:
    """The worker's predictor (same loader and options), behind the prediction cache."""
    from models.checkpoint import read_manifest
    from stream_app.app import load_worker_predictor

    if not use_cache:
        return load_worker_predictor(settings)
    from stream_app.prediction_cache import CachingPredictor, PredictionCache

    version = read_manifest(settings.model_dir).model_version
    namespace = f"{version}|device={settings.device}|quantize={settings.quantize}"
    return CachingPredictor(
        PredictionCache.in_dir(cache_dir),
        version,
        lambda: load_worker_predictor(settings),
        namespace=namespace,
    )


@dataclass
class BacktestRun:
    """Everything a run produced, before it is written out."""

    alerts: list[Alert] = field(default_factory=list)
    dead_lettered: Counter[str] = field(default_factory=Counter)
    scored: int = 0
    applied: int = 0
    duplicates: int = 0
    late: int = 0
    buckets: dict[str, dict[int, Counts]] = field(default_factory=dict)
    model_version: str | None = None
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)  # first predictor failure details


def _count_buckets(run: BacktestRun, events: Sequence[EntityEvent], bucket_ms: int) -> None:
    buckets = run.buckets
    for ev in events:
        per = buckets.get(ev.entity)
        if per is None:
            per = buckets[ev.entity] = {}
        b = ev.event_time_ms // bucket_ms
        c = per.get(b)
        if c is None:
            c = per[b] = Counts()
        c.add(Counts.of_event(ev.sentiment, ev.negative_prob))


_QUEUE_BATCHES = 8  # scored batches the model thread may run ahead of the aggregator


def _score_all(
    scorer: Any,
    batches: list[list[Any]],
    loop: asyncio.AbstractEventLoop,
    queue: asyncio.Queue[Any],
    room: threading.Semaphore,
    stop: threading.Event,
) -> None:
    """Model thread: score every batch in order, hand each result to the event loop."""
    try:
        for batch in batches:
            room.acquire()
            if stop.is_set():
                return
            result = scorer.score(batch)
            loop.call_soon_threadsafe(queue.put_nowait, (len(batch), result))
    except BaseException as exc:  # handed to the loop, which re-raises it
        loop.call_soon_threadsafe(queue.put_nowait, exc)


async def _run(
    feed: LoadedFeed,
    settings: Settings,
    predictor: Any,
    batch_size: int,
    progress: bool,
    aggregate_batch_size: int,
) -> BacktestRun:
    from tqdm import tqdm

    from stream_app.aggregator import Aggregator, BatchOutcome
    from stream_app.scoring import Scorer, to_entity_events
    from stream_app.store_memory import MemoryWindowStore

    run = BacktestRun()
    run.dead_lettered.update(b.reason for b in feed.bad)
    scorer = Scorer(predictor, settings)
    aggregator = Aggregator(MemoryWindowStore(), settings.window, settings.detector)
    seen_alerts: set[str] = set()
    bucket_ms = settings.window.bucket_seconds * 1000

    async def emit(outcome: BatchOutcome) -> None:
        for alert in outcome.alerts:
            if alert.alert_id not in seen_alerts:
                seen_alerts.add(alert.alert_id)
                run.alerts.append(alert)

    async def aggregate(events: list[EntityEvent]) -> None:
        outcome = await aggregator.process(events, emit)
        run.applied += outcome.applied
        run.duplicates += outcome.duplicates
        run.late += len(outcome.late)
        run.dead_lettered["late_event"] += len(outcome.late)
        run.dead_lettered["invalid_event"] += len(outcome.rejected)

    items = [f.item for f in feed.items]
    batches = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    pending: list[EntityEvent] = []
    pending_items = 0

    async def take(n_items: int, result: Any, bar: Any) -> None:
        nonlocal pending, pending_items
        scored = list(result.scored)
        run.scored += len(scored)
        run.dead_lettered["predictor_failure"] += len(result.failed)
        for entry in result.failed[: max(0, 5 - len(run.failures))]:
            run.failures.append(entry[1])
        if scored and run.model_version is None:
            run.model_version = scored[0].model_version
        events = to_entity_events(scored)
        _count_buckets(run, events, bucket_ms)
        pending += events
        pending_items += n_items
        if len(pending) >= aggregate_batch_size:
            await aggregate(pending)
            bar.update(pending_items)
            pending, pending_items = [], 0

    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    room, stop = threading.Semaphore(_QUEUE_BATCHES), threading.Event()
    started = time.perf_counter()
    # The model scores small batches (what the predictor is tuned for) while the aggregator
    # takes large ones: its results do not depend on batch cuts, and each aggregator batch
    # costs a store read/commit per entity, so fewer batches is less work.
    with (
        ThreadPoolExecutor(1, thread_name_prefix="backtest-model") as pool,
        tqdm(total=len(items), unit="item", desc="backtest", disable=not progress) as bar,
    ):
        # While a prediction cache answers everything, scoring is pure Python: in a second
        # thread it would only contend for the GIL. At the first miss the model is needed,
        # and from then on it runs in its own thread, overlapped with the aggregator.
        k = 0
        misses = getattr(predictor, "misses", None)
        while isinstance(misses, int) and k < len(batches):
            await take(len(batches[k]), scorer.score(batches[k]), bar)
            k += 1
            if predictor.misses != misses:
                break
        rest = batches[k:]
        producer = loop.run_in_executor(pool, _score_all, scorer, rest, loop, queue, room, stop)
        try:
            for _ in range(len(rest)):
                got = await queue.get()
                room.release()
                if isinstance(got, BaseException):
                    raise got
                n_items, result = got
                await take(n_items, result, bar)
            if pending:
                await aggregate(pending)
            bar.update(pending_items)
        finally:
            stop.set()
            room.release()  # wake the model thread if it waits for room
            await producer
    run.seconds = time.perf_counter() - started
    run.dead_lettered = +run.dead_lettered  # drop zero counts
    return run


def run_backtest(
    feed: LoadedFeed,
    settings: Settings,
    predictor: Any,
    *,
    batch_size: int | None = None,
    aggregate_batch_size: int | None = None,
    progress: bool = False,
) -> BacktestRun:
    """``batch_size`` texts per model call; ``aggregate_batch_size`` events per aggregator call."""
    return asyncio.run(
        _run(
            feed,
            settings,
            predictor,
            batch_size or settings.batch_size,
            progress,
            aggregate_batch_size or settings.aggregate_batch_size,
        )
    )


def _summary(
    run: BacktestRun,
    feed: LoadedFeed,
    settings: Settings,
    *,
    source: Path,
    overrides: Sequence[str],
    batch_size: int,
    predictor: Any,
) -> dict[str, Any]:
    per_entity: dict[str, dict[str, int]] = {}
    for a in run.alerts:
        per_entity.setdefault(a.entity, {"firing": 0, "resolved": 0})[a.state] += 1
    states = Counter(a.state for a in run.alerts)
    return {
        "feed": str(source),
        "rows": len(feed.items) + len(feed.bad) + feed.filtered,
        "items": len(feed.items),
        "outside_time_range": feed.filtered,
        "scored": run.scored,
        "dead_lettered": dict(sorted(run.dead_lettered.items())),
        "bad_rows": [
            {"line": b.line, "reason": b.reason, "detail": b.detail} for b in feed.bad[:100]
        ],
        "predictor_failures": run.failures,
        "entity_events_applied": run.applied,
        "duplicates": run.duplicates,
        "late_events": run.late,
        "alerts": {
            "total": len(run.alerts),
            "firing": states["firing"],
            "resolved": states["resolved"],
        },
        "alerts_by_entity": dict(sorted(per_entity.items())),
        "model_version": run.model_version or getattr(predictor, "model_version", None),
        "prediction_cache": {
            "hits": getattr(predictor, "hits", None),
            "misses": getattr(predictor, "misses", None),
        },
        "config": {
            "window": settings.window.model_dump(),
            "detector": settings.detector.model_dump(),
            "batch_size": batch_size,
            "overrides": list(overrides),
            "model_dir": str(settings.model_dir),
        },
        "seconds": round(run.seconds, 3),
        "items_per_second": round(run.scored / run.seconds, 1) if run.seconds > 0 else None,
    }


def write_outputs(
    output: Path, run: BacktestRun, summary: dict[str, Any], settings: Settings
) -> None:
    from stream_app.report import write_timeseries

    output.mkdir(parents=True, exist_ok=True)
    with (output / "alerts.jsonl").open("w", encoding="utf-8") as fh:
        for alert in run.alerts:
            fh.write(alert.model_dump_json() + "\n")
    entities = {a.entity for a in run.alerts} | {"market"}
    entities |= {e["entity"] for e in summary.get("truth", {}).get("per_event", [])}
    write_timeseries(output / "timeseries.csv", run.buckets, sorted(entities), settings)
    (output / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")


def main(args: argparse.Namespace) -> dict[str, Any]:
    from stream_app.cli import load_settings
    from stream_app.replay import parse_time_arg
    from stream_app.truth import FiringAlert, evaluate, events_from_marks, load_truth

    settings = apply_overrides(load_settings(model_dir=args.model), args.overrides)
    batch_size = args.batch_size or settings.batch_size
    if batch_size < 1:
        raise BacktestError(f"--batch-size must be >= 1, got {batch_size}")
    feed = load_feed(
        args.feed,
        settings,
        fmt=args.fmt,
        strict=args.strict,
        time_from=parse_time_arg(args.time_from, "--from"),
        time_to=parse_time_arg(args.time_to, "--to"),
    )
    predictor = build_predictor(settings, cache_dir=args.cache_dir, use_cache=not args.no_cache)
    run = run_backtest(feed, settings, predictor, batch_size=batch_size,
                       progress=not args.no_progress)  # fmt: skip
    summary = _summary(run, feed, settings, source=args.feed, overrides=args.overrides,
                       batch_size=batch_size, predictor=predictor)  # fmt: skip

    if args.truth is not None:
        truth = load_truth(args.truth)
    else:
        marks = [(f.event_id, f.item.published_at, [f"ticker:{t}" for t in f.item.tickers])
                 for f in feed.items if f.event_id]  # fmt: skip
        truth = events_from_marks(marks)
    if truth:
        tolerance = timedelta(
            seconds=args.tolerance if args.tolerance is not None else settings.window.window_seconds
        )
        firing = [FiringAlert(a.entity, a.fired_at, a.window_start, a.window_end)
                  for a in run.alerts if a.state == "firing"]  # fmt: skip
        summary["truth"] = evaluate(firing, truth, tolerance).as_dict()
    write_outputs(args.output, run, summary, settings)
    if not args.no_report:
        from stream_app.report import write_report

        write_report(args.output, summary, run, settings, truth)
    return summary
