"""Redis stopped, or the broker unreachable, for several seconds mid-stream.

The worker must wait (back-off), not crash and not drop the batch in hand; after the
outage every id is counted exactly once. Redis runs with AOF, so a stop/start keeps data.
The broker is reached through a cuttable TCP proxy that tansu *advertises*, so the worker
cannot bypass it after bootstrap.
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
    conservation,
    make_feed,
    produce_paced,
    reference_alerts,
    wait_for,
    worker_alerts,
)
from tests.support.fault_report import record
from tests.support.worker_proc import http_get

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(300)]

OUTAGE_SECONDS = 6.0


async def _counted(view: RedisView, n: int) -> Any:
    async def check() -> int | None:
        got = len(await view.ids("market"))
        return got if got >= n else None

    return check


async def _alerts_match(settings: Any, feed: Any) -> int:
    want = alert_summary(await reference_alerts(settings, feed))
    assert ("ticker:BURST", "firing") in {(x[1], x[2]) for x in want}
    assert alert_summary(await worker_alerts(settings)) == want
    return len(want)


async def test_redis_down_for_seconds_mid_stream(
    pool: Any, broker: Service, own_redis: Service, texts: Texts
) -> None:
    p = pool(broker, own_redis, topic_partitions=2, **FAULT_SETTINGS)
    w = p.spawn()
    s = w.settings
    feed = make_feed(texts, seed=4)
    view = RedisView(s)
    producing = asyncio.create_task(produce_paced(s, feed, per_second=30))
    try:
        partial = await wait_for(await _counted(view, len(feed.rows) // 4), 60, "quarter counted")
        own_redis.stop()
        down_at = time.monotonic()
        await asyncio.sleep(OUTAGE_SECONDS)  # hold the fault
        health_during = http_get(f"{w.base_url}/health")[0]
        alive_during = w.running
        own_redis.start()
        up_at = time.monotonic()
        await producing
        c = await conservation(s, feed)
        recovery = time.monotonic() - up_at
    finally:
        await view.close()
    assert alive_during, w.log_tail()
    assert w.running, w.log_tail()
    assert health_during == 503, "health must report the outage"
    assert not c.problems, c.problems
    assert c.counted == len(feed.rows)
    assert not c.dead
    n_alerts = await _alerts_match(s, feed)
    record(f"Redis stopped {OUTAGE_SECONDS:.0f}s mid-stream, restarted with its data", c,
           recovery, counted_at_fault=partial, outage_s=round(up_at - down_at, 1),
           health_during=health_during, alerts=n_alerts)  # fmt: skip


async def test_broker_unreachable_for_seconds_mid_stream(
    pool: Any, proxied_broker: tuple[Service, Any], redis_server: Service, texts: Texts
) -> None:
    front, proxy = proxied_broker
    p = pool(front, redis_server, topic_partitions=2, **FAULT_SETTINGS)
    w = p.spawn()
    s = w.settings
    feed = make_feed(texts, seed=5)
    view = RedisView(s)
    # The producer goes around the proxy (to the broker's own port), so records keep
    # arriving while the worker's path is cut: they are in flight during the outage.
    acked: list[float] = []
    producing = asyncio.create_task(
        produce_paced(s, feed, per_second=30, direct_port=proxy.target_port, acked_at=acked)
    )
    try:
        partial = await wait_for(await _counted(view, len(feed.rows) // 4), 60, "quarter counted")
        proxy.cut()
        cut_at = time.monotonic()
        await asyncio.sleep(OUTAGE_SECONDS)  # hold the fault
        alive_during = w.running
        counted_during = len(await view.ids("market"))
        proxy.restore()
        up_at = time.monotonic()
        during = sum(cut_at <= t < up_at for t in acked)
        await producing
        c = await conservation(s, feed, within=120)
        recovery = time.monotonic() - up_at
    finally:
        await view.close()
    assert alive_during, w.log_tail()
    assert w.running, w.log_tail()
    assert during > 0, "records must be produced during the outage"
    assert counted_during < len(acked), "work must be waiting when the broker comes back"
    assert not c.problems, c.problems
    assert c.counted == len(feed.rows)
    assert not c.dead
    n_alerts = await _alerts_match(s, feed)
    record(f"broker unreachable {OUTAGE_SECONDS:.0f}s mid-stream (proxy cut)", c, recovery,
           counted_at_fault=partial, produced_during_outage=during,
           outage_s=round(up_at - cut_at, 1), proxy_connections=proxy.connections,
           alerts=n_alerts)  # fmt: skip
