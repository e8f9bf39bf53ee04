"""The score stage: raw news records -> validation -> model -> entity-topic records.

Bad records are dead-lettered with the original bytes and their source position; the
model runs in a worker thread; every valid item becomes one entity event per (item,
entity), sent as one ``EntityBatch`` record per entity-topic partition (``core.fanout``),
each carrying how far this worker's news partitions have progressed in event time, so
the aggregators can release events in event-time order (``core.sequencer``). The scored
record itself rides on the item's ``market`` event; the aggregator owning ``market``
publishes it to ``news.scored`` with its story id. Bad *data* never raises here: every
record ends in an entity batch or in the dead-letter topic.

``heartbeat`` sends progress alone when nothing else does (a quiet or idle partition), so
no aggregator waits on this worker's partitions longer than it must: when the report
changed, and on every beat without a batch in between, because an aggregator's watermark
also moves with its own clock (the grace after a wake-up, ``core.sequencer``) and only a
record makes it look again.

``score`` (validation and the model) and ``publish`` (fan-out, sends, acknowledgements,
then the progress advances) are separate steps so that the worker can score batch N+1
while batch N is published (``batches.run_overlapped``). A ``ScoredBatch`` carries its own
pending progress, so ``score`` keeps no per-batch state on the stage: batch N's records
advance their partitions only once N's records are acknowledged, and N+1's report (built
in its ``publish``, after N's) never counts less than N's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from stream_app.config import Settings
from stream_app.core.fanout import Progress, fan_out
from stream_app.core.scoring import Source, to_entity_events
from stream_app.core.validation import InvalidRecord, parse_news
from stream_app.schemas import DeadLetter, NewsItem
from stream_app.service.batches import Message, Publisher, Record, publish_all, wire
from stream_app.service.metrics import Metrics

__all__ = ["ScoreStage", "ScoredBatch", "Topology"]


@dataclass(frozen=True, slots=True)
class ScoredBatch:
    """One micro-batch after validation and the model, before anything is published."""

    records: Sequence[Record]
    scored: list[Any]  # ScoredNews, in input order
    sources: list[Source]  # where each scored item came from
    dead: list[DeadLetter]
    # (partition, event ms) of every record of the batch: they advance their partition's
    # progress once the batch is published and acknowledged
    pending: list[tuple[int, int]]


class _ScorerLike(Protocol):
    def score(self, items: Sequence[NewsItem]) -> Any: ...


@dataclass
class Topology:
    """What the stages need to know about the topics; the app fills it from the broker."""

    news_partitions: int
    entity_partitions: int
    assigned_news: Callable[[], set[int]] = field(default=lambda: set())
    caught_up: Callable[[int], bool] = field(default=lambda p: True)


class ScoreStage:
    """Validate, score and fan out one micro-batch of raw news records."""

    agent = "score"

    def __init__(
        self,
        settings: Settings,
        scorer: _ScorerLike,
        publisher: Publisher,
        metrics: Metrics,
        topology: Topology,
        executor: ThreadPoolExecutor | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._scorer = scorer
        self._publisher = publisher
        self._metrics = metrics
        self.topology = topology
        self._clock = clock
        self.progress = Progress(
            clock_skew_ms=int(settings.clock_skew_seconds * 1000),
            idle_ms=int(settings.watermark_idle_seconds * 1000),
        )
        self._last_report: tuple[dict[int, int], list[int]] | None = None
        self._sent_since_beat = False
        # One thread: the model is not re-entrant and torch parallelises inside a call.
        self._executor = executor or ThreadPoolExecutor(1, thread_name_prefix="finpulse-model")

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _validate(
        self, records: Sequence[Record]
    ) -> tuple[list[NewsItem], list[Record], list[DeadLetter], list[tuple[int, int]]]:
        items: list[NewsItem] = []
        origin: list[Record] = []  # the record of each item
        dead: list[DeadLetter] = []
        pending: list[tuple[int, int]] = []
        now_ms = self._clock() * 1000
        for rec in records:
            self.progress.touch(rec.partition, now_ms)
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
                # A partition of garbage still progresses (by record time), or it would
                # hold every watermark back.
                pending.append((rec.partition, rec.timestamp_ms or int(now_ms)))
                continue
            pending.append((rec.partition, item.event_time_ms))
            origin.append(rec)
            items.append(item)
        return items, origin, dead, pending

    def _report(self, pending: Sequence[tuple[int, int]]) -> tuple[dict[int, int], list[int]]:
        topo = self.topology
        report = self.progress.report(
            topo.assigned_news(), self._clock() * 1000, topo.caught_up, pending
        )
        self._last_report = report
        self._sent_since_beat = True
        return report

    def _batches(self, events: Sequence[Any], pending: Sequence[tuple[int, int]]) -> list[Message]:
        s, topo = self._settings, self.topology
        progress, idle = self._report(pending)
        batches = fan_out(events, topo.entity_partitions, topo.news_partitions, progress, idle)
        return [(s.topic_entity_events, None, wire(b), p) for p, b in batches]

    async def process(self, records: Sequence[Record]) -> tuple[int, int]:
        """Returns (scored, dead-lettered); their sum is ``len(records)``."""
        return await self.publish(await self.score(records))

    async def score(self, records: Sequence[Record]) -> ScoredBatch:
        """Validation and the model, nothing published and no progress advanced: the
        worker runs this for batch N+1 while batch N is published."""
        items, origin, dead, pending = self._validate(records)
        scored: list[Any] = []
        sources: list[Source] = []
        if items:
            loop = asyncio.get_running_loop()
            started = time.perf_counter()
            result = await loop.run_in_executor(self._executor, self._scorer.score, items)
            self._metrics.inference_seconds.observe(time.perf_counter() - started)
            scored = list(result.scored)
            failed = {id(item): detail for item, detail in result.failed}
            for item, rec in zip(items, origin, strict=True):
                detail = failed.get(id(item))
                if detail is None:
                    sources.append(Source(rec.topic, rec.partition, rec.offset, rec.timestamp_ms))
                else:
                    dead.append(
                        DeadLetter.from_raw(
                            rec.value or b"",
                            reason="predictor_failure",
                            detail=str(detail),
                            **rec.source,
                        )
                    )
        return ScoredBatch(records, scored, sources, dead, pending)

    async def publish(self, batch: ScoredBatch) -> tuple[int, int]:
        """Fan out, publish and await every acknowledgement, then advance the batch's
        partitions; returns (scored, dead-lettered). Batches must be published one at a
        time, in the order they were read (``run_overlapped`` does so)."""
        s = self._settings
        events = to_entity_events(batch.scored, batch.sources) if batch.scored else []
        messages = self._batches(events, batch.pending)
        messages += [(s.topic_deadletter, None, wire(d), None) for d in batch.dead]
        await publish_all(self._publisher, messages)
        now_ms = self._clock() * 1000
        for partition, event_ms in batch.pending:
            self.progress.advance(partition, event_ms, now_ms)

        m = self._metrics
        m.records_in.inc(len(batch.records))
        m.scored.inc(len(batch.scored))
        m.dead_lettered(d.reason for d in batch.dead)
        m.batch_size.labels(agent=self.agent).observe(len(batch.records))
        return len(batch.scored), len(batch.dead)

    async def heartbeat(self) -> bool:
        """Send this worker's progress alone when it changed (idle partitions) or when no
        batch went out since the last beat; True if sent.

        Never counts a batch in flight: its records were touched (not idle) but advance
        only once published.
        """
        before = self._last_report
        topo = self.topology
        report = self.progress.report(topo.assigned_news(), self._clock() * 1000, topo.caught_up)
        quiet, self._sent_since_beat = not self._sent_since_beat, False
        if not report[0] or (report == before and not quiet):
            return False
        self._last_report = report
        batches = fan_out([], topo.entity_partitions, topo.news_partitions, *report)
        s = self._settings
        await publish_all(
            self._publisher, [(s.topic_entity_events, None, wire(b), p) for p, b in batches]
        )
        return True
