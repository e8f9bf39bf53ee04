"""``GET /api/overview``: risk order, the numbers of a row, firing and recent alerts, limits."""

from __future__ import annotations

import math

from stream_app.core.windows import Counts
from stream_app.service.dashboard.source import EntityState
from tests.stream_app.service.dashboard.conftest import DeskFactory
from tests.support.dashboard_source import MemoryDashboardSource
from tests.support.desk_data import CLOCK_MS, DETECTOR, WINDOW, burst_alert, v2_alert

MIN = 60_000


def _z(k: int, n: int, k0: int, n0: int) -> tuple[float, float]:
    """The detector's binomial z, written out here from its documented formula."""
    w, prior = DETECTOR.baseline_prior_weight, DETECTOR.baseline_prior_share
    p0 = (k0 + prior * w) / (n0 + w)
    return (k - n * p0) / math.sqrt(n * p0 * (1 - p0)), p0


def _state(entity: str, k: int, n: int, k0: int = 30, n0: int = 300, **kw: object) -> EntityState:
    return EntityState(entity, CLOCK_MS, Counts(k, n - k, 0), Counts(k0, n0 - k0, 0), "idle", **kw)  # type: ignore[arg-type]


def _fire(source: MemoryDashboardSource, entity: str, k: int, n: int) -> None:
    s = _state(entity, k, n)
    source.put_state(s)
    source.publish_alert(burst_alert(entity, entity.split(":")[-1], s.window, s.baseline, CLOCK_MS))


async def test_rows_are_ranked_firing_by_severity_then_by_z(desk_factory: DeskFactory) -> None:
    source = MemoryDashboardSource()
    source.put_state(_state("ticker:CALM", 1, 40))
    source.put_state(_state("ticker:WARM", 9, 30))  # high z, not firing
    source.put_state(_state("topic:earnings", 4, 20))
    source.put_state(_state("market", 0, 0))
    _fire(source, "ticker:LOWF", 7, 20)  # z ~ 3.9: low
    _fire(source, "ticker:CRIT", 40, 45)  # z way above 9: critical
    desk = await desk_factory(source)

    status, body = await desk.get("/api/overview")

    assert status == 200
    order = [r["entity"] for r in body["entities"]]
    assert order[:2] == ["ticker:CRIT", "ticker:LOWF"]
    # the rest by z, computed here independently
    rest = {
        "ticker:CALM": (1, 40),
        "ticker:WARM": (9, 30),
        "topic:earnings": (4, 20),
        "market": (0, 0),
    }

    # those the detector could fire on (enough negatives) first, each group by z
    def key(e: str) -> tuple[bool, float]:
        k, n = rest[e]
        return k < DETECTOR.min_negative_count, -(_z(k, n, 30, 300)[0] if n else 0.0)

    by_z = sorted(rest, key=key)
    assert order[2:] == by_z
    assert [r["rank"] for r in body["entities"]] == list(range(1, 7))
    assert [a["entity"] for a in body["firing"]] == ["ticker:CRIT", "ticker:LOWF"]
    assert [a["severity"] for a in body["firing"]] == ["critical", "low"]


async def test_a_row_carries_the_detector_numbers(desk_factory: DeskFactory) -> None:
    source = MemoryDashboardSource()
    source.put_state(_state("ticker:WARM", 9, 30, k0=40, n0=500))
    desk = await desk_factory(source)

    _, body = await desk.get("/api/overview")

    row = body["entities"][0]
    z, p0 = _z(9, 30, 40, 500)
    assert row["kind"] == "ticker"
    assert row["name"] == "WARM"
    assert (row["negative"], row["total"], row["status"]) == (9, 30, "idle")
    assert row["negative_share"] == 9 / 30
    assert math.isclose(row["baseline_share"], p0)
    assert math.isclose(row["z"], z)
    assert row["severity"] is None
    assert row["alert_id"] is None


async def test_volume_ratio_uses_the_filled_part_of_a_young_baseline(
    desk_factory: DeskFactory,
) -> None:
    wb = WINDOW.window_seconds // WINDOW.bucket_seconds  # 15
    full_span = (WINDOW.baseline_seconds - WINDOW.window_seconds) // WINDOW.bucket_seconds
    clock_bucket = CLOCK_MS // MIN
    source = MemoryDashboardSource()
    # old entity: 450 items over the whole baseline -> 450 * 15 / 225 = 30 per window
    source.put_state(_state("ticker:OLD", 3, 60, 45, 450))
    # young entity: first event 45 buckets before the window -> baseline spans 45 buckets
    first = (clock_bucket - wb - 44) * MIN
    source.put_state(_state("ticker:NEW", 3, 60, 9, 90, first_event_ms=first))
    source.put_state(_state("ticker:NONE", 3, 60, 0, 0))
    source.put_state(_state("ticker:THIN", 1, 1, 0, 14))  # 14 * 15 / 225 < 1 expected
    desk = await desk_factory(source)

    _, body = await desk.get("/api/overview")

    rows = {r["entity"]: r for r in body["entities"]}
    assert math.isclose(rows["ticker:OLD"]["volume_ratio"], 60 / (450 * wb / full_span))
    assert math.isclose(rows["ticker:NEW"]["volume_ratio"], 60 / (90 * wb / 45))
    assert rows["ticker:NONE"]["volume_ratio"] is None
    assert rows["ticker:THIN"]["volume_ratio"] is None


