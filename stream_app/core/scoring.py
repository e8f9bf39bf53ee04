"""NewsItem micro-batch -> ScoredNews through the Predictor, isolating poison records.

What is scored: the *headline* only. The model was fine-tuned on short financial
headlines/tweets; appending body text shifts the input distribution and costs tokens
for no measured gain, so the body is carried along but not scored.

Failure isolation: when ``predict`` raises (or returns the wrong number of results) for a
batch, the batch is split in halves and each half retried, recursively; an item that
still fails *alone* is returned in ``ScoreResult.failed`` with a detail message (the
worker dead-letters it with reason ``predictor_failure``). One bad record costs O(log n)
extra calls instead of the whole batch. A prediction that comes back but is unusable
(an unknown label, a NaN) fails its item alone, without calling the model again: a
second call would cost time and show the model monitor the same predictions twice.
Failed entries hold the *same* ``NewsItem`` objects that were passed in, so callers can
map them back to their records by identity.

Entities (issue 10): each item's companies come from ``entities.item_links`` (field
tickers, cashtags, then names found by the ``CompanyLinker`` the adapter built once per
process); ``ScoredNews.links`` carries them all, ``entities`` those that count, and
``to_entity_events`` copies each ticker's relevance and span onto its event. The worker
and the backtest build the Scorer the same way (``stream_app.model.load_linker``), so a
backtest links exactly as the worker does.

``score`` is synchronous: the worker runs it in a thread executor.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import ValidationError

from models.labels import SENTIMENT_LABELS
from stream_app.core.entities import MARKET, entities_for, item_links
from stream_app.core.linking import CompanyLinker
from stream_app.core.novelty import signatures
from stream_app.schemas import EntityEvent, NewsItem, ScoredNews

__all__ = ["PredictorLike", "ScoreResult", "Scorer", "Source", "to_entity_events"]


class PredictorLike(Protocol):
    """``models.predictor.Predictor`` or any fake with the same shape."""

    def predict(self, texts: Sequence[str]) -> Sequence[Any]: ...


@dataclass(slots=True)
class ScoreResult:
    scored: list[ScoredNews] = field(default_factory=list)
    failed: list[tuple[NewsItem, str]] = field(default_factory=list)


class _Unusable(Exception):
    """The predictor returned output that cannot be turned into a ScoredNews."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Scorer:
    def __init__(
        self,
        predictor: PredictorLike,
        *,
        clock: Callable[[], datetime] = _utcnow,
        linker: CompanyLinker | None = None,
        max_links: int = 32,
        min_relevance: float = 0.0,
    ) -> None:
        self.predictor = predictor
        self.clock = clock
        self.linker = linker
        self.max_links = max_links
        self.min_relevance = min_relevance
        self.calls = 0  # predictor calls, splits included

    def score(self, items: Sequence[NewsItem]) -> ScoreResult:
        result = ScoreResult()
        if items:
            self._score(list(items), self.clock(), result)
        order = {id(it): i for i, it in enumerate(items)}
        result.failed.sort(key=lambda f: order[id(f[0])])
        return result

    def _score(self, items: list[NewsItem], now: datetime, out: ScoreResult) -> None:
        self.calls += 1
        try:
            preds = self.predictor.predict([it.headline for it in items])
            if len(preds) != len(items):
                raise _Unusable(f"predictor returned {len(preds)} results for {len(items)} texts")
        except Exception as exc:  # any predictor failure: isolate the poison record
            if len(items) == 1:
                out.failed.append((items[0], f"{type(exc).__name__}: {exc}"[:500]))
                return
            mid = len(items) // 2
            first = ScoreResult()
            self._score(items[:mid], now, first)
            self._score(items[mid:], now, first)
            out.scored += first.scored
            out.failed += first.failed
            return
        for it, p in zip(items, preds, strict=True):
            try:
                out.scored.append(self._scored(it, p, now))
            except Exception as exc:  # this prediction is unusable, the others are not
                out.failed.append((it, f"{type(exc).__name__}: {exc}"[:500]))

    def _scored(self, item: NewsItem, p: Any, now: datetime) -> ScoredNews:
        probs = {str(k): float(v) for k, v in dict(p.sentiment_probs).items()}
        if p.sentiment not in SENTIMENT_LABELS or not all(math.isfinite(v) for v in probs.values()):
            raise _Unusable(f"unusable prediction: sentiment={p.sentiment!r} probs={probs}")
        links = item_links(item, self.linker, self.max_links)
        # Plain dicts: pydantic-core validates them faster than model_construct builds
        # EntityLink objects in Python (measured; this is the hot path).
        wire_links: list[Any] = [
            {
                "entity": f"ticker:{lk.ticker}",
                "via": lk.via,
                "span": lk.span,
                "relevance": lk.relevance,
            }
            for lk in links
        ]
        try:
            return ScoredNews(
                **item.model_dump(),
                sentiment=p.sentiment,
                sentiment_probs=probs,
                topic=p.topic,
                topic_prob=min(1.0, max(0.0, float(p.topic_prob))),
                model_version=p.model_version,
                entities=entities_for(item, p.topic, links, self.min_relevance),
                links=wire_links,
                scored_at=now,
            )
        except ValidationError as exc:
            raise _Unusable(f"unusable prediction: {exc.errors()[0].get('msg')}") from None


@dataclass(frozen=True, slots=True)
class Source:
    """Where a scored item's news record came from (Kafka position and timestamp)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None


def to_entity_events(
    scored: Sequence[ScoredNews],
    sources: Sequence[Source] | None = None,
    *,
    with_record: bool = True,
) -> list[EntityEvent]:
    """One event per (item, entity), in item order then entity order.

    Each carries the headline's novelty signature (computed once per batch), the entity's
    relevance and span when the item names it (entity linking), the item's Kafka position
    when ``sources`` gives it, and -- on the ``market`` event only, ``with_record`` -- the
    scored record, which the aggregator publishes to ``news.scored``.
    """
    sigs = signatures([s.headline for s in scored])
    out: list[EntityEvent] = []
    for i, s in enumerate(scored):
        src = sources[i] if sources is not None else None
        probs = s.sentiment_probs
        neg = min(1.0, max(0.0, probs.get("negative", 0.0)))
        pos = min(1.0, max(0.0, probs.get("positive", 0.0)))
        links = {link.entity: link for link in getattr(s, "links", None) or ()}
        common: dict[str, Any] = {
            "id": s.id,
            "event_time_ms": s.event_time_ms,
            "sentiment": s.sentiment,
            "negative_prob": neg,
            "positive_prob": pos,
            "headline": s.headline,
            "model_version": s.model_version,
            "signature": sigs[i].wire,
        }
        if src is not None:
            common.update(
                source_topic=src.topic,
                source_partition=src.partition,
                source_offset=src.offset,
                ingest_ms=src.timestamp_ms,
            )
        for entity in s.entities:
            link = links.get(entity)
            out.append(
                EntityEvent(
                    entity=entity,
                    relevance=link.relevance if link is not None else 1.0,
                    span=tuple(link.span) if link is not None and link.span else None,
                    via=link.via if link is not None else None,
                    scored=s.model_dump(mode="json") if with_record and entity == MARKET else None,
                    **common,
                )
            )
    return out
