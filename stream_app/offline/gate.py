"""``finpulse backtest --assert``: conditions on a backtest's metrics, so CI can gate on them.

A condition is ``METRIC OP NUMBER`` with OP one of ``>=``, ``<=``, ``>``, ``<``, ``==``;
conditions are separated by commas (``precision>=0.8,recall>=0.9,delay_p90<=300``) and
``--assert`` may be repeated. ``NUMBER`` may end in ``s`` for a delay (seconds) or ``%``
for a fraction (``hit_rate_1h>=55%`` is 0.55).

Metrics are read from the summary (``metric_values``), by name:

* ground truth: ``precision``, ``recall``, ``delay_median``, ``delay_p90``, ``events``,
  ``detected`` (``summary.truth``: negative alerts against negative events); the same per
  alert kind with a ``_negative`` / ``_positive`` / ``_volume`` suffix
  (``summary.truth_by_kind.kinds.<kind>``); ``storm_alerts`` (alerts that syndication
  storms caused, ``summary.truth_by_kind``);
* the run: ``alerts`` (firing), ``alerts_resolved``, ``dead_lettered``, ``late_events``;
* prices (``summary.prices``, ``--prices``), per horizon ``5m`` / ``1h`` / ``1d``:
  ``hit_rate_<h>`` (negative and positive alerts pooled), ``hit_rate_<h>_<kind>``,
  ``hit_rate_edge_<h>`` (minus the random-time baseline), ``baseline_hit_rate_<h>``,
  ``mean_return_<h>_<kind>``, ``median_return_<h>_<kind>``, ``mean_abs_return_<h>_<kind>``,
  ``priced_alerts_<h>``.

Outcomes: a malformed condition or an unknown metric is a ``GateError`` naming the known
metrics (exit 2, before anything runs); a metric whose source the run lacks (no ground
truth, no price file) is an error too (exit 2); a metric the run could not compute
(``n/a``, e.g. precision with no firing alert) fails its condition, as does a value that
breaks it (exit 1, one line: ``recall 0.75 < 0.9``).
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from models.errors import FinpulseError
from stream_app.offline.prices import HORIZONS

__all__ = [
    "Condition",
    "GateError",
    "Outcome",
    "check",
    "known_metrics",
    "metric_values",
    "parse_conditions",
]

KINDS: Final = ("negative", "positive", "volume")
_OPS: Final[dict[str, Callable[[float, float], bool]]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq,
}  # fmt: skip
_NEGATION: Final = {">=": "<", "<=": ">", ">": "<=", "<": ">=", "==": "!="}
_CONDITION = re.compile(
    r"^\s*([A-Za-z0-9_]+)\s*(>=|<=|==|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(s|%)?\s*$"
)
_TRUTH_FIELDS: Final = {
    "precision": "precision", "recall": "recall", "delay_median": "delay_median_seconds",
    "delay_p90": "delay_p90_seconds", "events": "events", "detected": "detected",
}  # fmt: skip
_PRICE_KIND_STATS: Final = ("hit_rate", "mean_return", "median_return", "mean_abs_return")


class GateError(FinpulseError):
    """A malformed ``--assert`` condition, an unknown metric, or a metric without a source."""


@dataclass(frozen=True)
class Condition:
    metric: str
    op: str
    threshold: float
    text: str


@dataclass(frozen=True)
class Outcome:
    condition: Condition
    value: float | None
    ok: bool

    def reason(self) -> str:
        c = self.condition
        if self.value is None:
            return f"{c.metric} n/a (not computable in this run), wanted {c.op} {c.threshold:g}"
        return f"{c.metric} {self.value:.6g} {_NEGATION[c.op]} {c.threshold:g}"

    def as_dict(self) -> dict[str, Any]:
        out = {"condition": self.condition.text, "value": self.value, "ok": self.ok}
        if not self.ok:
            out["reason"] = self.reason()
        return out


def _priced(horizon: str) -> Callable[[Mapping[str, Any]], Any]:
    """Alerts with a return at ``horizon``, all kinds (the pooled group would count twice)."""

    def get(s: Mapping[str, Any]) -> Any:
        groups = s["prices"]["groups"].items()
        return sum(g.get(horizon, {}).get("priced", 0) for k, g in groups if k != "directional")

    return get


def _registry() -> dict[str, tuple[str, Callable[[Mapping[str, Any]], Any]]]:
    """Metric name -> (source, getter of the summary); source: ``truth``, ``run``, ``prices``."""
    reg: dict[str, tuple[str, Callable[[Mapping[str, Any]], Any]]] = {}

    def truth(field: str, kind: str | None) -> Callable[[Mapping[str, Any]], Any]:
        def get(s: Mapping[str, Any]) -> Any:
            if kind is None:
                return s["truth"].get(field)
            per = ((s.get("truth_by_kind") or {}).get("kinds") or {}).get(kind)
            return None if per is None else per.get(field)

        return get

    for name, field in _TRUTH_FIELDS.items():
        reg[name] = ("truth", truth(field, None))
        for kind in KINDS:
            reg[f"{name}_{kind}"] = ("truth", truth(field, kind))
    reg["storm_alerts"] = ("truth", lambda s: (s.get("truth_by_kind") or {}).get("storm_alerts"))
    reg["alerts"] = ("run", lambda s: s["alerts"]["firing"])
    reg["alerts_resolved"] = ("run", lambda s: s["alerts"]["resolved"])
    reg["dead_lettered"] = ("run", lambda s: sum(s["dead_lettered"].values()))
    reg["late_events"] = ("run", lambda s: s["late_events"])

    def price(group: str, horizon: str, *path: str) -> Callable[[Mapping[str, Any]], Any]:
        def get(s: Mapping[str, Any]) -> Any:
            value: Any = (s["prices"]["groups"].get(group) or {}).get(horizon)
            for key in path:
                value = None if value is None else value.get(key)
            return value

        return get

    for h in HORIZONS:
        reg[f"hit_rate_{h}"] = ("prices", price("directional", h, "hit_rate"))
        reg[f"hit_rate_edge_{h}"] = ("prices", price("directional", h, "edge", "hit_rate"))
        reg[f"baseline_hit_rate_{h}"] = (
            "prices", price("directional", h, "baseline", "hit_rate"),
        )  # fmt: skip
        reg[f"priced_alerts_{h}"] = ("prices", _priced(h))
        for stat in _PRICE_KIND_STATS:
            for kind in KINDS:
                if stat == "hit_rate" and kind == "volume":
                    continue
                reg[f"{stat}_{h}_{kind}"] = ("prices", price(kind, h, stat))
    return reg


_REGISTRY: Final = _registry()
_SOURCES: Final = {
    "truth": "needs ground truth: give --truth, --sample, or a feed with event_id marks",
    "prices": "needs a price file: give --prices (or --sample)",
}


def known_metrics() -> list[str]:
    return sorted(_REGISTRY)


def _unit(metric: str, unit: str | None, value: float, text: str) -> float:
    if unit == "s" and not metric.startswith("delay_"):
        raise GateError(f"--assert {text!r}: 's' (seconds) only fits delay_* metrics")
    if unit == "%":
        if metric.startswith(("delay_", "alerts", "dead_", "late_", "events", "detected",
                              "priced_", "storm_")):  # fmt: skip
            raise GateError(f"--assert {text!r}: '%' only fits rates and returns")
        return value / 100
    return value


def parse_conditions(texts: Sequence[str]) -> list[Condition]:
    """Every condition of every ``--assert`` value; ``GateError`` on the first bad one."""
    out: list[Condition] = []
    for chunk in texts:
        for part in chunk.split(","):
            text = part.strip()
            if not text:
                raise GateError(f"--assert {chunk!r}: empty condition (stray comma?)")
            m = _CONDITION.match(text)
            if m is None:
                raise GateError(
                    f"--assert {text!r}: expected METRIC OP NUMBER with OP one of "
                    f"{', '.join(_OPS)} (e.g. recall>=0.9)"
                )
            metric, op, number, unit = m.groups()
            if metric not in _REGISTRY:
                close = difflib.get_close_matches(metric, _REGISTRY, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise GateError(
                    f"--assert {text!r}: unknown metric {metric!r}{hint}; known metrics: "
                    + ", ".join(known_metrics())
                )
            value = float(number)
            if not math.isfinite(value):
                raise GateError(f"--assert {text!r}: the threshold must be a finite number")
            out.append(Condition(metric, op, _unit(metric, unit, value, text), text))
    return out


def sources(conditions: Sequence[Condition]) -> set[str]:
    """What the conditions need besides the run itself: ``truth`` and/or ``prices``."""
    return {_REGISTRY[c.metric][0] for c in conditions} - {"run"}


def metric_values(summary: Mapping[str, Any]) -> dict[str, float | None]:
    """Every known metric this summary has a source for (None: not computable)."""
    out: dict[str, float | None] = {}
    for name, (source, get) in _REGISTRY.items():
        if source != "run" and summary.get(source) is None:
            continue
        value = get(summary)
        out[name] = None if value is None else float(value)
    return out


def check(conditions: Sequence[Condition], summary: Mapping[str, Any]) -> list[Outcome]:
    """Each condition against the summary; ``GateError`` when a metric's source is absent."""
    values = metric_values(summary)
    outcomes = []
    for c in conditions:
        if c.metric not in values:
            raise GateError(f"--assert {c.text!r}: {_SOURCES[_REGISTRY[c.metric][0]]}")
        value = values[c.metric]
        ok = value is not None and _OPS[c.op](value, c.threshold)
        outcomes.append(Outcome(c, value, ok))
    return outcomes
