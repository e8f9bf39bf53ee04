"""The ``WindowStore`` protocol: per-entity state read and committed by the aggregator.

A store keeps, per entity: a *version*, the clock (largest applied event time), when the
entity was first seen, the window and baseline sums as of that clock, one detector state
and the firing alert (if any) per detector kind, per-bucket counts, the ids already seen
(``SeenEntry``: event time, applied or late, and the Kafka positions of the copies it
came in, so a redelivered copy is not counted twice), the novelty index (probe key ->
story, ``core.novelty``), per-bucket evidence (the ``evidence_size`` most negative, most
positive and most recent first stories of each bucket), the recent alerts with what it
takes to explain them, and exact late/duplicate counters.

``commit`` is a compare-and-set on the version: a commit whose ``expected_version`` is
stale (another worker committed in between, e.g. a zombie after a rebalance) changes
nothing and the entity is returned as a *conflict*; the aggregator re-reads and redoes
it. A commit retried after a lost reply is recognised by its ``token`` and reported as
applied. That version check is the seen-id re-check: any commit that added ids bumped it.

Implementations: ``store.redis.RedisWindowStore`` (live) and ``store.memory.MemoryWindowStore``
(backtest, tests) with identical semantics; the tests run both on the same batches.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from models.errors import FinpulseError
from stream_app.core.detector import DetectorState
from stream_app.core.windows import Counts, WindowGeometry

__all__ = [
    "EVIDENCE_HEADLINE_CHARS",
    "EVIDENCE_ORDERS",
    "HEADLINES_KEPT",
    "AlertRecord",
    "EntityCommit",
    "EntitySnapshot",
    "EntitySummary",
    "EntityView",
    "EvidenceItem",
    "SeenEntry",
    "SnapshotRequest",
    "StoreUnavailable",
    "WindowStore",
    "top_evidence",
]

EVIDENCE_HEADLINE_CHARS = 300
HEADLINES_KEPT = 50  # recent headlines per entity, for the desk
MAX_SOURCES = 8  # Kafka positions remembered per id (beyond: every new copy counts)

EvidenceOrder = Literal["neg", "pos", "recent"]
EVIDENCE_ORDERS: tuple[EvidenceOrder, ...] = ("neg", "pos", "recent")


class StoreUnavailable(FinpulseError):
    """The window store stayed unreachable for longer than the configured retry budget."""


@dataclass(frozen=True, slots=True)
class EvidenceItem:
    """A first story of a bucket, as alerts show it. Integers, so every store sorts alike."""

    neg_micros: int
    pos_micros: int
    event_ms: int
    id: str
    headline: str
    story_id: str | None = None
    span: tuple[int, int] | None = None

    def key(self, order: EvidenceOrder) -> tuple[int, str]:
        """Sort key, smallest first: the most negative / positive / recent, then by id."""
        top = {"neg": self.neg_micros, "pos": self.pos_micros, "recent": self.event_ms}[order]
        return -top, self.id

    @property
    def negative_prob(self) -> float:
        return self.neg_micros / 1_000_000

    @property
    def positive_prob(self) -> float:
        return self.pos_micros / 1_000_000

    def to_wire(self) -> list[Any]:
        span = list(self.span) if self.span is not None else None
        return [
            self.neg_micros,
            self.pos_micros,
            self.event_ms,
            self.id,
            self.headline,
            self.story_id or "",
            span,
        ]

    @classmethod
    def from_wire(cls, v: Sequence[Any]) -> EvidenceItem:
        span = v[6] if len(v) > 6 and v[6] else None
        return cls(
            int(v[0]),
            int(v[1]),
            int(v[2]),
            str(v[3]),
            str(v[4]),
            str(v[5]) or None,
            (int(span[0]), int(span[1])) if span else None,
        )


def top_evidence(items: Iterable[EvidenceItem], k: int, order: EvidenceOrder) -> list[EvidenceItem]:
    """The ``k`` first items in ``order``, ties by id: a total order, so deterministic."""
    return heapq.nsmallest(k, items, key=lambda it: it.key(order))


@dataclass(frozen=True, slots=True)
class SeenEntry:
    """An id the entity has seen: its event time, whether it was applied or late, and the
    Kafka positions (``"partition:offset"`` of the news record) of the copies counted."""

    event_ms: int
    late: bool = False
    sources: tuple[str, ...] = ()

    def encode(self) -> str:
        return f"{self.event_ms}|{'l' if self.late else 'a'}|{','.join(self.sources)}"

    @classmethod
    def decode(cls, text: str | bytes) -> SeenEntry:
        if isinstance(text, bytes):
            text = text.decode()
        ms, flag, sources = text.split("|", 2)
        return cls(int(ms), flag == "l", tuple(s for s in sources.split(",") if s))

    def with_source(self, source: str) -> SeenEntry:
        if not source or source in self.sources or len(self.sources) >= MAX_SOURCES:
            return self
        return SeenEntry(self.event_ms, self.late, (*self.sources, source))


@dataclass(frozen=True, slots=True)
class SnapshotRequest:
    entity: str
    max_event_ms: int  # largest event time among this batch's events for the entity
    ids: Sequence[str]
    probes: Sequence[str] = ()  # novelty probe keys of the batch's events


@dataclass(slots=True)
class EntitySnapshot:
    entity: str
    version: int = 0
    clock_ms: int | None = None
    first_seen_ms: int | None = None
    window: Counts = field(default_factory=Counts)
    baseline: Counts = field(default_factory=Counts)
    detectors: dict[str, DetectorState] = field(default_factory=dict)
    firing: dict[str, str] = field(default_factory=dict)  # kind -> firing alert JSON
    # counts of the transition buckets for the clock move to max_event_ms (absent = empty)
    buckets: dict[int, Counts] = field(default_factory=dict)
    clock_bucket: Counts = field(default_factory=Counts)  # stored count of bucket(clock)
    seen: dict[str, SeenEntry] = field(default_factory=dict)  # asked ids seen before
    stories: dict[str, tuple[str, int]] = field(default_factory=dict)  # asked probes, live


@dataclass(slots=True)
class AlertRecord:
    """An alert as published, plus what ``explain`` needs to recompute its decision."""

    alert_id: str
    event_ms: int  # fired_at
    data: dict[str, Any]  # {"alert": ..., "clock_ms", "partial", "state_before", ...}


@dataclass(slots=True)
class EntityCommit:
    entity: str
    expected_version: int
    token: str
    clock_ms: int | None
    first_seen_ms: int | None
    window: Counts
    baseline: Counts
    detectors: dict[str, DetectorState]
    firing: dict[str, str]
    was_firing: bool  # the snapshot had a firing alert (index maintenance)
    bucket_deltas: dict[int, Counts]
    seen: dict[str, SeenEntry]  # new or changed entries
    stories: dict[str, tuple[str, int]]  # new or changed novelty entries
    evidence: dict[int, dict[str, list[EvidenceItem]]]  # bucket -> order -> this batch's top-k
    evidence_size: int
    late: int
    duplicates: int
    first_kept_bucket: int  # prune bucket counts below
    first_evidence_bucket: int  # prune evidence below (outside any future window)
    seen_cutoff_ms: int  # forget seen ids older than
    story_cutoff_ms: int  # forget novelty entries at or before
    story_max_keys: int
    alerts: list[AlertRecord] = field(default_factory=list)
    headlines: list[dict[str, Any]] = field(default_factory=list)  # oldest first


@dataclass(frozen=True, slots=True)
class EntityView:
    """What the web API shows for one entity (sums as of the entity's own clock)."""

    entity: str
    clock_ms: int | None
    first_seen_ms: int | None
    window: Counts
    baseline: Counts
    detectors: dict[str, DetectorState]
    firing: dict[str, Any]  # kind -> firing alert
    late_events: int
    duplicate_events: int


@dataclass(frozen=True, slots=True)
class EntitySummary:
    """One row of the desk's entity table: the view, plus when it last changed."""

    view: EntityView
    updated_ms: int


class WindowStore(Protocol):
    async def read(
        self, requests: Sequence[SnapshotRequest], geometry: WindowGeometry
    ) -> dict[str, EntitySnapshot]:
        """Snapshots of the requested entities (one round trip)."""

    async def read_evidence(
        self, wanted: Mapping[str, range]
    ) -> dict[str, dict[int, dict[str, list[EvidenceItem]]]]:
        """Stored evidence of the given bucket ranges (only needed when alerts change)."""

    async def commit(self, commits: Sequence[EntityCommit]) -> list[str]:
        """Apply all commits (one round trip); return the entities that conflicted."""

    async def entity_view(self, entity: str) -> EntityView | None: ...

    async def buckets(self, entity: str, wanted: range) -> dict[int, Counts]:
        """Stored bucket counts in ``wanted`` (series, explain)."""

    async def firing_alerts(self) -> list[dict[str, Any]]: ...

    async def alert_record(self, alert_id: str) -> tuple[str, AlertRecord] | None:
        """``(entity, record)`` of a recent alert, for ``explain``."""

    async def recent_alerts(self, limit: int) -> list[dict[str, Any]]: ...

    async def entities(self, limit: int) -> list[EntitySummary]:
        """Entities with a firing alert first, then the most recently updated, newest first."""

    async def headlines(self, entity: str, limit: int) -> list[dict[str, Any]]:
        """The entity's most recent headlines (first stories and repeats), newest first."""

    async def close(self) -> None: ...
