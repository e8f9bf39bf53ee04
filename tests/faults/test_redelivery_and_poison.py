"""Duplicate delivery (records produced twice, offsets rewound) and a poison record.

Rewinding offsets: a second worker with a *new consumer group* reads the news topic from
the beginning into the same Redis prefix -- the strongest redelivery there is (everything,
twice over). Poison: ``FINPULSE_FAULT_POISON_SUBSTRING`` makes the worker's predictor
raise for any batch holding such a text (stream_app/faults.py); the Scorer's
split-and-retry must dead-letter exactly those records, with reason predictor_failure.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from stream_app.devenv.embedded import Service
from tests.support.fault_harness import (
    FAULT_SETTINGS,
    Feed,
    Texts,
    alert_summary,
    conservation,
    make_feed,
    metric,
    reference_alerts,
    wait_for,
    worker_alerts,
)
from tests.support.fault_report import record
from tests.support.worker_proc import produce

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(300)]


async def test_duplicates_and_rewound_offsets_count_once(
    pool: Any, broker: Service, redis_server: Service, texts: Texts, unique: str
) -> None:
    p = pool(broker, redis_server, topic_partitions=2, **FAULT_SETTINGS)
    a = p.spawn()
    s = a.settings
    feed = make_feed(texts, seed=6)
    n = len(feed.rows)
    await produce(s, feed.values(), keys=feed.keys())
    await produce(s, feed.values(), keys=feed.keys())  # every record twice
    first = await conservation(s, feed)
    assert not first.problems, first.problems

    async def a_consumed_all() -> bool:
        return metric(a.base_url, "finpulse_records_in_total") >= 2 * n

    await wait_for(a_consumed_all, 60, "worker A consumed both copies")
    alerts_before = await worker_alerts(s)
    a.stop()
    b = p.spawn(app_id=f"t-{unique}-rewound")  # new group: offsets start at the beginning
    started = time.monotonic()

    async def b_consumed_all() -> bool:
        return metric(b.base_url, "finpulse_records_in_total") >= 2 * n

    await wait_for(b_consumed_all, 90, "worker B re-consumed the topic from the start")

    async def b_caught_up() -> bool:  # every record B read is committed: nothing held
        return (metric(b.base_url, "finpulse_consumer_lag") == 0
                and metric(b.base_url, "finpulse_events_held") == 0)  # fmt: skip

    await wait_for(b_caught_up, 90, "B's aggregator caught up with the entity topic")
    c = await conservation(s, feed)
    recovery = time.monotonic() - started
    assert not c.problems, c.problems
    assert c.counted == n
    assert not c.dead
    # Each record was produced twice: n upstream duplicates per entity, counted once each.
    # B read both copies again (same Kafka positions): redeliveries, not counted again.
    assert c.duplicates == n
    alerts_after = await worker_alerts(s)
    assert set(alerts_after) == set(alerts_before), "a redelivery must not create new alerts"
    want = alert_summary(await reference_alerts(s, feed))
    assert ("ticker:BURST", "firing") in {(x[1], x[2]) for x in want}
    assert alert_summary(alerts_after) == want
    record("duplicate delivery: feed produced twice + new consumer group rewinds to start", c,
           recovery, records_consumed=4 * n, alerts=len(want))  # fmt: skip


def _poisoned(feed: Feed, marker: str, every: int) -> tuple[Feed, set[str]]:
    rows, ids = [], set()
    for i, row in enumerate(feed.rows):
        if i % every == 5 and row["tickers"] == ["AAA"]:
            row = {**row, "headline": f"{row['headline']} {marker}"}
            ids.add(row["id"])
        rows.append(row)
    return Feed(rows), ids


async def test_poison_records_alone_are_dead_lettered(
    pool: Any, broker: Service, redis_server: Service, texts: Texts
) -> None:
    marker = "POISON-PILL-7f3a"
    p = pool(broker, redis_server, topic_partitions=2, fault_poison_substring=marker,
             **FAULT_SETTINGS)  # fmt: skip
    w = p.spawn()
    s = w.settings
    feed, poison = _poisoned(make_feed(texts, seed=7), marker, every=17)
    assert len(poison) >= 2
    started = time.monotonic()
    await produce(s, feed.values(), keys=feed.keys())
    c = await conservation(s, feed)
    elapsed = time.monotonic() - started
    assert not c.problems, c.problems
    assert c.dead == {"predictor_failure": len(poison)}
    assert c.dead_ids == poison
    assert c.counted == len(feed.rows) - len(poison)
    assert w.running
    want = alert_summary(await reference_alerts(s, feed))
    assert ("ticker:BURST", "firing") in {(x[1], x[2]) for x in want}
    assert alert_summary(await worker_alerts(s)) == want
    record("predictor fails on batches holding poison records", c, elapsed,
           poison_records=len(poison), alerts=len(want))  # fmt: skip
