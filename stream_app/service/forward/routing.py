"""Which sinks an alert goes to (pure), and the view of an alert that routing and formatting read.

A route matches an alert when all of these hold:

* its severity is at least ``min_severity``: the alert's ``severity``, except that a
  ``resolved`` alert counts with its ``peak_severity`` (the highest of its episode), so a
  resolve reaches every sink its firing or escalation reached;
* its kind is in ``kinds`` (any kind when the route names none);
* its entity matches one of the ``entities`` globs (``ticker:*``, ``topic:energy-*``;
  ``fnmatch`` rules, case-sensitive) and none of ``exclude_entities``.

An alert goes to the union of the sinks of every matching route, each sink once, in the
order the config names them. ``AlertView.of`` reads ``kind`` and ``peak_severity``
defensively, so alerts from producers that predate them route as ``negative`` alerts with
their own severity as peak.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any, Protocol

from stream_app.schemas import SEVERITIES

__all__ = ["AlertView", "EvidenceView", "RouteRule", "Router", "severity_rank"]


def severity_rank(severity: str) -> int:
    """0 for low .. 3 for critical; an unknown severity ranks below low."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else -1


@dataclass(frozen=True)
class EvidenceView:
    headline: str
    prob: float | None  # the model's probability of the alert's class (none for volume)


@dataclass(frozen=True)
class AlertView:
    """The fields of an ``Alert`` the forwarder reads (``schemas.Alert`` is the wire model)."""

    alert_id: str
    state: str
    entity: str
    kind: str
    severity: str
    peak_severity: str
    episode: int
    episode_start: datetime
    fired_at: datetime
    window_start: datetime
    window_end: datetime
    count: int  # of the alert's kind: negatives, positives or stories in the window
    total: int
    share: float
    expected: float | None  # volume alerts: the stories the baseline expects
    baseline_share: float
    score: float
    threshold: float
    evidence: tuple[EvidenceView, ...]
    model_version: str

    @classmethod
    def of(cls, alert: Any) -> AlertView:
        kind = getattr(alert, "kind", None) or "negative"
        field = {"negative": "negative_prob", "positive": "positive_prob"}.get(kind)
        evidence = tuple(
            EvidenceView(e.headline, getattr(e, field, None) if field else None)
            for e in alert.evidence
        )
        # schema v2 has the kind's own count and share; v1 alerts are negative-only
        count = getattr(alert, "count", 0) or alert.negative_count
        share = getattr(alert, "share", 0.0) or alert.negative_share
        return cls(
            alert_id=alert.alert_id,
            state=alert.state,
            entity=alert.entity,
            kind=kind,
            severity=alert.severity,
            peak_severity=getattr(alert, "peak_severity", None) or alert.severity,
            episode=alert.episode,
            episode_start=alert.episode_start,
            fired_at=alert.fired_at,
            window_start=alert.window_start,
            window_end=alert.window_end,
            count=count,
            total=alert.total_count,
            share=share,
            expected=getattr(alert, "expected_count", None),
            baseline_share=alert.baseline_share,
            score=alert.score,
            threshold=alert.threshold,
            evidence=evidence,
            model_version=alert.model_version,
        )

    @property
    def route_severity(self) -> str:
        return self.peak_severity if self.state == "resolved" else self.severity


class RouteRule(Protocol):
    """What a route says (``config.Route`` is the validated form)."""

    @property
    def sinks(self) -> Sequence[str]: ...
    @property
    def min_severity(self) -> str: ...
    @property
    def kinds(self) -> Sequence[str] | None: ...
    @property
    def entities(self) -> Sequence[str]: ...
    @property
    def exclude_entities(self) -> Sequence[str]: ...


def matches(route: RouteRule, view: AlertView) -> bool:
    if severity_rank(view.route_severity) < severity_rank(route.min_severity):
        return False
    if route.kinds is not None and view.kind not in route.kinds:
        return False
    if not any(fnmatchcase(view.entity, p) for p in route.entities):
        return False
    return not any(fnmatchcase(view.entity, p) for p in route.exclude_entities)


class Router:
    def __init__(self, routes: Sequence[RouteRule]) -> None:
        self.routes = list(routes)

    def sinks_for(self, view: AlertView) -> list[str]:
        out: list[str] = []
        for route in self.routes:
            if matches(route, view):
                out += [s for s in route.sinks if s not in out]
        return out
