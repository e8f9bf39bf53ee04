"""Replay: speed parsing, isolated runs, and publishing into the real broker."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from finpulse.cli import main as cli_main
from finpulse.cli.common import EXIT_SKIPPED
from stream_app.config import Settings
from stream_app.devenv.embedded import Service
from stream_app.offline.replay import (
    ReplayError,
    ReplayRecord,
    isolated_env,
    isolated_settings,
    parse_speed,
    publish,
)
from stream_app.schemas import datetime_to_ms, parse_event_time


def test_parse_speed() -> None:
    assert parse_speed("max") is None
    assert parse_speed("60") == 60.0
    for bad in ("0", "-1", "fast", "inf", "nan"):
        with pytest.raises(ReplayError, match="--speed"):
            parse_speed(bad)


def test_isolated_settings_share_nothing_with_live() -> None:
    live = Settings()  # type: ignore[call-arg]
    run = isolated_settings(live, "tune-1")
    for name in ("app_id", "redis_key_prefix", "topic_news", "topic_scored", "topic_alerts",
                 "topic_deadletter", "topic_entity_events"):  # fmt: skip
        assert getattr(run, name) != getattr(live, name)
        assert "tune-1" in getattr(run, name)
    assert run.window == live.window
    assert run.detector == live.detector
    env = isolated_env(live, run)
    assert env["FINPULSE_TOPIC_ALERTS"] == run.topic_alerts
    assert len(env) == 7
    with pytest.raises(ReplayError, match="run-id"):
        isolated_settings(live, "bad id!")
    with pytest.raises(ReplayError, match="invalid settings"):
        isolated_settings(live.with_overrides(redis_key_prefix="p" * 60), "x")


def _feed(path: Path) -> list[dict[str, str]]:
    rows = [
        {"id": f"r{i}", "headline": f"$AAPL item {i}", "published_at": f"2026-11-02T10:{m:02d}:00Z"}
        for i, m in enumerate([5, 1, 3, 2, 9, 7])
    ]
    lines = [json.dumps(r) for r in rows]
    lines.insert(2, "{broken")
    path.write_text("\n".join(lines) + "\n")
    return rows


async def _consume(broker: Service, topic: str, n: int) -> list[tuple[int, bytes]]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=f"127.0.0.1:{broker.port}", auto_offset_reset="earliest"
    )
    await consumer.start()
    out: list[tuple[int, bytes]] = []
    try:
        async with asyncio.timeout(20):
            while len(out) < n:
                for msgs in (await consumer.getmany(timeout_ms=500)).values():
                    out.extend((m.timestamp, m.value) for m in msgs)
    finally:
        await consumer.stop()
    return out


@pytest.mark.integration
def test_replay_file_in_event_time_order_with_event_timestamps(
    broker: Service,
    unique: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = _feed(tmp_path / "feed.jsonl")
    topic = f"replay-{unique}"
    monkeypatch.setenv("FINPULSE_BROKER", broker.url)
    argv = ["replay", str(tmp_path / "feed.jsonl"), "--topic", topic, "--speed", "max",
            "--to", "2026-11-02T10:09:00Z", "--partitions", "1", "--no-progress"]  # fmt: skip
    assert cli_main(argv) == EXIT_SKIPPED  # done, but a row was skipped: not a plain 0
    out = capsys.readouterr().out
    assert "replayed 5 records" in out
    assert "invalid_json 1" in out
    assert "[line 3: invalid_json]" in out

    got = asyncio.run(_consume(broker, topic, 5))
    expected = sorted((r for r in rows if r["published_at"] < "2026-11-02T10:09"),
                      key=lambda r: r["published_at"])  # fmt: skip
    assert [json.loads(v)["id"] for _, v in got] == [r["id"] for r in expected]
    for ts, value in got:
        assert ts == datetime_to_ms(parse_event_time(json.loads(value)["published_at"]))


@pytest.mark.integration
def test_replay_strict_aborts_on_bad_row(
    broker: Service,
    unique: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _feed(tmp_path / "feed.jsonl")
    monkeypatch.setenv("FINPULSE_BROKER", broker.url)
    argv = ["replay", str(tmp_path / "feed.jsonl"), "--topic", f"strict-{unique}", "--strict",
            "--partitions", "1", "--no-progress"]  # fmt: skip
    assert cli_main(argv) == 2
    assert "line 3" in capsys.readouterr().err


@pytest.mark.integration
def test_paced_replay_keeps_scaled_gaps(broker: Service, unique: str) -> None:
    import time

    settings = Settings(broker=broker.url)  # type: ignore[call-arg]
    base = datetime_to_ms(parse_event_time("2026-11-02T10:00:00Z"))
    records = [ReplayRecord(base + i * 10_000, None, b"{}") for i in range(4)]  # 30 s of events
    started = time.monotonic()
    summary = asyncio.run(publish(records, settings, f"paced-{unique}", speed=60, progress=False))
    assert summary.sent == 4
    assert time.monotonic() - started >= 0.5  # 30 s at 60x


@pytest.mark.integration
def test_unreachable_broker_says_how_far_it_got() -> None:
    from stream_app.devenv.embedded import free_port

    settings = Settings(broker=f"kafka://127.0.0.1:{free_port()}")  # type: ignore[call-arg]
    with pytest.raises(ReplayError, match="cannot connect"):
        asyncio.run(publish([ReplayRecord(1, None, b"{}")], settings, "t", progress=False))


@pytest.mark.integration
def test_copy_topic_into_isolated_run(
    broker: Service,
    unique: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from stream_app.offline.replay import copy_topic

    settings = Settings(broker=broker.url, topic_news=f"src-{unique}")  # type: ignore[call-arg]
    base = datetime_to_ms(parse_event_time("2026-11-02T10:00:00Z"))
    records = [ReplayRecord(base + i * 1000, b"k", f'{{"n":{i}}}'.encode()) for i in range(10)]
    asyncio.run(publish(records, settings, settings.topic_news, progress=False))
    from datetime import timedelta

    t0 = parse_event_time("2026-11-02T10:00:00Z")
    got = asyncio.run(copy_topic(settings, settings.topic_news, from_time=t0 + timedelta(seconds=3),
                                 to_time=t0 + timedelta(seconds=7)))  # fmt: skip
    assert [r.value for r in got] == [r.value for r in records[3:7]]
    got = asyncio.run(copy_topic(settings, settings.topic_news, from_offset=8))
    assert [r.event_ms for r in got] == [r.event_ms for r in records[8:]]

    monkeypatch.setenv("FINPULSE_BROKER", broker.url)
    monkeypatch.setenv("FINPULSE_TOPIC_NEWS", settings.topic_news)
    argv = ["replay", "--from-topic", settings.topic_news, "--from-offset", "0",
            "--run-id", f"r{unique}", "--print-env", "--no-progress"]  # fmt: skip
    assert cli_main(argv) == 0
    run = isolated_settings(settings, f"r{unique}")
    copied = asyncio.run(_consume(broker, run.topic_news, 10))
    assert [v for _, v in copied] == [r.value for r in records]
    assert [t for t, _ in copied] == [r.event_ms for r in records]
