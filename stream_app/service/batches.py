"""What both stages of the worker share: the consumed record, the publisher, retries.

At-least-once: a stage's ``process`` returns only after the broker acknowledged every
record it published (``publish_all``); the Faust binding (``stream_app.service.app``)
acknowledges the input offsets only after that. ``run_with_retry`` re-runs a batch that
failed on an infrastructure error (broker, Redis) instead of dropping it: re-publishing
gives duplicates downstream, which the aggregator removes by id; dropping would lose data.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

from stream_app.service.health import HealthState
from stream_app.service.metrics import Metrics

__all__ = [
    "AckInOrder",
    "InFlight",
    "Message",
    "Publisher",
    "Record",
    "publish_all",
    "run_overlapped",
    "run_with_retry",
    "wire",
]

log = logging.getLogger(__name__)
T = TypeVar("T")
B = TypeVar("B")
P = TypeVar("P")


@dataclass(frozen=True)
class Record:
    """One consumed Kafka record, as the stages need it."""

    value: bytes | None
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None
    key: bytes | None = None

    @property
    def source(self) -> dict[str, Any]:
        return {
            "source_topic": self.topic,
            "source_partition": self.partition,
            "source_offset": self.offset,
        }


class InFlight:
    """The batches a worker is processing, so that a stop lets them finish.

    A stopping worker sets ``stopping``: the batch loops process no new batch (a batch
    taken is left unacknowledged, so it is redelivered), and ``wait_idle`` waits for the
    batches in flight to finish and be acknowledged. Cutting a batch off mid-way is safe
    too (unacknowledged: redelivered), but then it is scored again after the restart.

    The loops skip batches rather than leave Faust's ``noack_take``: leaving it turns the
    stream's automatic acknowledgement back on while its background drainer still reads
    records, so every record read until Faust stops the stream was acknowledged (and
    committed) without being processed: lost. (Seen as missing ids after a restart in
    ``tests/faults/test_shutdown.py``.)
    """

    def __init__(self) -> None:
        self.stopping = False
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def count(self) -> int:
        return self._count

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Wraps one batch, from taking it to acknowledging it."""
        self._count += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._count -= 1
            if not self._count:
                self._idle.set()

    async def wait_idle(self, within: float) -> bool:
        """True once no batch is in flight; False if ``within`` seconds passed first."""
        try:
            await asyncio.wait_for(self._idle.wait(), within)
        except TimeoutError:
            return False
        return True


async def run_overlapped(
    batches: AsyncIterator[B],
    prepare: Callable[[B], Awaitable[P]],
    finish: Callable[[B, P], Awaitable[None]],
    inflight: InFlight,
) -> None:
    """``prepare`` batch N+1 (validation, the model) while ``finish`` runs for batch N
    (publish, await the acknowledgements, acknowledge the input).

    At most two batches are in flight, and ``finish`` runs for one batch at a time in the
    batches' order, starting only after the one before returned, so the topics and the
    committed offsets see what the one-batch-at-a-time loop gives. When ``inflight`` is
    stopping, no new batch starts (one taken is left unacknowledged: redelivered) and the
    batches in flight finish; when the caller is cancelled, they are cancelled too and
    never acknowledged, so they are redelivered.
    """

    async def one(batch: B, after: asyncio.Task[None] | None) -> None:
        with inflight.batch():
            prepared = await prepare(batch)
            if after is not None:
                await after  # the batch before publishes first
            await finish(batch, prepared)

    previous: asyncio.Task[None] | None = None
    live: list[asyncio.Task[None]] = []
    try:
        async for batch in batches:
            if inflight.stopping:
                # Left unacknowledged (redelivered), and the loop goes on: see InFlight.
                if previous is not None:
                    await previous
                    previous, live = None, []
                continue
            current = asyncio.create_task(one(batch, previous))
            live = [t for t in (previous, current) if t is not None]
            if previous is not None:
                await previous
            previous = current
        if previous is not None:
            await previous
    except BaseException:
        for task in live:
            task.cancel()
        for task in live:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        raise


