"""``finpulse backtest``: a feed through the worker's own code, in process, by event time.

The pipeline is the live one minus the broker: ``parse_news`` (validation and dead-letter
reasons), ``Scorer`` + ``to_entity_events`` (model and entities), ``Aggregator`` over a
``MemoryWindowStore`` (windows and detector). Items are fed in event-time order; the
aggregator evaluates the detector after every event, so batch size changes speed, not
alerts. The model runs in a worker thread while the previous batch is aggregated, so a
cold run costs about what the model costs.

Outputs (in ``--output``): ``alerts.jsonl`` (the live alert JSON), ``timeseries.csv``,
``summary.json`` and ``report.html`` with PNG charts (stream_app/report.py). With a price
file (``--prices``), also forward returns after the alerts against a random baseline
(stream_app/offline/price_metrics.py) in ``summary.json`` (``prices``), ``returns.csv``
and the report. The price file is read before the model runs, so a bad one fails fast.
"""

from __future__ import annotations

import asyncio
import csv
import gc
import json
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from models.errors import FinpulseError
from stream_app.config import Settings
from stream_app.core.windows import Counts
from stream_app.offline.feeds import LoadedFeed, load_feed
from stream_app.offline.gate import Condition, GateError, check
from stream_app.offline.price_metrics import PriceOptions
from stream_app.offline.truth import (
    FiringAlert,
    TruthEvent,
    evaluate,
    evaluate_kinds,
    events_from_marks,
    load_truth,
)
from stream_app.schemas import Alert, EntityEvent

__all__ = [
    "BacktestError",
    "BacktestRun",
    "apply_overrides",
    "backtest",
    "build_predictor",
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
        fields = getattr(type(model), "model_fields", None)  # None: past a leaf (fire_z.x)
        if fields is None or part not in fields:
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
    from stream_app.model import load_worker_predictor

    if not use_cache:
        return load_worker_predictor(settings)
    from stream_app.offline.prediction_cache import CachingPredictor, PredictionCache

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
    repeats: int = 0
    duplicates: int = 0
    late: int = 0
    buckets: dict[str, dict[int, Counts]] = field(default_factory=dict)
    stories: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    scored_records: list[dict[str, Any]] = field(default_factory=list)
    model_version: str | None = None
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)  # first predictor failure details


_QUEUE_BATCHES = 8  # scored batches the model thread may run ahead of the aggregator
_AGGREGATE_EVENTS = 2048  # entity events per aggregator call (results do not depend on it)


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


