"""Shared event generators and a brute-force reference model for aggregator tests."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from stream_app.config import DetectorSettings, WindowSettings
from stream_app.core.aggregator import Aggregator, BatchOutcome
from stream_app.core.detector import DetectorState, evaluate
from stream_app.core.novelty import signature
from stream_app.core.windows import Counts, WindowGeometry
from stream_app.schemas import Alert, EntityEvent
from tests.support.oracles import baseline_range, sum_counts
from tests.support.stories import story

T0 = 1_700_000_000_000
WS = WindowSettings(
    bucket_seconds=60,
    window_seconds=600,
    baseline_seconds=3600,
    retention_seconds=7200,
    allowed_lateness_seconds=300,
)
DS = DetectorSettings(min_negative_count=3, cooldown_seconds=300, evidence_size=3)


def entity_event(
    i: int, entity: str, sentiment: str, t_ms: int, headline: str | None = None
) -> EntityEvent:
    """One scored event as the fan-out builds it (id ``n{i}``, model ``test``)."""
    return EntityEvent(
        entity=entity,
        id=f"n{i}",
        event_time_ms=t_ms,
        sentiment=sentiment,  # type: ignore[arg-type]
        negative_prob=0.9 if sentiment == "negative" else 0.05,
        headline=f"headline {i}" if headline is None else headline,
        model_version="test",
    )


def make_events(
    seed: int,
    n: int = 400,
    entities: Sequence[str] = ("market", "ticker:A"),
    *,
    signed: bool = False,
) -> list[EntityEvent]:
    """Mostly in-order events with a burst of negatives, jitter (some late) and repeats.

    ``signed``: distinct-story headlines with novelty signatures, so the stores' story
    keys are written too (unsigned events skip novelty)."""
    rng = random.Random(seed)
    out: list[EntityEvent] = []
    t = T0
    for i in range(n):
        t += rng.randint(0, 40_000)
        burst = n // 3 <= i < n // 3 + n // 8
        ent = rng.choice(entities)
        jitter = rng.choice([0, 0, 0, 0, -rng.randint(0, 600_000)])
        neg = rng.random() < (0.7 if burst else 0.12)
        sent = "negative" if neg else rng.choice(["neutral", "positive"])
        p = round(rng.uniform(0.5, 1.0) if neg else rng.uniform(0.0, 0.4), 4)
        headline = story(i) if signed else f"headline {i}"
        ev = EntityEvent(
            entity=ent,
            id=f"n{i}",
            event_time_ms=t + jitter,
            sentiment=sent,  # type: ignore[arg-type]
            negative_prob=p,
            headline=headline,
            model_version="m1",
            signature=signature(headline).wire if signed else "",
        )
        out.append(ev)
        if rng.random() < 0.05 and out:
            out.append(rng.choice(out))  # redelivery of an earlier event
    return out


async def run_batches(
    agg: Aggregator, events: Sequence[EntityEvent], size: int
) -> list[BatchOutcome]:
    outs: list[BatchOutcome] = []

    async def emit(o: BatchOutcome) -> None:
        outs.append(o)

    for i in range(0, len(events), size):
        await agg.process(events[i : i + size], emit)
    return outs


def alerts_of(outs: Sequence[BatchOutcome]) -> list[dict[str, object]]:
    return [a.parity_key() for o in outs for a in o.alerts]


@dataclass
class Reference:
    """Per-entity brute force: recomputes window/baseline from all buckets after each event."""

    geometry: WindowGeometry = field(default_factory=lambda: WindowGeometry.of(WS))
    buckets: dict[str, dict[int, Counts]] = field(default_factory=dict)
    clock: dict[str, int] = field(default_factory=dict)
    seen: dict[str, dict[str, int]] = field(default_factory=dict)
    det: dict[str, DetectorState] = field(default_factory=dict)
    alerts: list[tuple[str, str, int, int, int, int]] = field(default_factory=list)
    evidence: list[list[str]] = field(default_factory=list)  # ids, parallel to alerts
    applied: dict[str, list[EntityEvent]] = field(default_factory=dict)
    late: int = 0
    dups: int = 0

    def feed(self, events: Sequence[EntityEvent]) -> None:
        g = self.geometry
        for ev in events:
            e, t = ev.entity, ev.event_time_ms
            clock = self.clock.get(e)
            prev = self.seen.setdefault(e, {}).get(ev.id)
            if prev is not None and (clock is None or prev >= clock - 7200_000):
                self.dups += 1
                continue
            if clock is not None and t < clock - 300_000:
                self.late += 1
                continue
            clock = max(clock or t, t)
            self.clock[e] = clock
            self.seen[e][ev.id] = t
            self.applied.setdefault(e, []).append(ev)
            bs = self.buckets.setdefault(e, {})
            bs[g.bucket(t)] = bs.get(g.bucket(t), Counts()) + Counts.of_event(
                ev.sentiment, ev.negative_prob
            )
            w = sum_counts(bs, g.window_range(clock))
            base = sum_counts(bs, baseline_range(g, clock))
            state, tr = evaluate("negative", self.det.get(e, DetectorState()), w, base, clock, DS)
            self.det[e] = state
            if tr is not None:
                self.alerts.append((e, tr.state, tr.episode, tr.episode_start_ms, w.neg, w.total))
                wr = g.window_range(clock)
                inside = [x for x in self.applied[e] if g.bucket(x.event_time_ms) in wr]
                inside.sort(key=lambda x: (-round(x.negative_prob * 1_000_000), x.id))
                self.evidence.append([x.id for x in inside[: DS.evidence_size]])

    def window(self, entity: str) -> tuple[Counts, Counts]:
        g, bs, clock = self.geometry, self.buckets[entity], self.clock[entity]
        return sum_counts(bs, g.window_range(clock)), sum_counts(bs, baseline_range(g, clock))


def summary(a: Alert) -> tuple[str, str, int, int, int, int]:
    from stream_app.schemas import datetime_to_ms

    return (
        a.entity,
        a.state,
        a.episode,
        datetime_to_ms(a.episode_start),
        a.negative_count,
        a.total_count,
    )
