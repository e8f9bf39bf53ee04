"""The report's section on prices: hit rates against the baseline, returns, missing prices.

Reads the ``prices`` block of the summary (stream_app/offline/price_metrics.py) and the
per-alert returns; draws two PNG charts with matplotlib's Agg backend. A price file
flagged synthetic gets a banner at the top of the report (``synthetic_banner``), so
nobody mistakes the sample's made-up prices for market data.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from stream_app.offline.price_metrics import AlertReturns

__all__ = ["price_section", "synthetic_banner"]

KIND_COLOURS = {"negative": "#d62728", "positive": "#2ca02c", "volume": "#1f77b4"}


def synthetic_banner(prices: Mapping[str, Any] | None) -> str:
    if not prices or not prices.get("synthetic"):
        return ""
    notes = "<br>".join(html.escape(n) for n in prices.get("notes", []))
    return (
        "<div class='synthetic'><b>SYNTHETIC PRICES.</b> The price file "
        f"<code>{html.escape(str(prices['file']))}</code> is generated, not market data: "
        f"the returns and hit rates below say nothing about real markets.<br>{notes}</div>"
    )


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.3%}"


def _rate(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def _pp(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:+.1f} pp"


def _ci(ci: Sequence[float] | None, fmt: Any) -> str:
    return "" if not ci else f" [{fmt(ci[0])}, {fmt(ci[1])}]"


def _hit_chart(
    path: Path, groups: Mapping[str, Mapping[str, Any]], horizons: Sequence[str]
) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [g for g in groups if any(groups[g][h]["hit_rate"] is not None for h in horizons)]
    if not names:
        return False
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names) + 1, 3.6), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        xs = range(len(horizons))
        rates = [groups[name][h]["hit_rate"] for h in horizons]
        base = [groups[name][h]["baseline"]["hit_rate"] for h in horizons]
        lo = [r - (groups[name][h]["hit_rate_ci"] or [r])[0] if r is not None else 0
              for r, h in zip(rates, horizons, strict=True)]  # fmt: skip
        hi = [(groups[name][h]["hit_rate_ci"] or [0, r])[1] - r if r is not None else 0
              for r, h in zip(rates, horizons, strict=True)]  # fmt: skip
        ax.bar([x - 0.2 for x in xs], [r or 0 for r in rates], 0.4, yerr=[lo, hi], capsize=4,
               color=KIND_COLOURS.get(name, "#444444"), label="alerts (95% CI)")  # fmt: skip
        ax.bar([x + 0.2 for x in xs], [b or 0 for b in base], 0.4, color="#bbbbbb",
               label="random times")  # fmt: skip
        ax.axhline(0.5, color="#888888", linewidth=0.8, linestyle=":")
        ax.set_xticks(list(xs), list(horizons))
        ax.set_ylim(0, 1)
        ax.set_title(f"{name}: hit rate")
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def _returns_chart(
    path: Path, measured: Sequence[AlertReturns], groups: Mapping[str, Mapping[str, Any]],
    horizons: Sequence[str],
) -> bool:  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not any(e.ret is not None for ar in measured for e in ar.entries.values()):
        return False
    fig, axes = plt.subplots(1, len(horizons), figsize=(4 * len(horizons) + 1, 3.6))
    kinds = sorted({ar.kind for ar in measured})
    for ax, h in zip(axes if len(horizons) > 1 else [axes], horizons, strict=True):
        for i, kind in enumerate(kinds):
            ys = [ar.entries[h].ret for ar in measured if ar.kind == kind]
            ys = [y * 100 for y in ys if y is not None]
            xs = [i + 0.15 * ((j % 5) - 2) / 2 for j in range(len(ys))]
            colour = KIND_COLOURS.get(kind, "#444444")
            ax.scatter(xs, ys, s=14, color=colour, label=f"{kind} alerts")
            median = groups.get(kind, {}).get(h, {}).get("baseline", {}).get("median_return")
            if median is not None:
                ax.hlines(median * 100, i - 0.35, i + 0.35, color="#555555", linestyle="--")
        ax.axhline(0, color="#888888", linewidth=0.8)
        ax.set_xticks(range(len(kinds)), kinds)
        ax.set_title(f"return after {h} (%)")
        ax.tick_params(labelsize=8)
    fig.suptitle("returns after firing alerts; dashes: median at random times", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def price_section(
    output: Path, prices: Mapping[str, Any], measured: Sequence[AlertReturns]
) -> list[str]:
    """HTML parts (and PNG files under ``output/charts``) for the ``prices`` summary block."""
    charts = output / "charts"
    charts.mkdir(parents=True, exist_ok=True)
    horizons = list(prices["horizons"])
    groups = prices["groups"]
    boot = prices["bootstrap"]
    parts = [
        "<h2>Against prices</h2>",
        f"<p>{html.escape(prices['rule'])}. Tolerance {prices['tolerance_seconds']} s. "
        f"Baseline: {prices['baseline']['draws_per_alert']} random times per alert on the "
        "same ticker within the feed's span. CIs: percentile bootstrap, "
        f"{boot['resamples']} resamples, {boot['confidence']:.0%}, seed {boot['seed']}. "
        f"{prices['alerts_measured']} firing ticker alerts measured, "
        f"{prices['alerts_out_of_scope']} alerts for other entities not measured.</p>",
    ]
    rows = []
    for name, per in groups.items():
        for h in horizons:
            g = per[h]
            rows.append([
                name, h, g["alerts"], g["priced"],
                _rate(g["hit_rate"]) + _ci(g["hit_rate_ci"], _rate),
                _rate(g["baseline"]["hit_rate"]),
                _pp(g["edge"].get("hit_rate")) + _ci(g["edge"].get("hit_rate_ci"), _pp),
                _pct(g["mean_return"]) + _ci(g["mean_return_ci"], _pct),
                _pct(g["median_return"]), _pct(g["baseline"]["mean_return"]),
                _pct(g["edge"]["mean_return"]) + _ci(g["edge"]["mean_return_ci"], _pct),
            ])  # fmt: skip
    parts.append(_table(rows, [
        "alerts", "horizon", "n", "priced", "hit rate [CI]", "baseline hit rate",
        "hit-rate edge [CI]", "mean return [CI]", "median return", "baseline mean",
        "mean-return edge [CI]",
    ]))  # fmt: skip
    if _hit_chart(charts / "prices-hit-rate.png", groups, horizons):
        parts.append("<img src='charts/prices-hit-rate.png' alt='hit rate by horizon'>")
    if _returns_chart(charts / "prices-returns.png", measured, groups, horizons):
        parts.append("<img src='charts/prices-returns.png' alt='returns after alerts'>")
    missing = prices["missing"]
    parts.append(f"<h3>Missing prices ({missing['count']} alert-horizons)</h3>")
    if missing["count"]:
        parts.append(_table(sorted(missing["by_reason"].items()), ["reason", "count"]))
        if missing["tickers_without_prices"]:
            names = ", ".join(missing["tickers_without_prices"])
            parts.append(f"<p>Alerted tickers absent from the price file: {html.escape(names)}</p>")
        parts.append(_table(
            [(m["alert_id"][:12], m["entity"], m["fired_at"], m["horizon"], m["reason"])
             for m in missing["first"]],
            ["alert", "entity", "fired at", "horizon", "reason"],
        ))  # fmt: skip
    if prices["bad_rows"]:
        parts.append(_table(sorted(prices["bad_rows"].items()), ["bad price rows", "count"]))
    return parts
