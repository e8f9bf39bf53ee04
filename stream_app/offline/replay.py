"""``finpulse replay``: history into Kafka, so a live worker sees it as it happened.

File mode publishes a feed in event-time order with each record's Kafka timestamp set to
its event time; the value is exactly the bytes ``finpulse backtest`` validates, so the
worker parses the same record the backtest scored. ``--speed 60`` keeps the gaps between
events at 1/60 of their real length; ``--speed max`` sends as fast as the broker acks
(sends are pipelined and awaited in chunks).

Topic mode (``--from-topic``) copies a slice of an existing topic into the input topic of
an *isolated run*: ``isolated_settings`` gives the run its own consumer group (app id),
Redis key namespace and topics, so a backtest through Kafka never touches live state.
Start a worker with the env that ``--print-env`` shows to process it.

Parity with ``backtest`` holds when each entity's events reach the aggregator in event
time order; a 1-partition input topic (or one producer per key) guarantees that.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.errors import FinpulseError
from stream_app.config import Settings
from stream_app.schemas import ms_to_datetime

if TYPE_CHECKING:
    from stream_app.offline.feeds import LoadedFeed

__all__ = [
    "ReplayError",
    "ReplayRecord",
    "ReplaySummary",
    "copy_topic",
    "file_records",
    "isolated_env",
    "isolated_settings",
    "parse_speed",
    "publish",
    "replay_file",
    "replay_topic",
]

log = logging.getLogger(__name__)

_RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_CHUNK = 2000  # sends in flight before awaiting their acks
_RETRIES = 5


class ReplayError(FinpulseError):
    """A replay that could not finish; the message says how far it got."""


@dataclass(frozen=True)
class ReplayRecord:
    event_ms: int
    key: bytes | None
    value: bytes


@dataclass
class ReplaySummary:
    topic: str
    sent: int
    skipped: dict[str, int] = field(default_factory=dict)
    first_skipped: list[str] = field(default_factory=list)  # "line N: reason", a few
    filtered: int = 0
    duration_seconds: float = 0.0
    first_event: str | None = None
    last_event: str | None = None

    @property
    def rate(self) -> float:
        return self.sent / self.duration_seconds if self.duration_seconds > 0 else 0.0

    def line(self) -> str:
        skipped = sum(self.skipped.values())
        by = ", ".join(f"{k} {v}" for k, v in self.skipped.items())
        first = "; ".join(self.first_skipped)
        return (
            f"replayed {self.sent} records to {self.topic!r} in {self.duration_seconds:.2f}s "
            f"({self.rate:,.0f}/s); skipped {skipped}{f' ({by})' if by else ''}"
            f"{f' [{first}]' if first else ''}; "
            f"outside --from/--to {self.filtered}; event time {self.first_event} .. "
            f"{self.last_event}"
        )


def parse_speed(text: str) -> float | None:
    """``max`` -> None (no pacing); a positive number -> that many times real time."""
    if text.strip().lower() == "max":
        return None
    try:
        speed = float(text)
    except ValueError:
        raise ReplayError(f"--speed must be a positive number or 'max', got {text!r}") from None
    if not speed > 0 or speed == float("inf"):
        raise ReplayError(f"--speed must be a positive number or 'max', got {text!r}")
    return speed


def isolated_settings(settings: Settings, run_id: str) -> Settings:
    """Settings of a run that shares nothing with live: group, Redis namespace, topics."""
    if not _RUN_ID.match(run_id):
        raise ReplayError(f"--run-id must match {_RUN_ID.pattern}, got {run_id!r}")
    changes: dict[str, object] = {
        "app_id": f"{settings.app_id}-run-{run_id}",
        "redis_key_prefix": f"{settings.redis_key_prefix}:run:{run_id}",
    }
    for name in ("topic_news", "topic_scored", "topic_alerts", "topic_deadletter"):
        changes[name] = f"{getattr(settings, name)}.run.{run_id}"
    changes["topic_entity_events"] = f"{settings.topic_entity_events}.run.{run_id}"
    try:
        return settings.with_overrides(**changes)
    except ValueError as exc:
        raise ReplayError(f"run id {run_id!r} makes invalid settings: {exc}") from None


def isolated_env(base: Settings, run: Settings) -> dict[str, str]:
    """The ``FINPULSE_*`` variables that turn a worker's ``base`` settings into ``run``."""
    out = {}
    for name in ("app_id", "redis_key_prefix", "topic_news", "topic_scored", "topic_alerts",
                 "topic_deadletter", "topic_entity_events"):  # fmt: skip
        if getattr(base, name) != getattr(run, name):
            out[f"FINPULSE_{name.upper()}"] = str(getattr(run, name))
    return out


