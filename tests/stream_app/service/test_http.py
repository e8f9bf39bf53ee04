"""The worker's HTTP listener: a connection bound, an idle/header timeout, quiet refusals.

A real aiohttp application behind ``GuardedListener`` on a free loopback port, driven by
raw sockets (idle, trickling and well-behaved clients).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from stream_app.service.http import REFUSED, GuardedListener, make_runner

REQUEST = b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture
async def served() -> AsyncIterator[GuardedListener]:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/ok", ok)
    runner = make_runner(app, idle_timeout=0.5)
    await runner.setup()
    assert runner.server is not None
    listener = GuardedListener(runner.server, max_connections=5)
    await listener.start("127.0.0.1", 0)
    try:
        yield listener
    finally:
        await listener.stop()
        await runner.cleanup()


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """Everything the server sent until it closed the connection; fails if it did not."""
    return await asyncio.wait_for(reader.read(), seconds)


async def test_connections_over_the_bound_get_503_and_are_closed(
    served: GuardedListener,
) -> None:
    idle = [await _connect(served.port) for _ in range(5)]
    await asyncio.sleep(0.05)
    assert served.open == 5
    reader, writer = await _connect(served.port)
    assert await _closed_within(reader, 2) == REFUSED  # without waiting for a request
    writer.close()
    assert served.refused == 1
    idle[0][1].close()  # one leaves: a new client is served again
    await asyncio.sleep(0.05)
    reader, writer = await _connect(served.port)
    writer.write(REQUEST)
    assert (await reader.readline()).startswith(b"HTTP/1.1 200")
    writer.close()
    for _, w in idle[1:]:
        w.close()


async def test_idle_and_trickling_connections_are_closed(served: GuardedListener) -> None:
    idle_reader, idle_writer = await _connect(served.port)
    trick_reader, trick_writer = await _connect(served.port)
    started = time.monotonic()
    closed = asyncio.ensure_future(_closed_within(trick_reader, 5))
    for byte in REQUEST[:-4]:  # a header byte every 50 ms, never the blank line
        if closed.done():
            break
        trick_writer.write(bytes([byte]))
        await asyncio.sleep(0.05)
    assert await closed == b""
    assert await _closed_within(idle_reader, 5) == b""
    # The timeout runs from the connection's start, not from the last byte received.
    assert time.monotonic() - started < 4
    await asyncio.sleep(0.05)
    assert served.open == 0
    for w in (idle_writer, trick_writer):
        w.close()


async def test_a_reply_restarts_the_idle_timer_and_keep_alive_works(
    served: GuardedListener,
) -> None:
    reader, writer = await _connect(served.port)
    for _ in range(3):
        writer.write(REQUEST)
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        await reader.readuntil(b"ok")
        await asyncio.sleep(0.3)  # under the 0.5 s idle timeout each time
    assert await _closed_within(reader, 5) == b""  # then idle: closed
    writer.close()


async def test_refusals_are_logged_once_with_their_count(
    served: GuardedListener, caplog: pytest.LogCaptureFixture
) -> None:
    held = [await _connect(served.port) for _ in range(5)]
    await asyncio.sleep(0.05)
    with caplog.at_level(logging.WARNING, logger="stream_app.service.http"):
        extra = [await _connect(served.port) for _ in range(200)]
        for reader, _ in extra:
            assert await _closed_within(reader, 5) == REFUSED
    warnings = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(warnings) == 1
    assert served.refused == 200
    for _, w in held + extra:
        w.close()
