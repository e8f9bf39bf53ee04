"""``CachedProbe``: /health asks Redis at most once per ttl, whatever the request rate."""

from __future__ import annotations

import asyncio

from stream_app.service.health import CachedProbe


class Redis:
    """Counts PINGs; ``up`` and ``delay`` say how the next ones go."""

    def __init__(self) -> None:
        self.pings = 0
        self.up = True
        self.delay = 0.0

    async def ping(self) -> bool:
        self.pings += 1
        await asyncio.sleep(self.delay)
        if not self.up:
            raise ConnectionError("Connection refused")
        return True


async def test_concurrent_probes_share_one_ping_then_the_result_is_cached() -> None:
    redis = Redis()
    redis.delay = 0.05
    probe = CachedProbe(redis.ping, ttl=0.3)
    assert all(await asyncio.gather(*(probe() for _ in range(1000))))
    assert redis.pings == 1
    assert all([await probe() for _ in range(100)])
    assert redis.pings == 1  # within the ttl
    await asyncio.sleep(0.35)
    assert await probe()
    assert redis.pings == 2


async def test_a_failed_or_slow_ping_is_not_ok_and_recovery_is_seen_after_ttl() -> None:
    redis = Redis()
    probe = CachedProbe(redis.ping, ttl=0.1, timeout=0.2)
    redis.up = False
    assert not await probe()
    await asyncio.sleep(0.15)
    redis.up, redis.delay = True, 1.0  # hangs: longer than the timeout
    assert not await probe()
    await asyncio.sleep(0.15)
    redis.delay = 0.0
    assert await probe()
    assert probe.checks == 3