async def _start(client: Any, settings: Settings) -> None:
    from stream_app.service.broker import BrokerError, start_client

    try:
        await start_client(client, settings)
    except BrokerError as exc:
        raise ReplayError(str(exc)) from None


async def _start_producer(settings: Settings) -> Any:
    """acks=all; idempotent where the broker supports it (tansu does not: plain acks=all)."""
    from aiokafka import AIOKafkaProducer

    from stream_app.service.broker import aiokafka_kwargs

    common = dict(**aiokafka_kwargs(settings), acks="all", linger_ms=5, max_batch_size=256 * 1024)
    producer = AIOKafkaProducer(**common, enable_idempotence=True)
    try:
        await _start(producer, settings)  # an unreachable broker ends here, with no retry
        return producer
    except ReplayError:
        raise
    except Exception as exc:
        log.info("broker refused an idempotent producer (%s); using acks=all without it", exc)
    producer = AIOKafkaProducer(**common)
    await _start(producer, settings)
    return producer


async def _send_chunk(producer: Any, topic: str, chunk: Sequence[ReplayRecord]) -> int:
    """Send a chunk and await its acks; returns how many leading records were acked."""
    futures = [
        await producer.send(topic, r.value, key=r.key, timestamp_ms=r.event_ms) for r in chunk
    ]
    results = await asyncio.gather(*futures, return_exceptions=True)
    for i, res in enumerate(results):
        if isinstance(res, BaseException):
            if i == 0:
                raise res
            return i
    return len(chunk)


async def publish(
    records: Sequence[ReplayRecord],
    settings: Settings,
    topic: str,
    *,
    speed: float | None = None,
    progress: bool = True,
    retries: int = _RETRIES,
) -> ReplaySummary:
    """Publish records in the given order; retries failed sends, then says how far it got."""
    from tqdm import tqdm

    summary = ReplaySummary(topic=topic, sent=0)
    if records:
        summary.first_event = ms_to_datetime(records[0].event_ms).isoformat()
    producer = await _start_producer(settings)
    started = time.monotonic()
    bar = tqdm(total=len(records), unit="rec", desc=f"replay -> {topic}", disable=not progress)
    try:
        i = 0
        failures = 0
        while i < len(records):
            end = min(i + _CHUNK, len(records))
            if speed is not None:
                # Everything already due goes out as one chunk; otherwise wait for the next.
                elapsed = (time.monotonic() - started) * speed * 1000
                due_ms = records[0].event_ms + elapsed
                end = i
                while end < min(i + _CHUNK, len(records)) and records[end].event_ms <= due_ms:
                    end += 1
                if end == i:
                    wait = (records[i].event_ms - due_ms) / 1000 / speed
                    await asyncio.sleep(min(wait, 1.0))
                    continue
            try:
                acked = await _send_chunk(producer, topic, records[i:end])
            except Exception as exc:
                failures += 1
                if failures > retries:
                    last = ms_to_datetime(records[i - 1].event_ms).isoformat() if i else "none"
                    raise ReplayError(
                        f"replay to {topic!r} stopped after {i} of {len(records)} records "
                        f"(last acknowledged event time {last}): {exc!r}"
                    ) from exc
                log.warning("send failed (%r); retry %d/%d", exc, failures, retries)
                await asyncio.sleep(min(5.0, 0.2 * 2**failures))
                continue
            failures = 0
            i += acked
            bar.update(acked)
            summary.sent = i
            summary.last_event = ms_to_datetime(records[i - 1].event_ms).isoformat()
    finally:
        bar.close()
        summary.duration_seconds = time.monotonic() - started
        await producer.stop()
    return summary


