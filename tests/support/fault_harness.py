"""Feeds, worker pools and the conservation law shared by the fault tests.

Conservation law checked after every fault: each valid input id is *either* counted exactly
once in the Redis windows of each of its entities *or* in the dead-letter topic (with the
reason saying why), never both, never twice. "Counted" is read straight from Redis: an
entity's applied ids (the ``a`` entries of ``P:v2:{E}:i``) must equal the ids expected for
that entity, and the sum over all its buckets (first stories plus repeats) must equal the
size of that set (no id counted twice). The expected ids of ``market`` and the tickers
come from the feed itself, not from the worker; those of ``topic:*`` entities (the topic
is the model's output, not in the feed) from the topic each id was scored with on
``news.scored``, which must be the same in every scored copy of an id; a topic entity in
Redis that no scored item names is a problem too.

Alerts are compared with a fault-free reference: the same scored items, in feed order,
through an in-process ``Aggregator`` over a ``MemoryWindowStore``.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from stream_app.config import Settings
from stream_app.core.windows import Counts
from stream_app.devenv.embedded import Service
from stream_app.schemas import Alert, DeadLetter, ScoredNews
from stream_app.store.base import SeenEntry
from tests.support.worker_proc import (
    WorkerProcess,
    feed_alerts,
    http_get,
    metric_sum,
    worker_env,
)

T0 = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
TICKERS = ("AAA", "BBB", "CCC", "BURST")

# Windows wide enough that nothing of a ~1 h feed is late even when the market entity's
# events interleave across news partitions; detector as in tests/integration.
FAULT_SETTINGS: dict[str, str | int | float] = {
    "bucket_seconds": 60,
    "window_seconds": 300,
    "baseline_seconds": 3600,
    "retention_seconds": 14_400,
    "allowed_lateness_seconds": 3600,
    "min_negative_count": 5,
    "fire_z": 3.0,
    "resolve_z": 1.0,
    "share_floor": 0.5,
    "resolve_share_floor": 0.2,
    "cooldown_seconds": 60,
}


@dataclass(frozen=True)
class Texts:
    negative: list[str]
    calm: list[str]


def classify_texts(model_dir: Path, data_dir: Path, n: int = 800) -> Texts:
    """Corpus texts split by what the real Scorer over the tiny model says.

    The tiny model calls about a fifth of texts negative, so a burst is made of distinct
    negative headlines: distinct stories, which is what the novelty-aware detector counts.
    """
    from models.predictor import load_predictor
    from stream_app.core.scoring import Scorer
    from stream_app.offline.synthetic import load_labelled_texts
    from stream_app.schemas import NewsItem

    rng = random.Random(5)
    texts = [t.text for t in rng.sample(load_labelled_texts(data_dir), n)]
    scorer = Scorer(load_predictor(model_dir, device="cpu", quantize=False))
    items = [
        NewsItem(id=f"c{i}", headline=t, tickers=["X"], published_at=T0)  # type: ignore[call-arg]
        for i, t in enumerate(texts)
    ]
    by_id = {x.id: x.sentiment for x in scorer.score(items).scored}
    neg = [t for i, t in enumerate(texts) if by_id.get(f"c{i}") == "negative"]
    calm = [t for i, t in enumerate(texts) if by_id.get(f"c{i}") in ("neutral", "positive")]
    assert len(neg) >= 20, f"the tiny model must call 20+ texts negative, got {len(neg)}"
    assert len(calm) >= 50, len(calm)
    return Texts(neg, calm)


@dataclass
class Feed:
    """News in event-time order, one ticker each, keyed by ticker (the deployment advice)."""

    rows: list[dict[str, Any]]

    @property
    def ids(self) -> list[str]:
        return [r["id"] for r in self.rows]

    def values(self) -> list[bytes]:
        return [json.dumps(r).encode() for r in self.rows]

    def keys(self) -> list[bytes]:
        return [r["tickers"][0].encode() for r in self.rows]

    def ids_by_entity(self, exclude: set[str] = frozenset()) -> dict[str, set[str]]:  # type: ignore[assignment]
        out: dict[str, set[str]] = {"market": set()}
        for r in self.rows:
            if r["id"] in exclude:
                continue
            out["market"].add(r["id"])
            out.setdefault(f"ticker:{r['tickers'][0]}", set()).add(r["id"])
        return out


def make_feed(texts: Texts, *, minutes: int = 50, burst_at: int = 30, seed: int = 1) -> Feed:
    """Calm news on every ticker each minute and a 10-item negative burst on BURST."""
    rng = random.Random(seed)
    rows: list[tuple[datetime, str, str]] = []
    for minute in range(minutes):
        t = T0 + timedelta(minutes=minute)
        for k, ticker in enumerate(TICKERS):
            rows.append((t + timedelta(seconds=7 * k), ticker, rng.choice(texts.calm)))
        if burst_at <= minute < burst_at + 3:
            for k in range(4):
                neg = texts.negative[(minute * 4 + k) % len(texts.negative)]
                rows.append((t + timedelta(seconds=30 + 7 * k), "BURST", neg))
    rows.sort(key=lambda r: r[0])
    return Feed(
        [
            {"id": f"n{i}", "headline": text, "tickers": [ticker], "published_at": when.isoformat()}
            for i, (when, ticker, text) in enumerate(rows)
        ]
    )


@dataclass
class WorkerPool:
    """Workers of one consumer group (same ``unique``), each on its own web port."""

    broker: Service
    redis: Service
    model_dir: Path
    unique: str
    tmp: Path
    extra: dict[str, str | int | float]
    workers: list[WorkerProcess] = field(default_factory=list)

    def spawn(self, start: bool = True, **more: str | int | float) -> WorkerProcess:
        env = worker_env(
            self.broker, self.redis, self.model_dir, self.unique, **{**self.extra, **more}
        )
        w = WorkerProcess(env, self.tmp / f"worker-{self.unique}-{len(self.workers)}.log")
        self.workers.append(w)
        if start:
            w.start()
        return w

    @property
    def settings(self) -> Settings:
        if not self.workers:
            self.spawn(start=False)
        return self.workers[0].settings

    def stop_all(self) -> None:
        for w in self.workers:
            w.stop()


async def wait_for(
    condition: Callable[[], Awaitable[Any]], within: float, what: str, every: float = 0.3
) -> Any:
    """Poll an async condition until truthy; fail with the last value after ``within`` s."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = await condition()
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"timed out after {within}s waiting for {what}; last: {last!r}")


