"""Event-time order for one partition of the entity topic: events wait for the watermark.

``market`` and ``topic:*`` entities receive events from every news partition, so the order
in which they *arrive* depends on how the score stages' batches interleave. The detectors
and the novelty index must not see that order; they see the events of each entity in
event-time order (ties by id), whatever the partitions, the batch cuts or the number of
workers. The ``Sequencer`` holds events back until that order is known:

* every record of the entity topic (``EntityBatch``) says how far its news partitions have
  progressed in event time (the score stage clamps a record's contribution at processing
  time plus ``clock_skew_seconds``, so one future-dated record cannot drag the watermark)
  and which of them are idle (nothing to read for a while, see ``core.fanout``);
* the **watermark** is the minimum progress over the ``source_partitions`` news
  partitions that are not idle -- a partition never heard of holds it back, a slow one
  too, because it still has data to deliver; when every partition is idle, everything
  seen is released (an idle report carrying progress older than what is known is stale
  and ignored; one carrying none is from a worker that caught up without reading, after
  a rebalance, and counts);
* when a partition **wakes** (reported idle, now active), the partitions still idle hold
  the watermark again for ``wake_grace_ms`` of processing time: the same data may have
  reached them too, and their workers -- other processes, each with its own fetch and
  batch timing -- need a moment to say so. Without that grace the first batch of a feed
  landing on every partition at once moved the watermark past the other partitions'
  older events, which were then applied out of order (seen: ``market`` novelty differed
  between 1 and 3 workers). The score stage applies the same rule to the partitions of
  one worker (``core.fanout``); this one covers partitions of different workers;
* ``release`` hands out every held event strictly below the watermark, sorted by
  (event time, id, entity); later events wait. An event arriving below the released
  watermark cannot be put in order any more: it is released at once and the aggregator's
  lateness rule decides (counted in its bucket within ``allowed_lateness`` of its
  entity's clock, else late).

When every news partition is in event-time order (a replay, a backlog after an outage, a
live feed) no event ever arrives below the watermark, so the released sequence per
entity is exactly the sorted one: 1 vs 3 workers, any batch cut, a replay and the
backtest give identical alerts.

Acknowledgement: each offered record is *done* when all its events were released; the
worker acknowledges its Kafka offset only then, so held events are never lost: after a
crash or a rebalance they are read again (and the ones already applied are recognised
by id). The sequencer is pure and holds no I/O; ``flush`` releases everything (end of a
backtest).
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

from stream_app.schemas import EntityBatch, EntityEvent

__all__ = ["Release", "Sequencer"]

_NONE = -(2**62)  # no progress yet


@dataclass(slots=True)
class Release:
    events: list[EntityEvent] = field(default_factory=list)  # in release order
    done: list[Hashable] = field(default_factory=list)  # refs of fully released records
    watermark: int = _NONE


@dataclass(slots=True)
class Sequencer:
    wake_grace_ms: float = 0.0
    _progress: dict[int, int] = field(default_factory=dict)
    # partition -> processing time (ms) from which its idleness counts
    _idle: dict[int, float] = field(default_factory=dict)
    _partitions: int = 0
    _released_to: int = _NONE
    _heap: list[tuple[int, str, str, int, EntityEvent]] = field(default_factory=list)
    _seq: int = 0
    _waiting: dict[Hashable, int] = field(default_factory=dict)  # ref -> events still held
    _owner: dict[int, Hashable] = field(default_factory=dict)  # heap seq -> ref
    _order: list[Hashable] = field(default_factory=list)  # refs in offer order

    def watermark(self, now_ms: float = 0.0) -> int:
        if not self._partitions:
            return _NONE
        idle = self._idle
        active = [p for p in range(self._partitions) if idle.get(p, float("inf")) > now_ms]
        if not active:  # all quiet: everything seen may go
            return max(self._progress.values(), default=_NONE) + 1
        return min(self._progress.get(p, _NONE) for p in active)

    @property
    def held(self) -> int:
        """Events waiting for the watermark."""
        return len(self._heap)

    def offer(self, ref: Hashable, batch: EntityBatch, now_ms: float = 0.0) -> list[EntityEvent]:
        """Take one record's events and progress; returns the ones already out of order.

        Those (below the watermark released so far) go to the aggregator at once.
        ``now_ms``: processing time, for the grace after a wake-up.
        """
        self._partitions = max(self._partitions, batch.source_partitions)
        idle = set(batch.idle)
        woke = False
        for p in idle.union(batch.progress):
            known = self._progress.get(p, _NONE)
            ms = batch.progress.get(p, _NONE)
            if ms > known:
                self._progress[p] = ms
            if p not in idle:
                woke |= self._idle.pop(p, None) is not None
            elif (ms >= known or ms == _NONE) and p not in self._idle:
                # An idle report older than newer data is stale (the partition woke up).
                # One without progress is not: its worker caught up without reading a
                # record -- it was just assigned the partition, or took it back after a
                # rebalance -- and has nothing of it to deliver.
                self._idle[p] = now_ms
        if woke:
            until = now_ms + self.wake_grace_ms
            for p, since in self._idle.items():
                self._idle[p] = max(since, until)
        immediate: list[EntityEvent] = []
        held = 0
        for ev in batch.events:
            if ev.event_time_ms < self._released_to:
                immediate.append(ev)
                continue
            self._seq += 1
            heapq.heappush(self._heap, (ev.event_time_ms, ev.id, ev.entity, self._seq, ev))
            self._owner[self._seq] = ref
            held += 1
        self._waiting[ref] = held
        self._order.append(ref)
        return immediate

    def release(self, now_ms: float = 0.0) -> Release:
        """Every held event below the watermark, in (event time, id, entity) order."""
        wm = self.watermark(now_ms)
        out = Release(watermark=wm)
        heap = self._heap
        while heap and heap[0][0] < wm:
            _, _, _, seq, ev = heapq.heappop(heap)
            out.events.append(ev)
            self._waiting[self._owner.pop(seq)] -= 1
        self._released_to = max(self._released_to, wm)
        out.done = self._take_done()
        return out

    def flush(self) -> Release:
        """Release everything held, in order (the end of a finite feed)."""
        out = Release(watermark=self._released_to)
        while self._heap:
            _, _, _, seq, ev = heapq.heappop(self._heap)
            out.events.append(ev)
            self._waiting[self._owner.pop(seq)] -= 1
        if out.events:
            self._released_to = max(self._released_to, out.events[-1].event_time_ms + 1)
        out.done = self._take_done()
        return out

    def _take_done(self) -> list[Hashable]:
        done = [ref for ref in self._order if self._waiting[ref] == 0]
        if done:
            for ref in done:
                del self._waiting[ref]
            self._order = [ref for ref in self._order if ref in self._waiting]
        return done

    def pending_refs(self) -> Iterable[Hashable]:
        """Records offered but not done, oldest first."""
        return list(self._order)