async def test_limit_bounds_the_rows_and_flags_truncation(desk_factory: DeskFactory) -> None:
    source = MemoryDashboardSource()
    for i in range(30):
        source.put_state(_state(f"ticker:T{i:02d}", i % 7, 40))
    _fire(source, "ticker:HOT", 30, 40)
    desk = await desk_factory(source)

    _, small = await desk.get("/api/overview?limit=5")
    _, full = await desk.get("/api/overview")

    assert len(small["entities"]) == 5
    assert small["truncated"] is True
    assert small["entities"][0]["entity"] == "ticker:HOT"  # firing survives any limit
    assert len(full["entities"]) == 31
    assert full["truncated"] is False


async def test_bad_limits_are_400(desk_factory: DeskFactory) -> None:
    desk = await desk_factory()
    for raw in ("0", "-1", "abc", "1.5", "1001", "99999999999"):
        status, body = await desk.get(f"/api/overview?limit={raw}")
        assert status == 400, raw
        assert body == {"error": "limit must be an integer in 1..1000"}


async def test_recent_alerts_newest_first_and_a_broken_one_skipped(
    desk_factory: DeskFactory,
) -> None:
    source = MemoryDashboardSource()
    for i, sym in enumerate(["AAA", "BBB", "CCC"]):
        s = _state(f"ticker:{sym}", 9, 20)
        source.put_state(s)
        source.publish_alert(burst_alert(s.entity, sym, s.window, s.baseline, CLOCK_MS + i * MIN))
    source.publish_alert({"entity": "ticker:AAA", "state": "firing", "severity": "low"})  # partial
    desk = await desk_factory(source)

    status, body = await desk.get("/api/alerts/recent?limit=3")
    _, overview = await desk.get("/api/overview")

    assert status == 200
    # the broken newest one is dropped, not a 500; the limit counts what the store returned
    assert [a["entity"] for a in body["alerts"]] == ["ticker:CCC", "ticker:BBB"]
    assert [a["entity"] for a in overview["recent"]] == ["ticker:CCC", "ticker:BBB", "ticker:AAA"]
    assert overview["recent"][0]["evidence"][0]["links"][0]["span"] is not None


async def test_schema_v2_alerts_keep_their_kind_reading_and_evidence_span(
    desk_factory: DeskFactory,
) -> None:
    source = MemoryDashboardSource()
    s = _state("ticker:BUZZ", 2, 60)
    source.put_state(s)
    base = burst_alert("ticker:BUZZ", "BUZZ", s.window, s.baseline, CLOCK_MS)
    wire = v2_alert(base, "volume", count=60, share=3.2, expected_count=18.75, repeats=4)
    wire["evidence"][1]["span"] = [0, 999]  # does not fit its headline
    source.publish_alert(wire)
    desk = await desk_factory(source)

    _, body = await desk.get("/api/overview")

    [alert] = body["firing"]
    assert (alert["kind"], alert["count"], alert["expected_count"]) == ("volume", 60, 18.75)
    assert alert["repeats"] == 4
    first, second = alert["evidence"][:2]
    assert first["headline"][slice(*first["span"])] == "BUZZ"
    assert second["span"] is None
    assert body["entities"][0]["alert_kind"] == "volume"


async def test_one_negative_story_does_not_outrank_a_real_rise(desk_factory: DeskFactory) -> None:
    source = MemoryDashboardSource()
    source.put_state(_state("ticker:ONE", 1, 1))  # 100 %, z ~ 2.9 against p0 ~ 0.10
    source.put_state(_state("ticker:RISE", 6, 30))  # 20 %, z ~ 1.8
    desk = await desk_factory(source)

    _, body = await desk.get("/api/overview")

    rows = body["entities"]
    assert rows[0]["z"] < rows[1]["z"]  # the premise: z alone would put ONE first
    assert [r["entity"] for r in rows] == ["ticker:RISE", "ticker:ONE"]
