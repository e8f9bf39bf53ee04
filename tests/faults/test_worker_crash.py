"""Worker processes die mid-stream (SIGKILL) or are stopped (SIGTERM): nothing lost or doubled.

Each test streams a paced feed into real ``finpulse worker`` subprocesses, injects the
fault while records are in flight, and checks the conservation law of ``harness`` plus
alert parity with a fault-free in-process reference.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from stream_app.devenv.embedded import Service
from tests.support.fault_harness import (
    FAULT_SETTINGS,
    RedisView,
    Texts,
    alert_summary,
    assignment,
    conservation,
    make_feed,
    produce_paced,
    reference_alerts,
    wait_for,
    worker_alerts,
)
from tests.support.fault_report import record

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(300)]


async def _counted_at_least(view: RedisView, n: int) -> Any:
    async def check() -> int | None:
        got = len(await view.ids("market"))
        return got if got >= n else None

    return check


async def _kill_in_flight(
    w: Any, view: RedisView, acked_at: list[float], producing: asyncio.Task[None]
) -> tuple[int, int]:
    """SIGKILL ``w`` while it has unfinished work: records the broker acknowledged that
    are not counted yet. Returns (counted, produced) as they were at the kill."""
    counted = len(await view.ids("market"))
    w.kill()
    produced = len(acked_at)  # the list only grows: this is at least what was produced
    assert not producing.done(), "the fault must hit mid-stream"
    assert counted < produced, f"nothing in flight at the kill ({counted} of {produced})"
    return counted, produced


def _redone(c: Any, n: int) -> bool:
    """After the restart, some work was done again: the kill hit uncommitted work."""
    return bool(c.scored_records > n or c.duplicates > 0)


async def _assert_alerts_match_reference(settings: Any, feed: Any) -> int:
    got = alert_summary(await worker_alerts(settings))
    want = alert_summary(await reference_alerts(settings, feed))
    assert {(x[1], x[2]) for x in want} >= {("ticker:BURST", "firing")}, "feed must fire"
    assert got == want
    return len(want)


async def test_sigkill_mid_stream_then_restart(
    pool: Any, broker: Service, redis_server: Service, texts: Texts
) -> None:
    p = pool(broker, redis_server, topic_partitions=2, **FAULT_SETTINGS)
    w = p.spawn()
    s = w.settings
    feed = make_feed(texts)
    view = RedisView(s)
    acked: list[float] = []
    producing = asyncio.create_task(produce_paced(s, feed, per_second=30, acked_at=acked))
    try:
        await wait_for(await _counted_at_least(view, len(feed.rows) // 4), 60, "quarter counted")
        partial, produced = await _kill_in_flight(w, view, acked, producing)
        fault_at = time.monotonic()
        w.start()
        await producing
        c = await conservation(s, feed)
        recovery = time.monotonic() - fault_at
    finally:
        await view.close()
    assert not c.problems, c.problems
    assert c.counted == len(feed.rows)
    assert not c.dead
    assert _redone(c, len(feed.rows)), c.row()
    n_alerts = await _assert_alerts_match_reference(s, feed)
    record("worker SIGKILL mid-stream, restarted", c, recovery, counted_at_fault=partial,
           produced_at_fault=produced, alerts=n_alerts)  # fmt: skip


async def test_two_workers_one_killed_survivor_takes_over(
    pool: Any, broker: Service, redis_server: Service, texts: Texts
) -> None:
    p = pool(broker, redis_server, topic_partitions=2, **FAULT_SETTINGS)
    a = p.spawn()
    b = p.spawn()
    s = a.settings
    feed = make_feed(texts, seed=2)
    view = RedisView(s)

    async def both_hold_news() -> bool:
        gens = [assignment(x, s.topic_news) for x in (a, b)]
        return len({g for g, _ in gens}) == 1 and all(parts for _, parts in gens)

    # Both workers hold news partitions, so the one killed has work of its own.
    await wait_for(both_hold_news, 60, "both workers holding news partitions")
    acked: list[float] = []
    producing = asyncio.create_task(produce_paced(s, feed, per_second=30, acked_at=acked))
    try:
        await wait_for(await _counted_at_least(view, len(feed.rows) // 4), 60, "quarter counted")
        partial, produced = await _kill_in_flight(a, view, acked, producing)
        fault_at = time.monotonic()
        await producing
        c = await conservation(s, feed, within=120)
        recovery = time.monotonic() - fault_at
    finally:
        await view.close()
    assert b.running
    assert not c.problems, c.problems
    assert c.counted == len(feed.rows)
    assert not c.dead
    assert _redone(c, len(feed.rows)), c.row()
    n_alerts = await _assert_alerts_match_reference(s, feed)
    record("1 of 2 workers SIGKILLed, survivor takes over", c, recovery,
           counted_at_fault=partial, produced_at_fault=produced, alerts=n_alerts)  # fmt: skip


async def test_sigterm_mid_stream_hands_back_the_batch(
    pool: Any, broker: Service, redis_server: Service, texts: Texts
) -> None:
    p = pool(broker, redis_server, topic_partitions=2, **FAULT_SETTINGS)
    w = p.spawn()
    s = w.settings
    feed = make_feed(texts, seed=3)
    view = RedisView(s)
    producing = asyncio.create_task(produce_paced(s, feed, per_second=30))
    try:
        partial = await wait_for(
            await _counted_at_least(view, len(feed.rows) // 4), 60, "a quarter counted"
        )
        assert not producing.done(), "the fault must hit mid-stream"
        stopped = time.monotonic()
        code = w.stop(timeout=30)
        stop_seconds = time.monotonic() - stopped
        w.start()
        await producing
        c = await conservation(s, feed)
        recovery = time.monotonic() - stopped
    finally:
        await view.close()
    assert code == 0, w.log_tail()
    assert not c.problems, c.problems
    assert c.counted == len(feed.rows)
    assert not c.dead
    n_alerts = await _assert_alerts_match_reference(s, feed)
    record("SIGTERM mid-stream, restarted", c, recovery, counted_at_fault=partial,
           stop_seconds=round(stop_seconds, 2), alerts=n_alerts)  # fmt: skip
