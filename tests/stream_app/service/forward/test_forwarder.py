"""The forwarder against a real tansu broker, a real Redis and real local HTTP receivers.

Invariants checked on what the receiver saw: every routed alert is acknowledged by every
sink or dead-lettered; at most one acknowledged request per (sink, alert_id); and every
further request under an alert_id says why (attempt and retry-reason headers).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from stream_app.config import Settings
from stream_app.schemas import Alert, AlertDeadLetter
from stream_app.service.forward.forwarder import Forwarder
from stream_app.service.forward.ledger import Ledger
from tests.stream_app.service.forward.alerts import alert
from tests.stream_app.service.forward.harness import (
    SECRET,
    alert_id_of,
    check_invariants,
    forward_settings,
    forwarding,
    plan,
    produce,
)
from tests.support.alertmanager_api import parse_time, postable_alert_problems
from tests.support.http_receiver import HttpReceiver, Received

pytestmark = pytest.mark.integration


async def dead_letters(settings: Settings, n: int) -> list[AlertDeadLetter]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        settings.topic_alerts_deadletter, bootstrap_servers=settings.broker.removeprefix("kafka://"),
        group_id=None, auto_offset_reset="earliest", enable_auto_commit=False,
    )  # fmt: skip
    await consumer.start()
    out: list[AlertDeadLetter] = []
    try:
        async with asyncio.timeout(30):
            while len(out) < n:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    out += [AlertDeadLetter.model_validate_json(r.value) for r in records]
    finally:
        await consumer.stop()
    return out


ROUTES = """
  - {sinks: [am]}
  - {sinks: [slack], min_severity: high}
  - {sinks: [hook], entities: ["ticker:*"], exclude_entities: ["ticker:SPY"]}
