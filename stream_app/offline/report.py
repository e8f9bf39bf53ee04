"""Backtest outputs for people: per-entity time series (CSV) and an HTML report with charts.

The series are recomputed from the run's entity events with the detector's own ``stats``,
at the end of every bucket; the alerts themselves come from the per-event evaluation of
the aggregator, so a marker can sit between two plotted points. Charts are PNG files made
with matplotlib's Agg backend (no display needed), referenced from ``report.html``.
"""

from __future__ import annotations

import csv
import html
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stream_app.config import Settings
from stream_app.core.detector import stats
from stream_app.core.windows import Counts, WindowGeometry
from stream_app.offline.report_prices import price_section, synthetic_banner

if TYPE_CHECKING:
    from stream_app.offline.price_metrics import AlertReturns
    from stream_app.offline.truth import TruthEvent
    from stream_app.schemas import Alert

__all__ = ["SeriesPoint", "entity_series", "write_report", "write_timeseries"]

MAX_CHARTS = 12
SERIES_COLUMNS = (
    "entity", "bucket_start", "negative", "neutral", "positive", "total", "repeats",
    "net_sentiment", "window_negative", "window_total", "window_negative_share",
    "baseline_share", "score", "window_net_sentiment",
)  # fmt: skip


@dataclass(frozen=True)
class SeriesPoint:
    bucket_start: datetime
    bucket: Counts
    window: Counts
    share: float
    baseline_share: float
    score: float


def entity_series(buckets: Mapping[int, Counts], settings: Settings) -> Iterator[SeriesPoint]:
    """One point per bucket from an entity's first to last bucket (empty buckets included).

    The sums slide with ``WindowGeometry.slide_layers``, the aggregator's own rule, one
    bucket at a time: each step moves a bucket into the baseline and one out of it.
    """
    if not buckets:
        return
    geometry = WindowGeometry.of(settings.window)
    window, baseline = Counts(), Counts()
    zero = Counts()
    lo, hi = min(buckets), max(buckets)
    for b in range(lo, hi + 1):
        geometry.slide_layers(window, baseline, b - 1, b, (buckets,))
        window.add(buckets.get(b, zero))
        s = stats(window, baseline, settings.detector)
        start = datetime.fromtimestamp(b * geometry.bucket_ms / 1000, UTC)
        yield SeriesPoint(start, buckets.get(b, zero), window.copy(), s.share, s.baseline, s.z)


def write_timeseries(
    path: Path, buckets: Mapping[str, Mapping[int, Counts]], entities: Sequence[str],
    settings: Settings,
) -> None:  # fmt: skip
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(SERIES_COLUMNS)
        for entity in entities:
            for p in entity_series(buckets.get(entity, {}), settings):
                net, window_net = p.bucket.net_sentiment, p.window.net_sentiment
                writer.writerow([
                    entity, p.bucket_start.isoformat(), p.bucket.neg, p.bucket.neu, p.bucket.pos,
                    p.bucket.total, p.bucket.rep, "" if net is None else f"{net:.4f}",
                    p.window.neg, p.window.total, f"{p.share:.4f}", f"{p.baseline_share:.4f}",
                    f"{p.score:.3f}", "" if window_net is None else f"{window_net:.4f}",
                ])  # fmt: skip


def _chart(
    path: Path, entity: str, points: list[SeriesPoint], alerts: Sequence[Any],
    truth: Sequence[TruthEvent], settings: Settings,
) -> None:  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [p.bucket_start for p in points]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 5.5), sharex=True)
    top.stackplot(
        xs, [p.window.neg for p in points], [p.window.neu for p in points],
        [p.window.pos for p in points], labels=["negative", "neutral", "positive"],
        colors=["#d62728", "#bbbbbb", "#2ca02c"], step="post",
    )  # fmt: skip
    top.set_ylabel("items in window")
    top.legend(loc="upper left", fontsize=8)
    fire_z = settings.detector.fire_z
    band = []
    for p in points:
        n, p0 = p.window.total, p.baseline_share
        band.append(min(1.0, p0 + fire_z * math.sqrt(p0 * (1 - p0) / n)) if n else 1.0)
    bottom.fill_between(xs, [p.baseline_share for p in points], band, step="post",
                        color="#1f77b4", alpha=0.15, label=f"baseline .. z={fire_z:g}")  # fmt: skip
    bottom.step(xs, [p.baseline_share for p in points], where="post", color="#1f77b4",
                label="baseline share")  # fmt: skip
    bottom.step(xs, [p.share for p in points], where="post", color="#d62728",
                label="window negative share")  # fmt: skip
    for ev in truth:
        if ev.entity == entity:
            for ax in (top, bottom):
                ax.axvspan(ev.start, ev.end, color="#ff7f0e", alpha=0.15)
    for a in alerts:
        style = ("#d62728", "--") if a.state == "firing" else ("#2ca02c", ":")
        for ax in (top, bottom):
            ax.axvline(a.fired_at, color=style[0], linestyle=style[1], linewidth=1)
    bottom.set_ylim(0, 1)
    bottom.set_ylabel("negative share")
    bottom.legend(loc="upper left", fontsize=8)
    top.set_title(f"{entity}: alerts firing (red dashed) / resolved (green dotted); "
                  "true events shaded")  # fmt: skip
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "n/a" if value is None else str(value)


