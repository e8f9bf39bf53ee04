"""Did the alerts matter for prices? Forward returns, hit rates, a random baseline, CIs.

Pure: takes alerts and a ``PriceTable`` (stream_app/offline/prices.py, which also states
the entry/exit rule), returns plain data for ``summary.json``, ``returns.csv`` and the
report.

* **Alerts measured**: the ``firing`` alert of each episode for ``ticker:`` entities (an
  escalation or resolve of the same episode is not a new signal). Other entities
  (``market``, ``topic:``) are counted as out of scope. Kind: ``alert.kind`` (alerts
  without one are ``negative``).
* **Hit**: a negative alert followed by a negative return, a positive alert by a positive
  one (a zero return is a miss). Volume alerts have no direction, so no hit rate; their
  mean absolute return says whether prices moved more than usual. ``directional`` pools
  the negative and positive alerts.
* **Baseline**: for every measured alert, ``draws`` random event times on the same ticker
  (uniform over the feed's event-time span where that ticker has prices for the whole
  horizon), each measured by the same rule and scored with the alert's direction: that
  is ``draws`` random sets with the same tickers and count as the alerts. Draws whose
  return is missing are redrawn (at most 10 rounds). Seeded per alert id and horizon,
  so a run is reproducible and one alert's draws do not depend on the others.
* **Confidence intervals**: percentile bootstrap with ``resamples`` resamples (seeded):
  the alerts are resampled for the alert statistics, and alerts and baseline draws are
  resampled independently for the edge (alert minus baseline).
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol

import numpy as np

from stream_app.offline.prices import (
    HORIZONS,
    Entry,
    PriceTable,
    forward_return,
    forward_returns,
    normalise_ticker,
)
from stream_app.schemas import datetime_to_ms, ms_to_datetime

__all__ = [
    "DIRECTIONS",
    "RETURNS_COLUMNS",
    "AlertLike",
    "AlertReturns",
    "PriceOptions",
    "alert_returns",
    "bootstrap_ci",
    "evaluate_prices",
    "returns_rows",
]

DIRECTIONS: Final[dict[str, int]] = {"negative": -1, "positive": 1}
_REDRAW_ROUNDS = 10
_BOOTSTRAP_CHUNK = 2_000_000  # elements per resampling chunk: bounded memory
_MAX_MISSING_LISTED = 100


class AlertLike(Protocol):
    """What is measured of an ``Alert`` (plus ``kind`` where the schema has it)."""

    @property
    def alert_id(self) -> str: ...
    @property
    def entity(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def fired_at(self) -> datetime: ...


@dataclass(frozen=True)
class PriceOptions:
    tolerance_seconds: int = 120
    seed: int = 0
    bootstrap_resamples: int = 2000
    baseline_draws: int = 100
    confidence: float = 0.95
    horizons: tuple[str, ...] = tuple(HORIZONS)

    def describe(self) -> dict[str, Any]:
        return {
            "tolerance_seconds": self.tolerance_seconds,
            "horizons": {h: HORIZONS[h] for h in self.horizons},
            "baseline": {"draws_per_alert": self.baseline_draws, "seed": self.seed},
            "bootstrap": {
                "resamples": self.bootstrap_resamples,
                "confidence": self.confidence,
                "method": "percentile",
                "seed": self.seed,
            },
        }


@dataclass(frozen=True)
class AlertReturns:
    """One measured alert and its forward return (or missing reason) per horizon."""

    alert_id: str
    entity: str
    ticker: str
    kind: str
    fired_at: datetime
    entries: dict[str, Entry]

    @property
    def direction(self) -> int | None:
        return DIRECTIONS.get(self.kind)


def alert_returns(
    alerts: Sequence[AlertLike], table: PriceTable, options: PriceOptions
) -> tuple[list[AlertReturns], int]:
    """The measured alerts (event-time order) and the number of out-of-scope alerts."""
    out: list[AlertReturns] = []
    out_of_scope = 0
    tol = options.tolerance_seconds * 1000
    for a in sorted(alerts, key=lambda a: (a.fired_at, a.alert_id)):
        if a.state != "firing":
            continue
        ticker = normalise_ticker(a.entity) if a.entity.startswith("ticker:") else None
        if ticker is None:
            out_of_scope += 1
            continue
        t = datetime_to_ms(a.fired_at)
        series = table.series.get(ticker)
        entries = {h: forward_return(series, t, HORIZONS[h] * 1000, tol) for h in options.horizons}
        kind = getattr(a, "kind", None) or "negative"
        out.append(AlertReturns(a.alert_id, a.entity, ticker, kind, a.fired_at, entries))
    return out, out_of_scope


def _baseline(
    ar: AlertReturns, table: PriceTable, span_ms: tuple[int, int], horizon: str,
    options: PriceOptions,
) -> np.ndarray:  # fmt: skip
    """Valid baseline returns of one alert at one horizon (see the module docstring)."""
    series = table.series.get(ar.ticker)
    if series is None:
        return np.empty(0)
    h_ms = HORIZONS[horizon] * 1000
    lo = max(span_ms[0], series.first_ms)
    hi = min(span_ms[1], series.last_ms - h_ms)
    if hi < lo:
        return np.empty(0)
    key = zlib.crc32(ar.alert_id.encode())
    rng = np.random.default_rng([options.seed, key, HORIZONS[horizon]])
    tol = options.tolerance_seconds * 1000
    got: list[np.ndarray] = []
    need = options.baseline_draws
    for _ in range(_REDRAW_ROUNDS):
        t = lo + np.floor(rng.random(need) * (hi - lo + 1)).astype(np.int64)
        r = forward_returns(series, t, h_ms, tol)
        r = r[~np.isnan(r)]
        got.append(r)
        need -= len(r)
        if need == 0:
            break
    return np.concatenate(got)


def _resampled(
    values: np.ndarray, stat: Callable[[np.ndarray], np.ndarray], resamples: int,
    rng: np.random.Generator,
) -> np.ndarray:  # fmt: skip
    """``stat`` (row-wise) of ``resamples`` bootstrap resamples of ``values``."""
    n = len(values)
    chunk = max(1, _BOOTSTRAP_CHUNK // n)
    parts = []
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        parts.append(stat(values[rng.integers(0, n, size=(size, n))]))
    return np.concatenate(parts)


def bootstrap_ci(
    values: np.ndarray, stat: Callable[[np.ndarray], np.ndarray], options: PriceOptions,
    rng: np.random.Generator, minus: np.ndarray | None = None,
) -> list[float] | None:  # fmt: skip
    """Percentile CI of ``stat(values)`` (or of ``stat(values) - stat(minus)``)."""
    if len(values) == 0 or (minus is not None and len(minus) == 0):
        return None
    dist = _resampled(values, stat, options.bootstrap_resamples, rng)
    if minus is not None:
        dist = dist - _resampled(minus, stat, options.bootstrap_resamples, rng)
    alpha = (1.0 - options.confidence) / 2
    lo, hi = np.quantile(dist, [alpha, 1.0 - alpha])
    return [float(lo), float(hi)]


def _mean(x: np.ndarray) -> np.ndarray:
    return np.asarray(x.mean(axis=-1))


def _mean_abs(x: np.ndarray) -> np.ndarray:
    return np.asarray(np.abs(x).mean(axis=-1))


def _num(x: Any) -> float | None:
    return None if x is None else float(x)


def _group(
    name: str, horizon: str, rets: np.ndarray, hits: np.ndarray | None, base: np.ndarray,
    base_hits: np.ndarray | None, alerts: int, options: PriceOptions,
) -> dict[str, Any]:  # fmt: skip
    rng = np.random.default_rng([options.seed, zlib.crc32(f"{name}/{horizon}".encode())])
    n, m = len(rets), len(base)
    out: dict[str, Any] = {
        "alerts": alerts,
        "priced": n,
        "missing": alerts - n,
        "mean_return": _num(rets.mean()) if n else None,
        "mean_return_ci": bootstrap_ci(rets, _mean, options, rng),
        "median_return": _num(np.median(rets)) if n else None,
        "mean_abs_return": _num(np.abs(rets).mean()) if n else None,
        "hit_rate": None,
        "hit_rate_ci": None,
    }
    baseline: dict[str, Any] = {
        "draws": m,
        "mean_return": _num(base.mean()) if m else None,
        "median_return": _num(np.median(base)) if m else None,
        "mean_abs_return": _num(np.abs(base).mean()) if m else None,
        "hit_rate": None,
    }
    edge: dict[str, Any] = {
        "mean_return": _diff(out["mean_return"], baseline["mean_return"]),
        "mean_return_ci": bootstrap_ci(rets, _mean, options, rng, minus=base),
        "mean_abs_return": _diff(out["mean_abs_return"], baseline["mean_abs_return"]),
        "mean_abs_return_ci": bootstrap_ci(rets, _mean_abs, options, rng, minus=base),
    }
    if hits is not None and base_hits is not None:
        out["hit_rate"] = _num(hits.mean()) if n else None
        out["hit_rate_ci"] = bootstrap_ci(hits, _mean, options, rng)
        baseline["hit_rate"] = _num(base_hits.mean()) if m else None
        edge["hit_rate"] = _diff(out["hit_rate"], baseline["hit_rate"])
        edge["hit_rate_ci"] = bootstrap_ci(hits, _mean, options, rng, minus=base_hits)
    out["baseline"] = baseline
    out["edge"] = edge
    return out


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def evaluate_prices(
    alerts: Sequence[AlertLike], table: PriceTable, span: tuple[datetime, datetime],
    options: PriceOptions,
) -> tuple[dict[str, Any], list[AlertReturns]]:  # fmt: skip
    """The ``prices`` block of ``summary.json`` and the per-alert returns behind it."""
    measured, out_of_scope = alert_returns(alerts, table, options)
    span_ms = (datetime_to_ms(span[0]), datetime_to_ms(span[1]))
    kinds = sorted({ar.kind for ar in measured})
    groups: dict[str, dict[str, Any]] = {}
    for horizon in options.horizons:
        per_alert = []
        for ar in measured:
            e = ar.entries[horizon]
            base = _baseline(ar, table, span_ms, horizon, options)
            per_alert.append((ar, e.ret, base))
        names = kinds + (["directional"] if any(k in DIRECTIONS for k in kinds) else [])
        for name in names:
            rows = [
                (ar, r, b)
                for ar, r, b in per_alert
                if ar.kind == name or (name == "directional" and ar.direction is not None)
            ]
            rets = np.array([r for _, r, _ in rows if r is not None], dtype=float)
            base = np.concatenate([b for _, _, b in rows]) if rows else np.empty(0)
            directional = all(ar.direction is not None for ar, _, _ in rows)
            hits = base_hits = None
            if directional:
                dirs = np.array([ar.direction for ar, r, _ in rows if r is not None], dtype=float)
                hits = (rets * dirs > 0).astype(float)
                bdirs = np.concatenate([np.full(len(b), ar.direction) for ar, _, b in rows])
                base_hits = (base * bdirs > 0).astype(float) if rows else np.empty(0)
            groups.setdefault(name, {})[horizon] = _group(
                name, horizon, rets, hits, base, base_hits, len(rows), options
            )
    missing = Counter(
        e.missing for ar in measured for e in ar.entries.values() if e.missing is not None
    )
    listed = [
        {"alert_id": ar.alert_id, "entity": ar.entity, "fired_at": ar.fired_at.isoformat(),
         "horizon": h, "reason": e.missing}
        for ar in measured for h, e in ar.entries.items() if e.missing is not None
    ]  # fmt: skip
    summary = {
        **table.describe(),
        **options.describe(),
        "rule": (
            "entry = last price at or before the alert's event time; exit = last price at "
            "or before event time + horizon; return = exit / entry - 1; a price older than "
            "tolerance_seconds, or no new price by the exit, is missing (never interpolated)"
        ),
        "span": [span[0].isoformat(), span[1].isoformat()],
        "alerts_measured": len(measured),
        "alerts_out_of_scope": out_of_scope,
        "groups": groups,
        "missing": {
            "count": sum(missing.values()),
            "by_reason": dict(sorted(missing.items())),
            "tickers_without_prices": sorted(
                {ar.ticker for ar in measured if ar.ticker not in table.series}
            ),
            "first": listed[:_MAX_MISSING_LISTED],
        },
    }
    return summary, measured


def returns_rows(measured: Sequence[AlertReturns]) -> list[list[Any]]:
    """``returns.csv`` rows: one per measured alert and horizon, missing ones included."""
    rows: list[list[Any]] = []
    for ar in measured:
        for h, e in ar.entries.items():
            hit = "" if e.ret is None or ar.direction is None else int(e.ret * ar.direction > 0)
            rows.append([
                ar.alert_id, ar.entity, ar.kind, ar.fired_at.isoformat(), h,
                ms_to_datetime(e.entry_ms).isoformat() if e.entry_ms is not None else "",
                "" if e.entry_price is None else e.entry_price,
                ms_to_datetime(e.exit_ms).isoformat() if e.exit_ms is not None else "",
                "" if e.exit_price is None else e.exit_price,
                "" if e.ret is None else f"{e.ret:.6g}", hit, e.missing or "",
            ])  # fmt: skip
    return rows


RETURNS_COLUMNS: Final = (
    "alert_id", "entity", "kind", "fired_at", "horizon", "entry_time", "entry_price",
    "exit_time", "exit_price", "return", "hit", "missing",
)  # fmt: skip
