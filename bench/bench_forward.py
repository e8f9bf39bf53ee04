"""Alert forwarding: how fast ``finpulse alerts forward`` drains a backlog of alerts.

Starts an embedded tansu broker and Redis server, publishes --alerts firing alerts (one
entity each, 4 partitions) before the forwarder starts, then times the forwarder from its
start until every alert was delivered to a webhook sink and an Alertmanager sink on a
local aiohttp receiver that answers at once (or after --latency-ms). Each delivery costs
one HTTP POST and three Redis round trips (ledger get, pending, delivered) plus the AM
sink's active-alert read and write; partitions are forwarded in parallel, a partition's
alerts in order.

    python -m bench.bench_forward --alerts 2000 --latency-ms 0
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import shlex
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web
from pydantic import SecretStr

from stream_app.config import ForwardSettings, Settings
from stream_app.devenv.embedded import start_broker, start_redis
from stream_app.schemas import Alert, Evidence, alert_id
from stream_app.service.broker import ensure_topics
from stream_app.service.forward.config import load_plan
from stream_app.service.forward.forwarder import Forwarder


def _alert(i: int) -> Alert:
    now = datetime.now(UTC)
    entity = f"ticker:B{i:05d}"
    return Alert(  # type: ignore[call-arg]  # mypy misreads Field(None, ...)
        alert_id=alert_id(entity, 1, 0, "firing"), state="firing", entity=entity,
        severity="high", episode=1, episode_start=now, window_start=now, window_end=now,
        negative_count=9, total_count=12, negative_share=0.75, baseline_share=0.1,
        score=6.0, threshold=3.0, model_version="bench", fired_at=now,
        evidence=[Evidence(id=f"n{i}", headline=f"{entity} falls", negative_prob=0.9)],
    )  # fmt: skip


async def _run(
    broker: str, redis: str, n: int, latency_ms: float, tmp: Path
) -> tuple[float, float]:
    """(seconds from forwarder start to the first delivery, seconds from it to the last)."""
    from aiokafka import AIOKafkaProducer

    received = 0
    done = asyncio.Event()
    first = 0.0

    async def handle(request: web.Request) -> web.Response:
        nonlocal received, first
        await request.read()
        if latency_ms:
            await asyncio.sleep(latency_ms / 1000)
        if request.path == "/hook":
            received += 1
            if received == 1:
                first = time.perf_counter()
            if received == n:
                done.set()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    run = uuid.uuid4().hex[:8]
    settings = Settings(  # type: ignore[call-arg]
        broker=broker, redis_url=SecretStr(redis), redis_key_prefix=f"bench{run}",
        topic_partitions=4, topic_alerts=f"bench-alerts-{run}",
        topic_alerts_deadletter=f"bench-dl-{run}",
    )  # fmt: skip
    await ensure_topics(settings, [settings.topic_alerts])
    producer = AIOKafkaProducer(bootstrap_servers=broker.removeprefix("kafka://"))
    await producer.start()
    try:
        for i in range(n):
            a = _alert(i)
            await producer.send(settings.topic_alerts, a.model_dump_json().encode(),
                                key=a.entity.encode())  # fmt: skip
        await producer.flush()
    finally:
        await producer.stop()
    routes = tmp / "routes.yaml"
    routes.write_text(
        "sinks:\n"
        f"  hook: {{type: webhook, url: 'http://127.0.0.1:{port}/hook', secret_env: S}}\n"
        f"  am: {{type: alertmanager, url: 'http://127.0.0.1:{port}/am'}}\n"
        "routes:\n  - {sinks: [hook, am]}\n"
    )
    fwd = ForwardSettings(group=f"bench-{run}")  # type: ignore[call-arg]
    plan = load_plan(fwd, routes, {"S": "secret"})
    stop = asyncio.Event()
    started = time.perf_counter()
    task = asyncio.create_task(Forwarder(settings, fwd, plan, from_beginning=True).run(stop))
    await asyncio.wait_for(done.wait(), 600)
    last = time.perf_counter()
    stop.set()
    await task
    await runner.cleanup()
    return first - started, last - first


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="receiver answer delay")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        broker = start_broker(Path(tmp) / "broker")
        redis = start_redis(Path(tmp) / "redis")
        try:
            join, seconds = asyncio.run(_run(broker.url, redis.url, args.alerts, args.latency_ms,
                                       Path(tmp)))  # fmt: skip
        finally:
            broker.stop()
            redis.stop()
    rate = (args.alerts - 1) / seconds
    print(f"\n{args.alerts} alerts x 2 sinks (webhook + Alertmanager), receiver latency "
          f"{args.latency_ms:g} ms: first delivery {join:.2f} s after start (group join), "
          f"then {seconds:.2f} s for the rest: {rate:,.0f} alerts/s, "
          f"{2 * rate:,.0f} deliveries/s")  # fmt: skip
    print(f"machine: {platform.platform()}, python {platform.python_version()}")
    print(f"command: {shlex.join([sys.executable, '-m', 'bench.bench_forward', *sys.argv[1:]])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