class _Driver:
    """One backtest run: the model scores 64-text batches, the aggregator takes large ones.

    Scored batches go through a ``Sequencer`` exactly as entity-topic records do in the
    worker (one news partition whose progress is the feed's event time so far, since the
    feed is sorted), so events reach the aggregator in the order a live worker releases
    them: the same alerts and story ids. Results do not depend on batch cuts, and each
    aggregator batch costs a store read/commit per entity, so fewer, larger aggregator
    batches are less work.
    """

    def __init__(
        self,
        settings: Settings,
        predictor: Any,
        aggregate_batch_size: int,
        bar: Any,
        keep_scored: bool = False,
    ) -> None:
        from stream_app.core.aggregator import Aggregator
        from stream_app.core.sequencer import Sequencer
        from stream_app.model import make_scorer
        from stream_app.store.memory import MemoryWindowStore

        self.run = BacktestRun()
        self.scorer = make_scorer(settings, predictor)  # links exactly as the worker does
        self.predictor = predictor
        self.store = MemoryWindowStore(keep_history=True)
        self.aggregator = Aggregator(self.store, settings.window, settings.detector)
        self.sequencer = Sequencer()
        self.aggregate_batch_size = aggregate_batch_size
        self.bar = bar
        self.keep_scored = keep_scored
        self.pending: list[EntityEvent] = []
        self.pending_items = 0
        self.progress = -(2**62)
        self.taken = 0
        self._alert_ids: set[str] = set()

    async def _emit(self, outcome: Any) -> None:
        for alert in outcome.alerts:
            if alert.alert_id not in self._alert_ids:
                self._alert_ids.add(alert.alert_id)
                self.run.alerts.append(alert)
        for story in outcome.stories:
            self.run.stories.setdefault(story.event.id, (story.story_id, story.novelty))

    async def flush(self, final: bool = False) -> None:
        """Aggregate the events released so far (all of them when ``final``)."""
        run = self.run
        if final:
            self.pending += self.sequencer.flush().events
        if self.pending:
            outcome = await self.aggregator.process(self.pending, self._emit)
            run.applied += outcome.applied
            run.repeats += outcome.repeats
            run.duplicates += outcome.duplicates
            run.late += len(outcome.late)
            run.dead_lettered["late_event"] += len(outcome.late)
            run.dead_lettered["invalid_event"] += len(outcome.rejected)
        self.bar.update(self.pending_items)
        self.pending, self.pending_items = [], 0

    async def take(self, n_items: int, result: Any) -> None:
        """One scored batch: count failures, sequence its entity events, maybe aggregate."""
        from stream_app.core.scoring import to_entity_events
        from stream_app.schemas import EntityBatch

        run = self.run
        scored = list(result.scored)
        run.scored += len(scored)
        run.dead_lettered["predictor_failure"] += len(result.failed)
        for entry in result.failed[: max(0, 5 - len(run.failures))]:
            run.failures.append(entry[1])
        if scored and run.model_version is None:
            run.model_version = scored[0].model_version
        if self.keep_scored:
            run.scored_records += [x.model_dump(mode="json") for x in scored]
        events = to_entity_events(scored, with_record=False)
        self.progress = max([self.progress, *(x.event_time_ms for x in scored)])
        batch = EntityBatch(source_partitions=1, progress={0: self.progress}, events=events)
        self.taken += 1
        self.pending += self.sequencer.offer(self.taken, batch)
        self.pending += self.sequencer.release().events
        self.pending_items += n_items
        if len(self.pending) >= self.aggregate_batch_size:
            await self.flush()

    async def warm_prefix(self, batches: list[list[Any]]) -> int:
        """Score inline while a prediction cache answers everything; returns batches done.

        Cached scoring is pure Python, and in a second thread it would only contend for
        the GIL. At the first miss the model is needed, and from then on it runs in its
        own thread, overlapped with the aggregator (``overlapped``).
        """
        done = 0
        misses = getattr(self.predictor, "misses", None)
        while isinstance(misses, int) and done < len(batches):
            await self.take(len(batches[done]), self.scorer.score(batches[done]))
            done += 1
            if self.predictor.misses != misses:
                break
        return done

    async def overlapped(self, batches: list[list[Any]]) -> None:
        """The model thread scores ``batches`` in order while this loop aggregates."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        room, stop = threading.Semaphore(_QUEUE_BATCHES), threading.Event()
        with ThreadPoolExecutor(1, thread_name_prefix="backtest-model") as pool:
            producer = loop.run_in_executor(
                pool, _score_all, self.scorer, batches, loop, queue, room, stop
            )
            try:
                for _ in range(len(batches)):
                    got = await queue.get()
                    room.release()
                    if isinstance(got, BaseException):
                        raise got
                    await self.take(*got)
            finally:
                stop.set()
                room.release()  # wake the model thread if it waits for room
                await producer


async def _run(
    feed: LoadedFeed,
    settings: Settings,
    predictor: Any,
    batch_size: int,
    progress: bool,
    aggregate_batch_size: int,
    keep_scored: bool = False,
) -> BacktestRun:
    from tqdm import tqdm

    items = [f.item for f in feed.items]
    batches = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    started = time.perf_counter()
    with tqdm(total=len(items), unit="item", desc="backtest", disable=not progress) as bar:
        driver = _Driver(settings, predictor, aggregate_batch_size, bar, keep_scored)
        driver.run.dead_lettered.update(b.reason for b in feed.bad)
        done = await driver.warm_prefix(batches)
        await driver.overlapped(batches[done:])
        await driver.flush(final=True)
    run = driver.run
    run.buckets = driver.store.history
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
    keep_scored: bool = False,
) -> BacktestRun:
    """``batch_size`` texts per model call; ``aggregate_batch_size`` events per aggregator call.

    ``keep_scored`` keeps every scored record (``scored.jsonl``: memory grows with the feed).
    """
    size = settings.batch_size if batch_size is None else batch_size
    events = _AGGREGATE_EVENTS if aggregate_batch_size is None else aggregate_batch_size
    if size < 1 or events < 1:  # 0 is an error, not "the default"
        raise BacktestError(f"batch sizes must be >= 1, got {size} and {events}")
    # The result leaves through a box, not as the task's result: asyncio.run's SIGINT
    # restore reprs its handler, whose repr includes the finished task's result, and the
    # repr of a whole run (every alert and bucket) cost ~20 % of a warm backtest.
    box: list[BacktestRun] = []

    async def main() -> None:
        box.append(await _run(feed, settings, predictor, size, progress, events, keep_scored))

    # Frozen for the run: the objects that exist before it (a loaded model is ~500k of
    # them) are never garbage, and a full collection walking them cost a warm backtest
    # ~40 % of its time. Unfrozen after, so they are collectable again.
    gc.freeze()
    try:
        asyncio.run(main())
    finally:
        gc.unfreeze()
    return box[0]


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
        counts = per_entity.setdefault(a.entity, {"firing": 0, "escalated": 0, "resolved": 0})
        counts[a.state] += 1
    states = Counter(a.state for a in run.alerts)
    kinds = Counter(a.kind for a in run.alerts if a.state == "firing")
    return {
        "feed": str(source),
        "rows": len(feed.items) + len(feed.bad) + feed.filtered,
        "items": len(feed.items),
        "outside_time_range": feed.filtered,
        "skipped_rows": len(feed.bad),  # rows not read or not valid; each in bad_rows (100)
        "scored": run.scored,
        "dead_lettered": dict(sorted(run.dead_lettered.items())),
        "bad_rows": [
            {"line": b.line, "reason": b.reason, "detail": b.detail} for b in feed.bad[:100]
        ],
        "predictor_failures": run.failures,
        "entity_events_applied": run.applied,
        "story_repeats": run.repeats,
        "duplicates": run.duplicates,
        "late_events": run.late,
        "alerts": {
            "total": len(run.alerts),
            "firing": states["firing"],
            "escalated": states["escalated"],
            "resolved": states["resolved"],
            "firing_by_kind": dict(sorted(kinds.items())),
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
    output: Path, run: BacktestRun, summary: dict[str, Any], settings: Settings,
    measured: Sequence[Any] = (),
) -> None:  # fmt: skip
    from stream_app.offline.report import write_timeseries

    output.mkdir(parents=True, exist_ok=True)
    if "prices" in summary:
        from stream_app.offline.price_metrics import RETURNS_COLUMNS, returns_rows

        with (output / "returns.csv").open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(RETURNS_COLUMNS)
            writer.writerows(returns_rows(measured))
    with (output / "alerts.jsonl").open("w", encoding="utf-8") as fh:
        for alert in run.alerts:
            fh.write(alert.model_dump_json() + "\n")
    entities = {a.entity for a in run.alerts} | {"market"}
    entities |= {e["entity"] for e in summary.get("truth", {}).get("per_event", [])}
    write_timeseries(output / "timeseries.csv", run.buckets, sorted(entities), settings)
    if run.scored_records:
        with (output / "scored.jsonl").open("w", encoding="utf-8") as fh:
            for record in run.scored_records:
                story_id, novelty = run.stories.get(record["id"], (None, None))
                record = {**record, "story_id": story_id, "novelty": novelty}
                fh.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
    (output / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")


def _truth_events(feed: LoadedFeed, truth_path: Path | None) -> list[TruthEvent]:
    """Ground truth from a truth file, else from the feed's own ``event_id`` marks."""
    if truth_path is not None:
        return load_truth(truth_path)
    marks = [(f.event_id, f.item.published_at, [f"ticker:{t}" for t in f.item.tickers])
             for f in feed.items if f.event_id]  # fmt: skip
    return events_from_marks(marks)


