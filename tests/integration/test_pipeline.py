"""End to end through a real ``finpulse worker`` subprocess, tansu and Redis.

Each test has its own topics, consumer group and Redis prefix. The model is the tiny
random one: its predictions are arbitrary, so the alert test picks its texts by what the
model itself says (through the real ``Scorer``) -- it tests the pipeline, not the model.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from stream_app.schemas import Alert, DeadLetter, ScoredNews
from tests.support.worker_proc import (
    calm_news,
    collect,
    http_get,
    http_json,
    metric_sum,
    produce,
    split_by_model,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

TOKEN = "pipeline-test-token"
# Event times a few hours back: real clocks, no future_event, well inside any retention.
T0 = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)


def _story(i: int) -> str:
    """A headline of its own: distinct words, so no two items are one story (novelty)."""
    rng = random.Random(f"story-{i}")
    return " ".join("".join(rng.choices("bcdfghjklmnpqrstvwxz", k=7)) for _ in range(6))


def _news(i: int, tickers: list[str], when: datetime, headline: str | None = None) -> bytes:
    return json.dumps(
        {
            "id": f"n{i}",
            "headline": headline or _story(i),
            "tickers": tickers,
            "published_at": when.isoformat(),
        }
    ).encode()


def _wait(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


async def test_scored_counts_match_redis_windows_and_web_api(start_worker: Any) -> None:
    w = start_worker(api_token=TOKEN)
    s = w.settings
    rng = random.Random(1)
    n = 60
    values = [
        _news(
            i, rng.sample(["AAA", "BBB", "CCC"], rng.randint(1, 2)), T0 + timedelta(seconds=5 * i)
        )
        for i in range(n)
    ]
    await produce(s, values, keys=[f"n{i}".encode() for i in range(n)])

    raw = await collect(s, s.topic_scored, lambda v: len({json.loads(x)["id"] for x in v}) >= n)
    scored = {x.id: x for x in (ScoredNews.model_validate_json(v) for v in raw)}
    assert sorted(scored) == sorted(f"n{i}" for i in range(n))

    # Window counts computed independently from the scored records (all 5 minutes of
    # event time are inside the 15-minute window).
    expected: dict[str, Counter[str]] = {}
    for x in scored.values():
        for entity in x.entities:
            expected.setdefault(entity, Counter())[x.sentiment] += 1
    assert {"ticker:AAA", "ticker:BBB", "ticker:CCC", "market"} <= set(expected)

    def window(entity: str) -> dict[str, int] | None:
        status, body = http_json(f"{w.base_url}/entities/{entity}", TOKEN)
        return body["window"] if status == 200 else None

    for entity, counts in expected.items():
        want = {"negative": counts["negative"], "neutral": counts["neutral"],
                "positive": counts["positive"], "repeats": 0}  # fmt: skip
        got = _wait(
            lambda e=entity, want=want: (
                (win := window(e)) is not None and {k: win[k] for k in want} == want
            ),
            60,
            f"window of {entity} = {want}",
        )
        assert got

    # Web API edges on the live server.
    assert http_get(f"{w.base_url}/entities/ticker:AAA")[0] == 401
    assert http_get(f"{w.base_url}/entities/ticker:AAA", "wrong")[0] == 401
    assert http_get(f"{w.base_url}/entities/not-an-entity", TOKEN)[0] == 400
    assert http_get(f"{w.base_url}/entities/ticker:ZZZZ", TOKEN)[0] == 404
    status, alerts = http_json(f"{w.base_url}/alerts", TOKEN)
    assert status == 200
    assert isinstance(alerts["firing"], list)
    status, health = http_json(f"{w.base_url}/health")
    assert status == 200
    assert TOKEN not in json.dumps(health)
    status, body = http_get(f"{w.base_url}/metrics", TOKEN)
    metrics = body.decode()
    assert status == 200
    assert metric_sum(metrics, "finpulse_records_in_total") == n
    assert metric_sum(metrics, "finpulse_scored_total") == n
    assert metric_sum(metrics, "finpulse_inference_seconds_count") >= 1
    assert metric_sum(metrics, "finpulse_publish_to_scored_seconds_count") == n
    assert f'finpulse_consumer_lag{{partition="0",topic="{s.topic_news}"}}' in metrics
    assert TOKEN not in metrics


async def test_bad_records_are_dead_lettered_and_counts_are_conserved(start_worker: Any) -> None:
    w = start_worker(max_headline_chars=200)
    s = w.settings
    good = [_news(i, ["GOOD"], T0 + timedelta(seconds=i)) for i in range(6)]
    bad = {
        "invalid_json": b'{"id": "b1", "headline": ',
        "missing_field": json.dumps({"headline": "no id", "published_at": T0.isoformat()}).encode(),
        "empty_headline": json.dumps({"id": "b3", "headline": "   "}).encode(),
        "wrong_type": json.dumps({"id": "b4", "headline": 42}).encode(),
        "not_utf8": b'{"id": "b5", "headline": "caf\xe9"}',
        "too_long": json.dumps({"id": "b6", "headline": "x" * 500}).encode(),
    }
    mixed = [good[0], *list(bad.values())[:3], *good[1:4], *list(bad.values())[3:], *good[4:]]
    await produce(s, mixed)

    dead_raw = await collect(s, s.topic_deadletter, lambda v: len(v) >= len(bad))
    scored_raw = await collect(s, s.topic_scored, lambda v: len(v) >= len(good))
    dead = [DeadLetter.model_validate_json(v) for v in dead_raw]
    assert Counter(d.reason for d in dead) == Counter(list(bad))
    for d in dead:
        assert d.original_bytes() == bad[d.reason]
        assert d.source_topic == s.topic_news
        assert d.source_offset is not None
    assert {ScoredNews.model_validate_json(v).id for v in scored_raw} == {f"n{i}" for i in range(6)}

    # The worker is alive and its counters conserve records: in = scored + dead-lettered.
    assert w.running
    status, body = http_get(f"{w.base_url}/metrics")
    metrics = body.decode()
    assert status == 200
    records_in = metric_sum(metrics, "finpulse_records_in_total")
    assert records_in == len(mixed)
    assert records_in == metric_sum(metrics, "finpulse_scored_total") + metric_sum(
        metrics, "finpulse_dead_letters_total"
    )
    assert http_get(f"{w.base_url}/health")[0] == 200


async def test_the_same_event_delivered_twice_is_counted_once(start_worker: Any) -> None:
    w = start_worker()
    s = w.settings
    one = _news(1, ["DUP"], T0)
    other = _news(2, ["DUP"], T0 + timedelta(seconds=30))
    await produce(s, [one, one, other, one])

    def view() -> Any:
        status, body = http_json(f"{w.base_url}/entities/ticker:DUP")
        if status != 200 or body["duplicate_events"] < 2:
            return None
        return body

    body = _wait(view, 60, "two duplicates of ticker:DUP recorded")
    window = body["window"]
    assert window["volume"] == 2
    _, text = http_get(f"{w.base_url}/metrics")
    # every entity of the item (ticker, topic, market) saw the two repeats
    assert metric_sum(text.decode(), "finpulse_duplicate_events_total") == 2 * 3


async def test_negative_burst_fires_one_alert_then_resolves(
    start_worker: Any, tiny_model_dir: Path, data_dir: Path
) -> None:
    from stream_app.offline.synthetic import load_labelled_texts

    rng = random.Random(5)
    texts = [t.text for t in rng.sample(load_labelled_texts(data_dir), 2000)]
    negative, calm = split_by_model(tiny_model_dir, texts, T0)
    # The random model rarely says "negative"; burst items may repeat a text (new ids).
    assert negative, "the tiny model must call at least one text negative"
    assert len(calm) >= 50, "the tiny model must call some texts not negative"

    w = start_worker(
        topic_partitions=1,  # each entity's events in event-time order
        bucket_seconds=60,
        window_seconds=300,
        baseline_seconds=3600,
        retention_seconds=7200,
        allowed_lateness_seconds=120,
        min_negative_count=5,
        fire_z=3.0,
        resolve_z=1.0,
        share_floor=0.5,
        resolve_share_floor=0.2,
        cooldown_seconds=60,
    )
    s = w.settings
    rows = calm_news(rng, calm, T0, range(60))  # 60 min of calm news
    # 12 negative BURST items in 3 minutes
    burst_start = T0 + timedelta(minutes=60)
    for k in range(12):
        rows.append(
            (burst_start + timedelta(seconds=15 * k), ["BURST"], negative[k % len(negative)])
        )
    # 30 more minutes of calm news: the burst leaves the window and the alert resolves
    rows += calm_news(rng, calm, T0, range(63, 93))
    rows.sort(key=lambda r: r[0])
    values = [_news(i, tickers, when, text) for i, (when, tickers, text) in enumerate(rows)]
    await produce(s, values)

    def burst_states(values: list[bytes]) -> list[str]:
        alerts = [Alert.model_validate_json(v) for v in values]
        return [a.state for a in alerts if a.entity == "ticker:BURST"]

    raw = await collect(
        s,
        s.topic_alerts,
        lambda v: (
            (b := burst_states(v))[:1] == ["firing"]
            and b[-1:] == ["resolved"]
            and set(b[1:-1]) <= {"escalated"}
        ),
        within=120,
        settle=2.0,
    )
    scored = await collect(s, s.topic_scored, lambda v: len(v) >= len(values), within=120)
    assert len({json.loads(v)["id"] for v in scored}) == len(values)
    alerts = {a.alert_id: a for a in (Alert.model_validate_json(v) for v in raw)}.values()
    tickers = [(a.entity, a.state) for a in alerts if a.entity.startswith("ticker:")]
    # one episode: it fires, may escalate as the burst grows, and resolves
    assert tickers[0] == ("ticker:BURST", "firing")
    assert tickers[-1] == ("ticker:BURST", "resolved")
    assert set(tickers[1:-1]) <= {("ticker:BURST", "escalated")}
    firing = next(a for a in alerts if a.entity == "ticker:BURST" and a.state == "firing")
    assert burst_start <= firing.fired_at < burst_start + timedelta(minutes=3)
    assert firing.negative_count >= 5
    assert {e.headline for e in firing.evidence} <= set(negative)
    status, view = http_json(f"{w.base_url}/entities/ticker:BURST")
    assert status == 200
    assert view["kinds"]["negative"]["status"] != "firing"
