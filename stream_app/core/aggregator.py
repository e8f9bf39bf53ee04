"""The aggregation core shared by the live worker and the backtest.

Input: entity events *released in event-time order* (``core.sequencer``): per entity,
sorted by (event time, id), whatever the partitions, batch cuts or worker count.
``Aggregator.process`` follows the commit order of docs/architecture.md:

1. read a snapshot of every entity in the batch (one store round trip): counts, clock,
   detector states, the seen-id entries and novelty entries the batch asks about;
2. in Python, per entity and in the given order, for each event:
   * a copy already counted (same id, same Kafka position: a redelivery) is skipped
     silently; another copy of a counted id is a *duplicate* (counted once per copy);
   * an event older than the entity clock minus ``allowed_lateness`` is *late*
     (dead-lettered, counted once);
   * otherwise it is *applied*: the novelty index says whether its headline repeats a
     story seen for this entity within the novelty window; a first story adds to the
     sentiment counts, a repeat only to ``rep``; then every enabled detector kind steps
     on the window ending at the entity clock -- after *every* event, so alerts do not
     depend on batching;
3. ``await emit(outcome)``: the caller publishes alerts, dead letters and (for the
   ``market`` entity, which sees every item) the scored records with their story ids,
   and waits for the broker's acks (if it raises, nothing is committed and a retry of the
   batch yields the same alert ids and story ids);
4. commit counts, seen entries, novelty entries, clock, detector states, evidence and the
   alerts' explain records (one round trip, compare-and-set per entity). Conflicting
   entities (someone else committed in between) are re-read and redone, which emits
   their alerts again with the same ids.

Duplicate rule: an id counts as seen while its event time is within retention of the
entity clock (``WindowGeometry.seen_cutoff_ms``); older ones are checked as late. The
stores forget exactly those ids, so the rule holds across batch boundaries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from models.errors import FinpulseError
from stream_app.config import DetectorSettings, WindowSettings
from stream_app.core.detector import (
    DetectorState,
    Stats,
    Transition,
    evaluate,
    may_change,
    stats,
    volume_scale,
)
from stream_app.core.entities import is_valid_entity
from stream_app.core.novelty import Signature, StoryIndex, probe_keys
from stream_app.core.windows import MICROS, Counts, WindowGeometry
from stream_app.schemas import (
    Alert,
    DeadLetter,
    DetectorKind,
    EntityEvent,
    Evidence,
    Novelty,
    alert_id,
    ms_to_datetime,
)
from stream_app.store.base import (
    EVIDENCE_HEADLINE_CHARS,
    EVIDENCE_ORDERS,
    AlertRecord,
    EntityCommit,
    EntitySnapshot,
    EvidenceItem,
    EvidenceOrder,
    SeenEntry,
    SnapshotRequest,
    WindowStore,
    top_evidence,
)

__all__ = ["STORY_ENTITY", "Aggregator", "AggregatorConflict", "BatchOutcome", "StoryOutcome"]

HEADLINES_PER_BATCH = 10  # newest headlines an entity's commit adds to the desk's list
STORY_ENTITY = "market"  # sees every item: its novelty is the story of the scored record
_EVIDENCE_FOR: dict[str, EvidenceOrder] = {"negative": "neg", "positive": "pos", "volume": "recent"}


class AggregatorConflict(FinpulseError):
    """An entity kept changing under us (another worker owns the partition?)."""


@dataclass(slots=True)
class StoryOutcome:
    """What became of one ``market`` event: the scored record's story (None when late)."""

    event: EntityEvent
    story_id: str | None
    novelty: Novelty | None


@dataclass(slots=True)
class BatchOutcome:
    alerts: list[Alert] = field(default_factory=list)
    late: list[EntityEvent] = field(default_factory=list)
    duplicates: int = 0
    applied: int = 0
    repeats: int = 0
    redelivered: int = 0
    rejected: list[tuple[EntityEvent, str]] = field(default_factory=list)  # bad entity names
    stories: list[StoryOutcome] = field(default_factory=list)

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
            ev.model_dump_json(exclude={"scored"}).encode(),
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
        self.repeats += other.repeats
        self.redelivered += other.redelivered
        self.rejected += other.rejected
        self.stories += other.stories


