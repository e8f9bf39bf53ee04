"""Helpers of the forwarder integration tests: config, producing alerts, running, checking."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from stream_app.config import ForwardSettings, Settings
from stream_app.schemas import Alert
from stream_app.service.forward.config import ForwardPlan, load_plan
from stream_app.service.forward.forwarder import Forwarder
from tests.support.http_receiver import HttpReceiver, Received

SECRET = b"hook-secret"


def forward_settings(unique: str, **changes: Any) -> ForwardSettings:
    values: dict[str, Any] = {"group": f"fwd-{unique}", "backoff_seconds": 0.01,
                              "backoff_max_seconds": 0.05, "timeout_seconds": 1.0,
                              "max_attempts": 3, "resend_seconds": 3600}  # fmt: skip
    return ForwardSettings(**{**values, **changes})


def plan(tmp_path: Path, receiver: HttpReceiver, fwd: ForwardSettings, routes: str) -> ForwardPlan:
    text = f"""
dashboard_url: "https://desk.example/?entity={{entity}}"
sinks:
  hook: {{type: webhook, url: "{receiver.url("/hook")}", secret_env: HOOK_SECRET}}
  slack: {{type: slack, url: "{receiver.url("/slack/T0K3N")}"}}
  am: {{type: alertmanager, url: "{receiver.url("/am")}"}}
routes:
{routes}
"""
    path = tmp_path / "routes.yaml"
    path.write_text(text)
    return load_plan(fwd, path, {"HOOK_SECRET": SECRET.decode()})


async def produce(settings: Settings, *values: bytes | Alert, partition: int | None = None) -> None:
    from aiokafka import AIOKafkaProducer

    from stream_app.service.broker import ensure_topics

    await ensure_topics(settings, [settings.topic_alerts])
    producer = AIOKafkaProducer(bootstrap_servers=settings.broker.removeprefix("kafka://"))
    await producer.start()
    try:
        for v in values:
            key = v.entity.encode() if isinstance(v, Alert) else b"junk"
            raw = v.model_dump_json().encode() if isinstance(v, Alert) else v
            await producer.send_and_wait(settings.topic_alerts, raw, key=key, partition=partition)
    finally:
        await producer.stop()


@asynccontextmanager
async def forwarding(
    settings: Settings, fwd: ForwardSettings, p: ForwardPlan
) -> AsyncIterator[Forwarder]:
    forwarder = Forwarder(settings, fwd, p, from_beginning=True)
    stop = asyncio.Event()
    task = asyncio.create_task(forwarder.run(stop))
    try:
        yield forwarder
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def alert_id_of(r: Received) -> str:
    return r.headers["X-Finpulse-Alert-Id"]


def check_invariants(requests: list[Received], *, acked_once: bool = True) -> None:
    """Every repeat under an alert_id carries attempt + reason; <= 1 acknowledged request
    per (path, alert_id) unless a test simulated a crash after an acknowledgement."""
    seen: dict[tuple[str, str], list[Received]] = {}
    for r in requests:
        if "X-Finpulse-Alert-Id" in r.headers:  # Alertmanager re-sends are not deliveries
            seen.setdefault((r.path, alert_id_of(r)), []).append(r)
    for key, rs in seen.items():
        assert not acked_once or sum(r.acknowledged for r in rs) <= 1, key
        assert [int(r.headers["X-Finpulse-Attempt"]) for r in rs] == list(range(1, len(rs) + 1))
        for r in rs[1:]:
            assert r.headers.get("X-Finpulse-Retry-Reason"), (key, r.headers)
