"""Alerts for the forwarder tests: real ``Alert`` wire models and ``AlertView``s of any state."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from stream_app.schemas import Alert, Evidence, alert_id
from stream_app.service.forward.routing import AlertView

T = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)


def alert(
    entity: str = "ticker:ACME", state: str = "firing", severity: str = "high",
    episode: int = 1, at: datetime = T, headline: str = "$ACME plunges <after> guidance & cut",
) -> Alert:  # fmt: skip
    return Alert(
        alert_id=alert_id(entity, episode, 0, state),  # type: ignore[arg-type]
        state=state,  # type: ignore[arg-type]
        entity=entity,
        severity=severity,  # type: ignore[arg-type]
        episode=episode,
        episode_start=T,
        window_start=at - timedelta(minutes=15),
        window_end=at,
        negative_count=9,
        total_count=12,
        negative_share=0.75,
        baseline_share=0.12,
        score=6.1,
        threshold=3.0,
        evidence=[
            Evidence(id="n1", headline=headline, negative_prob=0.97),
            Evidence(id="n2", headline="$ACME second headline", negative_prob=0.91),
        ],
        model_version="m1",
        fired_at=at,
    )


def view(
    state: str = "firing", severity: str = "high", *, kind: str = "negative",
    peak: str | None = None, entity: str = "ticker:ACME", at: datetime = T,
) -> AlertView:  # fmt: skip
    base = AlertView.of(alert(entity=entity, state="firing", severity=severity, at=at))
    return replace(base, state=state, kind=kind, peak_severity=peak or severity,
                   alert_id=f"{entity}-{state}-{severity}-{kind}")  # fmt: skip
