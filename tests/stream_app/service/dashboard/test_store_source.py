"""``StoreSource`` over the real stores (memory, and Redis on a real redis-server), filled by
the real Aggregator: the dashboard reads what the worker committed, with the protocol's
promises (firing entities survive any limit, series at the entity clock, newest first)."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from stream_app.core.aggregator import Aggregator, BatchOutcome
from stream_app.devenv.embedded import Service
from stream_app.schemas import EntityEvent
from stream_app.service.dashboard import DashboardApi
from stream_app.service.dashboard.store_source import StoreSource
from stream_app.store.base import WindowStore
from stream_app.store.memory import MemoryWindowStore
from stream_app.store.redis import RedisWindowStore
from tests.support.aggregator_cases import DS, WS, entity_event

T0 = 1_790_000_000_000
MIN = 60_000


def _event(i: int, entity: str, sentiment: str, t_ms: int) -> EntityEvent:
    """Distinct headlines: each event is a story of its own (novelty)."""
    headline = f"{entity} headline number {i} about something else entirely {i * 7919}"
    return entity_event(i, entity, sentiment, t_ms, headline)


def _events() -> list[EntityEvent]:
    """Calm ACME for 40 min, then a negative burst that fires; three other tickers whose
    news goes on for 10 more minutes, so their clocks are later than ACME's."""
    out = [_event(i, "ticker:ACME", "neutral", T0 + i * MIN) for i in range(40)]
    out += [
        _event(100 + i, "ticker:ACME", "negative", T0 + 40 * MIN + i * 5_000) for i in range(12)
    ]
    for k, sym in enumerate(("CALM", "QUIET", "STILL")):
        out += [
            _event(1000 * (k + 1) + i, f"ticker:{sym}", "neutral", T0 + i * MIN + k)
            for i in range(52)
        ]
    return sorted(out, key=lambda e: e.event_time_ms)


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, unique: str) -> AsyncIterator[WindowStore]:
    if request.param == "memory":
        yield MemoryWindowStore()
        return
    server: Service = request.getfixturevalue("redis_server")
    client = aioredis.Redis.from_url(server.url)
    s = RedisWindowStore(client, f"t{unique}", retention_seconds=WS.retention_seconds)
    yield s
    await s.close()


async def _filled(store: WindowStore) -> tuple[StoreSource, list[EntityEvent]]:
    events = _events()

    async def emit(outcome: BatchOutcome) -> None:
        return None

    agg = Aggregator(store, WS, DS)
    for i in range(0, len(events), 50):
        await agg.process(events[i : i + 50], emit)
    return StoreSource(store, WS.bucket_seconds * 1000), events


async def test_a_firing_entity_survives_any_limit(store: WindowStore) -> None:
    source, _ = await _filled(store)
    top = await source.entities(2)
    assert top[0].entity == "ticker:ACME"  # not among the 2 latest clocks
    assert top[0].status == "firing"
    assert top[0].firing_alert is not None
    assert top[0].firing_alert["entity"] == "ticker:ACME"
    assert len(top) == 2
    assert {s.entity for s in await source.entities(10)} == {
        "ticker:ACME", "ticker:CALM", "ticker:QUIET", "ticker:STILL",
    }  # fmt: skip


async def test_series_and_headlines_are_what_was_committed(store: WindowStore) -> None:
    source, events = await _filled(store)
    acme = [e for e in events if e.entity == "ticker:ACME"]
    series = await source.series("ticker:ACME", 30)
    assert series is not None
    clock = max(e.event_time_ms for e in acme)
    assert series.clock_ms == clock
    last = clock // MIN
    per_bucket = Counter(e.event_time_ms // MIN for e in acme if e.event_time_ms // MIN > last - 30)
    assert {b.bucket: b.counts.total for b in series.buckets} == dict(per_bucket)
    assert await source.series("ticker:NOPE", 30) is None

    heads = await source.headlines("ticker:ACME", 5)
    newest = sorted(acme, key=lambda e: -e.event_time_ms)[:5]
    assert [h.headline for h in heads] == [e.headline for e in newest]
    assert all(h.sentiment == "negative" for h in heads)


async def test_the_overview_over_a_real_store(store: WindowStore) -> None:
    source, _ = await _filled(store)
    overview = await DashboardApi(source, WS, DS).overview(10)
    assert overview.entities[0].entity == "ticker:ACME"
    assert overview.entities[0].status == "firing"
    assert [a.entity for a in overview.firing] == ["ticker:ACME"]
    # newest first: the episode fired, then escalated as the burst went on
    assert {a.entity for a in overview.recent} == {"ticker:ACME"}
    assert overview.recent[-1].state == "firing"
    assert {a.state for a in overview.recent[:-1]} <= {"escalated"}
