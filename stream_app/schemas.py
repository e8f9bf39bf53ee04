"""Wire models: every message the stream app reads from or writes to a topic.

All are JSON on the wire (``model_dump_json`` / ``model_validate_json``) and carry
``schema_version`` so a consumer can refuse a format it does not know. Unknown fields
are ignored, not errors, so producers may add fields without breaking old consumers.

Times: ``NewsItem.published_at`` is *event time* (UTC-aware datetime; serialised ISO-8601).
Everything that must be reproducible (alert ids, ``fired_at``, window bounds) is derived
from event time only; wall-clock fields (``scored_at``, ``emitted_at``,
``dead_lettered_at``) are informational and excluded from backtest/live parity checks
(see ``Alert.parity_key``).

``ScoredNews`` *flattens* the item: it is a ``NewsItem`` subclass with the model outputs
added, so a consumer of ``news.scored`` sees one flat object with the original fields.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "DEAD_LETTER_REASONS",
    "DETECTOR_KINDS",
    "MAX_BODY_CHARS",
    "MAX_HEADLINE_CHARS",
    "MAX_ID_CHARS",
    "MAX_TICKERS",
    "SEVERITIES",
    "TICKER_RE",
    "Alert",
    "AlertDeadLetter",
    "AlertKind",
    "AlertState",
    "DeadLetter",
    "DeadLetterReason",
    "DetectorKind",
    "EntityBatch",
    "EntityEvent",
    "EntityLink",
    "Evidence",
    "NewsItem",
    "Novelty",
    "ScoredNews",
    "Severity",
    "alert_id",
    "datetime_to_ms",
    "ms_to_datetime",
    "normalize_ticker",
    "parse_event_time",
]

# Hard ceilings of the schema itself. The configurable (lower) limits of
# ``Settings.max_*`` are enforced by ``stream_app.core.validation.parse_news``.
MAX_ID_CHARS: Final = 256
MAX_HEADLINE_CHARS: Final = 10_000
MAX_BODY_CHARS: Final = 1_000_000
MAX_META_CHARS: Final = 2_048
MAX_TICKERS: Final = 256
MAX_ENTITY_CHARS: Final = 128

# ``\Z``, not ``$``: ``$`` also matches before a trailing newline.
TICKER_RE: Final = re.compile(r"^[A-Z][A-Z0-9.\-]{0,9}\Z")


def normalize_ticker(value: str) -> str | None:
    """``" $tsla "`` -> ``"TSLA"``; None unless the result is a plain ASCII symbol.

    The ASCII check comes *before* upper-casing: ``"ß".upper()`` is ``"SS"``,
    ``"\ufb01".upper()`` (the fi ligature) is ``"FI"`` and ``"\u0131".upper()`` (dotless i)
    is ``"I"``, so checking afterwards would count those texts for real tickers.
    """
    sym = value.strip().lstrip("$")
    if not sym.isascii():
        return None
    sym = sym.upper()
    return sym if TICKER_RE.fullmatch(sym) else None


# 2000-01-01 and 2100-01-01 UTC in ms: anything outside is a broken clock, not news.
MIN_EVENT_MS: Final = 946_684_800_000
MAX_EVENT_MS: Final = 4_102_444_800_000

DeadLetterReason = Literal[
    "not_bytes",
    "too_large",
    "not_utf8",
    "invalid_json",
    "too_deep",
    "not_object",
    "missing_field",
    "wrong_type",
    "empty_field",
    "empty_headline",
    "too_long",
    "invalid_ticker",
    "too_many_tickers",
    "bad_timestamp",
    "future_event",
    "late_event",
    "predictor_failure",
    "invalid_event",
]
DEAD_LETTER_REASONS: Final[tuple[str, ...]] = DeadLetterReason.__args__  # type: ignore[attr-defined]

AlertState = Literal["firing", "escalated", "resolved"]
AlertKind = Literal["negative", "positive", "volume", "model_drift"]
DetectorKind = Literal["negative", "positive", "volume"]
Severity = Literal["low", "medium", "high", "critical"]
Novelty = Literal["first", "repeat"]
SEVERITIES: Final[tuple[str, ...]] = Severity.__args__  # type: ignore[attr-defined]  # ordered
DETECTOR_KINDS: Final[tuple[str, ...]] = DetectorKind.__args__  # type: ignore[attr-defined]


def ms_to_datetime(ms: int) -> datetime:
    """UTC-aware datetime of epoch milliseconds (exact: no float rounding)."""
    return datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=(ms % 1000) * 1000)


def datetime_to_ms(dt: datetime) -> int:
    """Epoch milliseconds of an aware datetime (naive is taken as UTC)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def parse_event_time(value: Any) -> datetime:
    """Epoch ms (int/float) or ISO-8601 string -> UTC datetime; naive ISO is taken as UTC."""
    if isinstance(value, bool):
        raise ValueError("published_at must be ISO-8601 text or epoch milliseconds")
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, int | float):
        if not math.isfinite(value) or not MIN_EVENT_MS <= value < MAX_EVENT_MS:
            raise ValueError(f"published_at {value!r} is not epoch ms in 2000..2100")
        return ms_to_datetime(int(value))
    elif isinstance(value, str):
        text = value.strip()
        if text.isdigit() and len(text) <= 16:
            return parse_event_time(int(text))
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"published_at {value[:64]!r} is not ISO-8601") from None
    else:
        raise ValueError("published_at must be ISO-8601 text or epoch milliseconds")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    dt = dt.astimezone(UTC)
    if not MIN_EVENT_MS <= datetime_to_ms(dt) < MAX_EVENT_MS:
        raise ValueError(f"published_at {dt.isoformat()} is outside 2000..2100")
    return dt