def backtest(
    feed_path: Path,
    settings: Settings,
    output: Path,
    *,
    overrides: Sequence[str] = (),
    truth_path: Path | None = None,
    tolerance_seconds: float | None = None,
    batch_size: int | None = None,
    fmt: str | None = None,
    strict: bool = False,
    time_from: datetime | None = None,
    time_to: datetime | None = None,
    cache_dir: Path | None = None,
    use_cache: bool = True,
    report: bool = True,
    progress: bool = True,
    prices_path: Path | None = None,
    price_options: PriceOptions | None = None,
    assertions: Sequence[Condition] = (),
    predictor: Any | None = None,
    scored: bool = False,
) -> dict[str, Any]:
    """``finpulse backtest``: run a feed, write ``output``, return the summary.

    ``assertions`` (stream_app/offline/gate.py) are checked against the summary and their
    outcomes recorded in it (``assertions``); a condition whose source this run lacks
    raises ``GateError`` once the outputs are written. ``predictor``: a ready predictor
    instead of the worker's model behind the prediction cache (tests, notebooks).
    """
    batch_size = settings.batch_size if batch_size is None else batch_size
    if batch_size < 1:  # 0 is an error, not "the default"
        raise BacktestError(f"--batch-size must be >= 1, got {batch_size}")
    prices = None
    if prices_path is not None:
        from stream_app.offline.prices import load_prices

        prices = load_prices(prices_path)
    feed = load_feed(
        feed_path, settings, fmt=fmt, strict=strict, time_from=time_from, time_to=time_to
    )
    if predictor is None:
        predictor = build_predictor(settings, cache_dir=cache_dir, use_cache=use_cache)
    run = run_backtest(feed, settings, predictor, batch_size=batch_size, progress=progress,
                       keep_scored=scored)  # fmt: skip
    summary = _summary(run, feed, settings, source=feed_path, overrides=overrides,
                       batch_size=batch_size, predictor=predictor)  # fmt: skip
    truth = _truth_events(feed, truth_path)
    if truth:
        window = settings.window.window_seconds
        seconds = tolerance_seconds if tolerance_seconds is not None else window
        tolerance = timedelta(seconds=seconds)
        firing = [FiringAlert(a.entity, a.fired_at, a.window_start, a.window_end,
                              getattr(a, "kind", "negative"))
                  for a in run.alerts if a.state == "firing"]  # fmt: skip
        summary["truth"] = evaluate(firing, truth, tolerance).as_dict()
        summary["truth_by_kind"] = evaluate_kinds(firing, truth, tolerance).as_dict()
    measured: list[Any] = []
    if prices is not None and feed.items:
        from stream_app.offline.price_metrics import evaluate_prices

        span = (feed.items[0].item.published_at, feed.items[-1].item.published_at)
        summary["prices"], measured = evaluate_prices(
            run.alerts, prices, span, price_options or PriceOptions()
        )
    gate_error = None
    if assertions:
        try:
            outcomes = check(assertions, summary)
            summary["assertions"] = {
                "passed": all(o.ok for o in outcomes),
                "conditions": [o.as_dict() for o in outcomes],
            }
        except GateError as exc:
            gate_error = exc
            summary["assertions"] = {"passed": False, "error": str(exc)}
    write_outputs(output, run, summary, settings, measured)
    if report:
        from stream_app.offline.report import write_report

        write_report(output, summary, run.alerts, run.buckets, settings, truth, measured)
    if gate_error is not None:
        raise gate_error
    return summary
