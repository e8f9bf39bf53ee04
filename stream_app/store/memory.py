"""In-process ``WindowStore`` for the backtest and unit tests; same semantics as Redis.

Every method works on copies, so a caller mutating a snapshot cannot corrupt the store,
exactly as with a remote store. The tests run this store and the Redis one on the same
batches and compare everything they hold.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stream_app.core.detector import DetectorState
from stream_app.core.windows import Counts, WindowGeometry
from stream_app.store.base import (
    EVIDENCE_ORDERS,
    HEADLINES_KEPT,
    AlertRecord,
    EntityCommit,
    EntitySnapshot,
    EntitySummary,
    EntityView,
    EvidenceItem,
    SeenEntry,
    SnapshotRequest,
    top_evidence,
)

__all__ = ["MemoryWindowStore"]

ALERTS_KEPT = 100  # explain records per entity
RECENT_ALERTS = 200  # the desk's recent-alerts list
SWEEP_MIN = 1024  # seen ids / story keys held before the first sweep of dead entries


@dataclass(slots=True)
class _Entity:
    version: int = 0
    token: str = ""
    clock_ms: int | None = None
    first_seen_ms: int | None = None
    window: Counts = field(default_factory=Counts)
    baseline: Counts = field(default_factory=Counts)
    detectors: dict[str, DetectorState] = field(default_factory=dict)
    firing: dict[str, str] = field(default_factory=dict)
    buckets: dict[int, Counts] = field(default_factory=dict)
    seen: dict[str, SeenEntry] = field(default_factory=dict)
    stories: dict[str, tuple[str, int]] = field(default_factory=dict)
    evidence: dict[int, dict[str, list[EvidenceItem]]] = field(default_factory=dict)
    alerts: dict[str, AlertRecord] = field(default_factory=dict)
    headlines: list[dict[str, Any]] = field(default_factory=list)  # newest first
    # Pruning state, so a commit costs what it prunes, not what the entity holds. Buckets:
    # low-water marks. Seen ids and story keys: event-time floors below which entries are
    # dead (reads skip them, as Redis has removed them), swept when a dict doubles.
    bucket_lo: int | None = None
    evidence_lo: int | None = None
    seen_floor: int = 0  # live: event_ms >= floor
    story_floor: int = 0  # live: event_ms > floor
    seen_sweep_at: int = SWEEP_MIN
    story_sweep_at: int = SWEEP_MIN
    late: int = 0
    duplicates: int = 0


def _prune_below(
    stored: dict[int, Any], lo: int | None, cut: int, added: Mapping[int, Any]
) -> int | None:
    """Delete buckets below ``cut``; ``lo`` is the lowest bucket possibly held. Returns it."""
    if added:
        lo = min(added) if lo is None else min(lo, min(added))
    if lo is None or lo >= cut:
        return lo
    if cut - lo <= 4096:
        for b in range(lo, cut):
            stored.pop(b, None)
    else:
        for b in [b for b in stored if b < cut]:
            del stored[b]
    return cut


def _evict_oldest(stories: dict[str, tuple[str, int]], max_keys: int) -> None:
    """Drop the smallest (event ms, key) while over ``max_keys``, as a Redis ZPOPMIN does.

    O(held) per call: at capacity every commit pays it, as Redis pays ZPOPMIN's log n.
    """
    excess = len(stories) - max_keys
    if excess > 0:
        for _, key in heapq.nsmallest(excess, ((ms, k) for k, (_, ms) in stories.items())):
            del stories[key]


class MemoryWindowStore:
    """``keep_history``: also keep every bucket ever committed, unpruned, in ``history``
    (the backtest's time series; a live store keeps only the retention)."""

    def __init__(self, *, keep_history: bool = False) -> None:
        self.keep_history = keep_history
        self.history: dict[str, dict[int, Counts]] = {}
        self._entities: dict[str, _Entity] = {}
        self._alert_entity: dict[str, str] = {}
        self._recent: list[dict[str, Any]] = []
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
            clock_bucket = Counts()
            if e.clock_ms is not None:
                b1 = geometry.bucket(e.clock_ms)
                b2 = geometry.bucket(max(req.max_event_ms, e.clock_ms))
                stored = e.buckets
                for r in geometry.transition_ranges(b1, b2):
                    for b in r if len(r) <= len(stored) else [b for b in stored if b in r]:
                        if b in stored:
                            buckets[b] = stored[b].copy()
                clock_bucket = stored.get(b1, Counts()).copy()
            out[req.entity] = EntitySnapshot(
                entity=req.entity,
                version=e.version,
                clock_ms=e.clock_ms,
                first_seen_ms=e.first_seen_ms,
                window=e.window.copy(),
                baseline=e.baseline.copy(),
                detectors=dict(e.detectors),
                firing=dict(e.firing),
                buckets=buckets,
                clock_bucket=clock_bucket,
                seen={
                    i: s
                    for i in req.ids
                    if (s := e.seen.get(i)) is not None and s.event_ms >= e.seen_floor
                },
                stories={
                    k: st
                    for k in req.probes
                    if (st := e.stories.get(k)) is not None and st[1] > e.story_floor
                },
            )
        return out

    async def read_evidence(
        self, wanted: Mapping[str, range]
    ) -> dict[str, dict[int, dict[str, list[EvidenceItem]]]]:
        out: dict[str, dict[int, dict[str, list[EvidenceItem]]]] = {}
        for entity, r in wanted.items():
            e = self._entities.get(entity)
            stored = e.evidence if e else {}
            out[entity] = {b: {o: list(v) for o, v in stored[b].items()} for b in r if b in stored}
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
            if self.keep_history:
                kept = self.history.setdefault(c.entity, {})
                for b, d in c.bucket_deltas.items():
                    kept[b] = kept.get(b, Counts()) + d
            for record in c.alerts:
                self._alert_entity[record.alert_id] = c.entity
                self._recent.insert(0, record.data["alert"])
            del self._recent[RECENT_ALERTS:]
            self.commits += 1
        return conflicts

    @staticmethod
    def _apply(e: _Entity, c: EntityCommit) -> None:
        e.version += 1
        e.token = c.token
        e.clock_ms, e.first_seen_ms = c.clock_ms, c.first_seen_ms
        e.window, e.baseline = c.window.copy(), c.baseline.copy()
        e.detectors = dict(c.detectors)
        e.firing = dict(c.firing)
        e.late += c.late
        e.duplicates += c.duplicates
        for b, d in c.bucket_deltas.items():
            e.buckets[b] = e.buckets.get(b, Counts()) + d
        e.bucket_lo = _prune_below(e.buckets, e.bucket_lo, c.first_kept_bucket, c.bucket_deltas)
        e.seen.update(c.seen)
        e.seen_floor = max(e.seen_floor, c.seen_cutoff_ms)
        if len(e.seen) > e.seen_sweep_at:
            floor = e.seen_floor
            e.seen = {i: s for i, s in e.seen.items() if s.event_ms >= floor}
            e.seen_sweep_at = max(SWEEP_MIN, 2 * len(e.seen))
        e.stories.update(c.stories)
        e.story_floor = max(e.story_floor, c.story_cutoff_ms)
        if len(e.stories) > min(e.story_sweep_at, c.story_max_keys):
            floor = e.story_floor
            e.stories = {k: s for k, s in e.stories.items() if s[1] > floor}
            _evict_oldest(e.stories, c.story_max_keys)
            e.story_sweep_at = max(SWEEP_MIN, 2 * len(e.stories))
        for b, orders in c.evidence.items():
            have = e.evidence.setdefault(b, {})
            for order in EVIDENCE_ORDERS:
                if order in orders:
                    merged = [*have.get(order, ()), *orders[order]]
                    have[order] = top_evidence(merged, c.evidence_size, order)
        e.evidence_lo = _prune_below(e.evidence, e.evidence_lo, c.first_evidence_bucket,
                                     c.evidence)  # fmt: skip
        e.headlines = [*reversed(c.headlines), *e.headlines][:HEADLINES_KEPT]
        for record in c.alerts:
            e.alerts[record.alert_id] = record
        if len(e.alerts) > ALERTS_KEPT:
            keep = sorted(e.alerts.values(), key=lambda r: (r.event_ms, r.alert_id))
            e.alerts = {r.alert_id: r for r in keep[-ALERTS_KEPT:]}

    def _view(self, entity: str, e: _Entity) -> EntityView:
        return EntityView(
            entity=entity,
            clock_ms=e.clock_ms,
            first_seen_ms=e.first_seen_ms,
            window=e.window.copy(),
            baseline=e.baseline.copy(),
            detectors=dict(e.detectors),
            firing={k: json.loads(v) for k, v in e.firing.items()},
            late_events=e.late,
            duplicate_events=e.duplicates,
        )

    async def entity_view(self, entity: str) -> EntityView | None:
        e = self._entities.get(entity)
        return self._view(entity, e) if e is not None else None

    async def buckets(self, entity: str, wanted: range) -> dict[int, Counts]:
        e = self._entities.get(entity)
        stored = e.buckets if e else {}
        return {b: stored[b].copy() for b in wanted if b in stored}

    async def firing_alerts(self) -> list[dict[str, Any]]:
        return [
            json.loads(alert)
            for _, e in sorted(self._entities.items())
            for _, alert in sorted(e.firing.items())
        ]

    async def alert_record(self, alert_id: str) -> tuple[str, AlertRecord] | None:
        entity = self._alert_entity.get(alert_id)
        e = self._entities.get(entity) if entity else None
        record = e.alerts.get(alert_id) if e else None
        return (entity, record) if entity and record else None

    async def recent_alerts(self, limit: int) -> list[dict[str, Any]]:
        return list(self._recent[:limit])

    async def entities(self, limit: int) -> list[EntitySummary]:
        known = [(n, e) for n, e in self._entities.items() if e.clock_ms is not None]
        ranked = sorted(known, key=lambda kv: (not kv[1].firing, -(kv[1].clock_ms or 0), kv[0]))
        return [EntitySummary(self._view(n, e), e.clock_ms or 0) for n, e in ranked[:limit]]

    async def headlines(self, entity: str, limit: int) -> list[dict[str, Any]]:
        e = self._entities.get(entity)
        return [dict(h) for h in e.headlines[:limit]] if e else []

    async def close(self) -> None:
        return None
