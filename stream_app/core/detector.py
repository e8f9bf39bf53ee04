"""Pure spike detectors: idle -> firing (-> escalated ...) -> cooldown -> idle, with hysteresis.

Three kinds, each a state machine of its own per entity (``DetectorSettings.detect``):

* **negative** / **positive**: the window holds ``k`` negative (positive) out of ``n`` first
  stories, the baseline ``k0`` out of ``n0``::

      p0     = (k0 + prior_share * prior_weight) / (n0 + prior_weight)   # smoothed baseline
      share  = k / n
      z      = (k - n p0) / sqrt(n p0 (1 - p0))                          # binomial z-score
      excess = share - p0

  fire (from idle) when ``k >= min_count`` and (``z >= fire_z`` *or* ``excess >=
  share_floor``): the z-test catches significant moves on busy entities, the share rule
  large moves on thin ones; resolve when ``z < resolve_z`` *and* ``excess <
  resolve_share_floor`` (both below their fire levels: hysteresis).
* **volume** ("buzz"): the window's story count ``n`` against the entity's own baseline
  rate, Poisson with a gamma prior: ``expected = wb * (n0 + a) / (B0 + b)`` for ``wb``
  window buckets, ``B0`` baseline buckets the entity has been observed for, and a prior of
  ``a = volume_prior_per_hour`` stories per hour over ``b = volume_prior_hours``;
  ``z = (n - expected) / sqrt(expected)``. Fire when ``n >= volume_min_count``,
  ``z >= volume_fire_z`` and the entity has a baseline of at least
  ``volume_warmup_seconds`` (no alert for an entity that has no history yet); resolve
  when ``z < volume_resolve_z``.

While firing, a rise in severity (z in multiples of the kind's fire level, ``severity``)
is a transition of its own, ``escalated``, so the desk sees an episode become critical;
the peak is tracked and reported on the resolve. After a resolve the kind waits
``cooldown_seconds`` of event time before it may fire again.

``now_ms`` is the entity clock (event time), never the wall clock, so the same event
sequence always yields the same transitions. Counts are of *first* stories: syndicated
repeats (``Counts.rep``) never move a detector. ``n == 0`` or a degenerate ``p0`` gives
``z = 0``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from stream_app.config import DetectorSettings
from stream_app.core.windows import Counts, WindowGeometry
from stream_app.schemas import SEVERITIES, AlertState, DetectorKind, Severity

__all__ = [
    "DetectorState",
    "Stats",
    "Transition",
    "VolumeScale",
    "evaluate",
    "fire_level",
    "may_change",
    "severity",
    "stats",
    "volume_scale",
]

Status = Literal["idle", "firing", "cooldown"]


@dataclass(frozen=True, slots=True)
class Stats:
    """One kind's test on one window: ``count`` of ``total`` against ``baseline``.

    ``baseline`` is the smoothed baseline share for negative/positive and the expected
    story count for volume; ``share`` is ``count / total`` (volume: ``count / expected``).
    """

    count: int
    total: int
    share: float
    baseline: float
    z: float

    @property
    def excess(self) -> float:
        return self.share - self.baseline


@dataclass(frozen=True, slots=True)
class VolumeScale:
    """What the volume test needs besides counts: window size and the observed baseline."""

    window_buckets: int
    baseline_buckets: int  # baseline buckets the entity has been observed for (0 .. bb - wb)
    bucket_seconds: int


def _share_stats(k: int, n: int, k0: int, n0: int, prior: float, weight: float) -> Stats:
    denom = n0 + weight
    p0 = (k0 + prior * weight) / denom if denom > 0 else prior
    var = n * p0 * (1.0 - p0)
    z = (k - n * p0) / math.sqrt(var) if var > 0 else 0.0
    return Stats(k, n, k / n if n else 0.0, p0, z)


def _volume_stats(n: int, n0: int, scale: VolumeScale, cfg: DetectorSettings) -> Stats:
    per_bucket = scale.bucket_seconds / 3600
    a = cfg.volume_prior_per_hour * cfg.volume_prior_hours  # prior stories ...
    b = cfg.volume_prior_hours / per_bucket  # ... over this many buckets
    expected = scale.window_buckets * (n0 + a) / (scale.baseline_buckets + b)
    z = (n - expected) / math.sqrt(expected) if expected > 0 else 0.0
    return Stats(n, n, n / expected if expected > 0 else 0.0, expected, z)


def stats(
    window: Counts,
    baseline: Counts,
    cfg: DetectorSettings,
    kind: DetectorKind = "negative",
    scale: VolumeScale | None = None,
) -> Stats:
    """The ``kind`` test of ``window`` against ``baseline`` (first stories only)."""
    if kind == "volume":
        if scale is None:
            raise ValueError("the volume test needs a VolumeScale")
        return _volume_stats(window.total, baseline.total, scale, cfg)
    negative = kind == "negative"
    k, k0 = (window.neg, baseline.neg) if negative else (window.pos, baseline.pos)
    prior = cfg.baseline_prior_share if negative else cfg.positive_prior_share
    return _share_stats(k, window.total, k0, baseline.total, prior, cfg.baseline_prior_weight)


def volume_scale(geometry: WindowGeometry, clock_ms: int, first_seen_ms: int | None) -> VolumeScale:
    """The volume test's scale at ``clock_ms`` for an entity first seen at ``first_seen_ms``:
    how many baseline buckets the entity has been observed for (0 .. baseline - window)."""
    g = geometry
    first = first_seen_ms if first_seen_ms is not None else clock_ms
    observed = g.bucket(clock_ms) - g.window_buckets - g.bucket(first) + 1
    span = g.baseline_buckets - g.window_buckets
    return VolumeScale(g.window_buckets, max(0, min(span, observed)), g.bucket_ms // 1000)


def fire_level(kind: DetectorKind, cfg: DetectorSettings) -> float:
    """The z-score a kind fires at (severity is measured in multiples of it)."""
    return cfg.volume_fire_z if kind == "volume" else cfg.fire_z


def severity(z: float, fire_z: float) -> Severity:
    """low below 1.5x fire_z (incl. share-rule fires), medium < 2x, high < 3x, else critical."""
    if z < 1.5 * fire_z:
        return "low"
    if z < 2 * fire_z:
        return "medium"
    if z < 3 * fire_z:
        return "high"
    return "critical"


def _rank(level: Severity | None) -> int:
    return -1 if level is None else SEVERITIES.index(level)


@dataclass(frozen=True, slots=True)
class DetectorState:
    """One kind's state for one entity; ``episode`` counts firings so alert ids never repeat.

    ``severity`` is the level last announced in the current episode (firing or escalated),
    ``peak_score`` the highest z of the episode.
    """

    status: Status = "idle"
    episode: int = 0
    episode_start_ms: int | None = None
    cooldown_until_ms: int | None = None
    last_change_ms: int | None = None
    peak_score: float = 0.0
    severity: Severity | None = None

    def to_dict(self) -> dict[str, Any]:
        # Written per entity per batch: explicit fields, not dataclasses.asdict (deep copies).
        return {
            "status": self.status,
            "episode": self.episode,
            "episode_start_ms": self.episode_start_ms,
            "cooldown_until_ms": self.cooldown_until_ms,
            "last_change_ms": self.last_change_ms,
            "peak_score": self.peak_score,
            "severity": self.severity,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> DetectorState:
        return cls(**data) if data else cls()


@dataclass(frozen=True, slots=True)
class Transition:
    kind: DetectorKind
    state: AlertState
    episode: int
    episode_start_ms: int
    at_ms: int
    stats: Stats
    score: float
    threshold: float
    severity: Severity
    peak_severity: Severity


def may_change(
    kind: DetectorKind, state: DetectorState, window: Counts, now_ms: int, cfg: DetectorSettings
) -> bool:
    """False when ``evaluate`` would surely return no transition and no new state.

    The aggregator's hot loop asks this after every event: an idle kind below its minimum
    count, or one in cooldown, needs no statistics.
    """
    if state.status == "cooldown":
        return now_ms >= (state.cooldown_until_ms or 0)
    if state.status == "firing":
        return True
    if kind == "negative":
        return window.neg >= cfg.min_negative_count
    if kind == "positive":
        return window.pos >= cfg.min_positive_count
    return window.total >= cfg.volume_min_count


def _fires(kind: DetectorKind, s: Stats, cfg: DetectorSettings, scale: VolumeScale | None) -> bool:
    if kind == "volume":
        warm = scale is not None and (
            scale.baseline_buckets * scale.bucket_seconds >= cfg.volume_warmup_seconds
        )
        return warm and s.count >= cfg.volume_min_count and s.z >= cfg.volume_fire_z
    least = cfg.min_negative_count if kind == "negative" else cfg.min_positive_count
    return s.count >= least and (s.z >= cfg.fire_z or s.excess >= cfg.share_floor)


def _resolves(kind: DetectorKind, s: Stats, cfg: DetectorSettings) -> bool:
    if kind == "volume":
        return s.z < cfg.volume_resolve_z
    return s.z < cfg.resolve_z and s.excess < cfg.resolve_share_floor


def evaluate(
    kind: DetectorKind,
    state: DetectorState,
    window: Counts,
    baseline: Counts,
    now_ms: int,
    cfg: DetectorSettings,
    scale: VolumeScale | None = None,
) -> tuple[DetectorState, Transition | None]:
    """One detector step at entity clock ``now_ms``; returns the new state and any transition."""
    if state.status == "cooldown" and now_ms >= (state.cooldown_until_ms or 0):
        state = replace(state, status="idle", cooldown_until_ms=None, last_change_ms=now_ms)
    if state.status == "cooldown":
        return state, None
    s = stats(window, baseline, cfg, kind, scale)
    level = fire_level(kind, cfg)
    if state.status == "idle":
        if not _fires(kind, s, cfg, scale):
            return state, None
        sev = severity(s.z, level)
        new = DetectorState("firing", state.episode + 1, now_ms, None, now_ms, s.z, sev)
        return new, Transition(kind, "firing", new.episode, now_ms, now_ms, s, s.z, level, sev, sev)
    assert state.episode_start_ms is not None  # firing
    peak = max(state.peak_score, s.z)
    if _resolves(kind, s, cfg):
        until = now_ms + cfg.cooldown_seconds * 1000
        new = DetectorState(
            "cooldown",
            state.episode,
            state.episode_start_ms,
            until,
            now_ms,
            state.peak_score,
            state.severity,
        )
        peak_sev = severity(state.peak_score, level)
        resolve_at = cfg.volume_resolve_z if kind == "volume" else cfg.resolve_z
        return new, Transition(
            kind,
            "resolved",
            state.episode,
            state.episode_start_ms,
            now_ms,
            s,
            s.z,
            resolve_at,
            peak_sev,
            peak_sev,
        )
    sev = severity(s.z, level)
    if _rank(sev) > _rank(state.severity):
        new = replace(state, peak_score=peak, severity=sev, last_change_ms=now_ms)
        return new, Transition(
            kind,
            "escalated",
            state.episode,
            state.episode_start_ms,
            now_ms,
            s,
            s.z,
            level,
            sev,
            sev,
        )
    if peak > state.peak_score:
        return replace(state, peak_score=peak), None
    return state, None