class AckInOrder:
    """Which consumed records may be acknowledged: each one once it *and every record
    before it on its partition* are done, in offset order.

    The aggregate stage finishes records out of order (a later record without events is
    done while an earlier one waits for the watermark), and Faust commits the first run of
    consecutive acknowledged offsets without noticing a gap of one record at its head (nor
    any gap before a partition's first commit): acknowledged out of order, a record still
    held was committed past, and a restarted worker never read its events again.
    """

    def __init__(self) -> None:
        self._queued: dict[tuple[str, int], collections.deque[tuple[str, int, int]]] = {}
        self._events: dict[tuple[str, int, int], Any] = {}  # taken, not yet acknowledged
        self._done: set[tuple[str, int, int]] = set()

    def __len__(self) -> int:
        return len(self._events)

    def taken(self, ref: tuple[str, int, int], event: Any) -> None:
        """A record (topic, partition, offset) was read; ``event`` is what acknowledges it."""
        if ref not in self._events:  # read again without a rebalance: queued already
            self._queued.setdefault(ref[:2], collections.deque()).append(ref)
        self._events[ref] = event

    def done(self, refs: Iterable[tuple[str, int, int]]) -> list[Any]:
        """Mark ``refs`` done; the events that may be acknowledged now, in offset order."""
        refs = [r for r in refs if r in self._events]  # not one of a revoked partition
        self._done.update(refs)
        out: list[Any] = []
        for tp in {r[:2] for r in refs}:
            queue = self._queued.get(tp)
            while queue and queue[0] in self._done:
                ref = queue.popleft()
                self._done.discard(ref)
                event = self._events.pop(ref, None)
                if event is not None:
                    out.append(event)
        return out

    def revoke(self, partitions: Iterable[int]) -> None:
        """Partitions taken away: nothing of theirs is acknowledged any more."""
        gone = set(partitions)
        for tp in [tp for tp in self._queued if tp[1] in gone]:
            del self._queued[tp]
        self._events = {r: e for r, e in self._events.items() if r[1] not in gone}
        self._done = {r for r in self._done if r[1] not in gone}


class Publisher(Protocol):
    """Sends one record; the returned awaitable resolves when the broker acknowledged it."""

    async def send(
        self, topic: str, key: bytes | None, value: bytes, partition: int | None = None
    ) -> Awaitable[Any]: ...


# topic, key, value, partition (None: the producer's partitioner picks by key)
Message = tuple[str, bytes | None, bytes, int | None]


async def publish_all(publisher: Publisher, messages: Sequence[Message]) -> None:
    """Send all, then wait for every acknowledgement (sends pipeline; acks are awaited once)."""
    pending = [await publisher.send(t, k, v, p) for t, k, v, p in messages]
    await asyncio.gather(*pending)


def wire(model: BaseModel) -> bytes:
    return model.model_dump_json().encode()


async def run_with_retry(
    agent: str,
    batch: Callable[[], Awaitable[T]],
    *,
    health: HealthState,
    metrics: Metrics,
    max_backoff: float,
    stopping: Callable[[], bool] = lambda: False,
) -> T:
    """Run ``batch`` until it succeeds, backing off exponentially up to ``max_backoff`` s.

    The partition stalls meanwhile (its offsets are not acknowledged), which is visible
    as a degraded ``/health`` and a growing ``finpulse_consumer_lag``.
    """
    delay = min(0.2, max_backoff)
    while True:
        try:
            result = await batch()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if stopping():
                # Shutting down: leave the batch unacknowledged; it is redelivered.
                raise asyncio.CancelledError from exc
            health.batch_failed(agent, exc)
            metrics.batch_retries.labels(agent=agent).inc()
            log.error(
                "%s batch failed (%s: %s); retrying in %.1fs",
                agent,
                type(exc).__name__,
                exc,
                delay,
                exc_info=log.isEnabledFor(logging.DEBUG),
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_backoff)
            continue
        health.batch_ok(agent)
        return result