async def produce_paced(
    settings: Settings,
    feed: Feed,
    *,
    per_second: float,
    chunk: int = 10,
    direct_port: int | None = None,
    acked_at: list[float] | None = None,
) -> None:
    """Produce the feed in order, ``chunk`` records at a time, about ``per_second`` overall.

    ``acked_at`` receives the ``time.monotonic()`` of each record's acknowledgement.
    ``direct_port``: talk to the broker on this port, whatever address its metadata
    advertises, so the producer keeps producing while the worker's path (the advertised
    proxy) is cut and records arrive during the outage.
    """
    from aiokafka import AIOKafkaProducer

    bootstrap = settings.broker.removeprefix("kafka://")
    if direct_port is not None:
        bootstrap = f"127.0.0.1:{direct_port}"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    if direct_port is not None:
        cluster = producer.client.cluster
        advertised = cluster.broker_metadata

        def direct(node_id: Any) -> Any:  # test-only: bypass the advertised listener
            broker = advertised(node_id)
            return None if broker is None else broker._replace(port=direct_port)

        cluster.broker_metadata = direct
    await producer.start()
    try:
        values, keys = feed.values(), feed.keys()
        for i in range(0, len(values), chunk):
            futs = [
                await producer.send(settings.topic_news, v, key=k)
                for v, k in zip(values[i : i + chunk], keys[i : i + chunk], strict=True)
            ]
            await asyncio.gather(*futs)
            if acked_at is not None:
                acked_at.extend([time.monotonic()] * len(futs))
            await asyncio.sleep(chunk / per_second)  # pacing, not synchronisation
    finally:
        await producer.stop()


