"""``finpulse alerts tail``: follow the alert topic and print alerts as they arrive.

A plain aiokafka consumer without a consumer group: tailing never moves the worker's
offsets and many people can tail at once. Alerts are keyed and de-duplicated by
``alert_id`` (a redelivered batch republishes the same ids), so each is shown once.
A record that is not a valid ``Alert`` is reported on stderr and skipped.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TextIO

from pydantic import ValidationError

from stream_app.config import Settings
from stream_app.schemas import SEVERITIES, Alert
from stream_app.service.broker import aiokafka_kwargs, start_client

__all__ = ["AlertFilter", "follow_alerts", "format_alert", "tail"]


@dataclass
class AlertFilter:
    """Entity and minimum severity; a resolve is shown when its firing was shown."""

    entity: str | None = None
    min_severity: str = "low"
    _shown: set[str] = field(default_factory=set)
    _seen_ids: set[str] = field(default_factory=set)

    def accept(self, alert: Alert) -> bool:
        if alert.alert_id in self._seen_ids:
            return False
        self._seen_ids.add(alert.alert_id)
        if self.entity is not None and alert.entity != self.entity:
            return False
        episode = f"{alert.entity}#{alert.episode}"
        if alert.state == "resolved" and episode in self._shown:
            return True
        if SEVERITIES.index(alert.severity) < SEVERITIES.index(self.min_severity):
            return False
        self._shown.add(episode)
        return True


def format_alert(alert: Alert) -> str:
    """One readable line, plus the most negative headline of a firing alert."""
    when = alert.fired_at.strftime("%Y-%m-%d %H:%M:%SZ")
    share = f"{alert.negative_count}/{alert.total_count} negative ({alert.negative_share:.0%})"
    line = (
        f"{when}  {alert.state.upper():<8} {alert.severity:<8} {alert.entity:<20} "
        f"{share} vs baseline {alert.baseline_share:.0%}  z={alert.score:.1f}  "
        f"episode {alert.episode}"
    )
    if alert.state == "firing" and alert.evidence:
        top = alert.evidence[0]
        line += f"\n    e.g. {top.headline[:120]!r} (p_neg={top.negative_prob:.2f})"
    return line


async def follow_alerts(
    settings: Settings,
    *,
    from_beginning: bool,
    on_invalid: Callable[[str], None] | None = None,
) -> AsyncIterator[Alert]:
    """Every alert record of the alert topic, in arrival order, until cancelled."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        settings.topic_alerts,
        **aiokafka_kwargs(settings),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    await start_client(consumer, settings)
    try:
        async for record in consumer:
            try:
                yield Alert.model_validate_json(record.value or b"")
            except ValidationError as exc:
                if on_invalid is not None:
                    where = f"partition {record.partition} offset {record.offset}"
                    on_invalid(f"skipping a record that is not an alert ({where}): {exc}")
    finally:
        await consumer.stop()


async def tail(
    settings: Settings,
    *,
    alert_filter: AlertFilter,
    from_beginning: bool = False,
    as_json: bool = False,
    out: TextIO = sys.stdout,
    limit: int | None = None,
) -> int:
    """Print matching alerts until cancelled (or ``limit`` were printed); returns the count."""
    shown = 0

    def invalid(msg: str) -> None:
        print(f"finpulse alerts tail: {msg}", file=sys.stderr)

    async for alert in follow_alerts(settings, from_beginning=from_beginning, on_invalid=invalid):
        if not alert_filter.accept(alert):
            continue
        print(alert.model_dump_json() if as_json else format_alert(alert), file=out, flush=True)
        shown += 1
        if limit is not None and shown >= limit:
            break
    return shown


def run_tail(
    settings: Settings,
    *,
    entity: str | None,
    min_severity: str,
    from_beginning: bool,
    as_json: bool,
) -> int:
    """CLI entry: blocks until Ctrl-C."""
    if not as_json:
        where = "from the beginning" if from_beginning else "new alerts only"
        print(f"tailing {settings.topic_alerts} ({where}); Ctrl-C to stop", file=sys.stderr)
    try:
        asyncio.run(
            tail(
                settings,
                alert_filter=AlertFilter(entity=entity, min_severity=min_severity),
                from_beginning=from_beginning,
                as_json=as_json,
            )
        )
    except KeyboardInterrupt:
        return 0
    return 0
