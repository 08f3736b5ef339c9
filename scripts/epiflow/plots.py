"""The one plotting style of epiflow's report: small matplotlib figures returned as embeddable PNG data URIs."""

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


def to_data_uri(fig) -> str:
    """PNG bytes of a figure as a data: URI (the report stays one self-contained file); closes the figure."""
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def pr_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str) -> str:
    """Precision-recall curves, one per label -> (y, p)."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots()
        for label, (y, p) in curves.items():
            if y.sum() == 0:
                continue
            precision, recall, _ = precision_recall_curve(y, p)
            ax.plot(recall, precision, label=label, lw=1.3)
        ax.set(xlabel="recall", ylabel="precision", title=title, xlim=(0, 1), ylim=(0, 1.02))
        ax.legend(frameon=False, fontsize=7)
        return to_data_uri(fig)


def reliability(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str, n_bins: int = 10) -> str:
    """Reliability diagram (equal-mass bins), one line per label -> (y, p)."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots()
        ax.plot([0, 1], [0, 1], color="0.7", lw=0.8, ls="--")
        for label, (y, p) in curves.items():
            rc = reliability_curve(y, p, n_bins)
            ax.plot(rc.p_mean, rc.y_mean, marker="o", ms=3, lw=1.2, label=label)
        ax.set(xlabel="predicted probability", ylabel="observed positive rate", title=title)
        ax.legend(frameon=False, fontsize=7)
        return to_data_uri(fig)


def threshold_f1(curves: dict[str, tuple[np.ndarray, np.ndarray]], chosen: float, title: str) -> str:
    """F1 against the decision threshold per label -> (y, p), with the validation-chosen threshold marked."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots()
        for label, (y, p) in curves.items():
            curve = threshold_f1_curve(y, p)
            ax.plot(curve.threshold, curve.f1, lw=1.2, label=label)
        ax.axvline(chosen, color="k", lw=0.8, ls=":", label=f"chosen on validation ({chosen:.2f})")
        ax.set(xlabel="threshold", ylabel="F1", title=title, xlim=(0, 1))
        ax.legend(frameon=False, fontsize=7)
        return to_data_uri(fig)


def bars(values: dict[str, float], title: str, ylabel: str) -> str:
    """Horizontal bars, one per label."""
    with plt.rc_context(STYLE | {"figure.figsize": (4.6, 0.3 * len(values) + 1.2)}):
        fig, ax = plt.subplots()
        labels = list(values)
        ax.barh(labels, [values[k] for k in labels], color="#4c78a8")
        ax.invert_yaxis()
        ax.set(xlabel=ylabel, title=title)
        return to_data_uri(fig)