async def read_topic(settings: Settings, topic: str) -> list[bytes]:
    """Every record of ``topic`` up to its current end offsets."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.broker.removeprefix("kafka://"),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + 60
        parts = consumer.partitions_for_topic(topic)
        while not parts:  # a fresh client may not have the topic's metadata yet
            assert time.monotonic() < deadline, f"topic {topic} has no partitions"
            await consumer.force_metadata_update()
            parts = consumer.partitions_for_topic(topic)
            if not parts:
                await asyncio.sleep(0.2)
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        out: list[bytes] = []
        quiet = 0
        # Up to the end offsets, then on until two polls bring nothing: tansu can report
        # end offsets behind what a fetch then returns.
        while quiet < 2 or [tp for tp in tps if await consumer.position(tp) < end[tp]]:
            assert time.monotonic() < deadline, f"could not read {topic} to its end"
            batch = await consumer.getmany(timeout_ms=500)
            got = [r.value or b"" for records in batch.values() for r in records]
            out += got
            quiet = 0 if got else quiet + 1
        return out
    finally:
        await consumer.stop()


def news_id_of(dead: DeadLetter) -> str | None:
    try:
        data = json.loads(dead.original_bytes())
    except ValueError:
        return None
    value = data.get("id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


@dataclass
class Conservation:
    records_in: int
    counted: int  # distinct ids in the market window set
    dead: dict[str, int]  # reason -> count (news-level dead letters)
    dead_ids: set[str]
    duplicates: int  # duplicate entity events dropped (market entity)
    scored_records: int  # records in news.scored (redelivery republishes)
    problems: list[str]

    def row(self) -> dict[str, Any]:
        return {
            "in": self.records_in,
            "counted": self.counted,
            "dead_lettered": sum(self.dead.values()),
            "dead_by_reason": self.dead,
            "duplicate_events_dropped": self.duplicates,
            "scored_records_published": self.scored_records,
        }


class RedisView:
    """Reads an entity's applied ids and bucket counts straight from Redis."""

    def __init__(self, settings: Settings) -> None:
        self.client = aioredis.Redis.from_url(settings.redis_url.get_secret_value())
        self.prefix = settings.redis_key_prefix

    def _key(self, entity: str, kind: str) -> str:
        return f"{self.prefix}:v2:{{{entity}}}:{kind}"

    async def ids(self, entity: str) -> set[str]:
        """Ids applied to the entity's windows (not the late ones it also remembers)."""
        raw = await self.client.hgetall(self._key(entity, "i"))
        return {
            (k.decode() if isinstance(k, bytes) else str(k))
            for k, v in raw.items()
            if not SeenEntry.decode(v).late
        }

    async def bucket_total(self, entity: str) -> int:
        """Events counted in the buckets: first stories and syndicated repeats."""
        raw = await self.client.hgetall(self._key(entity, "b"))
        return sum(Counts.decode(v).total + Counts.decode(v).rep for v in raw.values())

    async def buckets(self, entity: str) -> dict[int, Counts]:
        raw = await self.client.hgetall(self._key(entity, "b"))
        return {int(b): Counts.decode(v) for b, v in raw.items()}

    async def entities(self, pattern: str) -> set[str]:
        """Entities matching a glob (``topic:*``) that have an applied-id set."""
        keys = self.client.scan_iter(match=f"{self.prefix}:v2:{{{pattern}}}:i", count=500)
        return {(k.decode() if isinstance(k, bytes) else k).split("{", 1)[1].split("}")[0]
                async for k in keys}  # fmt: skip

    async def duplicates(self, entity: str) -> int:
        return int(await self.client.hget(self._key(entity, "s"), "dup") or 0)

    async def close(self) -> None:
        await self.client.aclose()


def _scored_topics(scored: Sequence[bytes], problems: list[str]) -> dict[str, str]:
    """id -> the ``topic:<slug>`` entity it was scored with (every copy must agree)."""
    from models.labels import topic_slug

    out: dict[str, str] = {}
    for raw in scored:
        item = ScoredNews.model_validate_json(raw)
        slug = topic_slug(item.topic)
        if not slug:
            continue
        entity = f"topic:{slug}"
        if out.setdefault(item.id, entity) != entity:
            problems.append(f"{item.id} scored as {out[item.id]} and as {entity}")
    return out