EventTime = Annotated[datetime, Field(description="event time, UTC")]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)


class NewsItem(_Wire):
    """One news record as the producer sends it, after validation and normalisation."""

    schema_version: int = 1
    id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    headline: str = Field(min_length=1, max_length=MAX_HEADLINE_CHARS)
    body: str | None = Field(None, max_length=MAX_BODY_CHARS)
    source: str | None = Field(None, max_length=MAX_META_CHARS)
    url: str | None = Field(None, max_length=MAX_META_CHARS)
    tickers: list[str] = Field(default_factory=list, max_length=MAX_TICKERS)
    published_at: EventTime

    @field_validator("tickers", mode="before")
    @classmethod
    def _tickers(cls, v: Any) -> Any:
        if not isinstance(v, list):
            return v
        out: list[str] = []
        for t in v:
            if not isinstance(t, str):
                raise ValueError("tickers must be strings")
            sym = normalize_ticker(t)
            if sym is None:
                raise ValueError(f"ticker {t[:16]!r} does not match {TICKER_RE.pattern}")
            if sym not in out:
                out.append(sym)
        return out

    @field_validator("published_at", mode="before")
    @classmethod
    def _published_at(cls, v: Any) -> datetime:
        return parse_event_time(v)

    @property
    def event_time_ms(self) -> int:
        return datetime_to_ms(self.published_at)


class EntityLink(_Wire):
    """How an item names one company (issue 10): ``news.scored`` carries one per ticker.

    ``via``: ``field`` (the producer's ``tickers``), ``cashtag`` (``$TSLA`` in the text) or
    ``name`` (``Tesla``, found by ``stream_app.core.linking``). ``span`` is the half-open
    ``[start, end)`` of the first mention in the *headline* (None for a field ticker the
    headline does not cashtag, or a cashtag found only in the body). ``relevance`` in
    [0, 1]: high for the subject of the headline, low for a passing mention in a round-up.
    """

    entity: str = Field(min_length=1, max_length=MAX_ENTITY_CHARS)
    via: Literal["field", "cashtag", "name"]
    span: tuple[int, int] | None = None
    relevance: float = Field(ge=0.0, le=1.0)


