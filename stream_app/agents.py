"""The two micro-batch stages of the worker, free of Faust so they can be tested alone.

``ScoreStage``: raw news records -> validation (bad ones dead-lettered with the original
bytes and their source position) -> model in a worker thread -> ``news.scored`` plus one
entity event per (item, entity) on the re-keyed entity topic.
``AggregateStage``: entity events -> ``Aggregator`` (Redis windows, detector) -> alerts.

At-least-once: a stage's ``process`` returns only after the broker acknowledged every
record it published; the Faust binding (``stream_app.app``) acknowledges the input
offsets only after that. ``run_with_retry`` re-runs a batch that failed on an
infrastructure error (broker, Redis) instead of dropping it: re-publishing gives
duplicates downstream, which the aggregator removes by id; dropping would lose data.
Bad *data* never raises here: every record ends scored or dead-lettered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from stream_app.config import Settings
from stream_app.metrics import Metrics
from stream_app.schemas import DeadLetter, EntityEvent, NewsItem
from stream_app.validation import InvalidRecord, parse_news
from stream_app.web import HealthState

__all__ = [
    "AggregateStage",
    "Publisher",
    "Record",
    "ScoreStage",
    "run_with_retry",
]

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Record:
    """One consumed Kafka record, as the stages need it."""

    value: bytes | None
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None
    key: bytes | None = None

    @property
    def source(self) -> dict[str, Any]:
        return {
            "source_topic": self.topic,
            "source_partition": self.partition,
            "source_offset": self.offset,
        }


class Publisher(Protocol):
    """Sends one record; the returned awaitable resolves when the broker acknowledged it."""

    async def send(self, topic: str, key: bytes | None, value: bytes) -> Awaitable[Any]: ...


async def publish_all(
    publisher: Publisher, messages: Sequence[tuple[str, bytes | None, bytes]]
) -> None:
    """Send all, then wait for every acknowledgement (sends pipeline; acks are awaited once)."""
    pending = [await publisher.send(topic, key, value) for topic, key, value in messages]
    await asyncio.gather(*pending)


class _ScorerLike(Protocol):
    def score(self, items: Sequence[NewsItem]) -> Any: ...


class ScoreStage:
    """Validate, score and fan out one micro-batch of raw news records."""

    agent = "score"

    def __init__(
        self,
        settings: Settings,
        scorer: _ScorerLike,
        to_entity_events: Callable[[Sequence[Any]], Sequence[EntityEvent]],
        publisher: Publisher,
        metrics: Metrics,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        self._settings = settings
        self._scorer = scorer
        self._to_entity_events = to_entity_events
        self._publisher = publisher
        self._metrics = metrics
        # One thread: the model is not re-entrant and torch parallelises inside a call.
        self._executor = executor or ThreadPoolExecutor(1, thread_name_prefix="finpulse-model")

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _validate(
        self, records: Sequence[Record]
    ) -> tuple[list[NewsItem], dict[int, Record], list[DeadLetter]]:
        items: list[NewsItem] = []
        origin: dict[int, Record] = {}  # index into items -> its record
        dead: list[DeadLetter] = []
        for rec in records:
            try:
                item = parse_news(
                    rec.value,  # type: ignore[arg-type]  # None is rejected as not_bytes
                    record_timestamp_ms=rec.timestamp_ms,
                    settings=self._settings,
                )
            except InvalidRecord as exc:
                dead.append(
                    DeadLetter.from_raw(
                        rec.value or b"", reason=exc.reason, detail=exc.detail, **rec.source
                    )
                )
                continue
            origin[len(items)] = rec
            items.append(item)
        return items, origin, dead

    @staticmethod
    def _with_source(
        events: Sequence[EntityEvent], items: Sequence[NewsItem], origin: dict[int, Record]
    ) -> list[EntityEvent]:
        """Entity events carry their news record's position, so a late one can be traced."""
        where: dict[str, dict[str, Any]] = {}
        for i, item in enumerate(items):
            where.setdefault(item.id, origin[i].source)
        return [e.model_copy(update=where.get(e.id, {})) for e in events]

    async def process(self, records: Sequence[Record]) -> tuple[int, int]:
        """Returns (scored, dead-lettered); their sum is ``len(records)``."""
        s = self._settings
        items, origin, dead = self._validate(records)
        scored: list[Any] = []
        if items:
            loop = asyncio.get_running_loop()
            started = time.perf_counter()
            result = await loop.run_in_executor(self._executor, self._scorer.score, items)
            self._metrics.inference_seconds.observe(time.perf_counter() - started)
            scored = list(result.scored)
            by_id = {id(item): i for i, item in enumerate(items)}
            for failed_item, detail in _failures(result):
                rec = origin[by_id[id(failed_item)]]
                dead.append(
                    DeadLetter.from_raw(
                        rec.value or b"",
                        reason="predictor_failure",
                        detail=detail,
                        **rec.source,
                    )
                )
        events = self._with_source(self._to_entity_events(scored), items, origin) if scored else []
        messages: list[tuple[str, bytes | None, bytes]] = []
        messages += [(s.topic_scored, x.id.encode(), x.model_dump_json().encode()) for x in scored]
        messages += [
            (s.topic_entity_events, e.entity.encode(), e.model_dump_json().encode()) for e in events
        ]
        messages += [(s.topic_deadletter, None, d.model_dump_json().encode()) for d in dead]
        await publish_all(self._publisher, messages)

        m = self._metrics
        now_ms = time.time() * 1000
        m.records_in.inc(len(records))
        m.scored.inc(len(scored))
        m.dead_lettered(d.reason for d in dead)
        m.batch_size.labels(agent=self.agent).observe(len(records))
        for rec in records:
            if rec.timestamp_ms and rec.timestamp_ms > 0:
                m.publish_to_scored_seconds.observe(max(0.0, (now_ms - rec.timestamp_ms) / 1000))
        return len(scored), len(dead)


