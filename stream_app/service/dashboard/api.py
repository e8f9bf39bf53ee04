"""The dashboard's read API: request parameters in, bounded response models out.

``DashboardApi`` knows nothing of HTTP (``routes`` binds it to aiohttp) and nothing of
Redis: it reads a ``DashboardSource`` and turns counts into what a desk reads.

* **Risk order** of the entity table: entities with a firing alert first, most severe
  first, then by that alert's own z (its kind's: negative, positive or volume); then
  everyone else: those with at least ``min_negative_count`` negatives in the window before
  those with fewer (the detector cannot fire on them, and one negative story has a large
  z), each by the negative detector's binomial z (``stream_app.core.detector.stats``, the
  same numbers it fires on), then by volume against baseline, then by name.
* **Volume against baseline**: the window's item count ``n`` over the baseline's rate for
  a window. While a young entity's baseline is still filling, the rate is taken over the
  part of the baseline since its first event (``EntityState.first_event_ms``), so a new
  name does not show a huge ratio because its baseline is mostly empty; and with less
  than one item expected per window there is no ratio (one story against 0.1 is noise).
* **Limits**: every list is capped (``Limits``); a limit outside its range, a malformed
  number or an entity name that ``is_valid_entity`` refuses is a ``DashboardError`` (400),
  never a clamp, so a client learns its mistake.
* **Store failures** are a ``DashboardError`` 503 with no detail; a bug here is not
  dressed up as one (it is a 500 and a traceback in the log).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from pydantic import ValidationError

from models.errors import FinpulseError
from stream_app.config import DetectorSettings, WindowSettings
from stream_app.core.detector import stats
from stream_app.core.entities import is_valid_entity
from stream_app.core.windows import MICROS, Counts, WindowGeometry
from stream_app.service.dashboard.models import (
    AlertOut,
    AlertsOut,
    EntityRow,
    HeadlineOut,
    HeadlinesOut,
    LinkOut,
    Overview,
    PointOut,
    SeriesOut,
)
from stream_app.service.dashboard.source import DashboardSource, EntityState

__all__ = ["DashboardApi", "DashboardError", "Limits", "parse_limit"]

log = logging.getLogger(__name__)
T = TypeVar("T")

MIN_EXPECTED_ITEMS: Final = 1.0  # volume ratios need at least this many expected items
ENTITY_FORMS: Final = "market, ticker:<SYMBOL> or topic:<slug>"
SEVERITY_RANK: Final = {"low": 1, "medium": 2, "high": 3, "critical": 4}


class DashboardError(FinpulseError):
    """A request the API refuses: ``status`` is the HTTP status, the message is the reply."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Limits:
    """Default and maximum of every list the API returns."""

    entities: int = 200
    max_entities: int = 1000
    buckets: int = 180  # three hours of one-minute buckets
    max_buckets: int = 1440
    headlines: int = 20
    max_headlines: int = 100
    alerts: int = 50
    max_alerts: int = 200
    overview_recent: int = 20


def parse_limit(raw: str | None, name: str, default: int, maximum: int) -> int:
    """A query parameter as an int in ``1..maximum`` (``default`` when absent)."""
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 6:
        raise DashboardError(400, f"{name} must be an integer in 1..{maximum}")
    value = int(raw)
    if not 1 <= value <= maximum:
        raise DashboardError(400, f"{name} must be an integer in 1..{maximum}")
    return value


def _checked_entity(entity: str) -> str:
    if not is_valid_entity(entity):
        raise DashboardError(400, f"invalid entity: expected {ENTITY_FORMS}")
    return entity


async def _read(what: str, call: Awaitable[T]) -> T:
    """A source read; any failure of the store is a 503 without detail (it may name hosts)."""
    try:
        return await call
    except Exception as exc:
        log.warning("dashboard: %s read failed: %s", what, type(exc).__name__)
        raise DashboardError(503, "store unavailable") from exc


def _alert(wire: Mapping[str, Any]) -> AlertOut | None:
    """An alert as stored, or ``None`` (logged) when it does not validate."""
    try:
        return AlertOut.model_validate(wire)
    except ValidationError as exc:
        log.warning("dashboard: skipping a stored alert that does not validate: %s", exc)
        return None


