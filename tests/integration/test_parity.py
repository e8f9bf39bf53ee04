"""Parity: a feed gives the same alerts through ``backtest`` and through Kafka + a live worker.

The feed is built so the tiny random model really produces alerts: every text is one the
model (through the real ``Scorer``) classes as negative or as not negative, bursts are
negative texts for three tickers, background is the rest. The feed is replayed into a
1-partition topic (so each entity's events arrive in event-time order, the condition under
which parity holds), a ``finpulse worker`` subprocess with unique topics, consumer group
and Redis prefix processes it, and its alert topic is compared with the backtest's alerts
on every deterministic field (wall-clock ``emitted_at`` excluded; evidence probabilities
are floats of differently padded batches, so evidence is compared by id).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from stream_app.config import Settings
from stream_app.devenv.embedded import Service, free_port
from stream_app.schemas import Alert, NewsItem

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 2, 13, 0, tzinfo=UTC)
TICKERS = ("AAA", "BBB", "CCC", "DDD")
BURSTS = (("AAA", 70), ("BBB", 130), ("CCC", 190))  # (ticker, minutes after T0)


def _parity_view(a: Alert) -> dict[str, Any]:
    key = a.parity_key()
    key["evidence"] = [e["id"] for e in key["evidence"]]
    return key


def _classify(settings: Settings, predictor: Any, texts: list[str]) -> tuple[list[str], list[str]]:
    """Texts the live Scorer calls negative, and the others (as whole NewsItems see them)."""
    from stream_app.core.scoring import Scorer

    items = [
        NewsItem.model_validate(
            {"id": f"c{i}", "headline": t, "tickers": ["AAA"], "published_at": T0}
        )
        for i, t in enumerate(texts)
    ]
    result = Scorer(predictor).score(items)
    neg = [s.headline for s in result.scored if s.sentiment == "negative"]
    other = [s.headline for s in result.scored if s.sentiment != "negative"]
    return neg, other


def _build_feed(path: Path, neg: list[str], other: list[str]) -> int:
    rng = random.Random(11)
    rows: list[dict[str, Any]] = []
    for i in range(4 * 60 * 2):  # four hours, one background item every 30 s
        when = T0 + timedelta(seconds=30 * i + rng.randrange(30))
        rows.append({"headline": rng.choice(other), "tickers": [rng.choice(TICKERS)],
                     "published_at": when})  # fmt: skip
    for ticker, minute in BURSTS:
        for j in range(14):
            when = T0 + timedelta(minutes=minute, seconds=25 * j + rng.randrange(20))
            rows.append({"headline": rng.choice(neg), "tickers": [ticker], "published_at": when})
    rows.sort(key=lambda r: r["published_at"])
    with path.open("w") as fh:
        for n, r in enumerate(rows):
            r = {"id": f"p{n:05d}", **r, "published_at": r["published_at"].isoformat()}
            fh.write(json.dumps(r) + "\n")
    return len(rows)


async def _collect_alerts(settings: Settings, want: int) -> list[Alert]:
    """Every distinct alert of the alert topic once ``want`` arrived, then a settle period
    more, so an extra alert is seen (and fails the comparison); raises on timeout."""
    from tests.support.worker_proc import collect, feed_alerts

    raw = await collect(settings, settings.topic_alerts,
                        lambda v: len({a.alert_id for a in feed_alerts(v)}) >= want,
                        within=240, settle=5.0)  # fmt: skip
    seen: dict[str, Alert] = {}
    for alert in feed_alerts(raw):
        seen.setdefault(alert.alert_id, alert)  # redeliveries repeat ids
    return sorted(seen.values(), key=lambda a: (a.fired_at, a.entity, a.state))


def test_backtest_and_live_worker_raise_the_same_alerts(
    broker: Service, redis_server: Service, unique: str, tiny_model_dir: Path, tmp_path: Path,
    data_dir: Path,
) -> None:  # fmt: skip
    from models.predictor import load_predictor
    from stream_app.offline.backtest import run_backtest
    from stream_app.offline.feeds import load_feed
    from stream_app.offline.replay import ReplayRecord, publish
    from stream_app.offline.synthetic import load_labelled_texts

    env = {
        "FINPULSE_BROKER": broker.url,
        "FINPULSE_REDIS_URL": redis_server.url,
        "FINPULSE_APP_ID": f"parity-{unique}",
        "FINPULSE_REDIS_KEY_PREFIX": f"parity-{unique}",
        "FINPULSE_TOPIC_NEWS": f"news-{unique}",
        "FINPULSE_TOPIC_SCORED": f"scored-{unique}",
        "FINPULSE_TOPIC_ALERTS": f"alerts-{unique}",
        "FINPULSE_TOPIC_DEADLETTER": f"dead-{unique}",
        "FINPULSE_TOPIC_ENTITY_EVENTS": f"events-{unique}",
        "FINPULSE_TOPIC_PARTITIONS": "1",
        "FINPULSE_BROKER_REBALANCE_TIMEOUT": "3",
        "FINPULSE_BROKER_SESSION_TIMEOUT": "10",
        "FINPULSE_MODEL_DIR": str(tiny_model_dir),
        "FINPULSE_DEVICE": "cpu",
        "FINPULSE_QUANTIZE": "off",
        "FINPULSE_WEB_PORT": str(free_port()),
    }
    settings = Settings(**{k.removeprefix("FINPULSE_").lower(): v for k, v in env.items()})  # type: ignore[arg-type]
    predictor = load_predictor(tiny_model_dir, device="cpu", quantize=False)
    texts = [t.text for t in load_labelled_texts(data_dir)]
    neg, other = _classify(settings, predictor, texts)
    assert len(neg) >= 3, "the tiny model calls too few texts negative to build bursts"

    feed_path = tmp_path / "feed.jsonl"
    _build_feed(feed_path, neg, other)
    feed = load_feed(feed_path, settings)
    expected = run_backtest(feed, settings, predictor, batch_size=settings.batch_size).alerts
    fired = {a.entity for a in expected if a.state == "firing"}
    assert {f"ticker:{t}" for t, _ in BURSTS} <= fired

    records = [ReplayRecord(f.event_ms, f.item.id.encode(), f.raw) for f in feed.items]
    from stream_app.service.broker import ensure_topics

    asyncio.run(ensure_topics(settings))
    asyncio.run(publish(records, settings, settings.topic_news, progress=False))

    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "finpulse", "worker"], env={**os.environ, **env},
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        got = asyncio.run(_collect_alerts(settings, len(expected)))
    finally:
        worker.terminate()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
        log.close()
    tail = (tmp_path / "worker.log").read_text(errors="replace")[-3000:]
    expected.sort(key=lambda a: (a.fired_at, a.entity, a.state))
    assert [_parity_view(a) for a in got] == [_parity_view(a) for a in expected], tail
