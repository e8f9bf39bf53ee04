"""The aggregator's story-level rules: repeats, exact counters, kinds, explain records."""

from __future__ import annotations

import math

from stream_app.config import DetectorSettings, WindowSettings
from stream_app.core.aggregator import Aggregator, BatchOutcome
from stream_app.core.explain import buckets_needed, explain
from stream_app.core.novelty import signatures
from stream_app.core.windows import Counts
from stream_app.schemas import EntityEvent
from stream_app.store.memory import MemoryWindowStore

T0 = 1_767_000_000_000
WS = WindowSettings(bucket_seconds=60, window_seconds=600, baseline_seconds=3600,
                    retention_seconds=7200, allowed_lateness_seconds=300)  # fmt: skip
DS = DetectorSettings(min_negative_count=3, cooldown_seconds=300, evidence_size=3)
STORY = "Tesla recalls 2 million vehicles over Autopilot defect, regulator says"
COPIES = [
    STORY,
    "BREAKING: Tesla recalls 2 million vehicles over Autopilot defect, regulator says",
    "Tesla recalls 2 mln vehicles over Autopilot defect, regulator says - Reuters",
    "TESLA RECALLS 2 MILLION VEHICLES OVER AUTOPILOT DEFECT, REGULATOR SAYS",
]


def event(i: int, headline: str, t: int, entity: str = "ticker:TSLA", *, neg: bool = True,
          source: int | None = None) -> EntityEvent:  # fmt: skip
    return EntityEvent(
        entity=entity, id=f"n{i}", event_time_ms=T0 + t,
        sentiment="negative" if neg else "neutral", negative_prob=0.9 if neg else 0.1,
        headline=headline, model_version="m", signature=signatures([headline])[0].wire,
        source_partition=None if source is None else 0, source_offset=source,
    )  # fmt: skip


async def run(agg: Aggregator, events: list[EntityEvent]) -> BatchOutcome:
    seen: list[BatchOutcome] = []

    async def emit(o: BatchOutcome) -> None:
        seen.append(o)

    return await agg.process(events, emit)


async def test_syndicated_copies_are_repeats_and_never_move_the_detector() -> None:
    store = MemoryWindowStore()
    agg = Aggregator(store, WS, DS)
    copies = [event(i, COPIES[i % len(COPIES)], i * 1000) for i in range(12)]
    out = await run(agg, copies)
    assert (out.applied, out.repeats) == (1, 11)
    assert out.alerts == []  # twelve copies of one story are one negative, not twelve
    view = await store.entity_view("ticker:TSLA")
    assert view is not None
    assert (view.window.neg, view.window.rep) == (1, 11)


async def test_distinct_stories_count_and_fire() -> None:
    agg = Aggregator(MemoryWindowStore(), WS, DS)
    heads = ["Tesla recalls cars", "Tesla factory fire halts output",
             "Tesla chief faces fraud probe", "Tesla misses delivery forecast badly"]  # fmt: skip
    out = await run(agg, [event(i, h, i * 1000) for i, h in enumerate(heads)])
    assert (out.applied, out.repeats) == (4, 0)
    assert [(a.kind, a.state) for a in out.alerts][:1] == [("negative", "firing")]


async def test_market_stories_name_the_first_item_of_the_story() -> None:
    agg = Aggregator(MemoryWindowStore(), WS, DS)
    evs = [event(i, COPIES[i % 2], i * 1000, "market") for i in range(3)]
    out = await run(agg, evs)
    assert [(s.event.id, s.story_id, s.novelty) for s in out.stories] == [
        ("n0", "n0", "first"), ("n1", "n0", "repeat"), ("n2", "n0", "repeat"),
    ]  # fmt: skip
    again = await run(agg, evs)  # a redelivery (no Kafka positions: counted as duplicates)
    assert [(s.story_id, s.novelty) for s in again.stories] == [
        ("n0", "first"), ("n0", "repeat"), ("n0", "repeat"),
    ]  # fmt: skip


async def test_redelivered_copies_are_not_counted_again_but_upstream_copies_are() -> None:
    store = MemoryWindowStore()
    agg = Aggregator(store, WS, DS)
    first = [event(1, "Oil rises", 600_000, source=10), event(2, "Gold falls", 0, source=11)]
    out = await run(agg, first)
    assert (out.applied, len(out.late), out.duplicates) == (1, 1, 0)  # n2 is 10 min late
    redelivered = await run(agg, first)  # the same Kafka records again
    assert (redelivered.applied, len(redelivered.late), redelivered.duplicates) == (0, 0, 0)
    assert redelivered.redelivered == 2
    upstream = await run(agg, [event(1, "Oil rises", 600_000, source=12)])  # a new copy
    assert upstream.duplicates == 1
    view = await store.entity_view("ticker:TSLA")
    assert view is not None
    assert (view.late_events, view.duplicate_events) == (1, 1)  # exact, not per delivery


async def test_positive_and_volume_kinds_are_switched_on_by_settings() -> None:
    ds = DetectorSettings(detect=("positive",), min_positive_count=3)
    agg = Aggregator(MemoryWindowStore(), WS, ds)
    heads = ["Apple beats estimates", "Apple raises dividend", "Apple record iPhone sales"]
    out = await run(agg, [event(i, h, i * 1000, "ticker:AAPL", neg=False) for i, h in
                          enumerate(heads)])  # fmt: skip
    assert out.alerts == []  # neutral stories: no positive share
    good = ["Apple wins antitrust case", "Apple shares hit record high", "Apple unveils new chip",
            "Apple services revenue soars", "Apple signs huge India deal"]  # fmt: skip
    pos = [event(10 + i, h, 5000 + i, "ticker:AAPL", neg=False)
           .model_copy(update={"sentiment": "positive", "positive_prob": 0.9})
           for i, h in enumerate(good)]  # fmt: skip
    out = await run(agg, pos)
    assert {(a.kind, a.state) for a in out.alerts} == {("positive", "firing")}


async def test_an_alert_is_explained_from_the_stored_buckets_and_reproduces() -> None:
    store = MemoryWindowStore()
    agg = Aggregator(store, WS, DS)
    calm = [event(i, f"Tesla note {i} on logistics", i * 60_000, neg=False) for i in range(30)]
    burst = [event(100 + i, f"Tesla problem number {i} {'x' * i}", 1_900_000 + i * 5_000)
             for i in range(6)]  # fmt: skip
    out = await run(agg, calm + burst)
    firing = next(a for a in out.alerts if a.state == "firing")
    found = await store.alert_record(firing.alert_id)
    assert found is not None
    entity, record = found
    stored = await store.buckets(entity, buckets_needed(record.data))
    why = explain(entity, record.data, stored)
    assert why["reproduces"], why["differences"]
    assert why["decision"]["count"] == firing.count
    assert abs(why["decision"]["z"] - firing.score) < 1e-9
    # an event arriving late into the window's buckets changes the stored counts
    late = event(999, "Tesla late story", 1_900_000 - 60_000, neg=False)
    await run(agg, [late])
    stored = await store.buckets(entity, buckets_needed(record.data))
    why = explain(entity, record.data, stored)
    assert not why["reproduces"]
    assert any("window counts now" in d for d in why["differences"])


def test_counts_keep_net_sentiment_exact() -> None:
    c = Counts.of_event("negative", 0.8, 0.1)
    c.add(Counts.of_event("positive", 0.1, 0.7))
    assert c.net_sentiment is not None
    assert math.isclose(c.net_sentiment, (0.1 + 0.7 - 0.8 - 0.1) / 2)
    assert Counts.decode(c.encode()) == c
