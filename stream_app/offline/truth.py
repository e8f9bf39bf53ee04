"""Ground truth of a feed and how well a run's alerts match it (pure; only load_truth reads).

A truth event is an entity, an event-time span and a ``kind`` (issue 11): ``negative`` (a
sell-off story burst), ``positive`` (a rally), ``volume`` (a surge of neutral-toned news)
or ``storm`` (one story copied many times by syndication: something that must *not*
alert). Alerts carry a kind too (``negative`` | ``positive`` | ``volume``; alerts without
one are negative). ``evaluate(..., kind=K)`` scores the alerts of kind K:

* **precision**: of the firing K alerts for entities of the kinds the truth talks about
  (``ticker:`` when the truth lists tickers), the share whose window overlaps a span of
  the same entity, widened by ``tolerance`` on both sides, of an event K may fire on: K
  itself, and for ``volume`` also ``negative`` and ``positive`` events (a burst of stories
  is a surge of volume too). Storms never make an alert right. Alerts for other entity
  kinds (``market``, ``topic:``) are out of scope, not false positives: a true ticker
  burst legitimately moves the market and topic windows too.
* **recall**: the share of K events with a firing K alert for their entity at an event
  time in ``[start, end + tolerance]``.
* **detection delay**: for each detected event, the first such firing time minus the event
  start; reported as median and p90 seconds.

``evaluate_kinds`` does that for every alert kind and counts the alerts that storms
caused (any kind, overlapping a storm of the same entity): the target is zero.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal, get_args

from models.errors import FinpulseError

__all__ = [
    "ALERT_KINDS",
    "EVENT_KINDS",
    "AlertKind",
    "EventKind",
    "FiringAlert",
    "KindMetrics",
    "TruthError",
    "TruthEvent",
    "TruthMetrics",
    "evaluate",
    "evaluate_kinds",
    "event_kind_of",
    "events_from_marks",
    "load_truth",
]

EventKind = Literal["negative", "positive", "volume", "storm"]
AlertKind = Literal["negative", "positive", "volume"]
EVENT_KINDS: Final[tuple[EventKind, ...]] = get_args(EventKind)
ALERT_KINDS: Final[tuple[AlertKind, ...]] = get_args(AlertKind)
# The event kinds an alert of a kind is right about (see the module docstring).
_RIGHT_ABOUT: Final[dict[str, frozenset[str]]] = {
    "negative": frozenset({"negative"}),
    "positive": frozenset({"positive"}),
    "volume": frozenset({"volume", "negative", "positive"}),
}


class TruthError(FinpulseError):
    """An unreadable or inconsistent ground-truth file."""


@dataclass(frozen=True)
class TruthEvent:
    event_id: str
    entity: str
    start: datetime
    end: datetime
    kind: EventKind = "negative"


@dataclass(frozen=True)
class FiringAlert:
    """What the metrics need of a firing alert: entity, firing time, window, kind."""

    entity: str
    fired_at: datetime
    window_start: datetime
    window_end: datetime
    kind: str = "negative"


@dataclass(frozen=True)
class TruthMetrics:
    kind: str
    events: int
    detected: int
    recall: float | None
    firing_alerts_in_scope: int
    true_positive_alerts: int
    precision: float | None
    alerts_out_of_scope: int
    delay_median_seconds: float | None
    delay_p90_seconds: float | None
    tolerance_seconds: float
    per_event: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class KindMetrics:
    """``evaluate_kinds``: metrics per alert kind, and what the storms made fire."""

    kinds: dict[str, TruthMetrics]
    storms: int
    storm_alerts: int
    per_storm: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "kinds": {k: m.as_dict() for k, m in self.kinds.items()},
            "storms": self.storms,
            "storm_alerts": self.storm_alerts,
            "per_storm": self.per_storm,
        }


def event_kind_of(event_id: str) -> EventKind:
    """The kind an ``event_id`` names by its prefix (``storm-2-nflx``); else negative."""
    prefix = event_id.split("-", 1)[0]
    return next((k for k in EVENT_KINDS if k == prefix), "negative")


def _parse_time(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise TruthError(f"{where}: time must be an ISO 8601 string, got {value!r}")
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise TruthError(f"{where}: not an ISO 8601 time: {value!r}") from None
    if t.tzinfo is None:
        raise TruthError(f"{where}: time {value!r} needs a UTC offset (e.g. a trailing Z)")
    return t


def load_truth(path: Path) -> list[TruthEvent]:
    """Events from ``{"events": [{event_id?, entity, start, end, kind?}, ...]}`` or a list.

    ``kind`` defaults to ``negative``, the only kind truth files had before issue 11.
    """
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise TruthError(f"cannot read ground truth {path}: {exc}") from exc
    items = doc.get("events") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise TruthError(f"{path}: expected a list of events or an object with 'events'")
    out = []
    for i, ev in enumerate(items):
        where = f"{path}: event {i}"
        if not isinstance(ev, dict) or not isinstance(ev.get("entity"), str):
            raise TruthError(f"{where}: needs an 'entity' string (e.g. 'ticker:AAPL')")
        start, end = _parse_time(ev.get("start"), where), _parse_time(ev.get("end"), where)
        if end < start:
            raise TruthError(f"{where}: end is before start")
        kind = ev.get("kind", "negative")
        if kind not in EVENT_KINDS:
            raise TruthError(f"{where}: kind must be one of {', '.join(EVENT_KINDS)}, got {kind!r}")
        event_id = str(ev.get("event_id", f"event-{i + 1}"))
        out.append(TruthEvent(event_id, ev["entity"], start, end, kind))
    return out


def events_from_marks(marks: Iterable[tuple[str, datetime, Sequence[str]]]) -> list[TruthEvent]:
    """Truth from rows tagged with an ``event_id``: (event_id, event time, row entities).

    The span runs from the first to the last tagged row; the entity is the one most of the
    event's rows name (ties: alphabetical, so the result is deterministic); the kind comes
    from the id's prefix (``event_kind_of``).
    """
    spans: dict[str, list[datetime]] = {}
    votes: dict[str, Counter[str]] = {}
    for event_id, when, entities in marks:
        span = spans.setdefault(event_id, [when, when])
        span[0], span[1] = min(span[0], when), max(span[1], when)
        votes.setdefault(event_id, Counter()).update(set(entities))
    out = []
    for event_id, (start, end) in spans.items():
        ranked = sorted(votes[event_id].items(), key=lambda kv: (-kv[1], kv[0]))
        if ranked:
            out.append(TruthEvent(event_id, ranked[0][0], start, end, event_kind_of(event_id)))
    return sorted(out, key=lambda e: (e.start, e.event_id))


def _kind(entity: str) -> str:
    return entity.split(":", 1)[0]


def _percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 1]) of a non-empty list."""
    s = sorted(values)
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def _overlaps(a: FiringAlert, ev: TruthEvent, tolerance: timedelta) -> bool:
    return a.window_start <= ev.end + tolerance and a.window_end >= ev.start - tolerance


