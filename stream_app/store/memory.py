"""In-process ``WindowStore`` for the backtest and unit tests; same semantics as Redis.

Every method works on copies, so a caller mutating a snapshot cannot corrupt the store,
exactly as with a remote store.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stream_app.core.detector import DetectorState
from stream_app.core.windows import Counts, WindowGeometry
from stream_app.store.base import (
    EntityCommit,
    EntitySnapshot,
    EntityView,
    EvidenceItem,
    SnapshotRequest,
    top_evidence,
)

__all__ = ["MemoryWindowStore"]


@dataclass(slots=True)
class _Entity:
    version: int = 0
    token: str = ""
    clock_ms: int | None = None
    window: Counts = field(default_factory=Counts)
    baseline: Counts = field(default_factory=Counts)
    detector: DetectorState = field(default_factory=DetectorState)
    firing_alert: str | None = None
    buckets: dict[int, Counts] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)
    evidence: dict[int, list[EvidenceItem]] = field(default_factory=dict)
    late: int = 0
    duplicates: int = 0


class MemoryWindowStore:
    def __init__(self) -> None:
        self._entities: dict[str, _Entity] = {}
        self.commits = 0  # number of successful entity commits (tests look at it)

    async def read(
        self, requests: Sequence[SnapshotRequest], geometry: WindowGeometry
    ) -> dict[str, EntitySnapshot]:
        out: dict[str, EntitySnapshot] = {}
        for req in requests:
            e = self._entities.get(req.entity)
            if e is None:
                out[req.entity] = EntitySnapshot(req.entity)
                continue
            buckets: dict[int, Counts] = {}
            if e.clock_ms is not None:
                b1 = geometry.bucket(e.clock_ms)
                b2 = geometry.bucket(max(req.max_event_ms, e.clock_ms))
                stored = e.buckets
                for r in geometry.transition_ranges(b1, b2):
                    # scan whichever is shorter: the range or the entity's buckets
                    found = (
                        [b for b in r if b in stored]
                        if len(r) <= len(stored)
                        else [b for b in stored if b in r]
                    )
                    for b in found:
                        buckets[b] = stored[b].copy()
            out[req.entity] = EntitySnapshot(
                entity=req.entity,
                version=e.version,
                clock_ms=e.clock_ms,
                window=e.window.copy(),
                baseline=e.baseline.copy(),
                detector=e.detector,
                firing_alert=e.firing_alert,
                buckets=buckets,
                seen={i: e.seen[i] for i in req.ids if i in e.seen},
            )
        return out

    async def read_evidence(
        self, wanted: Mapping[str, range]
    ) -> dict[str, dict[int, list[EvidenceItem]]]:
        out: dict[str, dict[int, list[EvidenceItem]]] = {}
        for entity, r in wanted.items():
            e = self._entities.get(entity)
            stored = e.evidence if e else {}
            out[entity] = {b: list(stored[b]) for b in r if b in stored}
        return out

    async def commit(self, commits: Sequence[EntityCommit]) -> list[str]:
        conflicts: list[str] = []
        for c in commits:
            e = self._entities.setdefault(c.entity, _Entity())
            if e.version != c.expected_version:
                if not (e.version == c.expected_version + 1 and e.token == c.token):
                    conflicts.append(c.entity)
                continue
            self._apply(e, c)
            self.commits += 1
        return conflicts

    @staticmethod
    def _apply(e: _Entity, c: EntityCommit) -> None:
        e.version += 1
        e.token = c.token
        e.clock_ms = c.clock_ms
        e.window, e.baseline = c.window.copy(), c.baseline.copy()
        e.detector = c.detector
        e.firing_alert = c.firing_alert
        e.late += c.late
        e.duplicates += c.duplicates
        for b, d in c.bucket_deltas.items():
            e.buckets[b] = e.buckets.get(b, Counts()) + d
        e.buckets = {b: v for b, v in e.buckets.items() if b >= c.first_kept_bucket}
        e.seen.update(c.seen)
        e.seen = {i: t for i, t in e.seen.items() if t >= c.seen_cutoff_ms}
        for b, items in c.evidence.items():
            e.evidence[b] = top_evidence([*e.evidence.get(b, ()), *items], c.evidence_size)
        e.evidence = {b: v for b, v in e.evidence.items() if b >= c.first_evidence_bucket}

    async def entity_view(self, entity: str) -> EntityView | None:
        e = self._entities.get(entity)
        if e is None:
            return None
        return EntityView(
            entity=entity,
            clock_ms=e.clock_ms,
            window=e.window.copy(),
            baseline=e.baseline.copy(),
            detector=e.detector,
            firing_alert=json.loads(e.firing_alert) if e.firing_alert else None,
            late_events=e.late,
            duplicate_events=e.duplicates,
        )

    async def firing_alerts(self) -> list[dict[str, Any]]:
        return [
            json.loads(e.firing_alert)
            for _, e in sorted(self._entities.items())
            if e.firing_alert is not None
        ]

    async def close(self) -> None:
        return None
