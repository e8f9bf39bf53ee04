"""``MemoryDashboardSource``: a ``DashboardSource`` whose content a test sets directly.

Until the stores implement the protocol themselves, the dashboard's handler and browser
tests read this. It keeps the protocol's semantics (see
``stream_app.service.dashboard.source``): firing entities first within the limit,
``series`` windowed at the entity's clock, newest-first alerts and headlines, copies out.
Writes and reads take a lock, so a test thread may change it while a server thread reads.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from stream_app.core.windows import Counts
from stream_app.service.dashboard.source import (
    BucketCounts,
    EntitySeries,
    EntityState,
    Headline,
)

__all__ = ["MemoryDashboardSource"]


class MemoryDashboardSource:
    def __init__(self, bucket_ms: int = 60_000) -> None:
        self.bucket_ms = bucket_ms
        self._lock = threading.Lock()
        self._states: dict[str, EntityState] = {}
        self._buckets: dict[str, dict[int, Counts]] = {}
        self._alerts: list[dict[str, Any]] = []  # oldest first
        self._headlines: dict[str, list[Headline]] = {}
        self.fail: BaseException | None = None  # raised by every read while set
        self.reads = 0

    # --- what a test sets ---------------------------------------------------------------

    def put_state(self, state: EntityState) -> None:
        with self._lock:
            self._states[state.entity] = state

    def put_bucket(self, entity: str, bucket: int, counts: Counts) -> None:
        with self._lock:
            self._buckets.setdefault(entity, {})[bucket] = counts.copy()

    def publish_alert(self, alert: Mapping[str, Any]) -> None:
        """Record an alert as published; a firing/escalated one becomes the entity's."""
        wire = dict(alert)
        with self._lock:
            self._alerts.append(wire)
            state = self._states.get(wire["entity"])
            if state is not None:
                firing = wire["state"] != "resolved"
                self._states[state.entity] = replace(
                    state,
                    status="firing" if firing else "cooldown",
                    firing_alert=wire if firing else None,
                )

    def add_headline(self, entity: str, headline: Headline) -> None:
        with self._lock:
            self._headlines.setdefault(entity, []).append(headline)

    # --- DashboardSource ------------------------------------------------------------------

    def _read(self) -> None:
        self.reads += 1
        if self.fail is not None:
            raise self.fail

    async def entities(self, limit: int) -> Sequence[EntityState]:
        with self._lock:
            self._read()
            states = list(self._states.values())
        firing = [s for s in states if s.status == "firing"]
        rest = sorted((s for s in states if s.status != "firing"), key=lambda s: -s.clock_ms)
        return [*firing, *rest][:limit]

    async def series(self, entity: str, buckets: int) -> EntitySeries | None:
        with self._lock:
            self._read()
            state = self._states.get(entity)
            if state is None:
                return None
            last = state.clock_ms // self.bucket_ms
            stored = self._buckets.get(entity, {})
            points = [
                BucketCounts(b, stored[b].copy())
                for b in sorted(stored)
                if last - buckets < b <= last
            ]
        return EntitySeries(entity, state.clock_ms, points)

    async def recent_alerts(self, limit: int) -> Sequence[Mapping[str, Any]]:
        with self._lock:
            self._read()
            return [dict(a) for a in reversed(self._alerts[-limit:])]

    async def headlines(self, entity: str, limit: int) -> Sequence[Headline]:
        with self._lock:
            self._read()
            items = list(reversed(self._headlines.get(entity, ())))  # later applied first
        items.sort(key=lambda h: -h.event_time_ms)  # stable: ties keep that order
        return items[:limit]
