"""``finpulse demo``: the whole service on one machine, with a burst you can watch fire.

Starts a loopback tansu broker and Redis server, trains a quick model if the model dir
is empty, runs ``finpulse worker`` as a child process, publishes a sample stream built
from the vendored tweets (ordinary traffic for a few tickers, then a burst of Bearish
headlines about one of them, then ordinary traffic again), and prints the alerts from
the alert topic until the burst has fired and resolved.

Time is compressed: records carry event times spanning a few hours but are published in
seconds, and the windows run on event time, so the alert appears within seconds of the
burst being scored. Every child process is stopped on exit and on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from models.errors import FinpulseError
from stream_app.config import Settings

__all__ = ["BURST_TICKER", "DemoError", "build_demo_feed", "demo_env", "run_demo"]

BURST_TICKER = "TSLA"
DEMO_TICKERS = ("AAPL", "MSFT", "AMZN", "NVDA", "JPM", BURST_TICKER)
# What the demo points the user at once the burst resolved (path templates on the web port).
DEMO_LINKS: tuple[tuple[str, str], ...] = (
    ("dashboard", "/"),
    ("entity", "/entities/ticker:{ticker}"),
    ("alerts", "/alerts"),
    ("metrics", "/metrics"),
    ("health", "/health"),
)


class DemoError(FinpulseError):
    """The demo could not start a service, train the model or see the alerts in time."""


def build_demo_feed(
    data_dir: Path | None = None, *, now: datetime | None = None, seed: int = 7
) -> list[dict[str, Any]]:
    """~4 hours of event time ending now: 2.5 h ordinary, a 20 min burst, 1.2 h ordinary."""
    from stream_app.offline.synthetic import BurstSpec, generate_feed, load_labelled_texts

    end = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
    start = end - timedelta(hours=4)
    # 15 distinct real Bearish headlines about Tesla (the corpus has 16 such stories).
    burst = BurstSpec(BURST_TICKER, start + timedelta(hours=2, minutes=30), 20, 15)
    feed = generate_feed(
        load_labelled_texts(data_dir),
        items=1200,
        seed=seed,
        start=start,
        hours=4.0,
        bursts=[burst],
        tickers=DEMO_TICKERS,
    )
    return feed.rows


def demo_env(
    settings: Settings, broker_url: str, redis_url: str, model_dir: Path
) -> dict[str, str]:
    """The worker's environment: loopback services, short group joins, one partition.

    One partition keeps every entity's events in event-time order however fast the
    sample is published, so the demo shows exactly what a backtest of it shows.
    """
    return {
        **os.environ,
        "FINPULSE_APP_ID": "finpulse-demo",
        "FINPULSE_BROKER": broker_url,
        "FINPULSE_REDIS_URL": redis_url,
        "FINPULSE_REDIS_KEY_PREFIX": "finpulse-demo",
        "FINPULSE_MODEL_DIR": str(model_dir),
        "FINPULSE_WEB_PORT": str(settings.web_port),
        "FINPULSE_TOPIC_PARTITIONS": "1",
        "FINPULSE_BROKER_REBALANCE_TIMEOUT": "3",
        "FINPULSE_BROKER_SESSION_TIMEOUT": "4",
        "PYTHONUNBUFFERED": "1",
    }


def _ensure_model(model_dir: Path) -> None:
    if (model_dir / "manifest.json").exists():
        print(f"model: {model_dir}")
        return
    print(f"no model at {model_dir}: training one with the quick profile (a few minutes)")
    cmd = [sys.executable, "-m", "finpulse", "train", "--profile", "quick"]
    result = subprocess.run([*cmd, "--output", str(model_dir)], check=False)
    if result.returncode != 0:
        raise DemoError(f"training failed (exit {result.returncode}); see the output above")


def _wait_healthy(port: int, worker: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{port}/health"
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise DemoError(f"worker exited with code {worker.returncode}; log: {log}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise DemoError(f"worker not healthy after {timeout:.0f}s; log: {log}")


async def _publish(settings: Settings, rows: list[dict[str, Any]]) -> None:
    from aiokafka import AIOKafkaProducer

    from stream_app.service.broker import aiokafka_kwargs

    producer = AIOKafkaProducer(**aiokafka_kwargs(settings), acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = []
        for row in rows:
            value = json.dumps({k: v for k, v in row.items() if k != "event_id"}).encode()
            futures.append(await producer.send(settings.topic_news, value, key=row["id"].encode()))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _watch(settings: Settings, rows: list[dict[str, Any]], deadline_s: float) -> None:
    from stream_app.service.alerts_tail import follow_alerts, format_alert

    entity = f"ticker:{BURST_TICKER}"
    states: set[str] = set()

    async def follow() -> None:
        async for alert in follow_alerts(settings, from_beginning=True):
            print(format_alert(alert), flush=True)
            if alert.entity == entity:
                states.add(alert.state)
                if {"firing", "resolved"} <= states:
                    return

    print(f"publishing {len(rows)} sample records to {settings.topic_news} ...")
    await _publish(settings, rows)
    print(f"published; waiting for the {entity} burst to fire and resolve\n")
    try:
        await asyncio.wait_for(follow(), deadline_s)
    except TimeoutError:
        raise DemoError(
            f"no firing+resolved alert for {entity} within {deadline_s:.0f}s (saw {sorted(states)})"
        ) from None


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _serve_until_interrupted(worker: subprocess.Popen[bytes], log_path: Path) -> None:
    """Keep the stack up for the user to explore; Ctrl-C (or SIGTERM) ends the demo."""
    print("the stack keeps running; press Ctrl-C to stop it", flush=True)
    try:
        while worker.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        return
    raise DemoError(f"worker exited with code {worker.returncode}; log: {log_path}")


def run_demo(
    *,
    model_dir: Path,
    exit_when_done: bool = False,
    workdir: Path | None = None,
    web_port: int | None = None,
    timeout: float = 300.0,
) -> int:
    """Start everything, play the sample, show the burst fire and resolve, then stay up.

    With ``exit_when_done`` (scripts, tests) it stops everything once the burst resolved.
    """
    from stream_app.devenv.embedded import free_port, start_broker, start_redis

    logging.getLogger("aiokafka").setLevel(logging.WARNING)  # the demo prints its own story
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` cleans up like Ctrl-C does
    _ensure_model(model_dir)
    workdir = workdir or Path(tempfile.mkdtemp(prefix="finpulse-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        broker = start_broker(workdir / "broker")
        stack.callback(broker.stop)
        redis = start_redis(workdir / "redis")
        stack.callback(redis.stop)
        port = web_port or free_port()
        # Topic names etc. from the environment, like the worker child that inherits it.
        settings = Settings(broker=broker.url, web_port=port)  # type: ignore[call-arg]
        env = demo_env(settings, broker.url, redis.url, model_dir.resolve())
        print(f"broker {broker.url}  redis {redis.url}  logs {workdir}")
        log_path = workdir / "worker.log"
        with log_path.open("ab") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "finpulse", "worker"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us; we stop it in order
            )
        stack.callback(_stop, worker)
        print(f"worker pid {worker.pid}: starting (log {log_path})")
        _wait_healthy(port, worker, log_path, timeout=120)
        base = f"http://127.0.0.1:{port}"
        print(f"worker up: {base}/health")
        hint = "open it to watch the burst arrive"
        if settings.api_token:
            hint += "; sign in with FINPULSE_API_TOKEN"
        print(f"dashboard: {base}/  ({hint})", flush=True)
        asyncio.run(_watch(settings, build_demo_feed(), timeout))
        print(f"\ndemo done: the {BURST_TICKER} burst fired and resolved. Explore it:")
        for what, path in DEMO_LINKS:
            print(f"  {what:<12} {base}{path.format(ticker=BURST_TICKER)}")
        if not exit_when_done:
            _serve_until_interrupted(worker, log_path)
    return 0
