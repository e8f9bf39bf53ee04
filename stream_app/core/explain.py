"""Why an alert fired, recomputed from the stored buckets (``/alerts/{id}/explain``, ``explain``).

When the aggregator publishes an alert it also stores an explain record: the alert, the
entity clock at the decision, the count of the clock's bucket at that moment (the bucket
was still filling), the detector state just before, and the settings in force. ``explain``
rebuilds the decision from scratch: the window is the stored counts of the window's
complete buckets plus that partial count, the baseline the stored counts of the baseline
buckets; then the detector's own ``stats`` and ``evaluate`` run again from the recorded
state. The alert *reproduces* when the recomputed transition is the published one (same
state, kind, severity, counts and z). It does not when events landed in those buckets
after the decision (allowed-late arrivals) or when the buckets have been pruned
(retention); the differences say which.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from stream_app.config import DetectorSettings, WindowSettings
from stream_app.core.detector import DetectorState, evaluate, fire_level, stats, volume_scale
from stream_app.core.windows import Counts, WindowGeometry, sum_buckets
from stream_app.schemas import Alert

__all__ = ["buckets_needed", "explain"]


def _geometry(record: Mapping[str, Any]) -> tuple[WindowGeometry, WindowSettings, DetectorSettings]:
    ws = WindowSettings.model_validate(record["config"]["window"])
    ds = DetectorSettings.model_validate(record["config"]["detector"])
    return WindowGeometry.of(ws), ws, ds


def buckets_needed(record: Mapping[str, Any]) -> range:
    """The stored buckets ``explain`` reads: baseline start .. the clock's bucket."""
    g, _, _ = _geometry(record)
    b = g.bucket(int(record["clock_ms"]))
    return range(b - g.baseline_buckets + 1, b + 1)


def explain(entity: str, record: Mapping[str, Any], stored: Mapping[int, Counts]) -> dict[str, Any]:
    """The decision behind ``record``'s alert, recomputed from ``stored`` bucket counts."""
    alert = Alert.model_validate(record["alert"])
    g, _, cfg = _geometry(record)
    clock = int(record["clock_ms"])
    b = g.bucket(clock)
    window = sum_buckets(stored, range(b - g.window_buckets + 1, b))
    window.add(Counts.decode(record["partial"]))
    baseline = sum_buckets(stored, range(b - g.baseline_buckets + 1, b - g.window_buckets + 1))
    kind = alert.kind
    if kind == "model_drift":
        raise ValueError("model drift alerts are explained by the model monitor, not buckets")
    scale = volume_scale(g, clock, record.get("first_seen_ms"))
    before = DetectorState.from_dict(record["state_before"])
    s = stats(window, baseline, cfg, kind, scale)
    _, transition = evaluate(kind, before, window, baseline, clock, cfg, scale)

    differences: list[str] = []
    at_decision = Counts.decode(record["window"])
    if window != at_decision:
        differences.append(
            f"window counts now {window.encode()}, at the decision "
            f"{at_decision.encode()} (events arrived late into its buckets)"
        )
    recorded_base = Counts.decode(record["baseline"])
    if baseline != recorded_base:
        differences.append(
            f"baseline counts now {baseline.encode()}, at the decision "
            f"{recorded_base.encode()} (late arrivals, or buckets pruned)"
        )
    if transition is None:
        differences.append("the recomputed detector makes no transition here")
    else:
        for name, got, want in (
            ("state", transition.state, alert.state),
            ("severity", transition.severity, alert.severity),
            ("count", s.count, alert.count),
            ("total", window.total, alert.total_count),
        ):
            if got != want:
                differences.append(f"{name}: recomputed {got!r}, published {want!r}")
        if not math.isclose(transition.score, alert.score, rel_tol=1e-9, abs_tol=1e-9):
            differences.append(f"z: recomputed {transition.score:.6f}, published {alert.score:.6f}")
    window_start, window_end = g.window_bounds_ms(clock)
    return {
        "alert_id": alert.alert_id,
        "entity": entity,
        "kind": kind,
        "state": alert.state,
        "severity": alert.severity,
        "peak_severity": alert.peak_severity,
        "fired_at": alert.fired_at.isoformat(),
        "model_version": alert.model_version,
        "reproduces": not differences,
        "differences": differences,
        "decision": {
            "clock_ms": clock,
            "window": {"start_ms": window_start, "end_ms": window_end, "counts": _counts(window)},
            "baseline": {
                "buckets": g.baseline_buckets - g.window_buckets,
                "observed_buckets": scale.baseline_buckets,
                "counts": _counts(baseline),
            },
            "count": s.count,
            "total": s.total,
            "share": s.share,
            "baseline_share_or_expected": s.baseline,
            "z": s.z,
        },
        "rule": _rule(kind, cfg),
        "state_before": before.to_dict(),
        "evidence": [e.model_dump(mode="json") for e in alert.evidence],
        "config": record["config"],
    }


def _counts(c: Counts) -> dict[str, Any]:
    return {
        "negative": c.neg,
        "neutral": c.neu,
        "positive": c.pos,
        "first_stories": c.total,
        "repeats": c.rep,
        "net_sentiment": c.net_sentiment,
    }


def _rule(kind: str, cfg: DetectorSettings) -> dict[str, Any]:
    if kind == "volume":
        return {
            "fire": f"count >= {cfg.volume_min_count} and z >= {cfg.volume_fire_z} after "
            f"{cfg.volume_warmup_seconds} s of baseline",
            "resolve": f"z < {cfg.volume_resolve_z}",
            "prior": {"per_hour": cfg.volume_prior_per_hour, "hours": cfg.volume_prior_hours},
            "severity_unit_z": fire_level("volume", cfg),
            "cooldown_seconds": cfg.cooldown_seconds,
        }
    least = cfg.min_negative_count if kind == "negative" else cfg.min_positive_count
    prior = cfg.baseline_prior_share if kind == "negative" else cfg.positive_prior_share
    return {
        "fire": f"count >= {least} and (z >= {cfg.fire_z} or share - baseline >= "
        f"{cfg.share_floor})",
        "resolve": f"z < {cfg.resolve_z} and share - baseline < {cfg.resolve_share_floor}",
        "prior": {"share": prior, "weight": cfg.baseline_prior_weight},
        "severity_unit_z": cfg.fire_z,
        "cooldown_seconds": cfg.cooldown_seconds,
    }
