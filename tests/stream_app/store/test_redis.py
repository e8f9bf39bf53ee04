"""RedisWindowStore against a real redis-server: same results as the memory store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from stream_app.core.aggregator import Aggregator
from stream_app.devenv.embedded import Service
from stream_app.store.base import StoreUnavailable
from stream_app.store.memory import MemoryWindowStore
from stream_app.store.redis import RedisWindowStore
from tests.support.aggregator_cases import DS, WS, alerts_of, make_events, run_batches
from tests.support.oracles import all_buckets

pytestmark = pytest.mark.integration
ENTITIES = ("market", "ticker:A", "ticker:BRK.B", "topic:m-a-investments")


@pytest.fixture
async def store(redis_server: Service, unique: str) -> AsyncIterator[RedisWindowStore]:
    client = aioredis.Redis.from_url(redis_server.url)
    s = RedisWindowStore(
        client, f"t{unique}", retention_seconds=WS.retention_seconds, retry_max_seconds=20
    )
    yield s
    await s.close()


async def _memory_run(events: list, size: int):  # type: ignore[no-untyped-def]
    mem = MemoryWindowStore()
    outs = await run_batches(Aggregator(mem, WS, DS), events, size)
    return mem, outs


@pytest.mark.parametrize("size", [1, 7, 10_000])
async def test_same_as_memory_store(store: RedisWindowStore, size: int) -> None:
    events = make_events(11, n=300, entities=ENTITIES, signed=True)
    outs = await run_batches(Aggregator(store, WS, DS), events, size)
    mem, mem_outs = await _memory_run(events, 10_000)
    assert alerts_of(outs) == alerts_of(mem_outs)
    assert alerts_of(outs)
    for e in ENTITIES:
        assert await store.entity_view(e) == await mem.entity_view(e)
        assert await all_buckets(store, e) == await all_buckets(mem, e)
    assert await store.firing_alerts() == await mem.firing_alerts()


async def test_redelivery_counts_once_and_keys_expire(store: RedisWindowStore) -> None:
    events = make_events(12, n=150, entities=ENTITIES, signed=True)
    agg = Aggregator(store, WS, DS)
    await run_batches(agg, events, 20)
    before = {e: await all_buckets(store, e) for e in ENTITIES}
    again = await run_batches(agg, events, 20)
    assert sum(o.applied for o in again) == 0
    assert not alerts_of(again)
    assert {e: await all_buckets(store, e) for e in ENTITIES} == before
    for key in store.keys("market"):
        ttl = await store.client.ttl(key)
        assert 0 < ttl <= 2 * WS.retention_seconds, key


async def test_lost_reply_is_recognised_by_token(store: RedisWindowStore) -> None:
    events = make_events(13, n=80, entities=ENTITIES)
    agg = Aggregator(store, WS, DS)
    real = store.commit
    sent: list = []

    async def commit_twice(commits):  # type: ignore[no-untyped-def]
        sent.append(commits)
        assert await real(commits) == []
        return await real(commits)  # as if the first reply was lost and the call retried

    store.commit = commit_twice  # type: ignore[method-assign]
    await run_batches(agg, events, 40)
    store.commit = real  # type: ignore[method-assign]
    mem, _ = await _memory_run(events, 40)
    for e in ENTITIES:
        assert await store.entity_view(e) == await mem.entity_view(e)


async def test_waits_out_a_redis_restart(redis_server: Service, store: RedisWindowStore) -> None:
    events = make_events(14, n=120, entities=ENTITIES)
    agg = Aggregator(store, WS, DS)
    await run_batches(agg, events[:60], 60)
    redis_server.stop()
    loop = asyncio.get_running_loop()
    restart = loop.run_in_executor(None, _restart_later, redis_server)
    try:
        await run_batches(agg, events[60:], 60)  # blocks in retries until Redis is back
    finally:
        await restart
    mem, _ = await _memory_run(events, 60)
    for e in ENTITIES:
        assert await store.entity_view(e) == await mem.entity_view(e)


def _restart_later(svc: Service) -> None:
    import time

    time.sleep(1.0)
    svc.start()


async def test_unreachable_beyond_budget_raises(unique: str) -> None:
    from stream_app.devenv.embedded import free_port

    client = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}")
    s = RedisWindowStore(client, f"t{unique}", retention_seconds=7200, retry_max_seconds=0.3)
    agg = Aggregator(s, WS, DS)
    with pytest.raises(StoreUnavailable, match="unreachable"):
        await run_batches(agg, make_events(15, n=5), 5)
    await s.close()


async def test_pruning_keeps_memory_bounded(store: RedisWindowStore) -> None:
    # a long sparse stream: stored buckets never exceed retention
    from stream_app.schemas import EntityEvent

    t0 = 1_700_000_000_000
    events = [
        EntityEvent(
            entity="market",
            id=f"x{i}",
            event_time_ms=t0 + i * 600_000,
            sentiment="neutral",
            negative_prob=0.1,
            headline="h",
            model_version="m",
        )
        for i in range(60)
    ]
    await run_batches(Aggregator(store, WS, DS), events, 10)
    buckets = await all_buckets(store, "market")
    assert len(buckets) <= WS.retention_seconds // WS.bucket_seconds
    assert min(buckets) >= (events[-1].event_time_ms - WS.retention_seconds * 1000) // 60_000
    seen_index = next(k for k in store.keys("market") if k.endswith(":it"))
    ids = await store.client.zcard(seen_index)
    assert 0 < ids <= WS.retention_seconds // 600 + 1


def test_entity_with_braces_refused() -> None:
    s = RedisWindowStore(aioredis.Redis(), "p", retention_seconds=60)
    with pytest.raises(ValueError, match="braces"):
        s.keys("ticker:{A}")
