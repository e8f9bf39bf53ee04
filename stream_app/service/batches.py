"""What both stages of the worker share: the consumed record, the publisher, retries.

At-least-once: a stage's ``process`` returns only after the broker acknowledged every
record it published (``publish_all``); the Faust binding (``stream_app.service.app``)
acknowledges the input offsets only after that. ``run_with_retry`` re-runs a batch that
failed on an infrastructure error (broker, Redis) instead of dropping it: re-publishing
gives duplicates downstream, which the aggregator removes by id; dropping would lose data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

from stream_app.service.health import HealthState
from stream_app.service.metrics import Metrics

__all__ = ["InFlight", "Message", "Publisher", "Record", "publish_all", "run_with_retry", "wire"]

log = logging.getLogger(__name__)
T = TypeVar("T")


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

    A stopping worker sets ``stopping``: the batch loops take no new batch (one already
    taken is left unacknowledged, so it is redelivered), and ``wait_idle`` waits for the
    batches in flight to finish and be acknowledged. Cutting a batch off mid-way is safe
    too (unacknowledged: redelivered), but then it is scored again after the restart.
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
