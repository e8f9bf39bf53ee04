"""The forwarder's loop: consume alerts in its own group, deliver, dead-letter, then commit.

Per batch of records (``getmany``): an entity's records (the record key is the entity) in
order, so its resolve never overtakes its firing; different entities concurrently, up to
``MAX_IN_FLIGHT`` alerts at a time:

1. A record that is not a valid ``Alert`` is dead-lettered (``invalid_alert``).
2. The router names the sinks; each routed sink, in parallel:
   a. the ledger says ``delivered`` or ``dead_lettered``: skip (a redelivered record);
   b. else attempt: ledger ``pending`` (attempt n, outcome unknown) first, then the POST
      with ``X-Finpulse-Attempt: n`` and, from the second attempt on,
      ``X-Finpulse-Retry-Reason`` (``http 503``, ``timeout after 10 s``, ``connection
      error: ...``; after a stop, crash or rebalance left a ``pending`` record:
      ``redelivery: attempt n-1 failed (http 503)`` or ``redelivery: attempt n-1 has no
      recorded outcome``); a failure is recorded with its reason before the back-off;
   c. 2xx: ledger ``delivered``; a rejecting status: dead letter ``rejected`` at once;
      a retryable failure: back off (``retry.RetryPolicy``) and retry, and after
      ``max_attempts`` (counted across restarts, at least one per start) dead letter
      ``delivery_failed``. A dead letter is acknowledged by the broker (acks=all) before
      the ledger says ``dead_lettered``.
3. The batch's offsets are committed (last offset + 1 per partition).

A crash anywhere before step 3 re-reads the batch from the last commit: acknowledged
deliveries are skipped (2a), unknown outcomes are retried with a reason (2b). A stop
(SIGTERM, Ctrl-C) cancels the batch in flight, back-offs included, and commits nothing
of it, so it takes effect at once and loses nothing; a dead letter whose ledger record was
not written yet may be written again (dead letters are at-least-once too). So every
alert reaches every routed sink or the dead-letter topic (at-least-once), and a second
request under one ``alert_id`` to one sink always says why. A sink that keeps failing
holds up the batch (the next poll) for about one retry budget
(``RetryPolicy.worst_case_seconds``; the batch's entities wait out theirs together); the
worker is unaffected, since it never waits for this consumer group.

Alertmanager sinks also re-send their firing alerts every ``resend_seconds``
(``AlertmanagerSink.resend``), those of the partitions this consumer owns.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from stream_app.config import ForwardSettings, Settings
from stream_app.schemas import Alert, AlertDeadLetter
from stream_app.service.broker import aiokafka_kwargs, ensure_topics
from stream_app.service.forward.config import ForwardPlan
from stream_app.service.forward.ledger import Ledger
from stream_app.service.forward.payloads import delivery_headers
from stream_app.service.forward.retry import Attempt
from stream_app.service.forward.routing import AlertView, Router
from stream_app.service.forward.sinks import AlertmanagerSink, HttpClient, Sink, build

__all__ = ["ForwardStats", "Forwarder"]

log = logging.getLogger(__name__)
MAX_POLL_RECORDS = 50
MAX_IN_FLIGHT = 32  # alerts being delivered at once (different entities)


@dataclass
class ForwardStats:
    """Counters of one forwarder run; ``wait_until`` lets a caller await a state."""

    records: int = 0
    delivered: int = 0
    skipped: int = 0
    retries: int = 0
    failed_attempts: int = 0  # recorded in the ledger with their reason
    dead_lettered: int = 0
    invalid: int = 0
    resent: int = 0
    commits: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def bump(self, **counts: int) -> None:
        for name, n in counts.items():
            setattr(self, name, getattr(self, name) + n)
        self._changed.set()

    async def wait_until(self, pred: Callable[[ForwardStats], bool], within: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            self._changed.clear()
            if pred(self):
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"forwarder did not reach the awaited state: {self}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)


def _original(raw: bytes) -> tuple[str, str]:
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"


class Forwarder:
    def __init__(
        self, settings: Settings, forward: ForwardSettings, plan: ForwardPlan, *,
        from_beginning: bool = False, redis: Any = None,
    ) -> None:  # fmt: skip
        self.settings = settings
        self.forward = forward
        self.plan = plan
        self.from_beginning = from_beginning
        self.router = Router(plan.routes)
        self.stats = ForwardStats()
        self._redis = redis
        self._rng = random.Random()
        self._in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._producer: Any = None
        self._http: HttpClient | None = None
        self._ledger_: Ledger | None = None
        self.sinks: dict[str, Sink] = {}

    @property
    def _ledger(self) -> Ledger:
        assert self._ledger_ is not None, "run() sets up the ledger"
        return self._ledger_

    # --- delivery -------------------------------------------------------------------------

    async def _dead_letter(
        self, record: Any, reason: str, detail: str, *, sink: str | None = None,
        alert_id: str | None = None, attempts: int = 0,
    ) -> None:  # fmt: skip
        text, encoding = _original(record.value or b"")
        letter = AlertDeadLetter(
            reason=reason, sink=sink, alert_id=alert_id, attempts=attempts, detail=detail[:1000],  # type: ignore[arg-type]
            original=text, encoding=encoding, source_topic=record.topic,  # type: ignore[arg-type]
            source_partition=record.partition, source_offset=record.offset,
            dead_lettered_at=datetime.now(UTC),
        )  # fmt: skip
        await self._producer.send_and_wait(
            self.settings.topic_alerts_deadletter, letter.model_dump_json().encode(),
            key=alert_id.encode() if alert_id else None,
        )  # fmt: skip
        self.stats.bump(dead_lettered=1)
        log.warning("forward: dead-lettered %s for sink %s: %s (%s)", alert_id or "a record",
                    sink or "-", reason, detail[:200])  # fmt: skip

    async def _attempt(
        self, sink: Sink, view: AlertView, alert: dict[str, Any], record: Any, attempt: int,
        reason: str | None,
    ) -> Attempt:  # fmt: skip
        assert self._http is not None
        headers = delivery_headers(view.alert_id, attempt, reason)
        async with sink.exclusive(view):
            request = await sink.request(view, alert, record.partition)
            got = await self._http.post(request, headers, sink.spec.timeout_seconds)
            if got.ok:
                await sink.delivered(view)
            else:
                sink.discard(view)
        return got

    async def _deliver(
        self, sink: Sink, view: AlertView, alert: dict[str, Any], record: Any
    ) -> None:
        ledger = self._ledger
        prior = await ledger.get(sink.name, view.alert_id)
        if prior is not None and prior.done:
            self.stats.bump(skipped=1)
            log.info("forward: %s -> %s already %s, skipped", view.alert_id[:12], sink.name,
                     prior.state)  # fmt: skip
            return
        attempt = prior.attempts if prior is not None else 0
        reason = None
        if prior is not None:  # a restart or rebalance interrupted this delivery
            reason = (f"redelivery: attempt {attempt} failed ({prior.reason})" if prior.reason
                      else f"redelivery: attempt {attempt} has no recorded outcome")  # fmt: skip
        policy = self.plan.retry
        budget = max(policy.max_attempts - attempt, 1)
        got: Attempt | None = None
        for i in range(budget):
            attempt += 1
            await ledger.put(sink.name, view.alert_id, "pending", attempt)  # outcome unknown
            if attempt > 1:
                self.stats.bump(retries=1)
            got = await self._attempt(sink, view, alert, record, attempt, reason)
            if got.ok:
                await ledger.put(sink.name, view.alert_id, "delivered", attempt)
                self.stats.bump(delivered=1)
                log.info("forward: %s %s %s -> %s delivered (attempt %d)", view.alert_id[:12],
                         view.entity, view.state, sink.name, attempt)  # fmt: skip
                return
            if not got.retryable:
                break
            reason = got.reason
            await ledger.put(sink.name, view.alert_id, "pending", attempt, reason)
            self.stats.bump(failed_attempts=1)
            log.warning("forward: %s -> %s (%s) attempt %d failed: %s", view.alert_id[:12],
                        sink.name, sink.spec.masked, attempt, got.detail)  # fmt: skip
            if i < budget - 1:
                await asyncio.sleep(policy.delay(attempt, self._rng, got.retry_after))
        assert got is not None
        kind = "delivery_failed" if got.retryable else "rejected"
        await self._dead_letter(record, kind, f"{sink.spec.masked}: {got.detail}", sink=sink.name,
                                alert_id=view.alert_id, attempts=attempt)  # fmt: skip
        await ledger.put(sink.name, view.alert_id, "dead_lettered", attempt, got.detail[:200])

    async def _handle(self, record: Any) -> None:
        raw = record.value or b""
        try:
            alert = Alert.model_validate_json(raw)
        except ValidationError as exc:
            self.stats.bump(invalid=1)
            await self._dead_letter(record, "invalid_alert", str(exc))
            self.stats.bump(records=1)
            return
        view = AlertView.of(alert)
        doc = json.loads(raw)
        names = self.router.sinks_for(view)
        await asyncio.gather(*(self._deliver(self.sinks[n], view, doc, record) for n in names))
        self.stats.bump(records=1)

    async def _partition(self, records: list[Any]) -> None:
        """A partition's records: an entity's (the record key's) in order, entities at once."""
        by_key: dict[Any, list[Any]] = {}
        for record in records:
            by_key.setdefault(record.key, []).append(record)
        await asyncio.gather(*(self._in_order(rs) for rs in by_key.values()))

    async def _in_order(self, records: list[Any]) -> None:
        for record in records:
            async with self._in_flight:
                await self._handle(record)

    # --- the loops ------------------------------------------------------------------------

    async def _resend_loop(self, sink: AlertmanagerSink, consumer: Any) -> None:
        assert self._http is not None
        while True:
            await asyncio.sleep(sink.spec.resend_seconds)
            owned = {tp.partition for tp in consumer.assignment()
                     if tp.topic == self.settings.topic_alerts}  # fmt: skip
            try:
                n = await sink.resend(self._http, owned)
            except Exception:  # a broken re-send must not stop deliveries; logged, retried
                log.exception("forward: re-send to %s failed", sink.name)
                continue
            self.stats.bump(resent=n)

    def _consumer(self) -> Any:
        from aiokafka import AIOKafkaConsumer

        s = self.settings
        session_ms = int(s.broker_session_timeout * 1000)
        per_alert = self.plan.retry.worst_case_seconds() + 10
        return AIOKafkaConsumer(
            s.topic_alerts, **aiokafka_kwargs(s), group_id=self.forward.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest" if self.from_beginning else "latest",
            session_timeout_ms=session_ms, heartbeat_interval_ms=max(100, session_ms // 3),
            rebalance_timeout_ms=int(s.broker_rebalance_timeout * 1000),
            max_poll_records=MAX_POLL_RECORDS,
            # a batch may wait out every record's retry budget before the next poll
            max_poll_interval_ms=int(max(300.0, MAX_POLL_RECORDS * per_alert) * 1000),
        )  # fmt: skip

    async def run(self, stop: asyncio.Event | None = None) -> ForwardStats:
        """Forward until ``stop`` is set (or the task is cancelled)."""
        import aiohttp
        from aiokafka import AIOKafkaProducer
        from aiokafka.errors import CommitFailedError, IllegalStateError

        from stream_app.store.client import redis_client

        s = self.settings
        stop = stop or asyncio.Event()
        await ensure_topics(s, [s.topic_alerts, s.topic_alerts_deadletter])
        redis = self._redis or redis_client(s)
        self._ledger_ = Ledger(
            redis, prefix=s.redis_key_prefix, group=self.forward.group,
            ttl_seconds=self.forward.ledger_ttl_seconds,
            retry_max_seconds=s.redis_retry_max_seconds, where=s.redis_url_masked,
        )  # fmt: skip
        self.sinks = {n: build(spec, self.plan.dashboard_url, self._ledger)
                      for n, spec in self.plan.sinks.items()}  # fmt: skip
        for line in self.plan.describe():
            log.info("%s", line)
        self._producer = AIOKafkaProducer(**aiokafka_kwargs(s), acks="all")
        consumer = self._consumer()
        tasks: list[asyncio.Task[Any]] = []
        async with aiohttp.ClientSession() as session:
            self._http = HttpClient(session)
            await self._producer.start()
            try:
                await consumer.start()
                am = [s for s in self.sinks.values() if isinstance(s, AlertmanagerSink)]
                tasks = [asyncio.create_task(self._resend_loop(sink, consumer)) for sink in am]
                stopping = asyncio.create_task(stop.wait())
                tasks.append(stopping)
                while not stop.is_set():
                    batches = await consumer.getmany(timeout_ms=500)
                    if not batches:
                        continue
                    work: asyncio.Future[Any] = asyncio.ensure_future(
                        asyncio.gather(*(self._partition(rs) for rs in batches.values()))
                    )
                    pending: set[asyncio.Future[Any]] = {work, stopping}
                    await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    if not work.done():  # stopping mid-batch (retries can take a minute):
                        work.cancel()  # nothing is committed, the next run redoes the batch
                        await asyncio.gather(work, return_exceptions=True)
                        break
                    work.result()  # a failure (e.g. Redis gone) stops the forwarder here
                    offsets = {tp: rs[-1].offset + 1 for tp, rs in batches.items()}
                    try:
                        await consumer.commit(offsets)
                        self.stats.bump(commits=1)
                    except (CommitFailedError, IllegalStateError) as exc:
                        # partitions moved to another consumer: it re-reads them, and the
                        # ledger keeps it from delivering again
                        log.warning("forward: commit failed after a rebalance: %s", exc)
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await consumer.stop()
                await self._producer.stop()
                if self._redis is None:
                    await redis.aclose()
        return self.stats


def run_forward(settings: Settings, forward: ForwardSettings, plan: ForwardPlan, *,
                from_beginning: bool) -> int:  # fmt: skip
    """CLI entry: forward until Ctrl-C or SIGTERM; 0 on a clean stop."""
    import signal

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGTERM, stop.set)
        stats = await Forwarder(settings, forward, plan, from_beginning=from_beginning).run(stop)
        log.info("forward: stopped: %s", stats)

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        return 0
    return 0
