"""Aggregator with the in-memory store: batch-cut invariance, brute-force parity, redelivery."""

from __future__ import annotations

import pytest

from stream_app.core.aggregator import Aggregator, BatchOutcome
from stream_app.schemas import EntityEvent
from stream_app.store.memory import MemoryWindowStore
from tests.support.aggregator_cases import (
    DS,
    WS,
    Reference,
    alerts_of,
    make_events,
    run_batches,
    summary,
)
from tests.support.oracles import all_buckets, sum_counts


def vars_of(view: object) -> dict[str, object]:
    return {k: getattr(view, k) for k in view.__slots__}  # type: ignore[attr-defined]


def _agg() -> tuple[Aggregator, MemoryWindowStore]:
    store = MemoryWindowStore()
    return Aggregator(store, WS, DS), store


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_matches_brute_force_reference(seed: int) -> None:
    events = make_events(seed)
    agg, store = _agg()
    outs = await run_batches(agg, events, 7)
    ref = Reference()
    ref.feed(events)
    alerts = [a for o in outs for a in o.alerts]
    assert [summary(a) for a in alerts] == ref.alerts
    assert any(a.state == "firing" for a in alerts), "the generator should produce a spike"
    assert sum(len(o.late) for o in outs) == ref.late > 0
    assert sum(o.duplicates for o in outs) == ref.dups > 0
    for entity in ref.clock:
        view = await store.entity_view(entity)
        assert view is not None
        assert view.clock_ms == ref.clock[entity]
        assert (view.window, view.baseline) == ref.window(entity)
        stored = await all_buckets(store, entity)
        g = agg.geometry
        # kept buckets equal the reference; window/baseline equal sums of the stored buckets
        assert {b: c for b, c in stored.items()} == {
            b: c
            for b, c in ref.buckets[entity].items()
            if b >= g.first_kept_bucket(ref.clock[entity])
        }
        assert view.window == sum_counts(stored, g.window_range(ref.clock[entity]))


@pytest.mark.parametrize("seed", [4, 5])
async def test_batch_cut_invariance(seed: int) -> None:
    events = make_events(seed)
    results = []
    for size in (1, 7, len(events)):
        agg, store = _agg()
        outs = await run_batches(agg, events, size)
        views = [await store.entity_view(e) for e in ("market", "ticker:A")]
        results.append((alerts_of(outs), views))
    assert results[0] == results[1] == results[2]
    assert results[0][0]


async def test_evidence_is_most_negative_in_window() -> None:
    events = make_events(6)
    agg, _ = _agg()
    outs = await run_batches(agg, events, 5)
    ref = Reference()
    ref.feed(events)
    alerts = [a for o in outs for a in o.alerts]
    assert alerts
    assert [[e.id for e in a.evidence] for a in alerts] == ref.evidence
    for a in alerts:
        probs = [e.negative_prob for e in a.evidence]
        assert probs == sorted(probs, reverse=True)


async def test_redelivered_batch_counts_once() -> None:
    events = make_events(7, n=120)
    agg, store = _agg()
    first = await run_batches(agg, events, len(events))
    before = await store.entity_view("market")
    again = await run_batches(agg, events, len(events))
    after = await store.entity_view("market")
    assert before is not None
    assert after is not None
    counters = {"late_events", "duplicate_events"}  # counters count deliveries, not events
    assert {k: v for k, v in vars_of(before).items() if k not in counters} == {
        k: v for k, v in vars_of(after).items() if k not in counters
    }
    assert again[0].applied == 0
    assert again[0].alerts == []
    assert again[0].duplicates == first[0].applied + first[0].duplicates


async def test_emit_failure_commits_nothing_and_retry_gives_same_ids() -> None:
    events = make_events(8)
    agg, store = _agg()

    async def boom(_: BatchOutcome) -> None:
        raise RuntimeError("broker down")

    with pytest.raises(RuntimeError):
        await agg.process(events, boom)
    assert await store.entity_view("market") is None
    assert store.commits == 0
    outs = await run_batches(agg, events, len(events))
    agg2, _ = _agg()
    ref = await run_batches(agg2, events, len(events))
    assert [a.alert_id for a in outs[0].alerts] == [a.alert_id for a in ref[0].alerts]
    assert outs[0].alerts


async def test_conflict_is_redone_from_fresh_state() -> None:
    events = make_events(9, n=60)
    agg, store = _agg()
    half = len(events) // 2
    await run_batches(agg, events[:half], half)
    # a zombie worker commits the second half between our read and our commit
    zombie = Aggregator(store, WS, DS)
    real_commit = store.commit
    calls = 0

    async def racing_commit(commits):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 1:
            await run_batches(zombie, events[half:], 3)  # other cut, other tokens
        return await real_commit(commits)

    store.commit = racing_commit  # type: ignore[method-assign]
    outs = await run_batches(agg, events[half:], len(events))
    store.commit = real_commit  # type: ignore[method-assign]
    assert calls >= 2  # conflicts were retried
    ref_agg, ref_store = _agg()
    await run_batches(ref_agg, events, len(events))
    counters = {"late_events", "duplicate_events"}  # count deliveries, the redo re-delivers
    for e in ("market", "ticker:A"):
        got, want = vars_of(await store.entity_view(e)), vars_of(await ref_store.entity_view(e))
        assert {k: v for k, v in got.items() if k not in counters} == {
            k: v for k, v in want.items() if k not in counters
        }
    assert outs[-1].applied == 0  # the redo found everything applied by the zombie
    assert outs[-1].duplicates + len(outs[-1].late) == len(events) - half
    assert outs[-1].duplicates == len(events) - half - outs[-1].late.__len__()


async def test_invalid_entity_rejected() -> None:
    agg, _ = _agg()
    ev = EntityEvent(
        entity="ticker:{evil}",
        id="x",
        event_time_ms=1_700_000_000_000,
        sentiment="negative",
        negative_prob=0.9,
        headline="h",
        model_version="m",
    )
    seen: list[BatchOutcome] = []

    async def emit(o: BatchOutcome) -> None:
        seen.append(o)

    out = await agg.process([ev], emit)
    assert out.applied == 0
    assert [r[0] for r in out.rejected] == [ev]
    assert seen[0].dead_letters()[0].reason == "invalid_event"