"""
T = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)


async def test_each_sink_gets_routed_alerts_signed_readable_and_in_alertmanager_shape(
    settings: Settings, receiver: HttpReceiver, unique: str, tmp_path: Path
) -> None:
    fwd = forward_settings(unique)
    acme = alert("ticker:ACME", "firing", "high", at=T)
    spy = alert("ticker:SPY", "firing", "low", at=T)
    oil = alert("topic:energy-oil", "firing", "critical", at=T)
    acme_end = alert("ticker:ACME", "resolved", "high", at=T + timedelta(minutes=20))
    await produce(settings, acme, spy, oil, acme_end)
    async with forwarding(settings, fwd, plan(tmp_path, receiver, fwd, ROUTES)) as f:
        await f.stats.wait_until(lambda s: s.records == 4 and s.commits >= 1, 60)
    got = {path: [alert_id_of(r) for r in receiver.on(path)]
           for path in ("/am/api/v2/alerts", "/slack/T0K3N", "/hook")}  # fmt: skip
    ids = [a.alert_id for a in (acme, spy, oil, acme_end)]
    assert sorted(got["/am/api/v2/alerts"]) == sorted(ids)
    assert sorted(got["/slack/T0K3N"]) == sorted([acme.alert_id, oil.alert_id, acme_end.alert_id])
    assert got["/hook"] == [acme.alert_id, acme_end.alert_id]  # one entity: in order
    check_invariants(receiver.requests)

    for r in receiver.on("/hook"):
        expected = "sha256=" + hmac.new(SECRET, r.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(r.headers["X-Finpulse-Signature"], expected)
        assert r.headers["Idempotency-Key"] == r.json()["alert_id"]
        assert r.json()["alert"]["entity"] == "ticker:ACME"
    slack = {alert_id_of(r): r.json()["text"] for r in receiver.on("/slack/T0K3N")}
    assert "*topic:energy-oil*: severity *critical*" in slack[oil.alert_id]
    assert "> $ACME plunges &lt;after&gt; guidance &amp; cut (p=0.97)" in slack[acme.alert_id]
    assert "<https://desk.example/?entity=ticker%3AACME|" in slack[acme.alert_id]

    am = {alert_id_of(r): r.json() for r in receiver.on("/am/api/v2/alerts")}
    for body in am.values():
        assert postable_alert_problems(body) == []
    (fired,), (ended,) = am[acme.alert_id], am[acme_end.alert_id]
    assert fired["labels"] == ended["labels"]
    assert fired["labels"]["severity"] == "high"
    assert parse_time(fired["endsAt"]) > datetime.now(UTC)
    assert parse_time(ended["endsAt"]) == acme_end.fired_at
    assert ended["startsAt"] == fired["startsAt"]


async def test_a_failing_receiver_recovers_and_nothing_is_lost_or_repeated_unexplained(
    settings: Settings, receiver: HttpReceiver, unique: str, tmp_path: Path
) -> None:
    fwd = forward_settings(unique, max_attempts=4, timeout_seconds=0.5)
    receiver.fail(2, 500, paths=("/hook",))
    receiver.fail(1, 503, retry_after="0", paths=("/slack/T0K3N",))
    receiver.hang(1, 2, paths=("/slack/T0K3N",))
    alerts = [alert(f"ticker:A{i}", "firing", "critical", at=T) for i in range(3)]
    await produce(settings, *alerts)
    async with forwarding(settings, fwd, plan(tmp_path, receiver, fwd, ROUTES)) as f:
        await f.stats.wait_until(lambda s: s.records == 3 and s.commits >= 1, 60)
    check_invariants(receiver.requests)
    for path in ("/hook", "/slack/T0K3N", "/am/api/v2/alerts"):
        acked = sorted(alert_id_of(r) for r in receiver.on(path) if r.acknowledged)
        assert acked == sorted(a.alert_id for a in alerts), path
    reasons = {r.headers.get("X-Finpulse-Retry-Reason") for r in receiver.requests} - {None}
    assert reasons == {"http 500", "http 503", "timeout after 0.5 s"}
    assert f.stats.dead_lettered == 0


async def test_n_failures_and_rejections_are_dead_lettered_and_committed(
    settings: Settings, receiver: HttpReceiver, unique: str, tmp_path: Path
) -> None:
    fwd = forward_settings(unique, max_attempts=3)
    receiver.fail(100, 503, paths=("/hook",))
    receiver.fail(1, 400, paths=("/slack/T0K3N",))
    first = alert("ticker:ACME", "firing", "critical", at=T)
    await produce(settings, first, b"{not an alert")
    p = plan(tmp_path, receiver, fwd, ROUTES)
    async with forwarding(settings, fwd, p) as f:
        await f.stats.wait_until(lambda s: s.records == 2 and s.commits >= 1, 60)
    letters = {(d.reason, d.sink): d for d in await dead_letters(settings, 3)}
    failed = letters["delivery_failed", "hook"]
    assert (failed.alert_id, failed.attempts) == (first.alert_id, 3)
    assert failed.detail.startswith(f"http://127.0.0.1:{receiver.port}/…: http 503")
    assert Alert.model_validate_json(failed.original) == first
    rejected = letters["rejected", "slack"]
    assert rejected.attempts == 1
    assert "T0K3N" not in rejected.detail
    assert letters["invalid_alert", None].original == "{not an alert"
    assert len(receiver.on("/hook")) == 3
    assert [r.acknowledged for r in receiver.on("/am/api/v2/alerts")] == [True]

    # offsets were committed: a restarted forwarder delivers only what is new
    receiver.requests.clear()
    sentinel = alert("ticker:ZZZ", "firing", "critical", at=T)
    await produce(settings, sentinel)
    async with forwarding(settings, fwd, p) as again:
        await again.stats.wait_until(lambda s: s.records >= 1 and s.commits >= 1, 60)
    assert {alert_id_of(r) for r in receiver.requests} == {sentinel.alert_id}
    assert again.stats.records == 1


async def rewind(settings: Settings, group: str) -> None:
    """What a crash between delivery and commit leaves: the group's offsets back at 0."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        settings.topic_alerts, bootstrap_servers=settings.broker.removeprefix("kafka://"),
        group_id=group, enable_auto_commit=False, session_timeout_ms=4000,
        heartbeat_interval_ms=1000,
    )  # fmt: skip
    await consumer.start()
    try:
        async with asyncio.timeout(60):  # join the group as its only member
            while len(consumer.assignment()) < 2:
                await consumer.getmany(timeout_ms=200)
        await consumer.commit({TopicPartition(settings.topic_alerts, p): 0 for p in range(2)})
    finally:
        await consumer.stop()