def evaluate(
    alerts: Sequence[FiringAlert],
    events: Sequence[TruthEvent],
    tolerance: timedelta,
    kind: str = "negative",
) -> TruthMetrics:
    """Precision, recall and delay of the ``kind`` alerts against the ``kind`` events."""
    scope = {_kind(e.entity) for e in events}
    right: dict[str, list[TruthEvent]] = {}
    for ev in events:
        if ev.kind in _RIGHT_ABOUT.get(kind, frozenset({kind})):
            right.setdefault(ev.entity, []).append(ev)
    mine = [a for a in alerts if a.kind == kind]
    in_scope = [a for a in mine if _kind(a.entity) in scope]
    true_pos = sum(
        1 for a in in_scope if any(_overlaps(a, ev, tolerance) for ev in right.get(a.entity, ()))
    )
    per_event: list[dict[str, Any]] = []
    delays: list[float] = []
    targets = [ev for ev in events if ev.kind == kind]
    for ev in targets:
        hits = sorted(
            a.fired_at
            for a in mine
            if a.entity == ev.entity and ev.start <= a.fired_at <= ev.end + tolerance
        )
        delay = (hits[0] - ev.start).total_seconds() if hits else None
        if delay is not None:
            delays.append(delay)
        per_event.append(
            {
                "event_id": ev.event_id,
                "entity": ev.entity,
                "start": ev.start.isoformat(),
                "end": ev.end.isoformat(),
                "detected": delay is not None,
                "delay_seconds": delay,
            }
        )
    return TruthMetrics(
        kind=kind,
        events=len(targets),
        detected=len(delays),
        recall=len(delays) / len(targets) if targets else None,
        firing_alerts_in_scope=len(in_scope),
        true_positive_alerts=true_pos,
        precision=true_pos / len(in_scope) if in_scope else None,
        alerts_out_of_scope=len(mine) - len(in_scope),
        delay_median_seconds=statistics.median(delays) if delays else None,
        delay_p90_seconds=_percentile(delays, 0.9) if delays else None,
        tolerance_seconds=tolerance.total_seconds(),
        per_event=per_event,
    )


def evaluate_kinds(
    alerts: Sequence[FiringAlert], events: Sequence[TruthEvent], tolerance: timedelta
) -> KindMetrics:
    """``evaluate`` for each alert kind the events or the alerts have, plus the storms."""
    present = {e.kind for e in events} | {a.kind for a in alerts}
    kinds: dict[str, TruthMetrics] = {
        k: evaluate(alerts, events, tolerance, k) for k in ALERT_KINDS if k in present
    }
    per_storm: list[dict[str, Any]] = []
    caused = 0
    for ev in events:
        if ev.kind == "storm":
            fired = [a for a in alerts if a.entity == ev.entity and _overlaps(a, ev, tolerance)]
            caused += len(fired)
            per_storm.append(
                {
                    "event_id": ev.event_id,
                    "entity": ev.entity,
                    "alerts": len(fired),
                    "alert_kinds": sorted({a.kind for a in fired}),
                }
            )
    return KindMetrics(kinds, len(per_storm), caused, per_storm)