@dataclass(slots=True)
class _Fired:
    index: int  # position of the event in the entity's run
    transition: Transition
    event: EntityEvent
    clock_ms: int
    window: Counts
    baseline: Counts
    partial: Counts  # count of the clock's bucket at the decision (explain)
    state_before: DetectorState
    first_seen_ms: int


@dataclass(slots=True)
class _Item:
    index: int
    bucket: int
    evidence: EvidenceItem


@dataclass(slots=True)
class _Run:
    entity: str
    commit: EntityCommit
    fired: list[_Fired]
    items: list[_Item]  # first stories applied, for evidence
    late: list[EntityEvent]
    stories: list[StoryOutcome]
    duplicates: int
    applied: int
    repeats: int
    redelivered: int


def _headline(ev: EntityEvent, story_id: str | None, repeat: bool) -> dict[str, Any]:
    """A recent headline of the entity, as the desk shows it (``store.base.headlines``)."""
    link = None
    if ev.via is not None:
        link = {"entity": ev.entity, "via": ev.via, "span": ev.span, "relevance": ev.relevance}
    return {
        "id": ev.id,
        "headline": ev.headline[:EVIDENCE_HEADLINE_CHARS],
        "event_time_ms": ev.event_time_ms,
        "sentiment": ev.sentiment,
        "negative_prob": ev.negative_prob,
        "positive_prob": ev.positive_prob,
        "links": [link] if link else [],
        "story_id": story_id,
        "novelty": "repeat" if repeat else "first",
    }


