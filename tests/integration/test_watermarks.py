"""Event-time watermarks against a live worker: arrival order and clocks no longer matter.

* A fast replay into a 4-partition news topic keyed by ticker (3 hours of event time in
  about a second, one worker): no entity event is late, every entity's count is exact, and
  the alerts of every entity -- market and topics included -- equal the backtest's.
* One record whose ``published_at`` is 50 minutes ahead (inside the future skew a producer
  may have) does not move the shared clocks: nothing after it is dead-lettered as late.
* A steady flow on one news partition is not held back by an empty one: the empty one
  goes idle once the flow is one grace old, and items are counted while it goes on.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from stream_app.schemas import DeadLetter, NewsItem, ScoredNews
from tests.support.fault_harness import RedisView, read_topic, wait_for
from tests.support.worker_proc import collect, feed_alerts, http_get, metric_sum, produce

pytestmark = pytest.mark.integration

TICKERS = [f"T{chr(65 + i)}{chr(65 + i)}" for i in range(20)]


def _texts(model_dir: Path, data_dir: Path) -> tuple[list[str], list[str]]:
    """Distinct corpus texts the real Scorer over the tiny model calls negative / not."""
    from models.predictor import load_predictor
    from stream_app.core.scoring import Scorer
    from stream_app.offline.synthetic import load_labelled_texts

    texts = list(dict.fromkeys(t.text for t in load_labelled_texts(data_dir)))
    texts = random.Random(3).sample(texts, 3000)
    items = [NewsItem(id=f"c{i}", headline=t, published_at=datetime.now(UTC))  # type: ignore[call-arg]
             for i, t in enumerate(texts)]  # fmt: skip
    scored = Scorer(load_predictor(model_dir, device="cpu", quantize=False)).score(items).scored
    neg = [s.headline for s in scored if s.sentiment == "negative"]
    calm = [s.headline for s in scored if s.sentiment != "negative"]
    return neg, calm


def _feed(neg: list[str], calm: list[str], start: datetime, n: int = 1500) -> list[dict[str, Any]]:
    """``n`` news over 3 hours, one ticker each, with negative bursts on two tickers."""
    rng = random.Random(11)
    rows = []
    negs, calms = iter(neg), iter(calm)
    for i in range(n):
        at = start + timedelta(seconds=i * 3 * 3600 / n)
        ticker = rng.choice(TICKERS)
        text = next(calms)
        if 0.5 <= i / n < 0.53:
            ticker, text = "TAA", next(negs)
        elif 0.8 <= i / n < 0.83:
            ticker, text = "TBB", next(negs)
        rows.append({"id": f"w{i}", "headline": text, "tickers": [ticker],
                     "published_at": at.isoformat()})  # fmt: skip
    return rows


async def test_fast_replay_into_four_partitions_is_exact_and_matches_the_backtest(
    start_worker: Any, tiny_model_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    from models.predictor import load_predictor
    from stream_app.offline.backtest import run_backtest
    from stream_app.offline.feeds import load_feed

    neg, calm = _texts(tiny_model_dir, data_dir)
    assert len(neg) >= 100
    start = datetime(2026, 11, 3, 12, tzinfo=UTC)
    rows = _feed(neg, calm, start)
    kinds = "negative,positive,volume"
    w = start_worker(topic_partitions=4, detect=kinds, watermark_idle_seconds=1)
    s = w.settings
    stamps = [int(datetime.fromisoformat(r["published_at"]).timestamp() * 1000) for r in rows]
    await produce(s, [json.dumps(r).encode() for r in rows],
                  keys=[r["tickers"][0].encode() for r in rows], timestamps_ms=stamps)  # fmt: skip

    raw = await collect(s, s.topic_scored, lambda v: len({json.loads(x)["id"] for x in v})
                        >= len(rows), within=180)  # fmt: skip
    scored = {x.id: x for x in (ScoredNews.model_validate_json(v) for v in raw)}
    assert len(scored) == len(rows)
    expected = Counter(e for x in scored.values() for e in x.entities)
    view = RedisView(s)
    try:

        async def all_counted() -> bool:
            return all([await view.bucket_total(e) == n for e, n in expected.items()])

        await wait_for(all_counted, 120, "every entity's count exact")
    finally:
        await view.close()
    dead = [DeadLetter.model_validate_json(v) for v in await read_topic(s, s.topic_deadletter)]
    assert [d for d in dead if d.reason == "late_event"] == []
    _, text = http_get(f"{w.base_url}/metrics")
    assert metric_sum(text.decode(), "finpulse_late_events_total") == 0

    feed_path = tmp_path / "feed.jsonl"
    feed_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    predictor = load_predictor(tiny_model_dir, device="cpu", quantize=False)
    # run_backtest owns an event loop of its own (it is the CLI's entry point)
    feed = load_feed(feed_path, s)
    backtest = await asyncio.to_thread(run_backtest, feed, s, predictor, batch_size=s.batch_size)
    want = {a.alert_id: a.parity_key() for a in backtest.alerts}
    assert any(a.entity == "ticker:TAA" for a in backtest.alerts)
    assert {a.entity.split(":")[0] for a in backtest.alerts} - {"ticker"}, "market/topic alerts"

    async def alerts() -> dict[str, Any]:
        out = {}
        for a in feed_alerts(await read_topic(s, s.topic_alerts)):
            out[a.alert_id] = a.parity_key()
        return out

    got: dict[str, Any] = {}

    async def same() -> bool:
        got.update(await alerts())
        return set(got) >= set(want)

    await wait_for(same, 60, "the live worker's alerts")
    for key in (got, want):
        for alert in key.values():
            alert["evidence"] = [e["id"] for e in alert["evidence"]]
    assert got == want


async def test_a_future_dated_record_does_not_blind_shared_clocks(start_worker: Any) -> None:
    w = start_worker(topic_partitions=2, watermark_idle_seconds=1)
    s = w.settings
    now = datetime.now(UTC)
    rows = []
    for i in range(300):
        at = now - timedelta(minutes=30) + timedelta(seconds=6 * i)
        headline = " ".join(random.Random(f"f{i}").choices(["alpha", "beta", "gamma", "delta",
                            "omega", "sigma", "kappa", "theta", "zeta", "iota"], k=6))  # fmt: skip
        rows.append({"id": f"f{i}", "headline": f"{headline} {i}", "tickers": ["ZZZ"],
                     "published_at": at.isoformat()})  # fmt: skip
    ahead = (now + timedelta(minutes=50)).isoformat()
    future = {"id": "future", "headline": "A record from a clock that runs fast",
              "tickers": ["ZZZ"], "published_at": ahead}  # fmt: skip
    values = [json.dumps(r).encode() for r in [*rows[:100], future, *rows[100:]]]
    keys = [str(i % 2).encode() for i in range(len(values))]
    stamp = int(now.timestamp() * 1000)
    await produce(s, values, keys=keys, timestamps_ms=[stamp] * len(values))

    view = RedisView(s)
    try:

        async def counted() -> bool:
            return await view.bucket_total("market") == len(rows)

        await wait_for(counted, 120, "every normal record counted for the market")
        assert "future" not in await view.ids("market")  # it waits for its time to come
    finally:
        await view.close()
    dead = [DeadLetter.model_validate_json(v) for v in await read_topic(s, s.topic_deadletter)]
    assert [d.reason for d in dead] == []
    _, text = http_get(f"{w.base_url}/metrics")
    assert metric_sum(text.decode(), "finpulse_late_events_total") == 0
    assert metric_sum(text.decode(), "finpulse_events_held") >= 1


async def test_a_steady_flow_on_one_partition_is_not_held_by_an_empty_one(
    start_worker: Any,
) -> None:
    """Records on partition 0 only, ten a second, until one is counted. The score stage's
    grace for the other partitions runs from the start of the flow, not from its latest
    record: measured from the latest, the empty partition never went idle while the flow
    lasted and held every watermark (nothing counted until the flow stopped)."""
    from aiokafka import AIOKafkaProducer

    w = start_worker(topic_partitions=2, watermark_idle_seconds=1)
    s = w.settings
    stop = asyncio.Event()

    async def flow() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=s.broker.removeprefix("kafka://"))
        await producer.start()
        try:
            i = 0
            while not stop.is_set():
                row = {"id": f"s{i}", "headline": f"steady flow item {i}", "tickers": ["ZZZ"],
                       "published_at": datetime.now(UTC).isoformat()}  # fmt: skip
                await (await producer.send(s.topic_news, json.dumps(row).encode(), partition=0))
                i += 1
                await asyncio.sleep(0.1)  # pacing, not synchronisation
        finally:
            await producer.stop()

    task = asyncio.create_task(flow())
    view = RedisView(s)
    try:
        await wait_for(lambda: view.bucket_total("market"), 60, "an item counted mid-flow")
        assert not task.done()  # the flow still runs: nothing waited for it to end
    finally:
        stop.set()
        await task
        await view.close()
