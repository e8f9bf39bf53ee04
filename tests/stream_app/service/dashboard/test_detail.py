"""``/api/entities/{entity}/series`` and ``/headlines``: dense points, rolling window sums
checked against brute force, newest-first headlines, link spans, entity validation."""

from __future__ import annotations

import random

import pytest

from stream_app.core.windows import Counts
from stream_app.service.dashboard.source import EntityState, Headline, HeadlineLink
from tests.stream_app.service.dashboard.conftest import DeskFactory
from tests.support.dashboard_source import MemoryDashboardSource
from tests.support.desk_data import CLOCK_MS, WINDOW

MIN = 60_000
WB = WINDOW.window_seconds // WINDOW.bucket_seconds


def _random_buckets(source: MemoryDashboardSource, entity: str, seed: int) -> dict[int, Counts]:
    rng = random.Random(seed)
    last = CLOCK_MS // MIN
    stored: dict[int, Counts] = {}
    for b in range(last - 400, last + 1):
        if rng.random() < 0.4:
            c = Counts(rng.randrange(4), rng.randrange(4), rng.randrange(3), rng.randrange(10**6))
            stored[b] = c
            source.put_bucket(entity, b, c)
    source.put_state(EntityState(entity, CLOCK_MS, Counts(), Counts(), "idle"))
    return stored


async def test_series_points_and_window_sums_match_brute_force(desk_factory: DeskFactory) -> None:
    source = MemoryDashboardSource()
    stored = _random_buckets(source, "ticker:ACME", seed=3)
    desk = await desk_factory(source)

    status, body = await desk.get("/api/entities/ticker:ACME/series?buckets=120")

    assert status == 200
    last = CLOCK_MS // MIN
    points = body["points"]
    assert [p["start_ms"] for p in points] == [b * MIN for b in range(last - 119, last + 1)]
    for p in points:
        b = p["start_ms"] // MIN
        own = stored.get(b, Counts())
        assert (p["negative"], p["neutral"], p["positive"]) == (own.neg, own.neu, own.pos)
        in_window = [stored[x] for x in range(b - WB + 1, b + 1) if x in stored]
        k = sum(c.neg for c in in_window)
        n = sum(c.total for c in in_window)
        assert (p["window_negative"], p["window_total"]) == (k, n), b
        assert p["window_share"] == (k / n if n else None)
        assert p["negative_share"] == (own.neg / own.total if own.total else None)
    assert body["window_start_ms"] == (last - WB + 1) * MIN
    assert body["clock_ms"] == CLOCK_MS


async def test_series_limits_and_unknown_entity(desk_factory: DeskFactory) -> None:
    source = MemoryDashboardSource()
    _random_buckets(source, "market", seed=1)
    desk = await desk_factory(source)

    status, body = await desk.get("/api/entities/market/series")
    assert status == 200
    assert len(body["points"]) == 180
    retention = WINDOW.retention_seconds // WINDOW.bucket_seconds
    cap = min(1440, retention)
    assert (await desk.get("/api/overview"))[1]["series_buckets_max"] == cap
    assert (await desk.get(f"/api/entities/market/series?buckets={cap}"))[0] == 200
    status, body = await desk.get(f"/api/entities/market/series?buckets={cap + 1}")
    assert status == 400
    assert body["error"] == f"buckets must be an integer in 1..{cap}"
    status, body = await desk.get("/api/entities/ticker:NOPE/series")
    assert (status, body) == (404, {"error": "unknown entity"})


@pytest.mark.parametrize(
    "entity",
    [
        "TSLA",
        "ticker:tsla",
        "ticker:",
        "topic:Earnings",
        "topic:a--b",
        "markets",
        "ticker:TSLA%2F..%2Fx",
        "ticker:" + "A" * 200,
        "%20market",
        "market%0A",
        "ticker:TSLA%0A",
    ],
)
async def test_malformed_entities_are_400(desk_factory: DeskFactory, entity: str) -> None:
    desk = await desk_factory()
    for what in ("series", "headlines"):
        status, body = await desk.get(f"/api/entities/{entity}/{what}")
        assert status == 400, (entity, what)
        assert body == {"error": "invalid entity: expected market, ticker:<SYMBOL> or topic:<slug>"}


async def test_headlines_newest_first_with_spans_checked(desk_factory: DeskFactory) -> None:
    source = MemoryDashboardSource()
    entity = "ticker:TSLA"
    text = "📉 Tesla recalls 2 million vehicles"  # the emoji is one code point
    source.add_headline(
        entity,
        Headline(
            "old", "Tesla names new CFO", CLOCK_MS - 5 * MIN, "neutral", 0.1,
            (HeadlineLink(entity, "name", (0, 5), 0.9),),
        ),
    )  # fmt: skip
    source.add_headline(
        entity,
        Headline(
            "new", text, CLOCK_MS, "negative", 0.93,
            (
                HeadlineLink(entity, "name", (2, 7), 0.9),
                HeadlineLink("ticker:F", "name", (30, 99), 0.2),  # past the end
                HeadlineLink("market", "field", None, None),
            ),
            "first",
        ),
    )  # fmt: skip
    for i in range(30):
        source.add_headline(
            entity, Headline(f"x{i}", f"older {i}", CLOCK_MS - (60 + i) * MIN, "neutral", 0.1)
        )
    desk = await desk_factory(source)

    status, body = await desk.get(f"/api/entities/{entity}/headlines?limit=3")

    assert status == 200
    heads = body["headlines"]
    assert [h["id"] for h in heads] == ["new", "old", "x0"]
    links = heads[0]["links"]
    assert links[0]["span"] == [2, 7]
    assert text[2:7] == "Tesla"
    assert links[1]["span"] is None
    assert links[1]["entity"] == "ticker:F"
    assert links[2] == {"entity": "market", "via": "field", "span": None, "relevance": None}
    assert heads[0]["novelty"] == "first"
    assert heads[0]["published_at_ms"] == CLOCK_MS
    assert (await desk.get(f"/api/entities/{entity}/headlines?limit=101"))[0] == 400
    _, default = await desk.get(f"/api/entities/{entity}/headlines")
    assert len(default["headlines"]) == 20
    _, unknown = await desk.get("/api/entities/ticker:NOPE/headlines")
    assert unknown == {"entity": "ticker:NOPE", "headlines": []}
