"""Response models of the dashboard's read API (``/api/...``): the JSON the page reads.

Every list is bounded by the handler that builds it. Alerts are re-validated from the
wire JSON the store returns into ``AlertOut``, a tolerant view: fields the page does not
show are dropped, fields added by newer producers (``kind``, ``peak_severity``, evidence
``links``) are optional, and a link span that does not fit its headline is dropped (set to
``None``) rather than sent to the page. Times are epoch milliseconds or ISO-8601 (UTC).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

__all__ = [
    "AlertOut",
    "AlertsOut",
    "EntityRow",
    "EvidenceOut",
    "HeadlineOut",
    "HeadlinesOut",
    "LinkOut",
    "Overview",
    "PointOut",
    "SeriesOut",
]


class _Out(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class LinkOut(_Out):
    """An entity link of a headline; ``span`` is ``[start, end)`` in code points."""

    entity: str
    via: str = "field"
    span: tuple[int, int] | None = None
    relevance: float | None = None


MAX_LINKS = 32


def _fit_spans(headline: str, links: list[LinkOut]) -> list[LinkOut]:
    """The first ``MAX_LINKS`` links; one whose span lies outside ``headline`` (or is
    empty) loses the span."""
    n = len(headline)
    out: list[LinkOut] = []
    for link in links[:MAX_LINKS]:
        if link.span is not None and not 0 <= link.span[0] < link.span[1] <= n:
            link = link.model_copy(update={"span": None})
        out.append(link)
    return out


class _Linked(_Out):
    """A headline with its entity links; spans that do not fit it are dropped."""

    id: str
    headline: str
    links: list[LinkOut] = Field(default_factory=list)

    @field_validator("links")
    @classmethod
    def _spans(cls, links: list[LinkOut], info: ValidationInfo) -> list[LinkOut]:
        return _fit_spans(info.data.get("headline", ""), links)


class EvidenceOut(_Linked):
    negative_prob: float | None = None
    positive_prob: float | None = None
    # where the headline names the alert's entity (``[start, end)``, code points)
    span: tuple[int, int] | None = None

    @field_validator("span")
    @classmethod
    def _span(cls, span: tuple[int, int] | None, info: ValidationInfo) -> tuple[int, int] | None:
        n = len(info.data.get("headline", ""))
        return span if span is not None and 0 <= span[0] < span[1] <= n else None


class AlertOut(_Out):
    """An alert as published (``stream_app.schemas.Alert``), the fields the desk reads."""

    alert_id: str
    state: str  # firing | escalated | resolved
    kind: str = "negative"  # negative | positive | volume | model_drift
    entity: str
    severity: str
    peak_severity: str | None = None
    episode: int
    episode_start: datetime
    window_start: datetime
    window_end: datetime
    fired_at: datetime
    negative_count: int
    total_count: int
    negative_share: float
    baseline_share: float
    score: float
    threshold: float
    # the kind's own reading (schema v2): negatives, positives or stories in the window,
    # their share (volume: count over expected_count), and syndicated repeats not counted
    count: int | None = None
    share: float | None = None
    expected_count: float | None = None
    repeats: int = 0
    net_sentiment: float | None = None
    evidence: list[EvidenceOut] = Field(default_factory=list)  # producer caps it (<= 50)
    model_version: str


class EntityRow(_Out):
    """One row of the entity table; ``rank`` 1 is the highest current risk."""

    rank: int
    entity: str
    kind: Literal["ticker", "topic", "market"]
    name: str  # the symbol, the topic slug, or "market"
    clock_ms: int
    status: Literal["idle", "firing", "cooldown"]
    severity: str | None  # of the alert now firing
    alert_kind: str | None
    alert_id: str | None
    alert_score: float | None  # the firing alert's z (of its own kind)
    negative: int  # negatives in the window (k)
    total: int  # items in the window (n): the volume
    negative_share: float  # k / n (0 when n = 0)
    baseline_share: float  # the smoothed baseline share p0 the detector tests against
    z: float  # binomial z of k against n * p0
    volume_ratio: float | None  # n against the baseline's rate for a window; None: no baseline


class Overview(_Out):
    """``GET /api/overview`` and the ``overview`` event of ``GET /api/stream``."""

    bucket_seconds: int
    window_seconds: int
    baseline_seconds: int
    series_buckets_max: int  # the most buckets ``/series`` gives (bounded by retention)
    clock_ms: int | None  # the most recent entity clock (event time)
    entities: list[EntityRow]
    truncated: bool  # the store had more entities than the limit
    firing: list[AlertOut]  # alerts firing now, most severe first
    recent: list[AlertOut]  # the latest alerts in any state, newest first


class PointOut(_Out):
    start_ms: int
    negative: int
    neutral: int
    positive: int
    total: int
    negative_share: float | None  # None for an empty bucket
    mean_negative_prob: float | None
    # the detector window ending with this bucket (as the table shows it at the clock)
    window_negative: int
    window_total: int
    window_share: float | None  # None for an empty window


class SeriesOut(_Out):
    """``GET /api/entities/{entity}/series``: one point per bucket, empty buckets included."""

    entity: str
    clock_ms: int
    bucket_seconds: int
    window_seconds: int
    window_start_ms: int  # the detector window, for shading
    points: list[PointOut]


class HeadlineOut(_Linked):
    published_at_ms: int
    sentiment: str
    negative_prob: float
    novelty: str | None = None


class HeadlinesOut(_Out):
    entity: str
    headlines: list[HeadlineOut]


class AlertsOut(_Out):
    alerts: list[AlertOut]
