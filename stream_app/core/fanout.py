"""The score stage's side of the entity topic: who owns an entity, and how far time has got.

Each score batch becomes at most one record per destination partition of the entity
topic (``EntityBatch``), instead of one record per entity event: ~4 entity events per news
item made the per-record cost of Kafka the largest part of the worker's own CPU. An
entity's partition is ``crc32(entity) % partitions`` on every worker, so one partition
(and one aggregator) owns an entity's window.

Every record also carries the event-time ``progress`` of the news partitions this worker
reads, and every partition gets a record each batch (with events or without), so every
aggregator's watermark moves (``core.sequencer``). Progress is clamped: one record may
advance its partition to at most processing time plus ``clock_skew_ms``, so a single
record from a broken upstream clock cannot drag the watermark an hour ahead (it waits
instead, until its time comes).

A news partition with nothing to read is reported ``idle`` and stops holding the
watermark back, so a quiet partition does not delay every alert. Idle means: no record
from it for ``idle_ms``, the consumer caught up with it (when the high-water mark is
known), and the worker's current run of activity began at least ``idle_ms`` ago -- when
a burst of records (a replay, a backlog) starts on one partition after a quiet spell,
the others get that long to show theirs before they may be skipped, and no longer: a
steady flow on one partition must not keep an empty one holding the watermark forever.
Data that reaches an idle partition later than that is the trade-off every watermark
makes; the lateness rule still applies to it.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from stream_app.schemas import EntityBatch, EntityEvent

__all__ = ["Progress", "fan_out", "partition_for"]


def partition_for(entity: str, partitions: int) -> int:
    """The entity topic partition that owns ``entity`` (the same on every worker)."""
    return zlib.crc32(entity.encode()) % partitions


@dataclass(slots=True)
class Progress:
    """Event-time progress of the news partitions one score worker reads (wall ms clock)."""

    clock_skew_ms: int
    idle_ms: int
    _progress: dict[int, int] = field(default_factory=dict)
    _last_seen: dict[int, float] = field(default_factory=dict)  # partition -> wall ms
    _last_activity: float = float("-inf")  # wall ms of the last record on any partition
    _active_since: float = float("-inf")  # wall ms the current run of activity began

    def touch(self, partition: int, now_ms: float) -> None:
        """A record of ``partition`` was read at wall time ``now_ms``: it is not idle."""
        self._last_seen[partition] = now_ms
        if now_ms - self._last_activity >= self.idle_ms:  # a burst after a quiet spell
            self._active_since = now_ms
        self._last_activity = now_ms

    def advance(self, partition: int, event_ms: int, now_ms: float) -> None:
        """A record's events were published: its partition has reached ``event_ms``.

        Called only once the events are acknowledged, so no report (a heartbeat in
        between) can announce progress for events still in flight.
        """
        ms = min(event_ms, int(now_ms) + self.clock_skew_ms)
        if ms > self._progress.get(partition, -(2**62)):
            self._progress[partition] = ms

    def report(
        self,
        assigned: Iterable[int],
        now_ms: float,
        caught_up: Callable[[int], bool],
        pending: Iterable[tuple[int, int]] = (),
    ) -> tuple[dict[int, int], list[int]]:
        """``(progress, idle)`` for the assigned partitions, as an ``EntityBatch`` carries it.

        ``pending``: (partition, event ms) of the records whose events travel in the same
        ``EntityBatch`` records as this report, so they may count already. Every assigned
        partition is in ``progress``, one never read from with none yet (-2**62): it holds
        the watermark back unless idle, and a partition that was idle and is not any more
        says so at once (left out, the aggregator kept taking it for idle).
        """
        settled = (
            now_ms - self._last_activity >= self.idle_ms
            or now_ms - self._active_since >= self.idle_ms
        )
        ahead = dict(self._progress)
        for p, event_ms in pending:
            ms = min(event_ms, int(now_ms) + self.clock_skew_ms)
            if ms > ahead.get(p, -(2**62)):
                ahead[p] = ms
        progress: dict[int, int] = {}
        idle: list[int] = []
        for p in sorted(assigned):
            progress[p] = ahead.get(p, -(2**62))
            last = self._last_seen.get(p, float("-inf"))
            if settled and now_ms - last >= self.idle_ms and caught_up(p):
                idle.append(p)
        return progress, idle

    def forget(self, partitions: Iterable[int]) -> None:
        """Partitions revoked from this worker: their progress is another worker's now."""
        for p in partitions:
            self._progress.pop(p, None)
            self._last_seen.pop(p, None)


def fan_out(
    events: Sequence[EntityEvent],
    partitions: int,
    source_partitions: int,
    progress: dict[int, int],
    idle: Sequence[int] = (),
) -> list[tuple[int, EntityBatch]]:
    """One ``EntityBatch`` per destination partition (all of them), events in input order."""
    by_partition: list[list[EntityEvent]] = [[] for _ in range(partitions)]
    for ev in events:
        by_partition[partition_for(ev.entity, partitions)].append(ev)
    return [
        (
            p,
            EntityBatch(
                source_partitions=source_partitions, progress=progress, idle=list(idle), events=evs
            ),
        )
        for p, evs in enumerate(by_partition)
    ]
