"""The worker's stages without Faust: conservation, dead letters, ack ordering, retries.

The Scorer, Aggregator and in-memory store are the real ones; only the model (a
keyword rule, so outcomes are known) and the broker (a recorder) are fakes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.predictor import Prediction
from stream_app.config import DetectorSettings, Settings, WindowSettings
from stream_app.core.aggregator import Aggregator
from stream_app.core.fanout import partition_for
from stream_app.core.scoring import Scorer
from stream_app.schemas import Alert, DeadLetter, EntityBatch, EntityEvent, ScoredNews
from stream_app.service.aggregate import AggregateStage
from stream_app.service.batches import Record, run_with_retry
from stream_app.service.health import HealthState
from stream_app.service.metrics import Metrics
from stream_app.service.score import ScoreStage, Topology
from stream_app.store.memory import MemoryWindowStore

S = Settings(  # type: ignore[call-arg]
    topic_news="in", topic_scored="scored", topic_entity_events="ev",
    topic_alerts="alerts", topic_deadletter="dead", max_headline_chars=200,
    window=WindowSettings(window_seconds=300),
    detector=DetectorSettings(min_negative_count=3),
)  # fmt: skip
T0 = datetime(2026, 11, 20, 12, tzinfo=UTC)


class RulePredictor:
    """'crash' in a text poisons the call; 'plunge' is negative; the rest neutral."""

    model_version = "rule-1"

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        if any("crash" in t for t in texts):
            raise RuntimeError("poisoned batch")
        out = []
        for t in texts:
            neg = "plunge" in t
            probs = {"negative": 0.9 if neg else 0.05, "neutral": 0.1 if neg else 0.9}
            probs["positive"] = 1 - sum(probs.values())
            out.append(
                Prediction(
                    sentiment="negative" if neg else "neutral",
                    sentiment_probs=probs,
                    topic="Company | Product News",
                    topic_prob=0.8,
                    model_version=self.model_version,
                )
            )
        return out


class Recorder:
    """A broker that acks every send (or fails the first ``fail`` batches)."""

    def __init__(self, fail: int = 0) -> None:
        self.sent: list[tuple[str, bytes | None, bytes, int | None]] = []
        self.fail = fail

    async def send(
        self, topic: str, key: bytes | None, value: bytes, partition: int | None = None
    ) -> Any:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("broker down")
        self.sent.append((topic, key, value, partition))
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    def values(self, topic: str) -> list[bytes]:
        return [v for t, _, v, _ in self.sent if t == topic]

    def batches(self) -> list[tuple[int | None, EntityBatch]]:
        return [(p, EntityBatch.model_validate_json(v)) for t, _, v, p in self.sent if t == "ev"]

    def events(self) -> list[EntityEvent]:
        return [e for _, b in self.batches() for e in b.events]

    def scored(self) -> list[ScoredNews]:
        """The scored records riding on the market events (the aggregator publishes them)."""
        return [ScoredNews.model_validate(e.scored) for e in self.events() if e.scored]


def _news(i: int, headline: str, minutes: float = 0, tickers: Sequence[str] = ("ACME",)) -> bytes:
    return json.dumps(
        {
            "id": f"n{i}",
            "headline": headline,
            "tickers": list(tickers),
            "published_at": (T0 + timedelta(minutes=minutes)).isoformat(),
        }
    ).encode()


def _records(values: Sequence[bytes]) -> list[Record]:
    return [Record(v, "in", 0, i, timestamp_ms=None) for i, v in enumerate(values)]


TOPOLOGY = Topology(news_partitions=1, entity_partitions=2, assigned_news=lambda: {0})


def _score_stage(publisher: Any, metrics: Metrics | None = None) -> ScoreStage:
    return ScoreStage(S, Scorer(RulePredictor()), publisher, metrics or Metrics(), TOPOLOGY)


record_values = st.one_of(
    st.binary(max_size=80),
    st.builds(
        lambda i, h: _news(i, h),
        st.integers(0, 10_000),
        st.text(min_size=0, max_size=250),
    ),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(record_values, max_size=25))
def test_every_record_is_scored_or_dead_lettered(values: list[bytes]) -> None:
    pub = Recorder()
    stage = _score_stage(pub)
    try:
        scored, dead = asyncio.run(stage.process(_records(values)))
    finally:
        stage.close()
    assert scored + dead == len(values)
    assert len(pub.scored()) == scored  # one market event, carrying the record, per item
    # every batch goes to every entity partition, each with the progress of partition 0
    assert sorted(p for p, _ in pub.batches()) == [0, 1]
    letters = [DeadLetter.model_validate_json(v) for v in pub.values("dead")]
    assert len(letters) == dead
    # each dead letter carries its record's bytes and position
    for letter in letters:
        assert letter.original_bytes() == values[letter.source_offset or 0][:64_000]
        assert letter.source_topic == "in"


async def test_a_poison_text_is_dead_lettered_alone_with_its_bytes() -> None:
    values = [_news(1, "calm day"), _news(2, "the crash text"), _news(3, "shares plunge")]
    pub = Recorder()
    metrics = Metrics()
    scored, dead = await _score_stage(pub, metrics).process(_records(values))
    assert (scored, dead) == (2, 1)
    (letter,) = [DeadLetter.model_validate_json(v) for v in pub.values("dead")]
    assert letter.reason == "predictor_failure"
    assert letter.original_bytes() == values[1]
    assert letter.source_offset == 1
    out = pub.scored()
    assert [(x.id, x.sentiment) for x in out] == [("n1", "neutral"), ("n3", "negative")]
    # entity events go to their entity's partition and carry their source position
    placed = [(p, e) for p, b in pub.batches() for e in b.events]
    assert {e.entity for _, e in placed} == {"ticker:ACME", "market", "topic:company-product-news"}
    assert all(p == partition_for(e.entity, 2) for p, e in placed)
    assert {e.source_offset for _, e in placed if e.id == "n3"} == {2}
    assert b'finpulse_dead_letters_total{reason="predictor_failure"} 1.0' in metrics.render()


async def test_stage_returns_only_after_every_send_is_acknowledged() -> None:
    acks: list[asyncio.Future[None]] = []
    all_sent = asyncio.Event()

    class SlowBroker:
        async def send(
            self, topic: str, key: bytes | None, value: bytes, partition: int | None = None
        ) -> Any:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            acks.append(fut)
            if len(acks) == 2:  # one entity batch per entity partition
                all_sent.set()
            return fut

    task = asyncio.create_task(_score_stage(SlowBroker()).process(_records([_news(1, "x")])))
    await asyncio.wait_for(all_sent.wait(), 10)
    for fut in acks[:-1]:
        fut.set_result(None)
    await asyncio.sleep(0.05)
    assert not task.done()
    acks[-1].set_result(None)
    assert await asyncio.wait_for(task, 5) == (1, 0)


async def test_a_failed_batch_is_retried_until_it_succeeds() -> None:
    pub = Recorder(fail=2)
    metrics = Metrics()
    health = HealthState(app_id="t", model_version="m")
    stage = _score_stage(pub, metrics)
    result = await run_with_retry(
        "score",
        lambda: stage.process(_records([_news(1, "hello")])),
        health=health,
        metrics=metrics,
        max_backoff=0.01,
    )
    assert result == (1, 0)
    assert health.failing == {}
    assert b'finpulse_batch_retries_total{agent="score"} 2.0' in metrics.render()


async def test_overlapped_batches_each_report_only_their_own_progress() -> None:
    """Score overlap (``ScoreStage.score`` of batch 1 while batch 0 is not yet published):
    batch 0's entity batches carry batch 0's progress, not batch 1's, a heartbeat between
    them announces nothing in flight, and batch 1 then carries its own."""
    pub = Recorder()
    stage = _score_stage(pub)

    def ms(minutes: float) -> int:
        return int((T0 + timedelta(minutes=minutes)).timestamp() * 1000)

    first = await stage.score(_records([_news(1, "a", 0), _news(2, "b", 1)]))
    second = await stage.score(
        [Record(_news(3, "c", 10), "in", 0, 2), Record(_news(4, "d", 20), "in", 0, 3)]
    )
    assert await stage.publish(first) == (2, 0)
    assert {b.progress[0] for _, b in pub.batches()} == {ms(1)}
    sent = len(pub.sent)
    await stage.heartbeat()  # batch 1 is scored but not published: no progress for it
    assert all(b.progress[0] == ms(1) for _, b in pub.batches())
    del pub.sent[:sent]
    assert await stage.publish(second) == (2, 0)
    assert {b.progress[0] for _, b in pub.batches()} == {ms(20)}
    assert sorted(e.id for e in pub.events() if e.entity == "market") == ["n3", "n4"]
    stage.close()


async def test_a_heartbeat_goes_out_on_every_quiet_beat_and_not_between_batches() -> None:
    """An aggregator's watermark also moves with its clock (the grace after a wake-up ends),
    and only a record makes it look again: a quiet worker beats even when nothing changed;
    one that published a batch since the last beat stays silent unless its report changed."""
    pub = Recorder()
    stage = _score_stage(pub)
    assert await stage.heartbeat() is True
    assert await stage.heartbeat() is True  # unchanged, but nothing else went out
    assert await stage.process(_records([_news(1, "a")])) == (1, 0)
    assert await stage.heartbeat() is False  # the batch carried the same report
    assert await stage.heartbeat() is True
    stage.close()


def _events(n_calm: int, n_neg: int) -> list[bytes]:
    """One entity-topic record per event (news partition 0 progressing with it), then a
    record saying partition 0 is idle, which releases the last events too."""
    out = []
    for i in range(n_calm + n_neg):
        neg = i >= n_calm
        ev = EntityEvent(
            entity="ticker:ACME",
            id=f"e{i}",
            event_time_ms=int((T0 + timedelta(seconds=30 * i)).timestamp() * 1000),
            sentiment="negative" if neg else "neutral",
            negative_prob=0.9 if neg else 0.05,
            headline=f"h{i}",
            model_version="m",
        )
        batch = EntityBatch(source_partitions=1, progress={0: ev.event_time_ms}, events=[ev])
        out.append(batch.model_dump_json().encode())
    out.append(EntityBatch(source_partitions=1, idle=[0]).model_dump_json().encode())
    return out


async def test_aggregate_publishes_alerts_before_committing_and_rejects_junk() -> None:
    store = MemoryWindowStore()
    pub = Recorder()
    original_send = pub.send
    failed_once = False

    async def send(
        topic: str, key: bytes | None, value: bytes, partition: int | None = None
    ) -> Any:
        nonlocal failed_once
        if topic == "alerts" and not failed_once:
            failed_once = True
            raise ConnectionError("broker down")
        return await original_send(topic, key, value, partition)

    pub.send = send  # type: ignore[method-assign]
    stage = AggregateStage(S, lambda: Aggregator(store, S.window, S.detector), pub, Metrics())
    values = [*_events(40, 10), b"not an event"]
    records = [Record(v, "ev", 0, i) for i, v in enumerate(values)]

    try:
        await stage.process(records)
    except ConnectionError:
        pass
    else:
        raise AssertionError("the alert publish failure must abort the batch")
    assert await store.entity_view("ticker:ACME") is None, "nothing committed before the ack"

    done = await stage.process(records)  # the retry: offers nothing twice, loses nothing
    assert sorted(done) == [("ev", 0, i) for i in range(len(records))]
    view = await store.entity_view("ticker:ACME")
    assert view is not None
    # the 300 s window ending at the last event, computed independently
    events = [e for v in values[:-2] for e in EntityBatch.model_validate_json(v).events]
    clock_bucket = max(e.event_time_ms for e in events) // 60_000
    inside = [e for e in events if e.event_time_ms // 60_000 > clock_bucket - 5]
    assert view.window.neg == sum(e.sentiment == "negative" for e in inside)
    assert view.window.neu == sum(e.sentiment == "neutral" for e in inside)
    alerts = [Alert.model_validate_json(v) for v in pub.values("alerts")]
    # one episode: it fires, then escalates as the negatives pile up (never resolves)
    assert [(a.entity, a.state) for a in alerts[:1]] == [("ticker:ACME", "firing")]
    assert {(a.state, a.episode) for a in alerts[1:]} <= {("escalated", 1)}
    assert all(a.emitted_at is not None for a in alerts)
    junk = [DeadLetter.model_validate_json(v) for v in pub.values("dead")]
    assert [d.reason for d in junk] == ["invalid_event"] * len(junk)
    assert junk
    assert all(d.original_bytes() == b"not an event" for d in junk)