async def copy_topic(
    settings: Settings,
    source: str,
    *,
    from_offset: int | None = None,
    from_time: datetime | None = None,
    to_time: datetime | None = None,
    idle_ms: int = 1000,
) -> list[ReplayRecord]:
    """The records of ``source`` from an offset or time (per partition) up to its end (and
    before ``to_time``), merged into timestamp order, held in memory."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from stream_app.service.broker import aiokafka_kwargs

    consumer = AIOKafkaConsumer(
        **aiokafka_kwargs(settings), enable_auto_commit=False, group_id=None
    )
    await _start(consumer, settings)
    try:
        await consumer.topics()  # refreshes metadata; partitions_for_topic reads the cache
        parts = consumer.partitions_for_topic(source)
        if not parts:
            raise ReplayError(f"topic {source!r} does not exist or has no partitions")
        tps = [TopicPartition(source, p) for p in sorted(parts)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        if from_time is not None:
            found = await consumer.offsets_for_times(
                {tp: int(from_time.timestamp() * 1000) for tp in tps}
            )
            for tp in tps:
                hit = found.get(tp)
                consumer.seek(tp, hit.offset if hit is not None else ends[tp])
        else:
            for tp in tps:
                consumer.seek(tp, max(starts[tp], from_offset or 0))
        from_ms = int(from_time.timestamp() * 1000) if from_time else None
        to_ms = int(to_time.timestamp() * 1000) if to_time else None
        out: list[tuple[int, int, int, ReplayRecord]] = []
        # A partition is done when a poll brings nothing and it is past the end offset seen
        # at the start; end offsets alone are not trusted (tansu under-reports them).
        pending = set(tps)
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=idle_ms)
            for tp, messages in batch.items():
                for m in messages:
                    if (from_ms is None or m.timestamp >= from_ms) and (
                        to_ms is None or m.timestamp < to_ms
                    ):
                        rec = ReplayRecord(m.timestamp, m.key, m.value or b"")
                        out.append((m.timestamp, tp.partition, m.offset, rec))
            for tp in list(pending):
                if not batch.get(tp) and await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
    finally:
        await consumer.stop()
    out.sort(key=lambda t: t[:3])
    return [t[3] for t in out]


def file_records(
    feed: Path,
    settings: Settings,
    *,
    fmt: str | None = None,
    strict: bool = False,
    time_from: datetime | None = None,
    time_to: datetime | None = None,
) -> tuple[list[ReplayRecord], LoadedFeed]:
    """A feed file's valid items as replay records (event-time order), and the loaded feed."""
    from stream_app.offline.feeds import load_feed

    loaded = load_feed(feed, settings, fmt=fmt, strict=strict, time_from=time_from, time_to=time_to)
    records = [ReplayRecord(f.event_ms, f.item.id.encode(), f.raw) for f in loaded.items]
    return records, loaded


async def replay_file(
    feed: Path,
    settings: Settings,
    *,
    topic: str | None = None,
    speed: float | None = None,
    fmt: str | None = None,
    strict: bool = False,
    time_from: datetime | None = None,
    time_to: datetime | None = None,
    partitions: int | None = None,
    progress: bool = True,
) -> ReplaySummary:
    """Publish a feed file to ``topic`` (default the news topic) in event-time order."""
    from pydantic import ValidationError

    from stream_app.config import check_topic_name
    from stream_app.service.broker import ensure_topics

    target = topic or settings.topic_news
    try:
        check_topic_name(target)
        created = settings.with_overrides(topic_partitions=partitions) if partitions else None
    except (ValueError, ValidationError) as exc:  # before reading the feed or connecting
        raise ReplayError(f"--topic/--partitions: {exc}") from None
    records, loaded = file_records(
        feed, settings, fmt=fmt, strict=strict, time_from=time_from, time_to=time_to
    )
    if created is not None:
        await ensure_topics(created, [target])
    summary = await publish(records, settings, target, speed=speed, progress=progress)
    summary.skipped = loaded.skipped_by_reason
    summary.first_skipped = [f"line {b.line}: {b.reason}" for b in loaded.bad[:3]]
    summary.filtered = loaded.filtered
    return summary


async def replay_topic(
    settings: Settings,
    source: str,
    run: Settings,
    *,
    from_offset: int | None = None,
    from_time: datetime | None = None,
    time_to: datetime | None = None,
    speed: float | None = None,
    progress: bool = True,
) -> ReplaySummary:
    """Copy a slice of ``source`` into the news topic of the isolated run ``run``."""
    from stream_app.service.broker import ensure_topics

    if (from_offset is None) == (from_time is None):
        raise ReplayError("--from-topic needs exactly one of --from-offset, --from-time")
    records = await copy_topic(
        settings, source, from_offset=from_offset, from_time=from_time, to_time=time_to
    )
    await ensure_topics(run, [run.topic_news])
    return await publish(records, run, run.topic_news, speed=speed, progress=progress)
