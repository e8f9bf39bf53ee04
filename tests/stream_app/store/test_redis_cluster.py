"""RedisWindowStore on a real 3-primary Redis Cluster: same results as the memory store.

Proves the cluster layout claim of stream_app/store_redis.py: all keys of one entity hash
to one slot (so each Lua call is single-slot), entities spread over the nodes, and the
firing index is a single key touched only by single-key commands.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr
from redis.asyncio.cluster import RedisCluster

from stream_app.config import Settings
from stream_app.core.aggregator import Aggregator
from stream_app.devenv.embedded import Service
from stream_app.store.memory import MemoryWindowStore
from stream_app.store.redis import RedisWindowStore
from tests.support.aggregator_cases import DS, WS, alerts_of, make_events, run_batches
from tests.support.oracles import all_buckets

pytestmark = pytest.mark.integration
ENTITIES = (
    "market",
    "ticker:A",
    "ticker:BRK.B",
    "ticker:MSFT",
    "ticker:XOM",
    "topic:m-a-investments",
    "topic:earnings",
)


@pytest.fixture
async def cluster_store(
    redis_cluster: list[Service], unique: str
) -> AsyncIterator[RedisWindowStore]:
    settings = Settings(  # type: ignore[call-arg]
        redis_url=SecretStr(f"redis://127.0.0.1:{redis_cluster[1].port}/0"),
        redis_cluster=True,
        redis_key_prefix=f"t{unique}",
        window=WS,
        detector=DS,
    )
    store = RedisWindowStore.from_settings(settings)
    assert isinstance(store.client, RedisCluster)
    yield store
    await store.close()


async def test_keys_of_an_entity_share_one_slot_and_entities_spread(
    cluster_store: RedisWindowStore,
) -> None:
    client = cluster_store.client
    assert isinstance(client, RedisCluster)
    slots = {}
    for e in ENTITIES:
        entity_slots = {await client.cluster_keyslot(k) for k in cluster_store.keys(e)}
        assert len(entity_slots) == 1, e
        slots[e] = entity_slots.pop()
    nodes = {str(client.get_node_from_key(cluster_store.keys(e)[0])) for e in ENTITIES}
    assert len(nodes) >= 2, "test entities should exercise more than one node"


@pytest.mark.parametrize("size", [7, 10_000])
async def test_same_as_memory_store_on_a_cluster(
    cluster_store: RedisWindowStore, size: int
) -> None:
    events = make_events(21, n=300, entities=ENTITIES)
    outs = await run_batches(Aggregator(cluster_store, WS, DS), events, size)
    mem = MemoryWindowStore()
    mem_outs = await run_batches(Aggregator(mem, WS, DS), events, 10_000)
    assert alerts_of(outs) == alerts_of(mem_outs)
    assert alerts_of(outs), "the case must exercise alerts (firing index, evidence)"
    for e in ENTITIES:
        assert await cluster_store.entity_view(e) == await mem.entity_view(e)
        assert await all_buckets(cluster_store, e) == await all_buckets(mem, e)
    assert await cluster_store.firing_alerts() == await mem.firing_alerts()


async def test_redelivery_on_a_cluster_counts_once(cluster_store: RedisWindowStore) -> None:
    events = make_events(22, n=150, entities=ENTITIES)
    agg = Aggregator(cluster_store, WS, DS)
    await run_batches(agg, events, 25)
    before = {e: await all_buckets(cluster_store, e) for e in ENTITIES}
    again = await run_batches(agg, events, 25)
    assert sum(o.applied for o in again) == 0
    assert {e: await all_buckets(cluster_store, e) for e in ENTITIES} == before


async def test_scripts_forgotten_by_the_nodes_are_reloaded(
    cluster_store: RedisWindowStore,
) -> None:
    events = make_events(23, n=60, entities=ENTITIES)
    agg = Aggregator(cluster_store, WS, DS)
    await run_batches(agg, events[:30], 30)
    await cluster_store.client.script_flush()  # what a restarted or failed-over node looks like
    await run_batches(agg, events[30:], 30)
    mem = MemoryWindowStore()
    await run_batches(Aggregator(mem, WS, DS), events, 60)
    for e in ENTITIES:
        assert await all_buckets(cluster_store, e) == await all_buckets(mem, e)
