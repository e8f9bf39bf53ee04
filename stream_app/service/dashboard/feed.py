"""``LiveFeed``: one poller of the overview, fanned out to every open dashboard stream.

However many desks have the page open, the store is read once per ``interval`` seconds,
and only while at least one stream is open. Each stream receives the latest payload when
it opens and then every *change* (an identical overview is not sent again), plus a
heartbeat after ``heartbeat`` quiet seconds so proxies and the page can tell a quiet feed
from a dead connection. Bounds: at most ``max_streams`` open streams (``FeedFull``
beyond), each closed after ``max_age`` seconds (the page reconnects, and a revoked token
stops working within that time). ``close()`` ends every stream at once, so a stopping
worker does not wait on open dashboards.

A failing read publishes an ``unavailable`` event (no detail: it could name hosts) and
the poller keeps trying; the next good read publishes the overview again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from models.errors import FinpulseError

__all__ = ["FeedEvent", "FeedFull", "LiveFeed"]

log = logging.getLogger(__name__)

UNAVAILABLE = b'{"error":"store unavailable"}'
LIVENESS_CHECK = 1.0  # seconds between checks that a stream's client is still connected


class FeedFull(FinpulseError):
    """Too many dashboard streams are open."""


@dataclass(frozen=True, slots=True)
class FeedEvent:
    name: str  # "overview" | "unavailable" | "heartbeat"
    data: bytes  # one line of JSON ("" for a heartbeat)


class LiveFeed:
    def __init__(
        self,
        produce: Callable[[], Awaitable[bytes]],
        *,
        interval: float = 1.0,
        heartbeat: float = 15.0,
        max_age: float = 300.0,
        max_streams: int = 32,
    ) -> None:
        self._produce = produce
        self.interval = interval
        self.heartbeat = heartbeat
        self.max_age = max_age
        self.max_streams = max_streams
        self._streams = 0
        self._latest: FeedEvent | None = None
        self._version = 0
        self._changed = asyncio.Event()
        self._closed = False
        self._poller: asyncio.Task[None] | None = None

    @property
    def open_streams(self) -> int:
        return self._streams

    def _publish(self, event: FeedEvent) -> None:
        if event == self._latest:
            return
        self._latest = event
        self._version += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _poll(self) -> None:
        failing = False
        while not self._closed and self._streams > 0:
            try:
                self._publish(FeedEvent("overview", await self._produce()))
                failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any store failure: report, keep polling
                if not failing:
                    log.warning("dashboard feed: overview read failed: %s", type(exc).__name__)
                failing = True
                self._publish(FeedEvent("unavailable", UNAVAILABLE))
            await asyncio.sleep(self.interval)

    @contextlib.asynccontextmanager
    async def stream(
        self, alive: Callable[[], bool] = lambda: True
    ) -> AsyncIterator[AsyncIterator[FeedEvent]]:
        """``async with feed.stream(alive) as events``: one stream's events; ``FeedFull``
        when ``max_streams`` are open. The events end when ``alive()`` turns false (checked
        every ``LIVENESS_CHECK`` seconds: a closed connection frees its slot without waiting
        for a write to fail), after ``max_age``, or on ``close()``."""
        if self._closed or self._streams >= self.max_streams:
            raise FeedFull(f"at most {self.max_streams} dashboard streams")
        self._streams += 1
        if self._poller is None or self._poller.done():
            self._latest = None  # a restarted poller must not serve a stale overview
            self._poller = asyncio.create_task(self._poll(), name="dashboard-feed")
        events = self._events(alive)
        try:
            yield events
        finally:
            self._streams -= 1
            await events.aclose()

    async def _events(self, alive: Callable[[], bool]) -> AsyncGenerator[FeedEvent, None]:
        seen = 0
        now = time.monotonic()
        until, beat = now + self.max_age, now + self.heartbeat
        while not self._closed and alive():
            if self._version != seen and self._latest is not None:
                seen = self._version
                beat = time.monotonic() + self.heartbeat
                yield self._latest
                continue
            now = time.monotonic()
            if now >= until:
                return
            if now >= beat:
                beat = now + self.heartbeat
                yield FeedEvent("heartbeat", b"")
                continue
            changed = self._changed
            wait = min(until, beat, now + LIVENESS_CHECK) - now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout=wait)

    async def close(self) -> None:
        """End every stream and stop polling."""
        self._closed = True
        self._changed.set()
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
