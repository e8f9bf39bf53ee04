"""What the API and the desk show of an entity: its detectors' current readings and series.

Pure functions over what a store returns (``EntityView``, bucket counts), so the web API,
the dashboard and the backtest's time series compute the same numbers the same way:
per detector kind the current count, share against baseline, z-score, state and
severity; per bucket the volume of first stories, the repeats, the negative share and the
net sentiment (mean of p_positive - p_negative over first stories), the series quants use
as a feature.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stream_app.config import DetectorSettings, WindowSettings
from stream_app.core.detector import fire_level, severity, stats, volume_scale
from stream_app.core.windows import Counts, WindowGeometry
from stream_app.schemas import DETECTOR_KINDS, DetectorKind, ms_to_datetime
from stream_app.store.base import EntityView

__all__ = ["bucket_row", "describe_entity", "series"]


def describe_entity(view: EntityView, ws: WindowSettings, cfg: DetectorSettings) -> dict[str, Any]:
    """The entity's window, baseline and every kind's reading, as JSON-ready data."""
    g = WindowGeometry.of(ws)
    scale = volume_scale(g, view.clock_ms or 0, view.first_seen_ms)
    kinds: dict[str, Any] = {}
    for kind in DETECTOR_KINDS:
        k: DetectorKind = kind  # type: ignore[assignment]
        s = stats(view.window, view.baseline, cfg, k, scale)
        state = view.detectors.get(kind)
        kinds[kind] = {
            "enabled": kind in cfg.detect,
            "status": state.status if state else "idle",
            "severity": state.severity if state and state.status == "firing" else None,
            "level": severity(s.z, fire_level(k, cfg)),
            "count": s.count,
            "share": s.share,
            "baseline": s.baseline,
            "z": s.z,
            "firing_alert": view.firing.get(kind),
        }
    start, end = g.window_bounds_ms(view.clock_ms) if view.clock_ms is not None else (None, None)
    return {
        "entity": view.entity,
        "clock": ms_to_datetime(view.clock_ms).isoformat() if view.clock_ms else None,
        "first_seen": ms_to_datetime(view.first_seen_ms).isoformat()
        if view.first_seen_ms
        else None,
        "window": {"start_ms": start, "end_ms": end, **bucket_row(view.window)},
        "baseline": bucket_row(view.baseline),
        "kinds": kinds,
        "late_events": view.late_events,
        "duplicate_events": view.duplicate_events,
    }


def bucket_row(c: Counts) -> dict[str, Any]:
    """One bucket (or window) of counts with its derived shares."""
    n = c.total
    return {
        "volume": n,
        "negative": c.neg,
        "neutral": c.neu,
        "positive": c.pos,
        "repeats": c.rep,
        "negative_share": c.neg / n if n else None,
        "positive_share": c.pos / n if n else None,
        "net_sentiment": c.net_sentiment,
    }


def series(
    buckets: Mapping[int, Counts], g: WindowGeometry, last: int, n: int
) -> list[dict[str, Any]]:
    """``n`` buckets ending at bucket ``last``, empty ones included (a chart wants them)."""
    out = []
    for b in range(last - n + 1, last + 1):
        row = bucket_row(buckets.get(b, Counts()))
        out.append({"bucket_start": ms_to_datetime(b * g.bucket_ms).isoformat(), **row})
    return out
