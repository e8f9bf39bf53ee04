"""Ground truth of a feed and how well a run's alerts match it (pure; only load_truth reads).

A truth event is an entity and an event-time span in which something genuinely negative
happened. Against those spans:

* **precision**: of the firing alerts for entities of the kinds the truth talks about
  (``ticker:`` when the truth lists tickers), the share whose window overlaps a true span
  of the same entity, widened by ``tolerance`` on both sides. Alerts for other kinds
  (``market``, ``topic:``) are counted as out of scope, not as false positives: a true
  ticker burst legitimately moves the market and topic windows too.
* **recall**: the share of true events with a firing alert for their entity at an event
  time in ``[start, end + tolerance]``.
* **detection delay**: for each detected event, the first such firing time minus the event
  start; reported as median and p90 seconds.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from models.errors import FinpulseError

__all__ = [
    "FiringAlert",
    "TruthError",
    "TruthEvent",
    "TruthMetrics",
    "evaluate",
    "events_from_marks",
    "load_truth",
]


class TruthError(FinpulseError):
    """An unreadable or inconsistent ground-truth file."""


@dataclass(frozen=True)
class TruthEvent:
    event_id: str
    entity: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class FiringAlert:
    """What the metrics need of a firing alert: entity, firing time, and its window."""

    entity: str
    fired_at: datetime
    window_start: datetime
    window_end: datetime


@dataclass(frozen=True)
class TruthMetrics:
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
    """Events from ``{"events": [{event_id?, entity, start, end}, ...]}`` or a bare list."""
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
        out.append(TruthEvent(str(ev.get("event_id", f"event-{i + 1}")), ev["entity"], start, end))
    return out


def events_from_marks(marks: Iterable[tuple[str, datetime, Sequence[str]]]) -> list[TruthEvent]:
    """Truth from rows tagged with an ``event_id``: (event_id, event time, row entities).

    The span runs from the first to the last tagged row; the entity is the one most of the
    event's rows name (ties: alphabetical, so the result is deterministic).
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
            out.append(TruthEvent(event_id, ranked[0][0], start, end))
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


def evaluate(
    alerts: Sequence[FiringAlert], events: Sequence[TruthEvent], tolerance: timedelta
) -> TruthMetrics:
    kinds = {_kind(e.entity) for e in events}
    by_entity: dict[str, list[TruthEvent]] = {}
    for ev in events:
        by_entity.setdefault(ev.entity, []).append(ev)

    in_scope = [a for a in alerts if _kind(a.entity) in kinds]
    true_pos = sum(
        1
        for a in in_scope
        if any(
            a.window_start <= ev.end + tolerance and a.window_end >= ev.start - tolerance
            for ev in by_entity.get(a.entity, ())
        )
    )
    per_event: list[dict[str, Any]] = []
    delays: list[float] = []
    for ev in events:
        hits = sorted(
            a.fired_at
            for a in alerts
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
        events=len(events),
        detected=len(delays),
        recall=len(delays) / len(events) if events else None,
        firing_alerts_in_scope=len(in_scope),
        true_positive_alerts=true_pos,
        precision=true_pos / len(in_scope) if in_scope else None,
        alerts_out_of_scope=len(alerts) - len(in_scope),
        delay_median_seconds=statistics.median(delays) if delays else None,
        delay_p90_seconds=_percentile(delays, 0.9) if delays else None,
        tolerance_seconds=tolerance.total_seconds(),
        per_event=per_event,
    )
