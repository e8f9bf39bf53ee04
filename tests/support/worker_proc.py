"""A real ``finpulse worker`` subprocess and small Kafka/HTTP helpers for integration tests.

The worker runs exactly as in production (``python -m finpulse worker`` with ``FINPULSE_*``
env), isolated per test by unique topics, consumer group and Redis prefix. Fault tests
can ``kill()`` and ``start()`` it again. Every wait polls a condition with a deadline.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import resource
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from stream_app.config import Settings
from stream_app.devenv.embedded import Service, free_port
from stream_app.schemas import Alert


def worker_env(
    broker: Service,
    redis: Service,
    model_dir: Path,
    unique: str,
    **extra: str | int | float,
) -> dict[str, str]:
    """FINPULSE_* for an isolated worker; ``extra`` keys are Settings names (upper-cased)."""
    env = {
        "FINPULSE_APP_ID": f"t-{unique}",
        "FINPULSE_BROKER": broker.url,
        "FINPULSE_REDIS_URL": redis.url,
        "FINPULSE_REDIS_KEY_PREFIX": f"t{unique}",
        "FINPULSE_MODEL_DIR": str(model_dir),
        "FINPULSE_WEB_PORT": str(free_port()),
        "FINPULSE_TOPIC_NEWS": f"news-{unique}",
        "FINPULSE_TOPIC_SCORED": f"scored-{unique}",
        "FINPULSE_TOPIC_ALERTS": f"alerts-{unique}",
        "FINPULSE_TOPIC_DEADLETTER": f"dead-{unique}",
        "FINPULSE_TOPIC_ENTITY_EVENTS": f"entity-{unique}",
        "FINPULSE_TOPIC_PARTITIONS": "2",
        "FINPULSE_BROKER_REBALANCE_TIMEOUT": "3",
        "FINPULSE_BROKER_SESSION_TIMEOUT": "4",
        "FINPULSE_BATCH_SIZE": "32",
        "FINPULSE_BATCH_MAX_WAIT": "0.2",
        "FINPULSE_QUANTIZE": "off",
        "FINPULSE_DEVICE": "cpu",
    }
    env.update({f"FINPULSE_{k.upper()}": str(v) for k, v in extra.items()})
    return env


@dataclass
class WorkerProcess:
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    nofile: int | None = None  # RLIMIT_NOFILE of the process (a production-like 1024)
    cwd: Path | None = None  # run from another source tree (``python -m`` imports from cwd)

    @property
    def settings(self) -> Settings:
        keep = {k: v for k, v in os.environ.items() if not k.startswith("FINPULSE_")}
        saved = dict(os.environ)
        try:
            os.environ.clear()
            os.environ.update({**keep, **self.env})
            return Settings()  # type: ignore[call-arg]
        finally:
            os.environ.clear()
            os.environ.update(saved)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.env['FINPULSE_WEB_PORT']}"

    def start(self, timeout: float = 90.0) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FINPULSE_")}
        env.update(self.env)
        env["PYTHONUNBUFFERED"] = "1"
        # Fault injection lives in the tests, behind their own entry point.
        faulty = any(k.startswith("FINPULSE_FAULT_") for k in self.env)
        entry = ["tests.support.fault_worker"] if faulty else ["finpulse", "worker"]
        nofile = self.nofile

        def limits() -> None:
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", *entry],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=limits if nofile is not None else None,
                cwd=self.cwd,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited {self.proc.returncode}:\n{self.log_tail()}")
            status, _ = http_get(f"{self.base_url}/health")
            if status == 200:
                return
            time.sleep(0.2)
        raise AssertionError(f"worker not healthy in {timeout}s:\n{self.log_tail()}")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def http_get(url: str, token: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def metric_sum(text: str, name: str) -> float:
    """Sum of every sample of the Prometheus text ``text`` whose line starts with ``name``
    (all label sets; ``_total``/``_count`` suffixes are part of the name asked for)."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


