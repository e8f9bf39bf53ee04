"""``DashboardSource``: the narrow read seam between the desk dashboard and the window store.

The dashboard's handlers (``stream_app.service.dashboard.api``) read through this protocol
only, never through Redis keys, so the store can change its layout without touching the
page. Both stores (memory for tests and the backtest, Redis for the worker) implement it
with the same semantics:

* ``entities(limit)``: at most ``limit`` entities that have a clock (at least one applied
  event). Every entity with a firing alert comes first, whatever ``limit`` is (up to
  ``limit`` of them), then the others by clock, most recent first. Order inside the result
  does not matter: the API ranks rows itself.
* ``series(entity, buckets)``: the stored counts of the ``buckets`` buckets ending at the
  entity's clock bucket ``B``, that is buckets ``(B - buckets, B]``, ascending; empty
  buckets may be left out. ``None`` for an entity the store does not know.
* ``recent_alerts(limit)``: the last ``limit`` alerts published (any state: firing,
  escalated, resolved), newest first, each the JSON object exactly as published on the
  alerts topic (``Alert.model_dump(mode="json")``). The store keeps a capped list.
* ``headlines(entity, limit)``: the ``limit`` most recent items counted for the entity,
  newest event time first (ties: the later applied first). The store keeps a capped list
  per entity, trimmed with the retention.

Everything returned is a copy: callers may not mutate store state through it. Read
methods never block on a lock the aggregator holds; a store that is unreachable raises
(the API answers 503).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from stream_app.core.windows import Counts

__all__ = [
    "BucketCounts",
    "DashboardSource",
    "EntitySeries",
    "EntityState",
    "Headline",
    "HeadlineLink",
]

Status = Literal["idle", "firing", "cooldown"]


@dataclass(frozen=True, slots=True)
class EntityState:
    """One entity as of its own event-time clock (what ``/entities/{entity}`` shows)."""

    entity: str
    clock_ms: int  # largest applied event time
    window: Counts  # sums of the window ending at the clock
    baseline: Counts  # sums of the baseline (the window excluded)
    status: Status  # the detector's state
    # The latest alert of the episode now firing (``firing`` or ``escalated``), wire JSON;
    # ``None`` when the entity is not firing.
    firing_alert: Mapping[str, Any] | None = None
    # Event time of the entity's oldest bucket still stored (``None``: unknown). While the
    # baseline is still filling, the API scales the baseline's volume rate by it.
    first_event_ms: int | None = None


@dataclass(frozen=True, slots=True)
class BucketCounts:
    bucket: int  # bucket index: the bucket starts at ``bucket * bucket_ms``
    counts: Counts


@dataclass(frozen=True, slots=True)
class EntitySeries:
    entity: str
    clock_ms: int
    buckets: Sequence[BucketCounts]  # ascending, only buckets the store holds


@dataclass(frozen=True, slots=True)
class HeadlineLink:
    """How a headline was linked to an entity (issue 10): ``span`` is ``[start, end)``
    in code points of the headline, ``None`` when the link came from a field."""

    entity: str
    via: str  # "field" | "cashtag" | "name"
    span: tuple[int, int] | None = None
    relevance: float | None = None


@dataclass(frozen=True, slots=True)
class Headline:
    id: str
    headline: str
    event_time_ms: int
    sentiment: Literal["negative", "neutral", "positive"]
    negative_prob: float
    links: tuple[HeadlineLink, ...] = ()
    novelty: Literal["first", "repeat"] | None = None  # issue 11; None before novelty


class DashboardSource(Protocol):
    """The reads the dashboard needs; see the module docstring for the exact semantics."""

    async def entities(self, limit: int) -> Sequence[EntityState]: ...

    async def series(self, entity: str, buckets: int) -> EntitySeries | None: ...

    async def recent_alerts(self, limit: int) -> Sequence[Mapping[str, Any]]: ...

    async def headlines(self, entity: str, limit: int) -> Sequence[Headline]: ...
