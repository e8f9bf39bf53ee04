"""The sequencer: event-time order whatever the partition interleaving, and what is done."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.core.sequencer import Sequencer
from stream_app.schemas import EntityBatch, EntityEvent

T0 = 1_767_000_000_000


def ev(i: int, t: int, entity: str = "market") -> EntityEvent:
    return EntityEvent(entity=entity, id=f"n{i}", event_time_ms=T0 + t, sentiment="neutral",
                       negative_prob=0.1, headline="h", model_version="m")  # fmt: skip


def batch(parts: int, progress: dict[int, int], events: list[EntityEvent],
          idle: list[int] | None = None) -> EntityBatch:  # fmt: skip
    return EntityBatch(
        source_partitions=parts,
        progress={p: T0 + t for p, t in progress.items()},
        idle=idle or [],
        events=events,
    )


def test_waits_for_every_partition_and_releases_in_order() -> None:
    seq = Sequencer()
    assert seq.offer("r1", batch(2, {0: 300}, [ev(1, 100), ev(2, 300)])) == []
    out = seq.release()
    assert out.events == []  # partition 1 has said nothing: it may still send older events
    assert out.done == []
    seq.offer("r2", batch(2, {1: 200}, [ev(3, 50), ev(4, 200)]))
    out = seq.release()
    # watermark = min(300, 200): everything strictly older goes, in event-time order
    assert [e.id for e in out.events] == ["n3", "n1"]
    assert out.watermark == T0 + 200
    assert out.done == []  # both records still hold an event (n2 at 300, n4 at 200)
    seq.offer("r3", batch(2, {1: 400}, []))
    out = seq.release()
    assert [e.id for e in out.events] == ["n4"]  # n2 is at the watermark (300): not yet
    assert out.done == ["r2", "r3"]
    seq.offer("r4", batch(2, {0: 500}, []))
    out = seq.release()
    assert [e.id for e in out.events] == ["n2"]
    assert out.done == ["r1", "r4"]


def test_idle_partition_stops_holding_and_a_stale_idle_report_does_not() -> None:
    seq = Sequencer()
    seq.offer("a", batch(2, {0: 500}, [ev(1, 100)]))
    assert seq.release().events == []
    seq.offer("b", batch(2, {}, [], idle=[1]))  # partition 1: nothing to read
    assert [e.id for e in seq.release().events] == ["n1"]
    seq.offer("c", batch(2, {1: 600}, [ev(2, 600)]))  # partition 1 woke up
    seq.offer("d", batch(2, {1: 550}, [], idle=[1]))  # an older idle report: stale
    out = seq.release()
    assert out.watermark == T0 + 500  # min(500, 600): partition 1 is active again
    assert seq.held == 1


def test_an_idle_report_without_progress_counts_after_a_rebalance() -> None:
    """The survivor of a rebalance took partition 0 back and caught up without reading a
    record of it: its idle report has no progress of partition 0 (seen: events held for
    good once the feed went quiet, the two-workers SIGKILL fault test)."""
    none = -(2**62)
    seq = Sequencer()
    seq.offer("a", batch(2, {0: 400, 1: 800}, [ev(1, 450), ev(2, 800)]))
    assert [e.id for e in seq.release().events] == []
    after = EntityBatch(source_partitions=2, progress={0: none, 1: T0 + 850}, idle=[0, 1],
                        events=[])  # fmt: skip
    seq.offer("b", after)
    out = seq.release()
    assert [e.id for e in out.events] == ["n1", "n2"]
    assert out.done == ["a", "b"]


def test_a_wake_up_gives_the_other_idle_partitions_a_grace_to_show_their_data() -> None:
    """Every partition idle, then a feed lands on all of them at once; partition 0's worker
    is first to publish. The other partitions hold the watermark for the grace (their
    workers have the data too, they just have not said so), so partition 1's older events
    still come out in order; seen: ``market`` novelty differed between 1 and 3 workers."""
    now = 1_000.0
    seq = Sequencer(wake_grace_ms=5_000)
    seq.offer("idle", batch(2, {}, [], idle=[0, 1]), now)
    seq.offer("p0", batch(2, {0: 300}, [ev(1, 100), ev(2, 300)]), now + 10)
    assert seq.release(now + 10).events == []  # partition 1 may have the same feed
    assert seq.offer("p1", batch(2, {1: 200}, [ev(3, 50), ev(4, 200)]), now + 900) == []
    assert [e.id for e in seq.release(now + 900).events] == ["n3", "n1"]


def test_after_the_grace_a_quiet_partition_stops_holding_the_watermark() -> None:
    now = 1_000.0
    seq = Sequencer(wake_grace_ms=5_000)
    seq.offer("idle", batch(2, {}, [], idle=[0, 1]), now)
    seq.offer("p0", batch(2, {0: 300}, [ev(1, 100), ev(2, 300)]), now + 10)
    assert seq.release(now + 5_009).events == []
    # a repeated idle report of partition 1 does not cut its grace short
    seq.offer("again", batch(2, {}, [], idle=[1]), now + 5_009)
    assert seq.release(now + 5_009).events == []
    out = seq.release(now + 5_010)
    assert [e.id for e in out.events] == ["n1"]  # partition 0 alone sets it: 300
    assert out.watermark == T0 + 300


def test_all_idle_releases_everything_and_later_old_events_come_at_once() -> None:
    seq = Sequencer()
    seq.offer("a", batch(1, {0: 100}, [ev(1, 90), ev(2, 100)]))
    seq.offer("b", batch(1, {0: 100}, [], idle=[0]))
    assert [e.id for e in seq.release().events] == ["n1", "n2"]
    late = seq.offer("c", batch(1, {0: 100}, [ev(3, 50)]))
    assert [e.id for e in late] == ["n3"]  # below the released watermark: out of order


def test_ties_are_broken_by_id_then_entity() -> None:
    seq = Sequencer()
    seq.offer("a", batch(1, {0: 100}, [ev(2, 10, "market"), ev(1, 10, "topic:x"),
                                        ev(1, 10, "market")]))  # fmt: skip
    out = seq.release()
    assert [(e.id, e.entity) for e in out.events] == [
        ("n1", "market"), ("n1", "topic:x"), ("n2", "market"),
    ]  # fmt: skip


def test_flush_releases_all() -> None:
    seq = Sequencer()
    seq.offer("a", batch(2, {0: 10}, [ev(1, 30), ev(2, 20)]))
    out = seq.flush()
    assert [e.id for e in out.events] == ["n2", "n1"]
    assert out.done == ["a"]


streams = st.lists(st.lists(st.integers(0, 50), min_size=1, max_size=12), min_size=2, max_size=4)


@settings(max_examples=80, deadline=None)
@given(streams, st.integers(0, 2**32 - 1), st.integers(1, 5))
def test_any_interleaving_of_ordered_partitions_releases_the_sorted_sequence(
    gaps: list[list[int]], seed: int, per_record: int
) -> None:
    """Each news partition in event-time order, cut into records and interleaved at random:
    the released sequence is always the globally sorted one, and every record ends done."""
    parts = len(gaps)
    rng = random.Random(seed)
    records: list[list[EntityBatch]] = []
    all_events: list[EntityEvent] = []
    n = 0
    for p, ds in enumerate(gaps):
        t, evs = 0, []
        for d in ds:
            t += d
            n += 1
            evs.append(ev(n, t, rng.choice(["market", "topic:a", "ticker:B"])))
        all_events += evs
        chunks = [evs[i : i + per_record] for i in range(0, len(evs), per_record)]
        records.append([batch(parts, {p: c[-1].event_time_ms - T0}, c) for c in chunks])
    order = [p for p, rs in enumerate(records) for _ in rs]
    rng.shuffle(order)  # any interleaving that keeps each partition's own order
    seq = Sequencer()
    released: list[EntityEvent] = []
    done: list[object] = []
    cursor = [0] * parts
    for k, p in enumerate(order):
        rec = records[p][cursor[p]]
        cursor[p] += 1
        released += seq.offer(k, rec)
        out = seq.release()
        released += out.events
        done += out.done
    end = seq.flush()
    released += end.events
    done += end.done
    expected = sorted(all_events, key=lambda e: (e.event_time_ms, e.id, e.entity))
    assert [(e.id, e.entity) for e in released] == [(e.id, e.entity) for e in expected]
    assert sorted(done) == list(range(len(order)))  # type: ignore[type-var]
