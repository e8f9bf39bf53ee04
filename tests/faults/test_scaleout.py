"""Scale-out: 1 worker and 3 workers (one consumer group, 3 partitions) give the same result.

Same feed, two isolated runs (own topics and Redis prefix each). Per-entity bucket counts
and alerts must be identical for every entity, market and topics included: those receive
events from every news partition, in an arrival order that depends on scheduling, and the
aggregate stage's event-time watermarks (``core.sequencer``) put them back in event-time
order before any detector sees them.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from stream_app.devenv.embedded import Service
from stream_app.schemas import ScoredNews
from tests.support.fault_harness import (
    FAULT_SETTINGS,
    RedisView,
    Texts,
    assignment,
    conservation,
    make_feed,
    metric,
    read_topic,
    wait_for,
    worker_alerts,
)
from tests.support.fault_report import record
from tests.support.worker_proc import produce

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(400)]


def _held_by_all(workers: list[Any], topic: str, partitions: int) -> bool:
    """Every worker holds news partitions of one and the same group generation, and
    together they hold each partition exactly once."""
    seen = [assignment(w, topic) for w in workers]
    held = [parts for _, parts in seen]
    return (
        len({generation for generation, _ in seen}) == 1
        and all(held)
        and sorted(p for parts in held for p in parts) == list(range(partitions))
    )


async def _run(p: Any, n_workers: int, feed: Any) -> tuple[dict[str, Any], set[Any], float]:
    workers = [p.spawn() for _ in range(n_workers)]
    s = workers[0].settings

    async def settled() -> bool:
        return _held_by_all(workers, s.topic_news, s.topic_partitions)

    await wait_for(settled, 60, f"{n_workers} workers each holding news partitions")
    started = time.monotonic()
    await produce(s, feed.values(), keys=feed.keys())
    c = await conservation(s, feed, within=120)
    elapsed = time.monotonic() - started
    assert not c.problems, c.problems
    entities = {e for raw in await read_topic(s, s.topic_scored)
                for e in ScoredNews.model_validate_json(raw).entities}  # fmt: skip
    view = RedisView(s)
    try:
        buckets = {e: await view.buckets(e) for e in sorted(entities)}
    finally:
        await view.close()
    alerts = {
        (a.alert_id, a.entity, a.state, a.episode, a.fired_at, a.negative_count, a.total_count,
         a.severity, tuple(ev.id for ev in a.evidence))
        for a in (await worker_alerts(s)).values()
    }  # fmt: skip
    assert all(w.running for w in workers)
    # Every news partition is in event-time order, so no event may reach an aggregator
    # below its watermark; one that did was applied out of order (``core.sequencer``).
    assert sum(metric(w.base_url, "finpulse_events_out_of_order_total") for w in workers) == 0
    # Each worker really did part of the work: it consumed news records.
    consumed = [metric(w.base_url, "finpulse_records_in_total") for w in workers]
    assert all(n > 0 for n in consumed), consumed
    assert sum(consumed) >= len(feed.rows)
    return buckets, alerts, elapsed


async def test_one_and_three_workers_agree(
    pool: Any, broker: Service, redis_server: Service, texts: Texts
) -> None:
    feed = make_feed(texts, minutes=60, seed=9)
    one = pool(broker, redis_server, tag="a", topic_partitions=3, **FAULT_SETTINGS)
    three = pool(broker, redis_server, tag="b", topic_partitions=3, **FAULT_SETTINGS)
    buckets_1, alerts_1, t1 = await _run(one, 1, feed)
    one.stop_all()
    buckets_3, alerts_3, t3 = await _run(three, 3, feed)
    assert set(buckets_1) == set(buckets_3)
    assert {"market", "ticker:BURST"} <= set(buckets_1)
    for entity in buckets_1:
        assert buckets_1[entity] == buckets_3[entity], entity
    assert ("ticker:BURST", "firing") in {(a[1], a[2]) for a in alerts_1}
    assert {a[1] for a in alerts_1} - {"ticker:BURST"}, "market or topic alerts compared too"
    assert alerts_1 == alerts_3
    record("scale-out parity: 1 vs 3 workers, 3 partitions, news keyed by ticker", None, None,
           **{"in": len(feed.rows), "entities_compared": len(buckets_1),
              "alerts": len(alerts_1), "seconds_1_worker": round(t1, 1),
              "seconds_3_workers": round(t3, 1)})  # fmt: skip
