"""``finpulse alerts tail``: filtering, formatting, and following a real alert topic."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import UTC, datetime

import pytest

from stream_app.config import Settings
from stream_app.devenv.embedded import Service
from stream_app.schemas import Alert, Evidence, alert_id
from stream_app.service.alerts_tail import AlertFilter, format_alert, tail

T = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)


def _alert(entity: str, state: str, severity: str, episode: int = 1) -> Alert:
    return Alert(
        alert_id=alert_id(entity, episode, 0, state),  # type: ignore[arg-type]
        state=state,  # type: ignore[arg-type]
        entity=entity,
        severity=severity,  # type: ignore[arg-type]
        episode=episode,
        episode_start=T,
        window_start=T,
        window_end=T,
        negative_count=9,
        total_count=12,
        negative_share=0.75,
        baseline_share=0.12,
        score=6.1,
        threshold=3.0,
        evidence=[
            Evidence(id="n1", headline="$ACME plunges after guidance cut", negative_prob=0.97)
        ],
        model_version="m1",
        fired_at=T,
    )


def test_filter_by_entity_and_severity_keeps_resolves_of_shown_episodes() -> None:
    f = AlertFilter(entity=None, min_severity="high")
    assert not f.accept(_alert("ticker:A", "firing", "medium"))
    assert f.accept(_alert("ticker:B", "firing", "critical"))
    # the resolve of an episode whose firing was shown, even with a lower severity
    assert f.accept(_alert("ticker:B", "resolved", "low"))
    assert not f.accept(_alert("ticker:A", "resolved", "low"))

    only_c = AlertFilter(entity="ticker:C")
    assert not only_c.accept(_alert("ticker:B", "firing", "critical"))
    assert only_c.accept(_alert("ticker:C", "firing", "low"))


def test_filter_drops_redelivered_alert_ids() -> None:
    f = AlertFilter()
    a = _alert("ticker:A", "firing", "high")
    assert f.accept(a)
    assert not f.accept(a.model_copy())


def test_format_is_one_readable_line_plus_evidence() -> None:
    text = format_alert(_alert("ticker:ACME", "firing", "high"))
    first, evidence = text.split("\n")
    assert "FIRING" in first
    assert "ticker:ACME" in first
    assert "9/12 negative (75%)" in first
    assert "plunges after guidance cut" in evidence
    assert "\n" not in format_alert(_alert("ticker:ACME", "resolved", "high"))


@pytest.mark.integration
async def test_tail_follows_the_topic_skipping_junk_and_duplicates(
    broker: Service, unique: str
) -> None:
    from aiokafka import AIOKafkaProducer

    settings = Settings(broker=broker.url, topic_alerts=f"alerts-{unique}")  # type: ignore[call-arg]
    fire = _alert("ticker:ACME", "firing", "high")
    resolve = _alert("ticker:ACME", "resolved", "high")
    other = _alert("ticker:ZZZ", "firing", "critical")
    producer = AIOKafkaProducer(bootstrap_servers=broker.url.removeprefix("kafka://"))
    await producer.start()
    try:
        for value in (
            fire.model_dump_json().encode(),
            b"{not an alert",
            fire.model_dump_json().encode(),  # redelivery
            other.model_dump_json().encode(),
            resolve.model_dump_json().encode(),
        ):
            await producer.send_and_wait(settings.topic_alerts, value, key=b"k")
    finally:
        await producer.stop()

    out = io.StringIO()
    shown = await asyncio.wait_for(
        tail(
            settings,
            alert_filter=AlertFilter(entity="ticker:ACME"),
            from_beginning=True,
            as_json=True,
            out=out,
            limit=2,
        ),
        timeout=60,
    )
    assert shown == 2
    got = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(a["entity"], a["state"]) for a in got] == [
        ("ticker:ACME", "firing"),
        ("ticker:ACME", "resolved"),
    ]
