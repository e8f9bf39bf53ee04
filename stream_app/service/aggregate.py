"""The aggregate stage: entity events -> ``Aggregator`` (Redis windows, detector) -> alerts.

Alerts and late dead letters are published, and their acknowledgements awaited, before
the aggregator commits the batch to Redis (see ``stream_app.core.aggregator``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import ValidationError

from stream_app.config import Settings
from stream_app.schemas import DeadLetter, EntityEvent
from stream_app.service.batches import Publisher, Record, publish_all, wire
from stream_app.service.metrics import Metrics

__all__ = ["AggregateStage"]


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
            messages.append((s.topic_alerts, alert.entity.encode(), wire(alert)))
        messages += [(s.topic_deadletter, None, wire(d)) for d in outcome.dead_letters(now)]
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
                self._publisher, [(s.topic_deadletter, None, wire(d)) for d in invalid]
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


