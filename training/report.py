"""Rendering an ``EvaluationReport``: a plain-text summary, confusion-matrix and
reliability-diagram PNGs.

``format_report`` is pure (the CLI prints it and ``write_report`` saves the same text);
the PNGs use matplotlib's Agg backend so they render without a display.
"""

from __future__ import annotations

from pathlib import Path

from training.evaluate import EvaluationReport, HeadEvaluation
from training.metrics import ClassificationReport

__all__ = ["format_report", "plot_confusion", "plot_reliability", "write_report"]


def _summary_row(name: str, rep: ClassificationReport, width: int) -> str:
    return f"  {name:<{width}} {rep.accuracy:>8.4f} {rep.macro_f1:>9.4f} {rep.weighted_f1:>11.4f}"


def _format_head(h: HeadEvaluation) -> list[str]:
    name_width = max(len(name) for name in ["system", *h.baselines])
    lines = [
        f"{h.head} head on {h.dataset} ({h.model.n} examples)",
        f"  {'system':<{name_width}} {'accuracy':>8} {'macro-F1':>9} {'weighted-F1':>11}",
        _summary_row("model", h.model, name_width),
    ]
    lines += [_summary_row(name, rep, name_width) for name, rep in h.baselines.items()]
    width = max(len(label) for label in h.model.labels)
    lines.append("")
    lines.append(f"  {'class':<{width}} {'precision':>9} {'recall':>7} {'F1':>7} {'support':>7}")
    for label, m in h.model.per_class.items():
        lines.append(
            f"  {label:<{width}} {m.precision:>9.4f} {m.recall:>7.4f} {m.f1:>7.4f} {m.support:>7}"
        )
    cal = h.calibration
    lines.append("")
    lines.append(
        f"  calibration: ECE {cal.ece_before:.4f} raw, {cal.ece_after:.4f} at temperature "
        f"{cal.temperature:.3f} (15 bins, top label)"
    )
    lines.append("")
    lines.append("  confusion matrix (rows = true, columns = predicted, in class order above)")
    cell = max(4, len(str(max(max(row) for row in h.model.confusion))) + 1)
    lines.extend("  " + "".join(f"{v:>{cell}}" for v in row) for row in h.model.confusion)
    return lines


def format_report(report: EvaluationReport) -> str:
    lines = [f"model {report.model_version} ({report.model_dir}), max_length {report.max_length}"]
    for h in report.heads:
        lines.append("")
        lines.extend(_format_head(h))
    return "\n".join(lines) + "\n"


def plot_confusion(rep: ClassificationReport, title: str, path: Path) -> None:
    """Row-normalised heat map with raw counts in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(rep.labels)
    size = max(4.0, 0.55 * k + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    rates = [[v / max(1, sum(row)) for v in row] for row in rep.confusion]
    im = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(k), rep.labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(k), rep.labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}\naccuracy {rep.accuracy:.3f}, macro-F1 {rep.macro_f1:.3f}", fontsize=9)
    for i, row in enumerate(rep.confusion):
        for j, v in enumerate(row):
            if v:
                color = "white" if rates[i][j] > 0.5 else "black"
                ax.text(j, i, str(v), ha="center", va="center", fontsize=7, color=color)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_reliability(h: HeadEvaluation, path: Path) -> None:
    """Accuracy against confidence per bin, raw and temperature-scaled, with bin counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cal = h.calibration
    fig, (ax, counts) = plt.subplots(
        2, 1, figsize=(5.2, 6.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="perfect")
    series = (
        ("raw", cal.bins_before, cal.ece_before, "tab:red"),
        (f"T = {cal.temperature:.2f}", cal.bins_after, cal.ece_after, "tab:blue"),
    )
    for name, bins, ece, color in series:
        used = [b for b in bins if b.count]
        ax.plot(
            [b.confidence for b in used],
            [b.accuracy for b in used],
            marker="o",
            color=color,
            label=f"{name}: ECE {ece:.3f}",
        )
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(f"{h.head} head, {Path(h.dataset).name}: reliability", fontsize=9)
    width = 1 / max(1, len(cal.bins_after))
    counts.bar(
        [b.lower for b in cal.bins_after],
        [b.count for b in cal.bins_after],
        width=width,
        align="edge",
        color="tab:blue",
        alpha=0.6,
    )
    counts.set_xlabel("confidence (top-label probability, after temperature)")
    counts.set_ylabel("texts")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(report: EvaluationReport, out_dir: Path) -> list[Path]:
    """report.json, report.txt, confusion_<head>.png and reliability_<head>.png."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "report.json", out_dir / "report.txt"]
    written[0].write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    written[1].write_text(format_report(report), encoding="utf-8")
    for h in report.heads:
        png = out_dir / f"confusion_{h.head}.png"
        plot_confusion(h.model, f"{h.head} head, {Path(h.dataset).name}", png)
        written.append(png)
        diagram = out_dir / f"reliability_{h.head}.png"
        plot_reliability(h, diagram)
        written.append(diagram)
    return written
