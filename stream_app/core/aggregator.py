"""The aggregation core shared by the live worker and the backtest.

``Aggregator.process`` follows the commit order of docs/architecture.md:

1. read a snapshot of every entity in the batch (one store round trip);
2. in Python, per entity and in arrival order: drop duplicates (seen before, or repeated
   in the batch) and late events, apply each remaining event to its bucket and the
   entity clock, and step the detector after *every* applied event on the window
   ending at the entity clock -- so alerts depend only on each entity's event order,
   never on how events were cut into batches;
3. ``await emit(outcome)``: the caller publishes alerts and late dead letters and waits
   for the broker's acks (if it raises, nothing is committed and a retry of the batch
   yields the same alert ids);
4. commit counts, seen ids, clock, detector state and evidence (one round trip,
   compare-and-set per entity). Conflicting entities (someone else committed in
   between) are re-read and redone, which emits their alerts again with the same ids.

Duplicate rule: an id counts as seen while its event time is within retention of the
entity clock (``WindowGeometry.seen_cutoff_ms``); older ones are checked as late. The
stores forget exactly those ids, so the rule holds across batch boundaries.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from models.errors import FinpulseError
from stream_app.config import DetectorSettings, WindowSettings
from stream_app.core.detector import DetectorState, Transition, evaluate
from stream_app.core.entities import is_valid_entity
from stream_app.core.windows import MICROS, Counts, WindowGeometry
from stream_app.schemas import (
    Alert,
    DeadLetter,
    EntityEvent,
    Evidence,
    alert_id,
    ms_to_datetime,
)
from stream_app.store.base import (
    EVIDENCE_HEADLINE_CHARS,
    EntityCommit,
    EntitySnapshot,
    EvidenceItem,
    SnapshotRequest,
    WindowStore,
    top_evidence,
)

__all__ = ["Aggregator", "AggregatorConflict", "BatchOutcome"]


class AggregatorConflict(FinpulseError):
    """An entity kept changing under us (another worker owns the partition?)."""


@dataclass(slots=True)
class BatchOutcome:
    alerts: list[Alert] = field(default_factory=list)
    late: list[EntityEvent] = field(default_factory=list)
    duplicates: int = 0
    applied: int = 0
    rejected: list[tuple[EntityEvent, str]] = field(default_factory=list)  # bad entity names

    def dead_letters(self, now: datetime | None = None) -> list[DeadLetter]:
        """Late and rejected events as dead-letter records (reason late_event / invalid_event)."""
        out = []
        for ev in self.late:
            out.append(self._dead(ev, "late_event", "older than entity clock - lateness", now))
        for ev, detail in self.rejected:
            out.append(self._dead(ev, "invalid_event", detail, now))
        return out

    @staticmethod
    def _dead(ev: EntityEvent, reason: str, detail: str, now: datetime | None) -> DeadLetter:
        return DeadLetter.from_raw(
            ev.model_dump_json().encode(),
            reason=reason,  # type: ignore[arg-type]
            detail=detail,
            now=now,
            entity=ev.entity,
            source_topic=ev.source_topic,
            source_partition=ev.source_partition,
            source_offset=ev.source_offset,
        )

    def merge(self, other: BatchOutcome) -> None:
        self.alerts += other.alerts
        self.late += other.late
        self.duplicates += other.duplicates
        self.applied += other.applied
        self.rejected += other.rejected


@dataclass(slots=True)
class _Fired:
    index: int  # arrival index in the batch
    transition: Transition
    event: EntityEvent
    clock_ms: int


@dataclass(slots=True)
class _Run:
    entity: str
    commit: EntityCommit
    fired: list[_Fired]
    items: list[tuple[int, int, int, EntityEvent]]  # (arrival index, bucket, neg micros, ev)
    late: list[tuple[int, EntityEvent]]
    duplicates: int
    applied: int


def _rank(x: tuple[int, int, int, EntityEvent]) -> tuple[int, str]:
    return -x[2], x[3].id  # EvidenceItem order: most negative first, then id


def _evidence(x: tuple[int, int, int, EntityEvent]) -> EvidenceItem:
    return EvidenceItem(-x[2], x[3].id, x[3].headline[:EVIDENCE_HEADLINE_CHARS])


class Aggregator:
    def __init__(
        self,
        store: WindowStore,
        window: WindowSettings,
        detector: DetectorSettings,
        *,
        max_conflict_retries: int = 5,
    ) -> None:
        self.store = store
        self.geometry = WindowGeometry.of(window)
        self.cfg = detector
        self.max_conflict_retries = max_conflict_retries

    async def process(
        self,
        events: Sequence[EntityEvent],
        emit: Callable[[BatchOutcome], Awaitable[None]],
    ) -> BatchOutcome:
        by_entity: dict[str, list[tuple[int, EntityEvent]]] = {}
        rejected: list[tuple[EntityEvent, str]] = []
        for i, ev in enumerate(events):
            if is_valid_entity(ev.entity):
                by_entity.setdefault(ev.entity, []).append((i, ev))
            else:
                rejected.append((ev, f"entity {ev.entity[:40]!r} is not a valid name"))
        if not by_entity:
            only = BatchOutcome(rejected=rejected)
            if rejected:
                await emit(only)
            return only
        total = BatchOutcome()
        for _ in range(self.max_conflict_retries + 1):
            outcome, conflicts = await self._attempt(by_entity, emit, rejected)
            rejected = []  # published with the first attempt
            total.merge(outcome)
            if not conflicts:
                return total
            by_entity = {e: by_entity[e] for e in conflicts}
        raise AggregatorConflict(f"entities kept conflicting: {sorted(by_entity)[:5]}")

    async def _attempt(
        self,
        by_entity: dict[str, list[tuple[int, EntityEvent]]],
        emit: Callable[[BatchOutcome], Awaitable[None]],
        rejected: list[tuple[EntityEvent, str]],
    ) -> tuple[BatchOutcome, list[str]]:
        requests = [
            SnapshotRequest(e, max(ev.event_time_ms for _, ev in evs), [ev.id for _, ev in evs])
            for e, evs in by_entity.items()
        ]
        snaps = await self.store.read(requests, self.geometry)
        runs = [self._run(snaps[e], evs) for e, evs in by_entity.items()]
        alerts = await self._alerts(runs)
        late = sorted((x for r in runs for x in r.late), key=lambda x: x[0])
        outcome = BatchOutcome(
            alerts=alerts,
            late=[ev for _, ev in late],
            duplicates=sum(r.duplicates for r in runs),
            applied=sum(r.applied for r in runs),
            rejected=list(rejected),
        )
        await emit(outcome)
        conflicts = await self.store.commit([r.commit for r in runs])
        if conflicts:
            failed = set(conflicts)
            outcome.alerts = [a for a in outcome.alerts if a.entity not in failed]
            outcome.late = [ev for ev in outcome.late if ev.entity not in failed]
            kept = [r for r in runs if r.entity not in failed]
            outcome.duplicates = sum(r.duplicates for r in kept)
            outcome.applied = sum(r.applied for r in kept)
        return outcome, conflicts

    def _run(self, snap: EntitySnapshot, events: list[tuple[int, EntityEvent]]) -> _Run:
        g, cfg = self.geometry, self.cfg
        clock = snap.clock_ms
        window, baseline = snap.window.copy(), snap.baseline.copy()
        det: DetectorState = snap.detector
        stored = snap.buckets
        deltas: dict[int, Counts] = {}
        seen_before = snap.seen
        seen: dict[str, int] = {}
        fired: list[_Fired] = []
        items: list[tuple[int, int, int, EntityEvent]] = []  # (index, bucket, neg micros, ev)
        late: list[tuple[int, EntityEvent]] = []
        duplicates = 0

        bms, wb, bb = g.bucket_ms, g.window_buckets, g.baseline_buckets
        lateness_ms, retention_ms = g.lateness_ms, g.retention_buckets * bms
        min_neg = cfg.min_negative_count
        layers = (stored, deltas)
        slide = g.slide_layers

        for idx, ev in events:
            t = ev.event_time_ms
            prev = seen.get(ev.id)
            if prev is None:
                prev = seen_before.get(ev.id)
            # the rules of WindowGeometry.seen_cutoff_ms and is_late, inlined (hot loop)
            if prev is not None and (clock is None or prev >= clock - retention_ms):
                duplicates += 1
                continue
            if clock is not None and t < clock - lateness_ms:
                late.append((idx, ev))
                continue
            if clock is None:
                clock = t
            elif t > clock:
                if t // bms > clock // bms:
                    slide(window, baseline, clock // bms, t // bms, layers)
                clock = t
            sentiment = ev.sentiment
            micros = round(ev.negative_prob * MICROS)
            c = Counts(
                int(sentiment == "negative"),
                int(sentiment == "neutral"),
                int(sentiment == "positive"),
                micros,
            )
            b = t // bms
            d = deltas.get(b)
            if d is None:
                deltas[b] = c  # fresh object, only read below: no copy needed
            else:
                d.add(c)
            cb = clock // bms
            if b > cb - wb:
                window.add(c)
            elif b > cb - bb:
                baseline.add(c)
            seen[ev.id] = t
            items.append((idx, b, micros, ev))
            # evaluate() would return (det, None) here; skip it (hot path)
            if det.status == "idle" and window.neg < min_neg:
                continue
            if det.status == "cooldown" and clock < (det.cooldown_until_ms or 0):
                continue
            det, tr = evaluate(det, window, baseline, clock, cfg)
            if tr is not None:
                fired.append(_Fired(idx, tr, ev, clock))

        # Evidence of buckets below the final window is never read again (the stores prune
        # it on commit): only this batch's alerts need it, and they take it from ``items``.
        first_evidence = g.window_range(clock).start if clock is not None else 0
        by_bucket: dict[int, list[tuple[int, int, int, EntityEvent]]] = {}
        for x in items:
            if x[1] >= first_evidence:
                by_bucket.setdefault(x[1], []).append(x)
        k = cfg.evidence_size
        evidence = {
            b: [_evidence(x) for x in heapq.nsmallest(k, v, key=_rank)]
            for b, v in by_bucket.items()
        }
        token_src = "\x1f".join([snap.entity, str(snap.version), *(ev.id for _, ev in events)])
        commit = EntityCommit(
            entity=snap.entity,
            expected_version=snap.version,
            token=hashlib.sha256(token_src.encode()).hexdigest()[:24],
            clock_ms=clock,
            window=window,
            baseline=baseline,
            detector=det,
            firing_alert=snap.firing_alert if det.status == "firing" else None,
            was_firing=snap.firing_alert is not None,
            bucket_deltas=deltas,
            seen=seen,
            evidence=evidence,
            evidence_size=k,
            late=len(late),
            duplicates=duplicates,
            first_kept_bucket=g.first_kept_bucket(clock) if clock is not None else 0,
            first_evidence_bucket=first_evidence,
            seen_cutoff_ms=g.seen_cutoff_ms(clock) if clock is not None else 0,
        )
        return _Run(snap.entity, commit, fired, items, late, duplicates, len(seen))

    async def _alerts(self, runs: list[_Run]) -> list[Alert]:
        wanted: dict[str, range] = {}
        for r in runs:
            if r.fired:
                lo = min(self.geometry.window_range(f.clock_ms).start for f in r.fired)
                hi = max(self.geometry.window_range(f.clock_ms).stop for f in r.fired)
                wanted[r.entity] = range(lo, hi)
        if not wanted:
            return []
        stored = await self.store.read_evidence(wanted)
        out: list[tuple[int, Alert]] = []
        for r in runs:
            last_firing: str | None = None
            for f in r.fired:
                alert = self._alert(r, f, stored.get(r.entity, {}))
                out.append((f.index, alert))
                last_firing = alert.model_dump_json() if alert.state == "firing" else None
            if r.fired:
                r.commit.firing_alert = last_firing
        return [a for _, a in sorted(out, key=lambda x: x[0])]

    def _alert(self, r: _Run, f: _Fired, stored: dict[int, list[EvidenceItem]]) -> Alert:
        g, t = self.geometry, f.transition
        wr = g.window_range(f.clock_ms)
        cands = [it for b in wr for it in stored.get(b, ())]
        cands += [_evidence(x) for x in r.items if x[0] <= f.index and x[1] in wr]
        evidence = [
            Evidence(id=it.id, headline=it.headline, negative_prob=it.negative_prob)
            for it in top_evidence(cands, self.cfg.evidence_size)
        ]
        start_ms, end_ms = g.window_bounds_ms(f.clock_ms)
        return Alert(
            alert_id=alert_id(r.entity, t.episode, t.episode_start_ms, t.state),
            state=t.state,
            entity=r.entity,
            severity=t.severity,
            episode=t.episode,
            episode_start=ms_to_datetime(t.episode_start_ms),
            window_start=ms_to_datetime(start_ms),
            window_end=ms_to_datetime(end_ms),
            negative_count=t.stats.negative,
            total_count=t.stats.total,
            negative_share=t.stats.share,
            baseline_share=t.stats.baseline_share,
            score=t.score,
            threshold=t.threshold,
            evidence=evidence,
            model_version=f.event.model_version,
            fired_at=ms_to_datetime(f.event.event_time_ms),
            emitted_at=None,
        )
