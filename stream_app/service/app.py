"""``create_app(settings)``: the Faust application — topics, the two agents, the web views.

Only ``finpulse worker`` (and tests) import this module, so importing Faust at the top is
fine; building an app has no side effects until it is started. The app:

* creates its topics with the admin client when it first starts (``broker.ensure_topics``),
* consumes ``news`` as raw bytes (so a bad record is dead-lettered byte for byte),
* runs ``ScoreStage`` and ``AggregateStage`` on micro-batches taken with ``noack_take``
  and acknowledges a batch's offsets only after the stage returned, that is after the
  broker acknowledged everything the batch produced (at-least-once),
* serves the read-only API of ``stream_app.service.web`` on ``Settings.web_port``, and
  the desk dashboard (``stream_app.service.dashboard``) at ``/`` with its ``/api`` reads,
  behind the same bearer token.

No Faust Tables: all state is in Redis (Tables with changelog topics hang on tansu).
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar, cast

import faust

from stream_app.config import Settings
from stream_app.model import load_linker, load_worker_predictor, make_scorer
from stream_app.service.aggregate import AggregateStage, ref_of
from stream_app.service.batches import (
    AckInOrder,
    InFlight,
    Record,
    run_overlapped,
    run_with_retry,
)
from stream_app.service.broker import ensure_topics, faust_credentials, topic_partitions
from stream_app.service.dashboard import DashboardApi, install_dashboard
from stream_app.service.dashboard.store_source import StoreSource
from stream_app.service.health import HealthState
from stream_app.service.metrics import Metrics
from stream_app.service.model_monitor import install_drift_alerts, watch_model
from stream_app.service.score import ScoredBatch, ScoreStage, Topology
from stream_app.service.shutdown import exit_now, start_watchdog
from stream_app.service.web import WebApi, install

__all__ = ["FinpulseApp", "create_app", "run_worker"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class FinpulseApp(faust.App):
    """A ``faust.App`` that creates its topics, stops in a fixed order, closes its Redis
    clients and serves HTTP through ``FinpulseWeb`` (finpulse's routes only, with timeouts
    and a connection bound)."""

    finpulse_settings: Settings
    finpulse_resources: list[Any]
    finpulse_inflight: InFlight

    def _new_web(self) -> Any:
        from stream_app.service.http import FinpulseWeb

        s = self.finpulse_settings  # set by create_app before any route is installed
        return FinpulseWeb(
            self, idle_timeout=s.web_idle_timeout, max_connections=s.web_max_connections
        )

    async def on_first_start(self) -> None:
        await ensure_topics(self.finpulse_settings)
        Path(self.conf.datadir).parent.mkdir(parents=True, exist_ok=True)
        await super().on_first_start()

    async def on_stop(self) -> None:
        """A stop (SIGTERM, SIGINT), in this order; mode runs this before stopping the
        app's children (agents, consumer, producer, web server).

        1. A watchdog starts: a stop still running after ``shutdown_timeout_seconds``
           ends the process (exit 70) with every thread's and task's stack in the log.
        2. The batch loops process no new batch (they keep taking them, unacknowledged,
           see ``InFlight``); the batches in flight get
           ``shutdown_grace_seconds`` to finish and be acknowledged, so the consumer's
           stop commits them and a restart does not score them again. One that does not
           finish is cancelled with its agent and redelivered (never acknowledged).
        3. Faust stops the consumer, flushes the producer and stops the agents.
        4. ``on_shutdown`` closes Redis and the model thread, after the agents stopped.
           (Closing them here, under running batches, made a batch fail with
           ``CancelledError``, which Faust takes for a rebalance and answers by
           restarting the agent in the middle of the stop: issue 12's flaky stop.)
        """
        s = self.finpulse_settings
        start_watchdog(s.shutdown_timeout_seconds, asyncio.get_running_loop())
        inflight = self.finpulse_inflight
        inflight.stopping = True
        if not await inflight.wait_idle(s.shutdown_grace_seconds):
            log.warning(
                "stopping: %d batch(es) still in flight after %.1f s; they are cut off and "
                "redelivered",
                inflight.count,
                s.shutdown_grace_seconds,
            )
        await super().on_stop()

    async def on_shutdown(self) -> None:
        await super().on_shutdown()
        for resource in self.finpulse_resources:
            close = getattr(resource, "aclose", None) or getattr(resource, "close", None)
            if close is None:
                continue
            try:
                result = close()
                if isinstance(result, Awaitable):
                    await result
            except Exception as exc:  # shutting down: report, never mask the stop
                log.warning("closing %s failed: %s", type(resource).__name__, exc)


class _FaustPublisher:
    """``batches.Publisher`` straight onto the app's shared producer (raw bytes).

    ``Topic.send`` wraps every record in Faust's FutureMessage, codec and sensor
    machinery, which cost more event-loop time than the send itself at ~4 records per
    news item; the records are bytes already, so they go to the producer directly. The
    returned future is aiokafka's: it resolves when the broker acknowledged the record.
    """

    def __init__(self, app: faust.App, topics: dict[str, Any]) -> None:
        self._app = app
        self._names = {name: t.get_topic_name() for name, t in topics.items()}

    async def send(
        self, topic: str, key: bytes | None, value: bytes, partition: int | None = None
    ) -> Any:
        producer = await self._app.maybe_start_producer()  # started once; cheap after
        return await producer.send(self._names[topic], key, value, partition, None, None)


def _record(event: Any) -> Record:
    msg = event.message
    ts = msg.timestamp
    return Record(
        value=msg.value,
        key=msg.key,
        topic=msg.topic,
        partition=msg.partition,
        offset=msg.offset,
        timestamp_ms=round(ts * 1000) if ts and ts > 0 else None,
    )


def _lag_reader(app: faust.App) -> Any:
    def read() -> dict[tuple[str, int], int]:
        consumer = app.consumer
        committed = getattr(consumer, "_committed_offset", {})
        out: dict[tuple[str, int], int] = {}
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is None:
                continue
            done = committed.get(tp) or 0
            out[(tp.topic, tp.partition)] = max(0, int(high) - int(done))
        return out

    return read


def _faust_datadir(app_id: str) -> Path:
    # Faust insists on a data dir even without tables; keep it out of the working tree.
    return Path(tempfile.gettempdir()) / "finpulse-faust" / app_id


def _news_watch(app: faust.App, topic: str) -> tuple[Any, Any]:
    """``assigned_news`` and ``caught_up`` for the score stage's ``Topology``.

    Caught up: the consumer has read (or had committed) everything up to the partition's
    high-water mark, as far as the last fetch response knows; unknown means no.
    """
    from faust.types import TP

    def assigned() -> set[int]:
        return {tp.partition for tp in app.consumer.assignment() if tp.topic == topic}

    def caught_up(partition: int) -> bool:
        consumer = app.consumer
        tp = TP(topic, partition)
        high = consumer.highwater(tp)
        if high is None:
            return False
        read = getattr(consumer, "_read_offset", {}).get(tp)
        position = (
            read + 1
            if read is not None
            else (getattr(consumer, "_committed_offset", {}).get(tp) or 0)
        )
        return int(position) >= int(high)

    return assigned, caught_up


def create_app(
    settings: Settings,
    *,
    predictor: Any | None = None,
    store: Any | None = None,
    linker: Any | None = None,
    partitions: dict[str, int] | None = None,
) -> FinpulseApp:
    """Build the worker app. ``predictor``/``store``/``linker`` default to the configured
    model, Redis and company linker (``stream_app.model.load_linker``).

    ``partitions``: the partition counts of the news and entity topics as the broker has
    them (``run_worker`` asks it); ``Settings.topic_partitions`` where not given.
    """
    from stream_app.core.aggregator import Aggregator

    if linker is None:
        linker = load_linker(settings)  # a bad FINPULSE_ALIASES_FILE stops here, file:line
    if predictor is None:
        predictor = load_worker_predictor(settings)
    if store is None:
        store = _redis_store(settings)
    counts = partitions or {}

    session = settings.broker_session_timeout
    app = FinpulseApp(
        settings.app_id,
        broker=settings.broker,
        broker_credentials=faust_credentials(settings),
        broker_rebalance_timeout=settings.broker_rebalance_timeout,
        broker_session_timeout=session,
        broker_heartbeat_interval=min(3.0, session / 3),
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        key_serializer="raw",
        value_serializer="raw",
        store="memory://",
        datadir=str(_faust_datadir(settings.app_id)),
        web_enabled=True,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        autodiscover=False,
        # Unacknowledged records are redelivered, so a stop need not wait for them.
        stream_wait_empty=False,
    )
    app.finpulse_settings = settings
    app.finpulse_resources = [store]

    def topic(name: str) -> Any:
        return app.topic(
            name,
            key_serializer="raw",
            value_serializer="raw",
            partitions=counts.get(name, settings.topic_partitions),
            replicas=settings.topic_replication,
        )

    news = topic(settings.topic_news)
    entity_events = topic(settings.topic_entity_events)
    publisher = _FaustPublisher(
        app,
        {
            settings.topic_scored: topic(settings.topic_scored),
            settings.topic_entity_events: entity_events,
            settings.topic_alerts: topic(settings.topic_alerts),
            settings.topic_deadletter: topic(settings.topic_deadletter),
        },
    )

    metrics = Metrics()
    metrics.set_lag_reader(_lag_reader(app))
    # Model monitoring hook (service/model_monitor.py): series on /metrics, drift alerts.
    monitor = watch_model(settings, predictor, metrics.registry)
    install_drift_alerts(app, monitor, publisher, settings.topic_alerts)
    health = HealthState(app_id=settings.app_id, model_version=str(predictor.model_version))
    assigned, caught_up = _news_watch(app, settings.topic_news)
    topology = Topology(
        news_partitions=counts.get(settings.topic_news, settings.topic_partitions),
        entity_partitions=counts.get(settings.topic_entity_events, settings.topic_partitions),
        assigned_news=assigned,
        caught_up=caught_up,
    )
    scorer = make_scorer(settings, predictor, linker)
    score_stage = ScoreStage(settings, scorer, publisher, metrics, topology)
    aggregator = Aggregator(store, settings.window, settings.detector)
    aggregate_stage = AggregateStage(settings, lambda: aggregator, publisher, metrics)
    app.finpulse_resources.append(score_stage)
    backoff = min(5.0, settings.redis_retry_max_seconds)
    held = AckInOrder()  # aggregate-side records taken, not yet acknowledged

    def retrying_call(agent: str, batch: Callable[[], Awaitable[T]]) -> Awaitable[T]:
        return run_with_retry(
            agent,
            batch,
            health=health,
            metrics=metrics,
            max_backoff=backoff,
            stopping=lambda: bool(app.should_stop),
        )

    def retrying(stage: ScoreStage | AggregateStage, records: Sequence[Record]) -> Any:
        return retrying_call(stage.agent, functools.partial(stage.process, records))

    # A stop lets the batches in flight finish and be acknowledged (FinpulseApp.on_stop);
    # a batch taken once the stop began stays unacknowledged and is redelivered.
    inflight = app.finpulse_inflight = InFlight()

    async def run_score_overlapped(stream: Any) -> None:
        """The score agent's loop with ``score_overlap``: batch N+1 is validated and scored
        while batch N is published; batches are published and acknowledged one at a time
        in the order they were read (``batches.run_overlapped``)."""

        async def prepare(events: list[Any]) -> ScoredBatch:
            records = [_record(e) for e in events]
            return await retrying_call("score", functools.partial(score_stage.score, records))

        async def finish(events: list[Any], batch: ScoredBatch) -> None:
            await retrying_call("score", functools.partial(score_stage.publish, batch))
            for event in events:
                await stream.ack(event)

        batches = stream.noack_take(settings.batch_size, within=settings.batch_max_wait)
        await run_overlapped(batches, prepare, finish, inflight)

    @app.agent(news, name="finpulse.score")
    async def score(stream: Any) -> None:
        if settings.score_overlap:
            await run_score_overlapped(stream)
            return
        async for events in stream.noack_take(settings.batch_size, within=settings.batch_max_wait):
            if inflight.stopping:
                continue  # unacknowledged, redelivered; never leave the loop (see InFlight)
            with inflight.batch():
                await retrying(score_stage, [_record(e) for e in events])
                for event in events:
                    await stream.ack(event)

    @app.agent(entity_events, name="finpulse.aggregate")
    async def aggregate(stream: Any) -> None:
        size, within = settings.aggregate_batch_records, settings.batch_max_wait
        async for events in stream.noack_take(size, within=within):
            if inflight.stopping:
                continue  # unacknowledged, redelivered; never leave the loop (see InFlight)
            with inflight.batch():
                records = [_record(e) for e in events]
                for rec, event in zip(records, events, strict=True):
                    held.taken(ref_of(rec), event)
                for event in held.done(await retrying(aggregate_stage, records)):
                    await stream.ack(event)

    @app.timer(interval=max(0.1, settings.watermark_idle_seconds / 2))
    async def heartbeat() -> None:
        try:
            await score_stage.heartbeat()
        except Exception as exc:  # the next batch or beat carries the progress anyway
            log.warning("progress heartbeat failed: %s", exc)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # faust's signal typing
    async def on_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        mine = {tp.partition for tp in revoked if tp.topic == settings.topic_entity_events}
        aggregate_stage.revoke(mine)
        held.revoke(mine)
        score_stage.progress.forget(
            tp.partition for tp in revoked if tp.topic == settings.topic_news
        )

    reader, probe = _read_side(settings, store, app.finpulse_resources)
    api = WebApi(
        store=lambda: reader,
        metrics=metrics,
        health=health,
        api_token=settings.api_token.get_secret_value() if settings.api_token else None,
        ping=probe,
        window=settings.window,
        detector=settings.detector,
    )
    install(app, api)
    # the desk dashboard: GET / and its read API, on the API's own (fail-fast) store reader
    install_dashboard(
        cast(Any, app.web).web_app,
        DashboardApi(StoreSource(reader, settings.window.bucket_seconds * 1000),
                     settings.window, settings.detector),
        authorized=api.authorized,
    )  # fmt: skip
    app.finpulse_metrics = metrics  # type: ignore[attr-defined]
    log.info(
        "finpulse app %s: broker %s, redis %s, model %s, web %s:%d",
        settings.app_id, settings.broker, settings.redis_url_masked,
        health.model_version, settings.web_host, settings.web_port,
    )  # fmt: skip
    return app


def _redis_store(settings: Settings) -> Any:
    from stream_app.store.redis import RedisWindowStore

    return RedisWindowStore.from_settings(settings)


_API_SOCKET_TIMEOUT = 2.0  # a hung Redis answers the API with 503 after this, not 10 s


def _read_side(settings: Settings, store: Any, resources: list[Any]) -> tuple[Any, Any]:
    """The web API's store and ``/health``'s Redis probe, each on a connection pool of its
    own: HTTP traffic never takes a connection the aggregator needs, the API's pool is
    bounded (``web_redis_connections``) and fails fast (no retries: the client retries),
    and health PINGs at most once a second on one connection. A store that is not Redis
    (tests) serves the API itself, and health has no Redis to probe."""
    from stream_app.service.health import CachedProbe
    from stream_app.store.client import redis_client
    from stream_app.store.redis import RedisWindowStore

    if not isinstance(store, RedisWindowStore):
        return store, None
    pooled = redis_client(
        settings,
        max_connections=settings.web_redis_connections,
        socket_timeout=_API_SOCKET_TIMEOUT,
    )
    reader = RedisWindowStore(
        pooled,
        settings.redis_key_prefix,
        retention_seconds=settings.window.retention_seconds,
        retry_max_seconds=0.0,
    )
    pinger = redis_client(settings, max_connections=1, socket_timeout=_API_SOCKET_TIMEOUT)
    resources += [reader, pinger]
    return reader, CachedProbe(pinger.ping, ttl=1.0, timeout=_API_SOCKET_TIMEOUT)


def run_worker(
    settings: Settings, *, predictor: Any | None = None, verbose: bool = False
) -> NoReturn:
    """``finpulse worker``: create topics, load the model, run until SIGINT/SIGTERM.

    Ends the process: after the stop everything is flushed and committed, and the
    interpreter's own teardown (seconds with torch and transformers loaded: 4 s measured
    on a busy 2-core machine) would only count against the supervisor's kill timeout.
    """
    linker = load_linker(settings)  # fail fast: a bad aliases file, before model or broker
    if predictor is None:
        predictor = load_worker_predictor(settings)  # fail fast: no model, no broker traffic
    asyncio.run(ensure_topics(settings))  # fail fast with a clear broker error
    partitions = asyncio.run(
        topic_partitions(settings, [settings.topic_news, settings.topic_entity_events])
    )
    app = create_app(settings, predictor=predictor, linker=linker, partitions=partitions)
    # Everything that exists now (the model, tokenizer and linker: hundreds of thousands of
    # objects) lives as long as the process: out of the collector's sight, a full
    # collection no longer walks them (the pause is measured in BENCHMARKS.md).
    gc.freeze()
    worker = faust.Worker(
        app,
        loglevel="debug" if verbose else "info",
        redirect_stdouts=False,
    )
    code = 0
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (1 if exc.code else 0)
    exit_now(code)