async def conservation(
    settings: Settings, feed: Feed, *, within: float = 90.0, entities: Sequence[str] = ()
) -> Conservation:
    """Wait until every id is counted or dead-lettered, then check the law for each entity."""
    view = RedisView(settings)
    try:

        async def dead_now() -> tuple[set[str], dict[str, int]]:
            ids: set[str] = set()
            reasons: dict[str, int] = {}
            for raw in await read_topic(settings, settings.topic_deadletter):
                d = DeadLetter.model_validate_json(raw)
                if d.entity is None:  # news-level dead letter (not a late entity event)
                    reasons[d.reason] = reasons.get(d.reason, 0) + 1
                    if (i := news_id_of(d)) is not None:
                        ids.add(i)
            return ids, reasons

        all_ids = set(feed.ids)

        async def settled() -> bool:
            counted = await view.ids("market")
            if len(counted | all_ids) != len(all_ids):
                return False
            missing = all_ids - counted
            return not missing or missing <= (await dead_now())[0]

        await wait_for(settled, within, "every id counted in market or dead-lettered", 0.5)
        dead_ids, reasons = await dead_now()
        problems: list[str] = []
        expected = feed.ids_by_entity(exclude=dead_ids)
        scored = await read_topic(settings, settings.topic_scored)
        topics = _scored_topics(scored, problems)
        for i, topic in topics.items():
            if i not in dead_ids:
                expected.setdefault(topic, set()).add(i)
        extra = await view.entities("topic:*") - set(expected)
        if extra:
            problems.append(f"topic entities no scored item names: {sorted(extra)[:5]}")
        for entity in [*expected, *entities]:
            want = expected.get(entity, set())
            got = await view.ids(entity)
            total = await view.bucket_total(entity)
            if got != want:
                problems.append(
                    f"{entity}: missing {sorted(want - got)[:5]} extra {sorted(got - want)[:5]}"
                )
            if total != len(got):
                problems.append(f"{entity}: buckets count {total} for {len(got)} ids")
        both = dead_ids & await view.ids("market")
        if both:
            problems.append(f"counted AND dead-lettered: {sorted(both)[:5]}")
        return Conservation(
            records_in=len(feed.rows),
            counted=len(await view.ids("market")),
            dead=reasons,
            dead_ids=dead_ids,
            duplicates=await view.duplicates("market"),
            scored_records=len(scored),
            problems=problems,
        )
    finally:
        await view.close()


async def worker_alerts(settings: Settings) -> dict[str, Alert]:
    """The feed's alerts on the topic (``feed_alerts``), de-duplicated by alert id (what a
    consumer is asked to do)."""
    raw = await read_topic(settings, settings.topic_alerts)
    return {a.alert_id: a for a in feed_alerts(raw)}


async def reference_alerts(settings: Settings, feed: Feed) -> dict[str, Alert]:
    """Fault-free reference: the scored items through an in-process Aggregator, in the order
    a worker's sequencer releases entity events (event time, id, entity)."""
    from stream_app.core.aggregator import Aggregator, BatchOutcome
    from stream_app.core.scoring import to_entity_events
    from stream_app.store.memory import MemoryWindowStore

    first: dict[str, ScoredNews] = {}
    for raw in await read_topic(settings, settings.topic_scored):
        s = ScoredNews.model_validate_json(raw)
        first.setdefault(s.id, s)
    ordered = [first[i] for i in feed.ids if i in first]
    events = sorted(to_entity_events(ordered), key=lambda e: (e.event_time_ms, e.id, e.entity))
    outs: list[BatchOutcome] = []

    async def emit(o: BatchOutcome) -> None:
        outs.append(o)

    agg = Aggregator(MemoryWindowStore(), settings.window, settings.detector)
    await agg.process(events, emit)
    return {a.alert_id: a for o in outs for a in o.alerts}


def alert_summary(alerts: dict[str, Alert], prefix: str = "ticker:") -> set[tuple[Any, ...]]:
    """What must match between runs, for entities whose event order is deterministic."""
    return {
        (a.alert_id, a.entity, a.state, a.episode, a.fired_at, a.negative_count, a.total_count)
        for a in alerts.values()
        if a.entity.startswith(prefix)
    }


def assignment(worker: WorkerProcess, topic: str) -> tuple[int, set[int]]:
    """(generation, partitions of ``topic``) of the worker's latest group assignment, as
    its log shows it (Faust prints each assignment as a table); (-1, set()) before one."""
    generation, parts = -1, set[int]()
    lines = worker.log_path.read_text(errors="replace").splitlines()
    for i, line in enumerate(lines):
        if "Successfully synced group" in line and "generation" in line:
            generation = int(line.rsplit("generation", 1)[1].split()[0])
        elif "Setting newly assigned partitions" in line:
            parts = set()
            for row in lines[i + 1 : i + 40]:
                cells = [c.strip() for c in row.strip().strip("|").split("|")]
                if len(cells) == 2 and cells[0] == topic:  # "{0}", "{0, 2}", "{0-2}"
                    for item in filter(None, cells[1].strip("{}").replace(" ", "").split(",")):
                        lo, _, hi = item.partition("-")
                        parts.update(range(int(lo), int(hi or lo) + 1))
                if row.startswith("+") and "for group" in row:
                    break
    return generation, parts


def metric(base_url: str, name: str) -> float:
    status, body = http_get(f"{base_url}/metrics")
    assert status == 200, status
    return metric_sum(body.decode(), name)
