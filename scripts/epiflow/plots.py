"""The one plotting style of epiflow's report: small matplotlib figures returned as PNG bytes.

The report embeds them as data: URIs (one self-contained file) and also writes them as files for
`snakemake --report`. Every function takes plain numbers and returns PNG bytes; none reads or writes files.
"""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import precision_recall_curve  # noqa: E402

from epiflow.metrics import reliability_curve, threshold_f1_curve  # noqa: E402

STYLE = {
    "figure.figsize": (4.2, 3.4),
    "figure.dpi": 96,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.size": 9,
}


MAX_POINTS = 1000  # a curve drawn from more points looks the same and renders slower (real studies: 1e5 pairs)
COLORS = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#eeca3b", "#9d755d"]


def to_png(fig) -> bytes:
    """PNG bytes of a figure (no timestamp metadata, so reruns give identical bytes); closes the figure."""
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    """PNG bytes as a data: URI, so the report needs no other file."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def pr_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str) -> bytes:
    """Precision-recall curves, one per label -> (y, p)."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots()
        for label, (y, p) in curves.items():
            if y.sum() == 0:
                continue
            precision, recall, _ = precision_recall_curve(y, p)
            keep = np.unique(np.linspace(0, len(recall) - 1, min(len(recall), MAX_POINTS)).astype(int))
            ax.plot(recall[keep], precision[keep], label=label, lw=1.3)
        ax.set(xlabel="recall", ylabel="precision", title=title, xlim=(0, 1), ylim=(0, 1.02))
        ax.legend(frameon=False, fontsize=7)
        return to_png(fig)


def pr_curves_at_recall(
    curves: dict[str, tuple[np.ndarray, np.ndarray, float]], recall: float, title: str, dashed=()
) -> bytes:
    """Precision-recall step curves of every point (the CRISPRi benchmark's), one per label -> (y, p, precision at
    `recall`), that precision marked on a dotted line at `recall`; labels in `dashed` (baselines) dashed. Unlike
    pr_curves the colours are COLORS by position and no curve is thinned, so a screen's figure shows each step."""
    with plt.rc_context(STYLE | {"figure.figsize": (5.2, 4.2)}):
        fig, ax = plt.subplots()
        for i, (label, (y, p, at_recall)) in enumerate(curves.items()):
            if y.sum() == 0:
                continue
            color = COLORS[i % len(COLORS)]
            precision, recalls, _ = precision_recall_curve(y, p)
            ls = "--" if label in dashed else "-"
            ax.plot(recalls, precision, lw=1.2, ls=ls, color=color, drawstyle="steps-post", label=label)
            ax.plot([recall], [at_recall], "o", ms=4, color=color)
        ax.axvline(recall, color="0.7", lw=0.8, ls=":")
        ax.set(xlabel="recall", ylabel="precision", title=title, xlim=(0, 1), ylim=(0, 1.02))
        ax.legend(frameon=False, fontsize=6)
        return to_png(fig)


def reliability(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str, n_bins: int = 10) -> bytes:
    """Reliability diagram (equal-mass bins), one line per label -> (y, p)."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots()
        ax.plot([0, 1], [0, 1], color="0.7", lw=0.8, ls="--")
        for label, (y, p) in curves.items():
            rc = reliability_curve(y, p, n_bins)
            ax.plot(rc.p_mean, rc.y_mean, marker="o", ms=3, lw=1.2, label=label)
        ax.set(xlabel="predicted probability", ylabel="observed positive rate", title=title)
        ax.legend(frameon=False, fontsize=7)
        return to_png(fig)


def threshold_f1(curves: dict[str, tuple[np.ndarray, np.ndarray]], chosen: float, title: str) -> bytes:
    """F1 against the decision threshold per label -> (y, p), with the validation-chosen threshold marked."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots()
        for label, (y, p) in curves.items():
            curve = threshold_f1_curve(y, p)
            ax.plot(curve.threshold, curve.f1, lw=1.2, label=label)
        ax.axvline(chosen, color="k", lw=0.8, ls=":", label=f"chosen on validation ({chosen:.2f})")
        ax.set(xlabel="threshold", ylabel="F1", title=title, xlim=(0, 1))
        ax.legend(frameon=False, fontsize=7)
        return to_png(fig)


def bars(values: dict[str, dict[str, float]], title: str, xlabel: str) -> bytes:
    """Grouped horizontal bars: label -> {series: value}; one colour per series, a legend when there are several."""
    labels = list(values)
    series = list(dict.fromkeys(s for v in values.values() for s in v))
    height = 0.8 / max(len(series), 1)
    with plt.rc_context(STYLE | {"figure.figsize": (4.8, 0.22 * len(labels) * max(len(series), 1) + 1.3)}):
        fig, ax = plt.subplots()
        y = np.arange(len(labels))
        for i, name in enumerate(series):
            heights = [values[k].get(name, np.nan) for k in labels]
            ax.barh(y + i * height, heights, height, color=COLORS[i % len(COLORS)], label=name)
        ax.set_yticks(y + height * (len(series) - 1) / 2, labels)
        ax.invert_yaxis()
        ax.set(xlabel=xlabel, title=title)
        if len(series) > 1:
            ax.legend(frameon=False, fontsize=7)
        return to_png(fig)


def by_bin(
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    reference: tuple,
    labels: list[str],
    title: str,
    ylabel: str = "AUPR",
    xlabel: str | None = None,
    ticks=None,
) -> bytes:
    """A metric per ordered bin: label -> (bin index, value) lines; `reference` = (bin index, value, name) dashed.
    Tick `labels` stand at `ticks` (default 0..n-1, slanted); given ticks (e.g. bin numbers) take them upright."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots()
        for i, (label, (x, v)) in enumerate(curves.items()):
            ax.plot(x, v, marker="o", ms=3, lw=1.2, color=COLORS[i % len(COLORS)], label=label)
        x, v, name = reference
        ax.plot(x, v, color="0.5", lw=1, ls="--", label=name)
        if ticks is None:
            ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=7)
        else:
            ax.set_xticks(ticks, labels, fontsize=7)
        ax.set(ylabel=ylabel, title=title, ylim=(0, 1.02))
        if xlabel is not None:
            ax.set_xlabel(xlabel)
        ax.legend(frameon=False, fontsize=7)
        return to_png(fig)


def by_bin_intervals(series: dict[str, np.ndarray], labels: list[str], title: str, xlabel: str, dashed=()) -> bytes:
    """AUPRC per bin with intervals: label -> (n_bins, 3) rows of (value, lo, hi) as error bars, each series nudged
    sideways so bars do not hide each other (wider than by_bin, for two-line bin labels); labels in `dashed`
    (baselines) dashed."""
    with plt.rc_context(STYLE | {"figure.figsize": (5.2, 3.6)}):
        fig, ax = plt.subplots()
        for i, (label, rows) in enumerate(series.items()):
            x = np.arange(len(rows)) + (i - len(series) / 2) * 0.03
            err = np.abs(rows[:, 1:].T - rows[:, 0])
            ls = "--" if label in dashed else "-"
            ax.errorbar(
                x,
                rows[:, 0],
                yerr=err,
                marker="o",
                ms=3,
                lw=1.1,
                ls=ls,
                capsize=2,
                color=COLORS[i % len(COLORS)],
                label=label,
            )
        ax.set_xticks(range(len(labels)), labels)
        ax.set(xlabel=xlabel, ylabel="AUPRC", title=title, ylim=(0, 1.02))
        ax.legend(frameon=False, fontsize=6)
        return to_png(fig)