class ScoredNews(NewsItem):
    """A ``NewsItem`` (flattened) plus the model's outputs; topic ``news.scored``, key = id."""

    sentiment: Literal["negative", "neutral", "positive"]
    sentiment_probs: dict[str, float]
    topic: str = Field(max_length=MAX_META_CHARS)
    topic_prob: float = Field(ge=0.0, le=1.0)
    model_version: str = Field(max_length=MAX_META_CHARS)
    entities: list[str] = Field(default_factory=list)
    # Every company the item names, with provenance (field > cashtag > name), at most
    # Settings.max_tickers; `entities` counts those at or above Settings.min_relevance.
    links: list[EntityLink] = Field(default_factory=list, max_length=MAX_TICKERS)
    scored_at: datetime
    # Novelty of the story on the market-wide view: "first" unless a near-duplicate headline
    # was seen within the novelty window (stream_app/core/novelty.py). None when the item
    # could not be placed in event-time order (a late event).
    story_id: str | None = Field(None, max_length=MAX_ID_CHARS)
    novelty: Novelty | None = None

    @property
    def item(self) -> NewsItem:
        return NewsItem.model_validate(self.model_dump(include=set(NewsItem.model_fields)))


class EntityEvent(_Wire):
    """One (news item, entity) pair, as the aggregator needs it (internal entity topic).

    ``signature`` is the headline's novelty fingerprint (``core.novelty``), ``relevance``
    and ``span`` say how strongly and where the item names the entity. The event for the
    ``market`` entity also carries the whole scored record (``scored``): the aggregator
    owning ``market`` publishes it to ``news.scored`` with its story id and novelty.
    """

    schema_version: int = 2
    entity: str = Field(min_length=1, max_length=MAX_ENTITY_CHARS)
    id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    event_time_ms: int = Field(ge=MIN_EVENT_MS, lt=MAX_EVENT_MS)
    sentiment: Literal["negative", "neutral", "positive"]
    negative_prob: float = Field(ge=0.0, le=1.0)
    positive_prob: float = Field(0.0, ge=0.0, le=1.0)
    headline: str = Field(max_length=MAX_HEADLINE_CHARS)
    model_version: str = Field(max_length=MAX_META_CHARS)
    signature: str = Field("", max_length=128)
    relevance: float = Field(1.0, ge=0.0, le=1.0)
    span: tuple[int, int] | None = None
    via: Literal["field", "cashtag", "name"] | None = None
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None
    ingest_ms: int | None = Field(None, description="Kafka timestamp of the news record")
    scored: dict[str, Any] | None = None

    @property
    def source(self) -> str:
        """Where the news record came from, ``"partition:offset"`` (empty when unknown)."""
        if self.source_partition is None or self.source_offset is None:
            return ""
        return f"{self.source_partition}:{self.source_offset}"


class EntityBatch(_Wire):
    """One record of the internal entity topic: a score batch's events for one partition.

    The score stage sends one per destination partition per batch (every partition, events
    or not), so each carries the event-time progress of the news partitions its worker
    reads: ``progress`` maps a news partition to the largest event time it has seen
    (clamped by processing time, so one future-dated record cannot move it far), ``idle``
    lists those of them with nothing to read. The aggregator's watermark is the minimum
    progress over the ``source_partitions`` news partitions that are not idle
    (``core.sequencer``).
    """

    schema_version: int = 2
    source_partitions: int = Field(ge=1, le=100_000)
    progress: dict[int, int] = Field(default_factory=dict)
    idle: list[int] = Field(default_factory=list)
    events: list[EntityEvent] = Field(default_factory=list)


class Evidence(_Wire):
    """One story of an alert's window: the most negative (or positive, or recent) firsts."""

    id: str
    headline: str
    negative_prob: float
    positive_prob: float = 0.0
    story_id: str | None = None
    span: tuple[int, int] | None = Field(None, description="where the headline names the entity")


def alert_id(
    entity: str,
    episode: int,
    episode_start_ms: int,
    state: AlertState,
    kind: AlertKind = "negative",
    severity: Severity | None = None,
) -> str:
    """Deterministic id: a redelivered batch republishes the same id, consumers de-duplicate.

    An ``escalated`` alert's id includes the severity it escalated to, so each level of an
    episode is published once.
    """
    parts = [entity, str(episode), str(episode_start_ms), state]
    if kind != "negative":
        parts.append(kind)
    if state == "escalated":
        parts.append(str(severity))
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


