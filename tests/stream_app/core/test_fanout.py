"""Fan-out to the entity topic: ownership, one record per partition, clamped progress, idleness."""

from __future__ import annotations

import zlib

from stream_app.core.fanout import Progress, fan_out, partition_for
from stream_app.schemas import EntityEvent

T0 = 1_767_000_000_000


def ev(i: int, entity: str) -> EntityEvent:
    return EntityEvent(entity=entity, id=f"n{i}", event_time_ms=T0 + i, sentiment="neutral",
                       negative_prob=0.1, headline="h", model_version="m")  # fmt: skip


def test_an_entity_always_lands_on_the_same_partition() -> None:
    for entity in ("market", "ticker:TSLA", "topic:energy-oil"):
        assert partition_for(entity, 7) == zlib.crc32(entity.encode()) % 7
        assert len({partition_for(entity, 7) for _ in range(3)}) == 1


def test_every_partition_gets_one_record_with_its_events_and_the_progress() -> None:
    events = [ev(i, e) for i, e in enumerate(["market", "ticker:A", "ticker:B", "market"])]
    out = fan_out(events, 3, 4, {0: T0 + 9}, idle=[2])
    assert [p for p, _ in out] == [0, 1, 2]
    for p, b in out:
        assert all(partition_for(e.entity, 3) == p for e in b.events)
        assert (b.source_partitions, b.progress, b.idle) == (4, {0: T0 + 9}, [2])
    assert sorted(e.id for _, b in out for e in b.events) == ["n0", "n1", "n2", "n3"]
    market = [e.id for _, b in out for e in b.events if e.entity == "market"]
    assert market == ["n0", "n3"]  # input order kept


def test_a_future_dated_record_advances_its_partition_only_to_processing_time() -> None:
    progress = Progress(clock_skew_ms=5_000, idle_ms=10_000)
    now = T0
    progress.touch(0, now)
    progress.advance(0, now + 50 * 60_000, now)  # published_at an hour-ish ahead
    assert progress.report([0], now, lambda p: False)[0] == {0: now + 5_000}


def test_progress_of_a_batch_in_flight_is_reported_only_with_its_events() -> None:
    progress = Progress(clock_skew_ms=0, idle_ms=10_000)
    progress.touch(0, T0)
    none = -(2**62)
    # a heartbeat: partition 0 is active, with no progress to announce yet
    assert progress.report([0], T0, lambda p: True) == ({0: none}, [])
    carried = progress.report([0], T0, lambda p: True, pending=[(0, T0 - 5)])
    assert carried == ({0: T0 - 5}, [])  # the batch's own records may carry it


def test_idle_needs_quiet_everywhere_and_a_caught_up_partition() -> None:
    progress = Progress(clock_skew_ms=0, idle_ms=1_000)
    assert progress.report([0, 1], T0, lambda p: True)[1] == [0, 1]  # never read, caught up
    progress.touch(0, T0)
    progress.advance(0, T0 - 100, T0)
    # activity on partition 0 gives partition 1 a grace period before it may be skipped
    assert progress.report([0, 1], T0 + 500, lambda p: True)[1] == []
    assert progress.report([0, 1], T0 + 1_000, lambda p: p == 0)[1] == [0]  # 1 has a backlog
    assert progress.report([0, 1], T0 + 1_000, lambda p: True)[1] == [0, 1]
    progress.forget([1])
    assert progress.report([0], T0 + 1_000, lambda p: True) == ({0: T0 - 100}, [0])


def test_a_partition_that_stops_being_idle_says_so_before_it_has_progress() -> None:
    """Reported idle, then read from again: the next report names it active even though
    its batch has not been published yet (left out, the aggregator went on taking it for
    idle and let the watermark pass its older events)."""
    none = -(2**62)
    progress = Progress(clock_skew_ms=0, idle_ms=1_000)
    assert progress.report([0, 1], T0, lambda p: True) == ({0: none, 1: none}, [0, 1])
    progress.touch(1, T0 + 5_000)  # the feed lands on partition 1; its batch is scoring
    assert progress.report([0, 1], T0 + 5_100, lambda p: True) == ({0: none, 1: none}, [])


def test_a_steady_flow_on_one_partition_lets_an_empty_one_go_idle_after_the_grace() -> None:
    """The grace after a burst starts is counted from its start: a partition that never
    gets a record must not hold the watermark for as long as another one keeps busy."""
    progress = Progress(clock_skew_ms=0, idle_ms=1_000)
    for k in range(31):  # a record on partition 0 every 100 ms, for 3 s
        progress.touch(0, T0 + 100 * k)
        progress.advance(0, T0 + 100 * k, T0 + 100 * k)
        idle = progress.report([0, 1], T0 + 100 * k, lambda p: True)[1]
        assert idle == ([] if k < 10 else [1]), k