async def test_a_restart_skips_acknowledged_deliveries_and_explains_unknown_outcomes(
    settings: Settings, receiver: HttpReceiver, unique: str, tmp_path: Path
) -> None:
    fwd = forward_settings(unique)
    routes = "  - {sinks: [hook]}\n"
    p = plan(tmp_path, receiver, fwd, routes)
    done, unknown = alert("ticker:AAA", at=T), alert("ticker:BBB", at=T)
    await produce(settings, done, unknown)
    async with forwarding(settings, fwd, p) as f:
        await f.stats.wait_until(lambda s: s.records == 2 and s.commits >= 1, 60)
    assert len(receiver.requests) == 2
    await rewind(settings, fwd.group)
    # and for one of the alerts the crash came after the POST, before its outcome was recorded
    from stream_app.store.client import redis_client

    redis = redis_client(settings)
    ledger = Ledger(redis, prefix=settings.redis_key_prefix, group=fwd.group, ttl_seconds=600)
    await ledger.put("hook", unknown.alert_id, "pending", 1)
    await redis.aclose()

    async with forwarding(settings, fwd, p) as again:
        await again.stats.wait_until(lambda s: s.records == 2 and s.commits >= 1, 60)
    assert again.stats.skipped == 1
    assert [alert_id_of(r) for r in receiver.requests].count(done.alert_id) == 1
    repeat = [r for r in receiver.requests if alert_id_of(r) == unknown.alert_id]
    assert len(repeat) == 2
    assert repeat[1].headers["X-Finpulse-Attempt"] == "2"
    assert repeat[1].headers["X-Finpulse-Retry-Reason"].startswith("redelivery: attempt 1")
    assert repeat[1].body == repeat[0].body  # same bytes: the receiver can de-duplicate
    check_invariants(receiver.requests, acked_once=False)  # the repeat is explained


async def test_a_stop_during_back_off_is_prompt_commits_nothing_and_the_next_run_says_why(
    settings: Settings, receiver: HttpReceiver, unique: str, tmp_path: Path
) -> None:
    fwd = forward_settings(unique, backoff_seconds=60, backoff_max_seconds=60)
    p = plan(tmp_path, receiver, fwd, "  - {sinks: [hook]}\n")
    receiver.fail(1, 502, paths=("/hook",))
    first = alert("ticker:AAA", at=T)
    await produce(settings, first)
    forwarder = Forwarder(settings, fwd, p, from_beginning=True)
    stop = asyncio.Event()
    task = asyncio.create_task(forwarder.run(stop))
    await forwarder.stats.wait_until(lambda s: s.failed_attempts == 1, 60)
    stop.set()  # the forwarder now waits 30-60 s before its second attempt
    await asyncio.wait_for(task, 10)
    assert forwarder.stats.commits == 0

    async with forwarding(settings, forward_settings(unique), p) as again:
        await again.stats.wait_until(lambda s: s.records == 1 and s.commits >= 1, 60)
    second = receiver.on("/hook")[1]
    assert second.acknowledged
    assert second.headers["X-Finpulse-Attempt"] == "2"
    assert second.headers["X-Finpulse-Retry-Reason"] == "redelivery: attempt 1 failed (http 502)"
    check_invariants(receiver.requests)


async def test_alertmanager_alerts_are_re_sent_while_firing_and_not_after_the_resolve(
    settings: Settings, receiver: HttpReceiver, unique: str, tmp_path: Path
) -> None:
    fwd = forward_settings(unique, resend_seconds=0.2)
    p = plan(tmp_path, receiver, fwd, "  - {sinks: [am]}\n")
    a, b = alert("ticker:AAA", at=T), alert("ticker:BBB", at=T)
    path = "/am/api/v2/alerts"

    def resends(requests: list[Received], entity: str) -> list[dict[str, Any]]:
        return [x for r in requests if r.path == path and "X-Finpulse-Alert-Id" not in r.headers
                for x in r.json() if x["labels"]["entity"] == entity]  # fmt: skip

    await produce(settings, a, b)
    async with forwarding(settings, fwd, p):
        await receiver.wait_for(lambda rs: len(resends(rs, "ticker:AAA")) >= 2, 30)
        for x in resends(receiver.requests, "ticker:AAA"):
            assert parse_time(x["endsAt"]) > datetime.now(UTC) - timedelta(seconds=1)
        assert all(postable_alert_problems(r.json()) == [] for r in receiver.on(path))
        end = alert("ticker:AAA", "resolved", "high", at=T + timedelta(minutes=5))
        await produce(settings, end)
        await receiver.wait_for(
            lambda rs: any(r.headers.get("X-Finpulse-Alert-Id") == end.alert_id for r in rs), 30
        )
        mark = len(receiver.requests)
        await receiver.wait_for(lambda rs: len(resends(rs[mark:], "ticker:BBB")) >= 2, 30)
    assert resends(receiver.requests[mark:], "ticker:AAA") == []
    (resolve,) = [r.json() for r in receiver.on(path) if r.headers.get("X-Finpulse-Alert-Id")
                  == end.alert_id]  # fmt: skip
    assert parse_time(resolve[0]["endsAt"]) == end.fired_at