class Alert(_Wire):
    """A spike starting (``firing``), rising (``escalated``) or ending (``resolved``).

    Topic ``sentiment.alerts``, key = entity. ``kind`` says what spiked: the share of
    negative or positive stories, or the volume of stories, against the entity's own
    baseline (stream_app/core/detector.py); ``model_drift`` is the model monitor's.
    ``score`` is the kind's z-score and ``threshold`` the level it crossed; ``count`` is the
    kind's count in the window (negatives, positives or stories) and ``share`` its share
    (for volume: the count over ``expected_count``). ``negative_*``/``total_count`` keep their
    meaning for every kind. Counts are of first stories; syndicated repeats are in
    ``repeats``. ``severity`` is the current level; ``peak_severity`` the episode's highest
    (a ``resolved`` alert says how bad the episode got).
    """

    schema_version: int = 2
    alert_id: str
    kind: AlertKind = "negative"
    state: AlertState
    entity: str
    severity: Severity
    peak_severity: Severity | None = None
    episode: int = Field(ge=1, description="per-entity episode counter")
    episode_start: datetime
    window_start: datetime
    window_end: datetime
    negative_count: int = Field(ge=0)
    total_count: int = Field(ge=0)
    negative_share: float
    baseline_share: float
    score: float
    threshold: float
    count: int = Field(0, ge=0)
    share: float = 0.0
    expected_count: float | None = None
    repeats: int = Field(0, ge=0)
    net_sentiment: float | None = None
    evidence: list[Evidence] = Field(default_factory=list)
    model_version: str
    fired_at: datetime = Field(description="event time of the event that caused the change")
    emitted_at: datetime | None = Field(None, description="wall clock; not part of parity")

    def parity_key(self) -> dict[str, Any]:
        """Everything deterministic: what backtest and live must agree on."""
        return self.model_dump(mode="json", exclude={"emitted_at"})


class DeadLetter(_Wire):
    """A record that could not be processed, with a stable machine-readable ``reason``.

    ``original`` is the record's bytes as UTF-8 text, or base64 when they are not UTF-8
    (``encoding`` says which), truncated to ``max_original_bytes`` (``original_truncated``).
    """

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=False)

    schema_version: int = 1
    reason: DeadLetterReason
    detail: str
    original: str
    encoding: Literal["utf-8", "base64"]
    original_truncated: bool = False
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None
    entity: str | None = None
    dead_lettered_at: datetime

    @classmethod
    def from_raw(
        cls,
        raw: bytes,
        *,
        reason: DeadLetterReason,
        detail: str,
        max_original_bytes: int = 64_000,
        now: datetime | None = None,
        **source: Any,
    ) -> DeadLetter:
        cut = raw[:max_original_bytes]
        try:
            text, enc = cut.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            text, enc = base64.b64encode(cut).decode("ascii"), "base64"
        return cls(
            reason=reason,
            detail=detail[:1000],
            original=text,
            encoding=enc,  # type: ignore[arg-type]
            original_truncated=len(raw) > max_original_bytes,
            dead_lettered_at=now or datetime.now(UTC),
            **source,
        )

    def original_bytes(self) -> bytes:
        if self.encoding == "base64":
            return base64.b64decode(self.original)
        return self.original.encode("utf-8")


class AlertDeadLetter(_Wire):
    """An alert a forwarder sink never acknowledged, or a record of the alert topic that is
    not an alert; topic ``sentiment.alerts.deadletter``, key = alert id (or none).

    ``reason``: ``delivery_failed`` (``attempts`` retryable failures: 5xx, timeouts,
    connection errors), ``rejected`` (the sink answered a status that a retry cannot fix:
    400, 401, 404, ...) or ``invalid_alert``. ``detail`` is the last error with URLs masked;
    ``original`` is the record value as text (UTF-8, or base64 per ``encoding``).
    """

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=False)

    schema_version: int = 1
    reason: Literal["delivery_failed", "rejected", "invalid_alert"]
    sink: str | None = None
    alert_id: str | None = None
    attempts: int = Field(0, ge=0)
    detail: str
    original: str
    encoding: Literal["utf-8", "base64"] = "utf-8"
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None
    dead_lettered_at: datetime