def write_report(
    output: Path, summary: Mapping[str, Any], alerts: Sequence[Alert],
    buckets: Mapping[str, Mapping[int, Counts]], settings: Settings,
    truth: Sequence[TruthEvent] = (), measured: Sequence[AlertReturns] = (),
) -> Path:  # fmt: skip
    """``report.html`` plus one PNG per charted entity (entities with alerts, most first).

    With a ``prices`` block in the summary, a section on returns after the alerts
    (stream_app/offline/report_prices.py) follows the ground truth.
    """
    charts_dir = output / "charts"
    charts_dir.mkdir(parents=True, exist_ok=True)
    by_entity: dict[str, list[Any]] = {}
    for a in alerts:
        by_entity.setdefault(a.entity, []).append(a)
    ranked = sorted(by_entity, key=lambda e: (-len(by_entity[e]), e))
    chosen = ranked[:MAX_CHARTS]
    for ev in truth:
        if ev.entity not in chosen:
            chosen.append(ev.entity)
    if "market" not in chosen:
        chosen.append("market")
    charts = []
    for i, entity in enumerate(chosen):
        points = list(entity_series(buckets.get(entity, {}), settings))
        if not points:
            continue
        name = f"chart-{i:02d}.png"
        _chart(charts_dir / name, entity, points, by_entity.get(entity, []), truth, settings)
        charts.append((entity, f"charts/{name}"))

    s = summary
    overview = [
        ("feed", s["feed"]), ("rows", s["rows"]), ("valid items", s["items"]),
        ("outside --from/--to", s["outside_time_range"]), ("scored", s["scored"]),
        ("dead-lettered", sum(s["dead_lettered"].values())),
        ("alerts firing / resolved", f"{s['alerts']['firing']} / {s['alerts']['resolved']}"),
        ("duplicates", s["duplicates"]), ("late events", s["late_events"]),
        ("model version", s["model_version"]), ("run time (s)", s["seconds"]),
        ("items/s", s["items_per_second"]),
    ]  # fmt: skip
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>finpulse backtest</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;"
        "margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}"
        "img{max-width:100%}.synthetic{background:#fff3cd;border:2px solid #d39e00;"
        "padding:.6em 1em;margin:1em 0}</style></head><body><h1>finpulse backtest</h1>",
        synthetic_banner(s.get("prices")),
        _table(overview, ["", ""]),
        "<h2>Dead-lettered by reason</h2>",
        _table(sorted(s["dead_lettered"].items()), ["reason", "count"]),
        "<h2>Alerts per entity</h2>",
        _table(
            [(e, c["firing"], c["resolved"]) for e, c in s["alerts_by_entity"].items()],
            ["entity", "firing", "resolved"],
        ),
    ]
    t = s.get("truth")
    if t:
        parts += [
            "<h2>Against ground truth</h2>",
            _table([
                ("recall", _fmt(t["recall"])), ("precision", _fmt(t["precision"])),
                ("events detected", f"{t['detected']} / {t['events']}"),
                ("firing alerts in scope / true", f"{t['firing_alerts_in_scope']} / "
                 f"{t['true_positive_alerts']}"),
                ("alerts out of scope (other entity kinds)", t["alerts_out_of_scope"]),
                ("median delay (s)", _fmt(t["delay_median_seconds"])),
                ("p90 delay (s)", _fmt(t["delay_p90_seconds"])),
                ("tolerance (s)", _fmt(t["tolerance_seconds"])),
            ], ["metric", "value"]),
            _table([(e["event_id"], e["entity"], e["start"], e["end"], e["detected"],
                     _fmt(e["delay_seconds"])) for e in t["per_event"]],
                   ["event", "entity", "start", "end", "detected", "delay (s)"]),
        ]  # fmt: skip
    k = s.get("truth_by_kind")
    if k:
        parts += [
            "<h2>Per kind of event</h2>",
            _table([(kind, _fmt(m["precision"]), _fmt(m["recall"]),
                     f"{m['detected']} / {m['events']}", _fmt(m["delay_median_seconds"]),
                     _fmt(m["delay_p90_seconds"])) for kind, m in k["kinds"].items()],
                   ["kind", "precision", "recall", "detected", "median delay (s)",
                    "p90 delay (s)"]),
            f"<p>Duplicate storms: {k['storms']}, alerts they caused: "
            f"<b>{k['storm_alerts']}</b> (target 0).</p>",
        ]  # fmt: skip
    if s.get("prices"):
        parts += price_section(output, s["prices"], measured)
    parts.append("<h2>Charts</h2>")
    if len(ranked) > MAX_CHARTS:
        parts.append(f"<p>{len(ranked)} entities alerted; the {MAX_CHARTS} with most alerts "
                     "are charted (every alerted entity is in timeseries.csv).</p>")  # fmt: skip
    for entity, src in charts:
        parts.append(f"<h3>{html.escape(entity)}</h3><img src='{html.escape(src)}' alt=''>")
    parts += [
        "<h2>Run configuration</h2>",
        f"<pre>{html.escape(json.dumps(s['config'], indent=2, default=str))}</pre>",
        "</body></html>",
    ]
    path = output / "report.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
