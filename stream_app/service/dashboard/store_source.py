"""``StoreSource``: the dashboard's ``DashboardSource`` over any ``WindowStore``.

The window stores keep one detector state and firing alert per kind (negative, positive,
volume); the desk's table shows one row per entity, so an entity is ``firing`` when any
kind fires (its firing alert is the most severe one), in ``cooldown`` when none fires and
one cools down, else ``idle``. Series and headlines are the store's own, unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from stream_app.core.detector import Status
from stream_app.schemas import SEVERITIES
from stream_app.service.dashboard.source import (
    BucketCounts,
    EntitySeries,
    EntityState,
    Headline,
    HeadlineLink,
)
from stream_app.store.base import EntityView, WindowStore

__all__ = ["StoreSource"]


def _state(view: EntityView) -> EntityState:
    statuses = {d.status for d in view.detectors.values()}
    firing: Mapping[str, Any] | None = None
    if view.firing:
        firing = max(view.firing.values(), key=lambda a: SEVERITIES.index(a["severity"]))
    status: Status = "firing" if firing else "cooldown" if "cooldown" in statuses else "idle"
    return EntityState(
        entity=view.entity,
        clock_ms=view.clock_ms or 0,
        window=view.window,
        baseline=view.baseline,
        status=status,
        firing_alert=firing,
        first_event_ms=view.first_seen_ms,
    )


class StoreSource:
    def __init__(self, store: WindowStore, bucket_ms: int) -> None:
        self._store = store
        self._bucket_ms = bucket_ms

    async def entities(self, limit: int) -> Sequence[EntityState]:
        """The store's most recently active entities, and every firing one even when it is
        not among them (the protocol's promise: a firing entity survives any limit)."""
        states = [_state(s.view) for s in await self._store.entities(limit)]
        have = {s.entity for s in states}
        firing = sorted({a["entity"] for a in await self._store.firing_alerts()} - have)
        for entity in firing[:limit]:
            view = await self._store.entity_view(entity)
            if view is not None:
                states.append(_state(view))
        states.sort(key=lambda s: s.status != "firing")  # stable: firing first, then by clock
        return states[:limit]

    async def series(self, entity: str, buckets: int) -> EntitySeries | None:
        view = await self._store.entity_view(entity)
        if view is None or view.clock_ms is None:
            return None
        last = view.clock_ms // self._bucket_ms
        stored = await self._store.buckets(entity, range(last - buckets + 1, last + 1))
        rows = [BucketCounts(b, c) for b, c in sorted(stored.items())]
        return EntitySeries(entity, view.clock_ms, rows)

    async def recent_alerts(self, limit: int) -> Sequence[Mapping[str, Any]]:
        return await self._store.recent_alerts(limit)

    async def headlines(self, entity: str, limit: int) -> Sequence[Headline]:
        out = []
        for h in await self._store.headlines(entity, limit):
            links = tuple(
                HeadlineLink(lk["entity"], lk["via"], tuple(lk["span"]) if lk["span"] else None,
                             lk.get("relevance"))
                for lk in h.get("links", ())
            )  # fmt: skip
            out.append(
                Headline(h["id"], h["headline"], int(h["event_time_ms"]), h["sentiment"],
                         float(h["negative_prob"]), links, h.get("novelty"))
            )  # fmt: skip
        return out
