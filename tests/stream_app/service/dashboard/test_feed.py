"""``LiveFeed``: one read per interval for all streams, changes only, heartbeats, bounds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from stream_app.service.dashboard.feed import FeedEvent, FeedFull, LiveFeed


class Counter:
    """An overview that changes on every read: ``b"1"``, ``b"2"``, ..."""

    def __init__(self) -> None:
        self.reads = 0

    async def __call__(self) -> bytes:
        self.reads += 1
        return str(self.reads).encode()


async def _take(events: AsyncIterator[FeedEvent], n: int) -> list[FeedEvent]:
    out: list[FeedEvent] = []
    async with asyncio.timeout(10):
        async for event in events:
            out.append(event)
            if len(out) == n:
                break
    return out


async def test_streams_share_one_poller_and_see_the_same_overview() -> None:
    calls = 0
    called, release = asyncio.Event(), asyncio.Event()

    async def produce() -> bytes:
        nonlocal calls
        calls += 1
        called.set()
        await release.wait()
        return b'{"v":1}'

    feed = LiveFeed(produce, interval=0.01)
    async with feed.stream() as a, feed.stream() as b, feed.stream() as c:
        await asyncio.wait_for(called.wait(), 5)
        for _ in range(20):  # let any other poller that was started reach produce()
            await asyncio.sleep(0)
        assert calls == 1  # three streams, one read in flight
        release.set()
        got = await asyncio.gather(_take(a, 1), _take(b, 1), _take(c, 1))
    assert got == [[FeedEvent("overview", b'{"v":1}')]] * 3
    await feed.close()


async def test_an_unchanged_overview_is_sent_once_then_heartbeats() -> None:
    async def same() -> bytes:
        return b'{"same":1}'

    feed = LiveFeed(same, interval=0.01, heartbeat=0.05)
    async with feed.stream() as events:
        got = await _take(events, 4)
    assert [e.name for e in got] == ["overview", "heartbeat", "heartbeat", "heartbeat"]
    await feed.close()


async def test_failures_publish_unavailable_and_recover() -> None:
    state = {"fail": True}

    async def flaky() -> bytes:
        if state["fail"]:
            raise ConnectionError("redis://:secret@host down")
        return b"{}"

    feed = LiveFeed(flaky, interval=0.01)
    async with feed.stream() as events:
        [first] = await _take(events, 1)
        state["fail"] = False
        [second] = await _take(events, 1)
    assert first == FeedEvent("unavailable", b'{"error":"store unavailable"}')
    assert second == FeedEvent("overview", b"{}")
    await feed.close()


async def test_cap_max_age_close_and_idle_poller() -> None:
    produce = Counter()
    feed = LiveFeed(produce, interval=0.01, max_age=0.2, max_streams=1)
    async with feed.stream() as events:
        with pytest.raises(FeedFull):
            async with feed.stream():
                pass
        got = [e async for e in events]  # ends by itself after max_age
        assert got
    assert feed.open_streams == 0
    # no stream: the poller stops reading
    poller = feed._poller
    assert poller is not None
    await asyncio.wait_for(poller, 5)
    reads = produce.reads
    async with feed.stream() as events:  # a new stream restarts it, fresh
        [event] = await _take(events, 1)
        assert int(event.data) > reads
        await feed.close()
        assert [e async for e in events] == []  # close ends open streams
    with pytest.raises(FeedFull):
        async with feed.stream():
            pass
