"""batches.AckInOrder: consumed records are acknowledged in offset order per partition.

Faust commits the first run of consecutive acknowledged offsets and misses a one-record
gap at its head; the aggregate stage finishes records out of order (the sequencer holds
one for the watermark while later ones are done), so acknowledging what is done, as it
comes, committed past held records and a restart lost their events.
"""

from __future__ import annotations

from stream_app.service.batches import AckInOrder


def _taken(acks: AckInOrder, partition: int, offsets: range) -> None:
    for o in offsets:
        acks.taken(("ev", partition, o), f"{partition}:{o}")


def test_a_record_done_early_waits_for_the_records_before_it() -> None:
    acks = AckInOrder()
    _taken(acks, 0, range(3))
    assert acks.done([("ev", 0, 1), ("ev", 0, 2)]) == []  # offset 0 is still held
    assert acks.done([("ev", 0, 0)]) == ["0:0", "0:1", "0:2"]
    assert len(acks) == 0


def test_partitions_are_independent() -> None:
    acks = AckInOrder()
    _taken(acks, 0, range(2))
    _taken(acks, 1, range(2))
    assert acks.done([("ev", 0, 1), ("ev", 1, 0)]) == ["1:0"]
    assert sorted(acks.done([("ev", 0, 0), ("ev", 1, 1)])) == ["0:0", "0:1", "1:1"]


def test_a_record_read_twice_is_queued_once() -> None:
    acks = AckInOrder()
    _taken(acks, 0, range(2))
    _taken(acks, 0, range(2))  # redelivered without a rebalance
    assert acks.done([("ev", 0, 0), ("ev", 0, 1)]) == ["0:0", "0:1"]
    assert len(acks) == 0


def test_a_revoked_partition_acknowledges_nothing_more() -> None:
    acks = AckInOrder()
    _taken(acks, 0, range(2))
    _taken(acks, 1, range(1))
    acks.revoke([0])
    assert acks.done([("ev", 0, 0), ("ev", 0, 1), ("ev", 1, 0)]) == ["1:0"]
    assert len(acks) == 0
    _taken(acks, 0, range(1))  # assigned again: read again from the committed offset
    assert acks.done([("ev", 0, 0)]) == ["0:0"]
