"""Pure negative-spike detector: idle -> firing -> cooldown -> idle, with hysteresis.

The test, for a window with ``k`` negative out of ``n`` items and a baseline with
``k0`` out of ``n0`` (``cfg`` = ``DetectorSettings``)::

    p0     = (k0 + prior_share * prior_weight) / (n0 + prior_weight)   # smoothed baseline
    share  = k / n
    z      = (k - n p0) / sqrt(n p0 (1 - p0))                          # binomial z-score
    excess = share - p0

* **fire** (from idle) when ``k >= min_negative_count`` and
  (``z >= fire_z`` *or* ``excess >= share_floor``). The z-test catches significant moves
  on busy entities; the share rule catches large moves on thin ones where ``n`` is too
  small for the normal approximation. ``min_negative_count`` guards both against noise.
* while firing nothing is re-emitted; the peak z is tracked.
* **resolve** when ``z < resolve_z`` *and* ``excess < resolve_share_floor`` (both below
  their fire levels: hysteresis), then **cooldown** until ``now + cooldown_seconds`` of
  event time, after which the entity is idle and may fire again.

``now_ms`` is the entity clock (event time), never the wall clock, so the same event
sequence always yields the same transitions. ``n == 0`` or a degenerate ``p0`` gives
``z = 0``. Severity grows with z in multiples of ``fire_z`` (see ``severity``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Literal

from stream_app.config import DetectorSettings
from stream_app.core.windows import Counts
from stream_app.schemas import AlertState, Severity

__all__ = ["DetectorState", "Stats", "Transition", "evaluate", "severity", "stats"]

Status = Literal["idle", "firing", "cooldown"]


@dataclass(frozen=True, slots=True)
class Stats:
    negative: int
    total: int
    share: float
    baseline_share: float
    z: float

    @property
    def excess(self) -> float:
        return self.share - self.baseline_share


def stats(window: Counts, baseline: Counts, cfg: DetectorSettings) -> Stats:
    k, n = window.neg, window.total
    w = cfg.baseline_prior_weight
    denom = baseline.total + w
    p0 = (
        (baseline.neg + cfg.baseline_prior_share * w) / denom
        if denom > 0
        else cfg.baseline_prior_share
    )
    var = n * p0 * (1.0 - p0)
    z = (k - n * p0) / math.sqrt(var) if var > 0 else 0.0
    return Stats(k, n, k / n if n else 0.0, p0, z)


def severity(z: float, cfg: DetectorSettings) -> Severity:
    """low below 1.5x fire_z (incl. share-rule fires), medium < 2x, high < 3x, else critical."""
    if z < 1.5 * cfg.fire_z:
        return "low"
    if z < 2 * cfg.fire_z:
        return "medium"
    if z < 3 * cfg.fire_z:
        return "high"
    return "critical"


@dataclass(frozen=True, slots=True)
class DetectorState:
    """Per-entity detector state; ``episode`` counts firings so alert ids never repeat."""

    status: Status = "idle"
    episode: int = 0
    episode_start_ms: int | None = None
    cooldown_until_ms: int | None = None
    last_change_ms: int | None = None
    peak_score: float = 0.0

    def to_json(self) -> str:
        return json.dumps(
            {
                "status": self.status,
                "episode": self.episode,
                "episode_start_ms": self.episode_start_ms,
                "cooldown_until_ms": self.cooldown_until_ms,
                "last_change_ms": self.last_change_ms,
                "peak_score": self.peak_score,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes | None) -> DetectorState:
        return cls(**json.loads(text)) if text else cls()


@dataclass(frozen=True, slots=True)
class Transition:
    state: AlertState
    episode: int
    episode_start_ms: int
    at_ms: int
    stats: Stats
    score: float
    threshold: float
    severity: Severity


def evaluate(
    state: DetectorState, window: Counts, baseline: Counts, now_ms: int, cfg: DetectorSettings
) -> tuple[DetectorState, Transition | None]:
    """One detector step at entity clock ``now_ms``; returns the new state and any transition."""
    if state.status == "cooldown" and now_ms >= (state.cooldown_until_ms or 0):
        state = replace(state, status="idle", cooldown_until_ms=None, last_change_ms=now_ms)
    if state.status == "cooldown":
        return state, None
    s = stats(window, baseline, cfg)
    if state.status == "idle":
        if s.negative >= cfg.min_negative_count and (
            s.z >= cfg.fire_z or s.excess >= cfg.share_floor
        ):
            new = DetectorState("firing", state.episode + 1, now_ms, None, now_ms, s.z)
            sev = severity(s.z, cfg)
            return new, Transition("firing", new.episode, now_ms, now_ms, s, s.z, cfg.fire_z, sev)
        return state, None
    # firing
    assert state.episode_start_ms is not None
    if s.z < cfg.resolve_z and s.excess < cfg.resolve_share_floor:
        until = now_ms + cfg.cooldown_seconds * 1000
        new = DetectorState(
            "cooldown", state.episode, state.episode_start_ms, until, now_ms, state.peak_score
        )
        sev = severity(state.peak_score, cfg)
        t = Transition(
            "resolved", state.episode, state.episode_start_ms, now_ms, s, s.z, cfg.resolve_z, sev
        )
        return new, t
    if s.z > state.peak_score:
        return replace(state, peak_score=s.z), None
    return state, None
