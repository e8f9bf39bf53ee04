"""The ``WindowStore`` protocol: per-entity window state read and committed by the aggregator.

A store keeps, per entity: a *version*, the clock (largest applied event time), the
window and baseline sums as of that clock, the detector state, the JSON of the alert
currently firing, per-bucket counts, the ids already applied (with their event times),
per-bucket evidence (the ``evidence_size`` most negative items of each bucket) and
late/duplicate counters.

``commit`` is a compare-and-set on the version: a commit whose ``expected_version`` is
stale (another worker committed in between, e.g. a zombie after a rebalance) changes
nothing and the entity is returned as a *conflict*; the aggregator re-reads and redoes
it. A commit retried after a lost reply is recognised by its ``token`` and reported as
applied. That version check is the seen-id re-check: any commit that added ids bumped it.

Implementations: ``store_redis.RedisWindowStore`` (live) and
``store_memory.MemoryWindowStore`` (backtest, tests) with identical semantics.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from models.errors import FinpulseError
from stream_app.core.detector import DetectorState
from stream_app.core.windows import Counts, WindowGeometry

__all__ = [
    "EVIDENCE_HEADLINE_CHARS",
    "EntityCommit",
    "EntitySnapshot",
    "EntityView",
    "EvidenceItem",
    "SnapshotRequest",
    "StoreUnavailable",
    "WindowStore",
    "top_evidence",
]

EVIDENCE_HEADLINE_CHARS = 300


class StoreUnavailable(FinpulseError):
    """The window store stayed unreachable for longer than the configured retry budget."""


@dataclass(frozen=True, slots=True, order=True)
class EvidenceItem:
    """Ordered most negative first, then by id (a total order: selection is deterministic)."""

    neg_key: int  # -negative_prob in micros, so ascending order = most negative first
    id: str
    headline: str = field(compare=False)

    @property
    def negative_prob(self) -> float:
        return -self.neg_key / 1_000_000

    def to_wire(self) -> list[Any]:
        return [-self.neg_key, self.id, self.headline]

    @classmethod
    def from_wire(cls, v: Sequence[Any]) -> EvidenceItem:
        return cls(-int(v[0]), str(v[1]), str(v[2]))


def top_evidence(items: Iterable[EvidenceItem], k: int) -> list[EvidenceItem]:
    return heapq.nsmallest(k, items)


@dataclass(frozen=True, slots=True)
class SnapshotRequest:
    entity: str
    max_event_ms: int  # largest event time among this batch's events for the entity
    ids: Sequence[str]


@dataclass(slots=True)
class EntitySnapshot:
    entity: str
    version: int = 0
    clock_ms: int | None = None
    window: Counts = field(default_factory=Counts)
    baseline: Counts = field(default_factory=Counts)
    detector: DetectorState = field(default_factory=DetectorState)
    firing_alert: str | None = None
    # counts of the transition buckets for the clock move to max_event_ms (absent = empty)
    buckets: dict[int, Counts] = field(default_factory=dict)
    # asked ids that were applied before -> their event time
    seen: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class EntityCommit:
    entity: str
    expected_version: int
    token: str
    clock_ms: int | None
    window: Counts
    baseline: Counts
    detector: DetectorState
    firing_alert: str | None
    was_firing: bool  # the snapshot had a firing alert (index maintenance)
    bucket_deltas: dict[int, Counts]
    seen: dict[str, int]
    evidence: dict[int, list[EvidenceItem]]  # per bucket, already this batch's top-k
    evidence_size: int
    late: int
    duplicates: int
    first_kept_bucket: int  # prune bucket counts below
    first_evidence_bucket: int  # prune evidence below (outside any future window)
    seen_cutoff_ms: int  # forget seen ids older than


@dataclass(frozen=True, slots=True)
class EntityView:
    """What the web API shows for one entity (sums as of the entity's own clock)."""

    entity: str
    clock_ms: int | None
    window: Counts
    baseline: Counts
    detector: DetectorState
    firing_alert: dict[str, Any] | None
    late_events: int
    duplicate_events: int


class WindowStore(Protocol):
    async def read(
        self, requests: Sequence[SnapshotRequest], geometry: WindowGeometry
    ) -> dict[str, EntitySnapshot]:
        """Snapshots of the requested entities (one round trip)."""

    async def read_evidence(
        self, wanted: Mapping[str, range]
    ) -> dict[str, dict[int, list[EvidenceItem]]]:
        """Stored evidence of the given bucket ranges (only needed when alerts change)."""

    async def commit(self, commits: Sequence[EntityCommit]) -> list[str]:
        """Apply all commits (one round trip); return the entities that conflicted."""

    async def entity_view(self, entity: str) -> EntityView | None: ...

    async def firing_alerts(self) -> list[dict[str, Any]]: ...

    async def close(self) -> None: ...
