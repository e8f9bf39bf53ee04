"""The read-only web API handlers over a real (in-memory) window store filled by the Aggregator."""

from __future__ import annotations

import json

import pytest

from stream_app.config import DetectorSettings, WindowSettings
from stream_app.core.aggregator import Aggregator, BatchOutcome
from stream_app.schemas import EntityEvent, ms_to_datetime
from stream_app.service.health import HealthState
from stream_app.service.metrics import Metrics
from stream_app.service.web import WebApi
from stream_app.store.base import StoreUnavailable
from stream_app.store.memory import MemoryWindowStore
from tests.support.aggregator_cases import entity_event

T0 = 1_790_000_000_000
TOKEN = "s3cret-token-value"
WS = WindowSettings(
    bucket_seconds=60, window_seconds=600, baseline_seconds=3600, retention_seconds=7200
)
DS = DetectorSettings(min_negative_count=3, cooldown_seconds=60)


async def _filled_store() -> tuple[MemoryWindowStore, list[EntityEvent]]:
    """A baseline of calm news for ticker:ACME then a negative burst that fires."""
    events = [entity_event(i, "ticker:ACME", "neutral", T0 + i * 60_000) for i in range(40)]
    t = T0 + 40 * 60_000
    events += [entity_event(100 + i, "ticker:ACME", "negative", t + i * 5_000) for i in range(12)]
    store = MemoryWindowStore()

    async def emit(outcome: BatchOutcome) -> None:
        return None

    await Aggregator(store, WS, DS).process(events, emit)
    return store, events


def _api(store: MemoryWindowStore, *, token: str | None = None, ping_ok: bool = True) -> WebApi:
    async def ping() -> bool:
        if not ping_ok:
            raise ConnectionError("redis down")
        return True

    metrics = Metrics()
    metrics.records_in.inc(7)
    return WebApi(
        store=lambda: store,
        metrics=metrics,
        health=HealthState(app_id="finpulse-test", model_version="m1"),
        api_token=token,
        ping=ping,
    )


async def test_entity_view_reports_the_window_counts() -> None:
    store, events = await _filled_store()
    resp = await _api(store).entity("ticker:ACME", None)
    assert resp.status == 200
    body = json.loads(resp.body)
    window = body["window"]
    # The 600 s window ending at the last event holds exactly the burst's 12 negatives
    # and the calm items of the last 10 minutes before it, computed independently here.
    clock = max(e.event_time_ms for e in events)
    lo = (clock // 60_000 - 10 + 1) * 60_000
    in_window = [e for e in events if e.event_time_ms >= lo]
    assert window["negative"] == sum(e.sentiment == "negative" for e in in_window)
    assert window["neutral"] == sum(e.sentiment == "neutral" for e in in_window)
    assert body["clock"] == ms_to_datetime(clock).isoformat()
    assert body["kinds"]["negative"]["status"] == "firing"
    # the series: one point per bucket, the last one holding the last event's bucket
    series = body["series"]
    assert len(series) == 60
    last = [e for e in events if e.event_time_ms // 60_000 == clock // 60_000]
    assert series[-1]["volume"] == len(last)
    assert sum(p["negative"] for p in series) == sum(e.sentiment == "negative" for e in events)


@pytest.mark.parametrize(
    "name", ["ticker:acme", "../etc/passwd", "ticker:", "TICKER:ACME", "x" * 300]
)
async def test_invalid_entity_name_is_400(name: str) -> None:
    store, _ = await _filled_store()
    resp = await _api(store).entity(name, None)
    assert resp.status == 400


async def test_unknown_entity_is_404() -> None:
    store, _ = await _filled_store()
    resp = await _api(store).entity("ticker:NOPE", None)
    assert resp.status == 404


async def test_alerts_lists_the_firing_alert() -> None:
    store, _ = await _filled_store()
    resp = await _api(store).alerts(None)
    assert resp.status == 200
    firing = json.loads(resp.body)["firing"]
    assert [a["entity"] for a in firing] == ["ticker:ACME"]
    # the episode's latest announcement: it fired and may have escalated since
    assert firing[0]["state"] in ("firing", "escalated")
    assert (firing[0]["kind"], firing[0]["episode"]) == ("negative", 1)


# The last two: non-ASCII bytes as aiohttp hands them over (surrogate escapes), and text.
NON_ASCII = [b"Bearer \xc3\xa9\xff".decode("utf-8", "surrogateescape"), "Bearer t\u00f6ken"]


@pytest.mark.parametrize("header", [None, "", "Bearer wrong", f"Basic {TOKEN}", TOKEN, *NON_ASCII])
async def test_token_required_when_configured(header: str | None) -> None:
    store, _ = await _filled_store()
    api = _api(store, token=TOKEN)
    for resp in (
        await api.metrics(header),
        await api.entity("ticker:ACME", header),
        await api.alerts(header),
    ):
        assert resp.status == 401
        assert TOKEN.encode() not in resp.body


async def test_right_token_is_accepted() -> None:
    store, _ = await _filled_store()
    api = _api(store, token=TOKEN)
    assert (await api.entity("ticker:ACME", f"Bearer {TOKEN}")).status == 200
    assert (await api.alerts(f"bearer {TOKEN}")).status == 200
    metrics = await api.metrics(f"Bearer {TOKEN}")
    assert metrics.status == 200
    assert metrics.content_type.startswith("text/plain")
    assert b"finpulse_records_in_total 7.0" in metrics.body


async def test_health_is_open_and_reveals_no_token() -> None:
    store, _ = await _filled_store()
    resp = await _api(store, token=TOKEN).health()
    assert resp.status == 200
    assert json.loads(resp.body)["status"] == "ok"
    assert TOKEN.encode() not in resp.body


async def test_health_degraded_when_redis_unreachable_or_agent_failing() -> None:
    store, _ = await _filled_store()
    resp = await _api(store, ping_ok=False).health()
    assert resp.status == 503
    assert json.loads(resp.body)["redis"] == "unreachable"

    api = _api(store)
    api._health.batch_failed("aggregate", TimeoutError("x"))
    resp = await api.health()
    assert resp.status == 503
    assert json.loads(resp.body)["failing_agents"] == {"aggregate": "TimeoutError"}
    api._health.batch_ok("aggregate")
    assert (await api.health()).status == 200


class DownStore:
    """A store whose Redis is unreachable, as ``RedisWindowStore`` reports it."""

    async def entity_view(self, entity: str) -> None:
        raise StoreUnavailable("Redis unreachable for 0s during entity_view")

    async def firing_alerts(self) -> None:
        raise ConnectionError("Connection refused")


async def test_store_outage_is_a_503_not_an_error() -> None:
    api = WebApi(
        store=lambda: DownStore(),
        metrics=Metrics(),
        health=HealthState(app_id="a", model_version="m"),
        api_token=None,
    )
    for resp in (await api.entity("market", None), await api.alerts(None)):
        assert resp.status == 503
        assert json.loads(resp.body) == {"error": "store unavailable, retry later"}