def _failures(result: Any) -> list[tuple[NewsItem, str]]:
    """``ScoreResult.failed``: the items the model failed on alone, with a detail."""
    return [(item, str(detail)) for item, detail in result.failed]


class _AggregatorLike(Protocol):
    async def process(
        self, events: Sequence[EntityEvent], emit: Callable[[Any], Awaitable[None]]
    ) -> Any: ...


class AggregateStage:
    """Fold one micro-batch of entity events into the Redis windows and publish alerts."""

    agent = "aggregate"

    def __init__(
        self,
        settings: Settings,
        aggregator: Callable[[], _AggregatorLike],
        publisher: Publisher,
        metrics: Metrics,
    ) -> None:
        self._settings = settings
        self._aggregator = aggregator
        self._publisher = publisher
        self._metrics = metrics

    async def _emit(self, outcome: Any) -> None:
        """Publish and await the acks; the aggregator commits to Redis only after this."""
        s = self._settings
        now = datetime.now(UTC)
        messages: list[tuple[str, bytes | None, bytes]] = []
        for alert in outcome.alerts:
            if alert.emitted_at is None:
                alert = alert.model_copy(update={"emitted_at": now})
            messages.append((s.topic_alerts, alert.entity.encode(), _wire(alert)))
        messages += [(s.topic_deadletter, None, _wire(d)) for d in outcome.dead_letters(now)]
        await publish_all(self._publisher, messages)

    async def process(self, records: Sequence[Record]) -> int:
        """Returns the number of events applied to windows."""
        events: list[EntityEvent] = []
        invalid: list[DeadLetter] = []
        for rec in records:
            try:
                events.append(EntityEvent.model_validate_json(rec.value or b""))
            except ValidationError as exc:
                detail = str(exc.errors()[0].get("msg", exc))[:200]
                invalid.append(
                    DeadLetter.from_raw(
                        rec.value or b"", reason="invalid_event", detail=detail, **rec.source
                    )
                )
        if invalid:
            s = self._settings
            await publish_all(
                self._publisher, [(s.topic_deadletter, None, _wire(d)) for d in invalid]
            )
        m = self._metrics
        m.batch_size.labels(agent=self.agent).observe(len(records))
        m.dead_lettered(d.reason for d in invalid)
        if not events:
            return 0
        outcome = await self._aggregator().process(events, self._emit)
        m.entity_events.inc(len(events))
        m.late_events.inc(len(outcome.late))
        m.dead_lettered(["late_event"] * len(outcome.late))
        m.dead_lettered(["invalid_event"] * len(outcome.rejected))
        m.duplicate_events.inc(outcome.duplicates)
        for alert in outcome.alerts:
            m.alerts.labels(state=alert.state).inc()
        return int(outcome.applied)


def _wire(model: BaseModel) -> bytes:
    return model.model_dump_json().encode()


async def run_with_retry(
    agent: str,
    batch: Callable[[], Awaitable[T]],
    *,
    health: HealthState,
    metrics: Metrics,
    max_backoff: float,
    stopping: Callable[[], bool] = lambda: False,
) -> T:
    """Run ``batch`` until it succeeds, backing off exponentially up to ``max_backoff`` s.

    The partition stalls meanwhile (its offsets are not acknowledged), which is visible
    as a degraded ``/health`` and a growing ``finpulse_consumer_lag``.
    """
    delay = min(0.2, max_backoff)
    while True:
        try:
            result = await batch()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if stopping():
                # Shutting down: leave the batch unacknowledged; it is redelivered.
                raise asyncio.CancelledError from exc
            health.batch_failed(agent, exc)
            metrics.batch_retries.labels(agent=agent).inc()
            log.error(
                "%s batch failed (%s: %s); retrying in %.1fs",
                agent,
                type(exc).__name__,
                exc,
                delay,
                exc_info=log.isEnabledFor(logging.DEBUG),
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_backoff)
            continue
        health.batch_ok(agent)
        return result
