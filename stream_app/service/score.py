"""The score stage: raw news records -> validation -> model -> scored and entity records.

Bad records are dead-lettered with the original bytes and their source position; the
model runs in a worker thread; every valid item fans out to ``news.scored`` and to one
entity event per (item, entity) on the re-keyed entity topic. Bad *data* never raises
here: every record ends scored or dead-lettered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from stream_app.config import Settings
from stream_app.core.validation import InvalidRecord, parse_news
from stream_app.schemas import DeadLetter, EntityEvent, NewsItem
from stream_app.service.batches import Publisher, Record, publish_all
from stream_app.service.metrics import Metrics

__all__ = ["ScoreStage"]


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