def feed_alerts(values: Sequence[bytes]) -> list[Alert]:
    """The alerts of an alert-topic read that a run of the feed decides: ``model_drift`` is
    left out, the model monitor raises it in processing time (docs/model.md), so no
    reference run (backtest, in-process aggregator) can have it."""
    alerts = (Alert.model_validate_json(v) for v in values)
    return [a for a in alerts if a.kind != "model_drift"]


def http_json(url: str, token: str | None = None) -> tuple[int, Any]:
    status, body = http_get(url, token)
    return status, json.loads(body) if body else None


async def produce(
    settings: Settings,
    values: Sequence[bytes],
    *,
    keys: Sequence[bytes | None] | None = None,
    timestamps_ms: Sequence[int | None] | None = None,
) -> None:
    """Publish in order and wait for every acknowledgement."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=settings.broker.removeprefix("kafka://"), acks="all"
    )
    await producer.start()
    try:
        futures = []
        for i, value in enumerate(values):
            key = keys[i] if keys else None
            ts = timestamps_ms[i] if timestamps_ms else None
            futures.append(
                await producer.send(settings.topic_news, value, key=key, timestamp_ms=ts)
            )
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def collect(
    settings: Settings,
    topic: str,
    until: Callable[[list[bytes]], bool],
    *,
    within: float = 90.0,
    settle: float = 1.0,
) -> list[bytes]:
    """Values of ``topic`` from the beginning once ``until(values)`` holds.

    Reading goes on for ``settle`` seconds after the condition first held, so the caller
    also sees records that arrive *extra* (an assertion on the whole result then fails on
    them). ``AssertionError`` when the condition does not hold within ``within`` seconds:
    a test never goes on with a partial result.
    """
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.broker.removeprefix("kafka://"),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        deadline = time.monotonic() + within
        settle_until: float | None = None
        while settle_until is not None or time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for records in batch.values():
                values += [r.value or b"" for r in records]
            if settle_until is None and until(values):
                settle_until = time.monotonic() + settle
            if settle_until is not None and time.monotonic() >= settle_until:
                return values
    finally:
        await consumer.stop()
    raise AssertionError(
        f"{topic}: condition not met within {within}s ({len(values)} records read)"
    )


def split_by_model(
    model_dir: Path, texts: Sequence[str], when: datetime
) -> tuple[list[str], list[str]]:
    """(negative, not negative) texts according to the real Scorer over this model: the
    tiny model is random, so tests pick burst and calm texts by what it says."""
    from models.predictor import load_predictor
    from stream_app.core.scoring import Scorer
    from stream_app.schemas import NewsItem

    scorer = Scorer(load_predictor(model_dir, device="cpu", quantize=False))
    items = [
        NewsItem(id=f"c{i}", headline=t, tickers=["BURST"], published_at=when)
        for i, t in enumerate(texts)
    ]
    by_id = {x.id: x.sentiment for x in scorer.score(items).scored}
    neg = [t for i, t in enumerate(texts) if by_id.get(f"c{i}") == "negative"]
    rest = [t for i, t in enumerate(texts) if by_id.get(f"c{i}") in ("neutral", "positive")]
    return neg, rest


def calm_news(
    rng: random.Random, calm: Sequence[str], start: datetime, minutes: range
) -> list[tuple[datetime, list[str], str]]:
    """``(when, tickers, headline)`` rows of calm news: BURST and two other tickers once a
    minute, plus untagged market news that keeps the market's share low during a burst."""
    rows: list[tuple[datetime, list[str], str]] = []
    for minute in minutes:
        t = start + timedelta(minutes=minute)
        for k, ticker in enumerate(("BURST", "OTHA", "OTHB")):
            rows.append((t + timedelta(seconds=10 * k), [ticker], rng.choice(calm)))
        for k in range(4):
            rows.append((t + timedelta(seconds=35 + 5 * k), [], rng.choice(calm)))
    return rows