class DashboardApi:
    def __init__(
        self,
        source: DashboardSource,
        window: WindowSettings,
        detector: DetectorSettings,
        limits: Limits | None = None,
    ) -> None:
        self.source = source
        self.window = window
        self.detector = detector
        self.limits = limits or Limits()
        self.geometry = WindowGeometry.of(window)
        self.max_buckets = min(self.limits.max_buckets, self.geometry.retention_buckets)

    # --- entity table -------------------------------------------------------------------

    def _volume_ratio(self, state: EntityState) -> float | None:
        g = self.geometry
        span = g.baseline_buckets - g.window_buckets  # buckets a full baseline covers
        if state.first_event_ms is not None:
            last_baseline = g.bucket(state.clock_ms) - g.window_buckets
            span = min(span, last_baseline - g.bucket(state.first_event_ms) + 1)
        if span <= 0:
            return None
        expected = state.baseline.total * g.window_buckets / span
        # below one expected item a ratio is noise (1 story against 0.1 reads "10x")
        return state.window.total / expected if expected >= MIN_EXPECTED_ITEMS else None

    def row(self, state: EntityState) -> EntityRow:
        """The table row of one entity (``rank`` is set by ``overview``)."""
        s = stats(state.window, state.baseline, self.detector)
        kind, _, name = state.entity.partition(":")
        alert = _alert(state.firing_alert) if state.firing_alert is not None else None
        return EntityRow(
            rank=0,
            entity=state.entity,
            kind=kind if name else "market",  # type: ignore[arg-type]
            name=name or state.entity,
            clock_ms=state.clock_ms,
            status=state.status,
            severity=alert.severity if alert else None,
            alert_kind=alert.kind if alert else None,
            alert_id=alert.alert_id if alert else None,
            alert_score=alert.score if alert else None,
            negative=s.count,
            total=s.total,
            negative_share=s.share,
            baseline_share=s.baseline,
            z=s.z,
            volume_ratio=self._volume_ratio(state),
        )

    def risk_key(self, row: EntityRow) -> tuple[Any, ...]:
        """Sort key, ascending = riskiest first (see the module docstring)."""
        firing = row.status == "firing"
        return (
            not firing,
            -SEVERITY_RANK.get(row.severity or "", 0) if firing else 0,
            # idle: fewer negatives than the detector needs to fire rank below (one
            # negative story has z 2.5 against a 14% baseline, and is no spike)
            not firing and row.negative < self.detector.min_negative_count,
            -(row.alert_score or 0.0) if firing else -row.z,  # firing: the kind's own z
            -(row.volume_ratio or 0.0),
            row.entity,
        )

    async def overview(self, limit: int | None = None) -> Overview:
        limit = limit or self.limits.entities
        read = await _read("entities", self.source.entities(limit))
        states = [s for s in read if is_valid_entity(s.entity)]
        rows = sorted((self.row(s) for s in states), key=self.risk_key)
        rows = [r.model_copy(update={"rank": i}) for i, r in enumerate(rows, 1)]
        firing = [
            a
            for s in states
            if s.status == "firing" and s.firing_alert is not None
            for a in [_alert(s.firing_alert)]
            if a is not None
        ]
        firing.sort(key=lambda a: (-SEVERITY_RANK.get(a.severity, 0), -a.score, a.entity))
        recent = await self.recent(self.limits.overview_recent)
        return Overview(
            bucket_seconds=self.window.bucket_seconds,
            window_seconds=self.window.window_seconds,
            baseline_seconds=self.window.baseline_seconds,
            series_buckets_max=self.max_buckets,
            clock_ms=max((s.clock_ms for s in states), default=None),
            entities=rows,
            truncated=len(states) >= limit,
            firing=firing,
            recent=recent.alerts,
        )

    # --- detail -------------------------------------------------------------------------

    async def series(self, entity: str, buckets: int | None = None) -> SeriesOut:
        """One point per bucket of ``(B - buckets, B]``, B the entity's clock bucket, each
        with its own counts and the sums of the detector window ending at it (what the
        table shows for the last point); the source is read ``window_buckets - 1`` buckets
        further back for those sums."""
        _checked_entity(entity)
        n = buckets or min(self.limits.buckets, self.max_buckets)
        g = self.geometry
        wb = g.window_buckets
        found = await _read("series", self.source.series(entity, n + wb - 1))
        if found is None:
            raise DashboardError(404, "unknown entity")
        last = g.bucket(found.clock_ms)
        first = last - n - wb + 2  # the oldest bucket of the first point's window
        stored = {p.bucket: p.counts for p in found.buckets if first <= p.bucket <= last}
        rolling = Counts()
        for b in range(first, last - n + 1):  # the first window, but its newest bucket
            rolling.add(stored.get(b) or Counts())
        points = []
        for b in range(last - n + 1, last + 1):
            c = stored.get(b) or Counts()
            rolling.add(c)
            rolling.sub(stored.get(b - wb) or Counts())
            total, wtotal = c.total, rolling.total
            points.append(
                PointOut(
                    start_ms=b * g.bucket_ms,
                    negative=c.neg,
                    neutral=c.neu,
                    positive=c.pos,
                    total=total,
                    negative_share=c.neg / total if total else None,
                    mean_negative_prob=c.neg_prob_micros / MICROS / total if total else None,
                    window_negative=rolling.neg,
                    window_total=wtotal,
                    window_share=rolling.neg / wtotal if wtotal else None,
                )
            )
        return SeriesOut(
            entity=entity,
            clock_ms=found.clock_ms,
            bucket_seconds=self.window.bucket_seconds,
            window_seconds=self.window.window_seconds,
            window_start_ms=g.window_bounds_ms(found.clock_ms)[0],
            points=points,
        )

    async def headlines(self, entity: str, limit: int | None = None) -> HeadlinesOut:
        _checked_entity(entity)
        limit = limit or self.limits.headlines
        items = await _read("headlines", self.source.headlines(entity, limit))
        return HeadlinesOut(
            entity=entity,
            headlines=[
                HeadlineOut(
                    id=h.id,
                    headline=h.headline,
                    published_at_ms=h.event_time_ms,
                    sentiment=h.sentiment,
                    negative_prob=h.negative_prob,
                    novelty=h.novelty,
                    links=[
                        LinkOut(entity=k.entity, via=k.via, span=k.span, relevance=k.relevance)
                        for k in h.links
                    ],
                )
                for h in items[:limit]
            ],
        )

    async def recent(self, limit: int | None = None) -> AlertsOut:
        limit = limit or self.limits.alerts
        wire: Sequence[Mapping[str, Any]] = await _read("alerts", self.source.recent_alerts(limit))
        alerts = [a for a in map(_alert, wire[:limit]) if a is not None]
        return AlertsOut(alerts=alerts)