def _evidence(ev: EntityEvent, story_id: str | None) -> EvidenceItem:
    return EvidenceItem(
        round(ev.negative_prob * MICROS),
        round(ev.positive_prob * MICROS),
        ev.event_time_ms,
        ev.id,
        ev.headline[:EVIDENCE_HEADLINE_CHARS],
        story_id,
        ev.span,
    )


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
        self._config = {
            "window": window.model_dump(mode="json"),
            "detector": detector.model_dump(mode="json"),
        }
        self.bucket_seconds = window.bucket_seconds
        self.cfg = detector
        self.kinds: tuple[DetectorKind, ...] = tuple(detector.detect)
        # evidence is kept only in the orders the enabled kinds' alerts show
        self.orders = tuple(
            o for o in EVIDENCE_ORDERS if o in {_EVIDENCE_FOR[k] for k in self.kinds}
        )
        self.novelty_ms = detector.novelty_window_seconds * 1000
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

    def _request(self, entity: str, events: list[tuple[int, EntityEvent]]) -> SnapshotRequest:
        probes: list[str] = []
        if self.novelty_ms:
            for _, ev in events:
                probes += probe_keys(Signature(ev.signature))
        return SnapshotRequest(
            entity,
            max(ev.event_time_ms for _, ev in events),
            [ev.id for _, ev in events],
            list(dict.fromkeys(probes)),
        )

    async def _attempt(
        self,
        by_entity: dict[str, list[tuple[int, EntityEvent]]],
        emit: Callable[[BatchOutcome], Awaitable[None]],
        rejected: list[tuple[EntityEvent, str]],
    ) -> tuple[BatchOutcome, list[str]]:
        requests = [self._request(e, evs) for e, evs in by_entity.items()]
        snaps = await self.store.read(requests, self.geometry)
        runs = [self._run(snaps[e], evs) for e, evs in by_entity.items()]
        alerts = await self._alerts(runs)
        outcome = BatchOutcome(
            alerts=alerts,
            late=[ev for r in runs for ev in r.late],
            duplicates=sum(r.duplicates for r in runs),
            applied=sum(r.applied for r in runs),
            repeats=sum(r.repeats for r in runs),
            redelivered=sum(r.redelivered for r in runs),
            rejected=list(rejected),
            stories=[s for r in runs for s in r.stories],
        )
        await emit(outcome)
        conflicts = await self.store.commit([r.commit for r in runs])
        if conflicts:
            failed = set(conflicts)
            kept = [r for r in runs if r.entity not in failed]
            outcome.alerts = [a for a in outcome.alerts if a.entity not in failed]
            outcome.late = [ev for r in kept for ev in r.late]
            outcome.stories = [s for r in kept for s in r.stories]
            outcome.duplicates = sum(r.duplicates for r in kept)
            outcome.applied = sum(r.applied for r in kept)
            outcome.repeats = sum(r.repeats for r in kept)
            outcome.redelivered = sum(r.redelivered for r in kept)
        return outcome, conflicts

    def _run(self, snap: EntitySnapshot, events: list[tuple[int, EntityEvent]]) -> _Run:
        g, cfg = self.geometry, self.cfg
        clock, first_seen = snap.clock_ms, snap.first_seen_ms
        window, baseline = snap.window.copy(), snap.baseline.copy()
        dets = {k: snap.detectors.get(k) or DetectorState() for k in self.kinds}
        stored, clock_bucket = snap.buckets, snap.clock_bucket
        deltas: dict[int, Counts] = {}
        seen_before = snap.seen
        seen: dict[str, SeenEntry] = {}
        index = (
            StoryIndex.working(snap.stories, window_ms=self.novelty_ms) if self.novelty_ms else None
        )
        is_story_entity = snap.entity == STORY_ENTITY
        fired: list[_Fired] = []
        items: list[_Item] = []
        recent: list[tuple[EntityEvent, str | None, bool]] = []
        late: list[EntityEvent] = []
        stories: list[StoryOutcome] = []
        duplicates = applied = repeats = redelivered = 0

        bms, wb, bb = g.bucket_ms, g.window_buckets, g.baseline_buckets
        lateness_ms, retention_ms = g.lateness_ms, g.retention_buckets * bms
        layers = (stored, deltas)
        slide = g.slide_layers

        for idx, ev in events:
            t, src = ev.event_time_ms, ev.source
            entry = seen.get(ev.id) or seen_before.get(ev.id)
            # the rules of WindowGeometry.seen_cutoff_ms and the late rule, inlined (hot loop)
            if entry is not None and (clock is None or entry.event_ms >= clock - retention_ms):
                if src and src in entry.sources:
                    redelivered += 1
                    if is_story_entity:
                        stories.append(self._story_again(ev, entry, index))
                    continue
                seen[ev.id] = entry.with_source(src)
                if entry.late:
                    late.append(ev)
                    if is_story_entity:
                        stories.append(StoryOutcome(ev, None, None))
                else:
                    duplicates += 1
                    if is_story_entity:
                        stories.append(self._story_again(ev, entry, index))
                continue
            if clock is not None and t < clock - lateness_ms:
                late.append(ev)
                seen[ev.id] = SeenEntry(clock, True, (src,) if src else ())
                if is_story_entity:
                    stories.append(StoryOutcome(ev, None, None))
                continue
            seen[ev.id] = SeenEntry(t, False, (src,) if src else ())
            if clock is None:
                clock = t
            elif t > clock:
                if t // bms > clock // bms:
                    slide(window, baseline, clock // bms, t // bms, layers)
                    clock_bucket = Counts()
                clock = t
            if first_seen is None or t < first_seen:
                first_seen = t
            if index is not None:
                sig = Signature(ev.signature)
                story_id, repeat = index.observe(sig, ev.id, t)
            else:
                story_id, repeat = ev.id, False
            if is_story_entity:
                stories.append(StoryOutcome(ev, story_id, "repeat" if repeat else "first"))
            recent.append((ev, story_id, repeat))
            if repeat:
                c = Counts(rep=1)
                repeats += 1
            else:
                c = Counts.of_event(ev.sentiment, ev.negative_prob, ev.positive_prob)
                applied += 1
            b = t // bms
            d = deltas.get(b)
            if d is None:
                deltas[b] = c  # fresh object, only read below: no copy needed
            else:
                d.add(c)
            cb = clock // bms
            if b == cb:
                clock_bucket.add(c)
            if b > cb - wb:
                window.add(c)
            elif b > cb - bb:
                baseline.add(c)
            if repeat:
                continue  # repeats never move a detector
            items.append(_Item(idx, b, _evidence(ev, story_id)))
            for kind in self.kinds:
                det = dets[kind]
                if not may_change(kind, det, window, clock, cfg):
                    continue
                scale = volume_scale(g, clock, first_seen) if kind == "volume" else None
                new, tr = evaluate(kind, det, window, baseline, clock, cfg, scale)
                dets[kind] = new
                if tr is not None:
                    fired.append(
                        _Fired(
                            idx,
                            tr,
                            ev,
                            clock,
                            window.copy(),
                            baseline.copy(),
                            clock_bucket.copy(),
                            det,
                            first_seen,
                        )
                    )

        newest = sorted(recent, key=lambda x: (x[0].event_time_ms, x[0].id))[-HEADLINES_PER_BATCH:]
        commit = self._commit(
            snap,
            events,
            clock,
            first_seen,
            window,
            baseline,
            dets,
            deltas,
            seen,
            index,
            items,
            len(late),
            duplicates,
        )
        commit.headlines = [_headline(ev, story, repeat) for ev, story, repeat in newest]
        return _Run(
            snap.entity,
            commit,
            fired,
            items,
            late,
            stories,
            duplicates,
            applied,
            repeats,
            redelivered,
        )

    def _story_again(
        self, ev: EntityEvent, entry: SeenEntry, index: StoryIndex | None
    ) -> StoryOutcome:
        """A copy of an item already counted: its story is the one its headline maps to."""
        if entry.late:
            return StoryOutcome(ev, None, None)
        story = (
            index.lookup(Signature(ev.signature), ev.event_time_ms) if index is not None else None
        )
        story = story or ev.id
        return StoryOutcome(ev, story, "first" if story == ev.id else "repeat")

    def _commit(
        self,
        snap: EntitySnapshot,
        events: list[tuple[int, EntityEvent]],
        clock: int | None,
        first_seen: int | None,
        window: Counts,
        baseline: Counts,
        dets: dict[DetectorKind, DetectorState],
        deltas: dict[int, Counts],
        seen: dict[str, SeenEntry],
        index: StoryIndex | None,
        items: list[_Item],
        late: int,
        duplicates: int,
    ) -> EntityCommit:
        g, cfg = self.geometry, self.cfg
        # Evidence of buckets below the final window is never read again (the stores prune
        # it on commit): only this batch's alerts need it, and they take it from ``items``.
        first_evidence = g.window_range(clock).start if clock is not None else 0
        by_bucket: dict[int, list[EvidenceItem]] = {}
        for it in items:
            if it.bucket >= first_evidence:
                by_bucket.setdefault(it.bucket, []).append(it.evidence)
        k = cfg.evidence_size
        evidence: dict[int, dict[str, list[EvidenceItem]]] = {
            b: {order: top_evidence(v, k, order) for order in self.orders}
            for b, v in by_bucket.items()
        }
        stories = dict(index.changed) if index is not None else {}
        token_src = "\x1f".join([snap.entity, str(snap.version), *(ev.id for _, ev in events)])
        return EntityCommit(
            entity=snap.entity,
            expected_version=snap.version,
            token=hashlib.sha256(token_src.encode()).hexdigest()[:24],
            clock_ms=clock,
            first_seen_ms=first_seen,
            window=window,
            baseline=baseline,
            detectors={str(k): v for k, v in dets.items()},
            firing={
                k: v for k, v in snap.firing.items() if k in dets and dets[k].status == "firing"
            },
            was_firing=bool(snap.firing),
            bucket_deltas=deltas,
            seen=seen,
            stories=stories,
            evidence=evidence,
            evidence_size=k,
            late=late,
            duplicates=duplicates,
            first_kept_bucket=g.first_kept_bucket(clock) if clock is not None else 0,
            first_evidence_bucket=first_evidence,
            seen_cutoff_ms=g.seen_cutoff_ms(clock) if clock is not None else 0,
            story_cutoff_ms=(clock - self.novelty_ms) if clock is not None else 0,
            story_max_keys=cfg.novelty_max_keys,
        )

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
            firing = dict(r.commit.firing)
            for f in r.fired:
                alert = self._alert(r, f, stored.get(r.entity, {}))
                out.append((f.index, alert))
                r.commit.alerts.append(self._record(alert, f))
                kind = f.transition.kind
                if alert.state == "resolved":
                    firing.pop(kind, None)
                else:
                    firing[kind] = alert.model_dump_json()
            r.commit.firing = {k: v for k, v in firing.items() if k in self.kinds}
        return [a for _, a in sorted(out, key=lambda x: x[0])]

    def _record(self, alert: Alert, f: _Fired) -> AlertRecord:
        return AlertRecord(
            alert.alert_id,
            f.event.event_time_ms,
            {
                "alert": alert.model_dump(mode="json"),
                "event_ms": f.event.event_time_ms,
                "clock_ms": f.clock_ms,
                "partial": f.partial.encode(),
                "window": f.window.encode(),
                "baseline": f.baseline.encode(),
                "state_before": f.state_before.to_dict(),
                "first_seen_ms": f.first_seen_ms,
                "config": self._config,
            },
        )

    def _alert(self, r: _Run, f: _Fired, stored: dict[int, dict[str, list[EvidenceItem]]]) -> Alert:
        g, t, cfg = self.geometry, f.transition, self.cfg
        wr = g.window_range(f.clock_ms)
        order = _EVIDENCE_FOR[t.kind]
        cands = [it for b in wr for it in stored.get(b, {}).get(order, ())]
        cands += [x.evidence for x in r.items if x.index <= f.index and x.bucket in wr]
        unique = {it.id: it for it in cands}.values()  # an item is in several orders' lists
        evidence = [
            Evidence(
                id=it.id,
                headline=it.headline,
                negative_prob=it.negative_prob,
                positive_prob=it.positive_prob,
                story_id=it.story_id,
                span=it.span,
            )
            for it in top_evidence(unique, cfg.evidence_size, order)
        ]
        neg: Stats = stats(f.window, f.baseline, cfg, "negative")
        start_ms, end_ms = g.window_bounds_ms(f.clock_ms)
        s = t.stats
        return Alert(
            alert_id=alert_id(r.entity, t.episode, t.episode_start_ms, t.state, t.kind, t.severity),
            kind=t.kind,
            state=t.state,
            entity=r.entity,
            severity=t.severity,
            peak_severity=t.peak_severity,
            episode=t.episode,
            episode_start=ms_to_datetime(t.episode_start_ms),
            window_start=ms_to_datetime(start_ms),
            window_end=ms_to_datetime(end_ms),
            negative_count=f.window.neg,
            total_count=f.window.total,
            negative_share=neg.share,
            baseline_share=neg.baseline if t.kind == "volume" else s.baseline,
            score=t.score,
            threshold=t.threshold,
            count=s.count,
            share=s.share,
            expected_count=s.baseline if t.kind == "volume" else None,
            repeats=f.window.rep,
            net_sentiment=f.window.net_sentiment,
            evidence=evidence,
            model_version=f.event.model_version,
            fired_at=ms_to_datetime(f.event.event_time_ms),
            emitted_at=None,
        )
