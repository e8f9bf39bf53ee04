"""The aggregate stage: entity-topic records -> event-time order -> ``Aggregator`` -> outputs.

Each record (``EntityBatch``) goes to the ``Sequencer`` of its partition, which holds its
events until the watermark passes them; released events go through the ``Aggregator``
(Redis windows, novelty, detectors). Before the aggregator commits, this stage publishes
and awaits: alerts, dead letters (late events, invalid records), and for the ``market``
entity -- which every item has -- the scored record with its story id and novelty on
``news.scored``. ``process`` returns the records whose events have all been released and
committed: only those may be acknowledged, so held events are read again after a crash or
a rebalance, never lost (the ones already applied are recognised by id and position).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import ValidationError

from stream_app.config import Settings
from stream_app.core.sequencer import Sequencer
from stream_app.schemas import DeadLetter, EntityBatch, EntityEvent
from stream_app.service.batches import Message, Publisher, Record, publish_all, wire
from stream_app.service.metrics import Metrics

__all__ = ["AggregateStage", "RecordRef"]

RecordRef = tuple[str, int, int]  # topic, partition, offset


def ref_of(rec: Record) -> RecordRef:
    return rec.topic, rec.partition, rec.offset


class _AggregatorLike(Protocol):
    async def process(
        self, events: Sequence[EntityEvent], emit: Callable[[Any], Awaitable[None]]
    ) -> Any: ...


class AggregateStage:
    """Order, fold and publish one micro-batch of entity-topic records."""

    agent = "aggregate"

    def __init__(
        self,
        settings: Settings,
        aggregator: Callable[[], _AggregatorLike],
        publisher: Publisher,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._aggregator = aggregator
        self._publisher = publisher
        self._metrics = metrics
        self._clock = clock
        self.sequencers: dict[int, Sequencer] = {}
        self._offered: set[RecordRef] = set()  # offered, not yet done
        self._ready: list[EntityEvent] = []  # released, not yet committed
        self._done: list[RecordRef] = []  # done, not yet returned
        self._touched: set[int] = set()

    def revoke(self, partitions: Iterable[int]) -> None:
        """Partitions taken away by a rebalance: their held events belong to the new owner.

        Nothing of theirs is acknowledged afterwards, so the new owner reads them again.
        """
        gone = set(partitions)
        for p in gone:
            self.sequencers.pop(p, None)
        self._offered = {r for r in self._offered if r[1] not in gone}
        self._done = [r for r in self._done if r[1] not in gone]

    def _scored(self, outcome: Any) -> list[Message]:
        """``news.scored`` records of the ``market`` events released in this batch."""
        s = self._settings
        now_ms = self._clock() * 1000
        out: list[Message] = []
        for story in outcome.stories:
            ev = story.event
            if ev.scored is None:
                continue
            record = {**ev.scored, "story_id": story.story_id, "novelty": story.novelty}
            value = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()
            out.append((s.topic_scored, ev.id.encode(), value, None))
            if ev.ingest_ms:
                self._metrics.publish_to_scored_seconds.observe(
                    max(0.0, (now_ms - ev.ingest_ms) / 1000)
                )
        return out

    async def _emit(self, outcome: Any) -> None:
        """Publish and await the acks; the aggregator commits to Redis only after this."""
        s = self._settings
        now = datetime.now(UTC)
        messages: list[Message] = []
        for alert in outcome.alerts:
            if alert.emitted_at is None:
                alert = alert.model_copy(update={"emitted_at": now})
            messages.append((s.topic_alerts, alert.entity.encode(), wire(alert), None))
        messages += [(s.topic_deadletter, None, wire(d), None) for d in outcome.dead_letters(now)]
        messages += self._scored(outcome)
        await publish_all(self._publisher, messages)

    def _offer(self, records: Sequence[Record]) -> list[DeadLetter]:
        """Decode and hand each new record to its partition's sequencer; bad ones are done."""
        invalid: list[DeadLetter] = []
        now_ms = self._clock() * 1000
        for rec in records:
            ref = ref_of(rec)
            if ref in self._offered:
                continue  # a retried batch: offered before
            self._offered.add(ref)
            try:
                batch = EntityBatch.model_validate_json(rec.value or b"")
            except ValidationError as exc:
                detail = str(exc.errors()[0].get("msg", exc))[:200]
                invalid.append(
                    DeadLetter.from_raw(
                        rec.value or b"", reason="invalid_event", detail=detail, **rec.source
                    )
                )
                self._done.append(ref)
                continue
            seq = self.sequencers.get(rec.partition)
            if seq is None:
                grace = self._settings.watermark_idle_seconds * 1000
                seq = self.sequencers[rec.partition] = Sequencer(wake_grace_ms=grace)
            immediate = seq.offer(ref, batch, now_ms)
            self._metrics.out_of_order.inc(len(immediate))
            self._ready += immediate
            self._touched.add(rec.partition)
        return invalid

    def _release(self) -> None:
        now = self._clock() * 1000
        for p in sorted(self._touched):
            out = self.sequencers[p].release(now)
            self._ready += out.events
            self._done += [ref for ref in out.done if isinstance(ref, tuple)]
            if out.watermark > 0:
                lag = max(0.0, (now - out.watermark) / 1000)
                self._metrics.watermark_lag.labels(partition=str(p)).set(lag)
        self._touched.clear()
        self._metrics.events_held.set(sum(seq.held for seq in self.sequencers.values()))

    async def process(self, records: Sequence[Record]) -> list[RecordRef]:
        """Returns the records that are done (all their events released and committed).

        Retried after an infrastructure error with the same records, it neither offers
        them twice nor loses the events released by the failed attempt.
        """
        s, m = self._settings, self._metrics
        invalid = self._offer(records)
        if invalid:
            await publish_all(
                self._publisher, [(s.topic_deadletter, None, wire(d), None) for d in invalid]
            )
            m.dead_lettered(d.reason for d in invalid)
        self._release()
        m.batch_size.labels(agent=self.agent).observe(len(records))
        if self._ready:
            outcome = await self._aggregator().process(self._ready, self._emit)
            self._ready = []
            m.entity_events.inc(outcome.applied + outcome.repeats)
            m.repeats.inc(outcome.repeats)
            m.late_events.inc(len(outcome.late))
            m.dead_lettered(["late_event"] * len(outcome.late))
            m.dead_lettered(["invalid_event"] * len(outcome.rejected))
            m.duplicate_events.inc(outcome.duplicates)
            for alert in outcome.alerts:
                m.alerts.labels(state=alert.state, kind=alert.kind).inc()
        done, self._done = self._done, []
        self._offered.difference_update(done)
        return done