async def test_the_cli_forwards_until_sigterm(
    settings: Settings, receiver: HttpReceiver, unique: str, tmp_path: Path
) -> None:
    import os
    import signal
    import sys

    env = {
        **os.environ,
        "FINPULSE_BROKER": settings.broker,
        "FINPULSE_REDIS_URL": settings.redis_url.get_secret_value(),
        "FINPULSE_REDIS_KEY_PREFIX": settings.redis_key_prefix,
        "FINPULSE_TOPIC_ALERTS": settings.topic_alerts,
        "FINPULSE_TOPIC_ALERTS_DEADLETTER": settings.topic_alerts_deadletter,
        "FINPULSE_BROKER_SESSION_TIMEOUT": "4", "FINPULSE_BROKER_REBALANCE_TIMEOUT": "3",
        "FINPULSE_FORWARD_GROUP": f"cli-{unique}",
        "FINPULSE_FORWARD_WEBHOOK_URL": receiver.url("/cli-hook"),
        "FINPULSE_FORWARD_HMAC_SECRET": SECRET.decode(),
    }  # fmt: skip
    first = alert("ticker:CLI", at=T)
    await produce(settings, first)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "finpulse", "alerts", "forward", "--from-beginning", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        await receiver.wait_for(lambda rs: any(r.path == "/cli-hook" for r in rs), 60)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, out.decode()
    (got,) = receiver.on("/cli-hook")
    assert got.json()["alert_id"] == first.alert_id
    log = out.decode()
    assert "sink webhook: webhook http://127.0.0.1:" in log
    assert "/cli-hook" not in log  # the URL path is masked in every log line


async def test_entities_of_one_partition_are_delivered_concurrently_each_in_order(
    settings: Settings, receiver: HttpReceiver, unique: str, tmp_path: Path
) -> None:
    fwd = forward_settings(unique, timeout_seconds=1.5)
    routes = ('  - {sinks: [slack], entities: ["ticker:SLOW"]}\n'
              '  - {sinks: [hook], entities: ["ticker:FAST"]}\n')  # fmt: skip
    p = plan(tmp_path, receiver, fwd, routes)
    receiver.hang(1, 4, paths=("/slack/T0K3N",))  # ticker:SLOW's firing times out once
    slow = [alert("ticker:SLOW", "firing", at=T),
            alert("ticker:SLOW", "resolved", at=T + timedelta(minutes=20))]  # fmt: skip
    fast = [alert("ticker:FAST", "firing", at=T),
            alert("ticker:FAST", "resolved", at=T + timedelta(minutes=20))]  # fmt: skip
    await produce(settings, slow[0], fast[0], slow[1], fast[1], partition=0)
    async with forwarding(settings, fwd, p) as f:
        await f.stats.wait_until(lambda s: s.records == 4 and s.commits >= 1, 60)
    check_invariants(receiver.requests)
    slow_ids = [alert_id_of(r) for r in receiver.on("/slack/T0K3N")]
    assert slow_ids == [slow[0].alert_id, slow[0].alert_id, slow[1].alert_id]  # in order
    assert [alert_id_of(r) for r in receiver.on("/hook")] == [a.alert_id for a in fast]
    # FAST was not held up behind SLOW's time-out: both its alerts before SLOW's retry
    retry = receiver.requests.index(receiver.on("/slack/T0K3N")[1])
    assert all(receiver.requests.index(r) < retry for r in receiver.on("/hook"))
