"""Binary classification metrics: the one place epiflow computes a score's quality.

Every function takes labels ``y`` (0/1) and scores ``p`` (floats in [0, 1]) as array-likes of equal
length. The report, the summary table and calibration all call these, so numbers agree everywhere.
Calibration bins are equal-mass (quantile) bins: with 3.6-10 % positives most scores sit near 0,
and equal-width bins would leave the informative high-score range with a handful of rows.
"""

from __future__ import annotations

import logging
import numbers

import numpy as np
import pandas as pd

from epiflow.errors import InputError

log = logging.getLogger(__name__)

METRIC_KEYS = (
    "n",
    "n_pos",
    "aupr",
    "auroc",
    "brier",
    "ece",
    "logloss",
    "threshold",
    "precision",
    "recall",
    "f1",
)


def check_labels_scores(y, p) -> tuple[np.ndarray, np.ndarray]:
    """Validate labels and scores; return ``(y as int8 array, p as float64 array)``.

    Raises InputError naming the first bad row (1-based) when lengths differ, the input is empty,
    a label is not 0/1, or a score is NaN or outside [0, 1].
    """
    y_arr = np.asarray(y).ravel()
    p_arr = np.asarray(p, dtype=np.float64).ravel()
    if y_arr.shape != p_arr.shape:
        raise InputError(f"labels have {y_arr.size} rows, scores {p_arr.size} (expected equal length)")
    if y_arr.size == 0:
        raise InputError("labels and scores are empty (expected at least one row)")
    bad_y = np.flatnonzero((y_arr != 0) & (y_arr != 1))
    if bad_y.size:
        i = bad_y[0]
        raise InputError(f"labels row {i + 1}: {y_arr[i]!r} (expected 0 or 1)")
    bad_p = np.flatnonzero(~((p_arr >= 0.0) & (p_arr <= 1.0)))  # NaN fails both comparisons
    if bad_p.size:
        i = bad_p[0]
        raise InputError(f"scores row {i + 1}: {p_arr[i]!r} (expected a number in [0, 1])")
    return y_arr.astype(np.int8), p_arr


def score_ranks(score) -> np.ndarray:
    """Scores as ranks in (0, 1] (ties share their mean rank), for scores that need not be probabilities: AUPR and
    AUROC depend only on the order, and the ranks are in the range check_labels_scores expects."""
    from scipy.stats import rankdata

    return rankdata(np.asarray(score, dtype=float)) / max(len(score), 1)


def aupr(y, p) -> float:
    """Area under the precision-recall curve as average precision; NaN when there is no positive."""
    from sklearn.metrics import average_precision_score

    y, p = check_labels_scores(y, p)
    if y.sum() == 0:
        return float("nan")
    return float(average_precision_score(y, p))


def aupr_per_line(rows: pd.DataFrame) -> list[float]:
    """AUPR of each cell line's rows (columns cell_line, label, score), lines in sorted order; NaN for a line
    without positives. Its mean over a run's `val` rows is the criterion validation chooses models by."""
    return [aupr(g.label.to_numpy(), g.score.to_numpy()) for _, g in rows.groupby("cell_line", sort=True)]


def auroc(y, p) -> float:
    """Area under the ROC curve; NaN (no exception) when only one class is present."""
    from sklearn.metrics import roc_auc_score

    y, p = check_labels_scores(y, p)
    if y.min() == y.max():
        return float("nan")
    return float(roc_auc_score(y, p))


def brier(y, p) -> float:
    """Mean squared difference between score and label."""
    y, p = check_labels_scores(y, p)
    return float(np.mean((p - y) ** 2))


def log_loss(y, p, eps: float = 1e-15, sample_weight=None) -> float:
    """Mean negative log-likelihood with scores clipped to [eps, 1 - eps] (finite on 0/1 scores); rows weighted by
    ``sample_weight`` when given."""
    y, p = check_labels_scores(y, p)
    p = np.clip(p, eps, 1.0 - eps)
    return float(-np.average(y * np.log(p) + (1 - y) * np.log1p(-p), weights=sample_weight))


def equal_mass_bins(p, n_bins: int = 15) -> np.ndarray:
    """Bin index (0..k-1, k <= n_bins) of each score in equal-mass (quantile) bins.

    Rows are ranked by score and cut into ``n_bins`` runs of equal size; tied scores all go to the
    bin where their run of ties starts, so a tie never straddles two bins. Empty bins are dropped
    and the rest renumbered, so k may be smaller than n_bins when scores have many ties.
    """
    from scipy.stats import rankdata

    if n_bins < 1:
        raise InputError(f"n_bins {n_bins} (expected >= 1)")
    p = np.asarray(p, dtype=np.float64).ravel()
    first_rank = rankdata(p, method="min").astype(np.int64) - 1
    raw_bin = first_rank * n_bins // p.size
    return np.unique(raw_bin, return_inverse=True)[1]


def reliability_curve(y, p, n_bins: int = 15) -> pd.DataFrame:
    """Observed vs predicted rate per equal-mass bin.

    Returns a DataFrame with columns ``bin`` (0..k-1), ``p_mean`` (mean score), ``y_mean``
    (fraction positive) and ``n`` (rows), one row per non-empty bin, in increasing score order.
    """
    y, p = check_labels_scores(y, p)
    bins = equal_mass_bins(p, n_bins)
    n = np.bincount(bins)
    return pd.DataFrame(
        {
            "bin": np.arange(n.size),
            "p_mean": np.bincount(bins, weights=p) / n,
            "y_mean": np.bincount(bins, weights=y) / n,
            "n": n,
        }
    )


def ece(y, p, n_bins: int = 15) -> float:
    """Expected calibration error: row-weighted mean |p_mean - y_mean| over equal-mass bins."""
    curve = reliability_curve(y, p, n_bins)
    weights = curve["n"].to_numpy() / curve["n"].sum()
    return float(np.sum(weights * np.abs(curve["p_mean"] - curve["y_mean"])))


def _prf(tp, fp, n_pos):
    """Precision, recall and F1 from counts (arrays or scalars); 0 where undefined."""
    tp = np.asarray(tp, dtype=np.float64)
    predicted = tp + np.asarray(fp, dtype=np.float64)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = tp / n_pos if n_pos > 0 else np.zeros_like(tp)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(tp), where=total > 0)
    return precision, recall, f1


def precision_recall_f1(y, p, threshold: float) -> tuple[float, float, float]:
    """(precision, recall, F1) when predicting positive for ``p >= threshold``; 0 where undefined."""
    y, p = check_labels_scores(y, p)
    predicted = p >= threshold
    tp = int(np.sum(predicted & (y == 1)))
    fp = int(np.sum(predicted & (y == 0)))
    precision, recall, f1 = _prf(tp, fp, int(y.sum()))
    return float(precision), float(recall), float(f1)


def check_threshold_rule(rule: str, target: float | None) -> None:
    """InputError unless `rule` is f1, or recall / precision with a target in (0, 1] (also checked at parse time)."""
    if rule == "f1":
        return
    if rule not in ("recall", "precision"):
        raise InputError(f"threshold rule {rule!r} (expected 'f1', 'recall' or 'precision')")
    if isinstance(target, bool) or not isinstance(target, numbers.Real) or not 0.0 < target <= 1.0:
        raise InputError(f"threshold rule {rule!r}: target {target!r} (expected a number in (0, 1])")


def choose_threshold(y, p, rule: str = "f1", target: float | None = None, sample_weight=None) -> float:
    """Pick a decision threshold (positive when ``p >= threshold``) among the observed scores.

    rule ``f1``: the F1-optimal threshold (ties go to the highest such threshold);
    ``recall``: the highest threshold with recall >= target;
    ``precision``: the lowest threshold with precision >= target; when no threshold reaches it,
    the lowest one with the highest precision is returned and a warning logged.
    ``sample_weight`` re-weights rows, e.g. by class to emulate another positive rate (label shift).
    Raises InputError without positive labels, on an unknown rule or a target outside (0, 1].
    """
    from sklearn.metrics import precision_recall_curve

    y, p = check_labels_scores(y, p)
    if y.sum() == 0:
        raise InputError("labels have no positive row (expected at least one to choose a threshold)")
    # Every unique score as a threshold, ascending; the curve's last point (recall 0) has none.
    precision, recall, thresholds = precision_recall_curve(y, p, sample_weight=sample_weight)
    precision, recall = precision[:-1], recall[:-1]
    if rule == "f1":
        total = precision + recall
        f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)
        return float(thresholds[np.flatnonzero(f1 == f1.max())[-1]])
    check_threshold_rule(rule, target)
    if rule == "recall":
        # recall never rises with the threshold, and the lowest threshold has recall 1
        return float(thresholds[np.flatnonzero(recall >= target)[-1]])
    reached = np.flatnonzero(precision >= target)
    if reached.size == 0:
        best = int(np.flatnonzero(precision == precision.max())[0])
        log.warning(
            "no threshold reaches precision %.3f; using %.4g (precision %.3f)",
            target,
            thresholds[best],
            precision[best],
        )
        return float(thresholds[best])
    return float(thresholds[reached[0]])


def threshold_f1_curve(y, p, n_points: int = 101) -> pd.DataFrame:
    """Precision, recall and F1 at ``n_points`` evenly spaced thresholds in [0, 1] (for plots).

    Returns a DataFrame with columns ``threshold, precision, recall, f1``.
    """
    y, p = check_labels_scores(y, p)
    thresholds = np.linspace(0.0, 1.0, n_points)
    order = np.argsort(p, kind="stable")
    p_sorted = p[order]
    pos_below = np.concatenate([[0], np.cumsum(y[order])])  # positives among the i lowest scores
    first_predicted = np.searchsorted(p_sorted, thresholds, side="left")  # first row with p >= t
    n_pos = int(y.sum())
    tp = n_pos - pos_below[first_predicted]
    fp = (p.size - first_predicted) - tp
    precision, recall, f1 = _prf(tp, fp, n_pos)
    return pd.DataFrame({"threshold": thresholds, "precision": precision, "recall": recall, "f1": f1})


def binary_metrics(y, p, threshold: float, n_bins: int = 15) -> dict:
    """All summary metrics for one score vector at a given threshold.

    Returns a dict with exactly the keys of METRIC_KEYS: n, n_pos, aupr, auroc, brier, ece,
    logloss, threshold, precision, recall, f1 (plain Python ints/floats, JSON-able; NaN where a
    metric is undefined, e.g. AUROC with one class).
    """
    y, p = check_labels_scores(y, p)
    precision, recall, f1 = precision_recall_f1(y, p, threshold)
    return {
        "n": int(y.size),
        "n_pos": int(y.sum()),
        "aupr": aupr(y, p),
        "auroc": auroc(y, p),
        "brier": brier(y, p),
        "ece": ece(y, p, n_bins),
        "logloss": log_loss(y, p),
        "threshold": float(threshold),
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }


def line_weights(cell_lines: pd.Series) -> np.ndarray:
    """Row weights giving every cell line the same total weight (mean weight 1): the cell line, not the pair, is the
    unit a model must generalize over, and a line's number of pairs is set by how its labels were called."""
    counts = cell_lines.map(cell_lines.value_counts()).to_numpy(dtype=np.float64)
    return len(cell_lines) / (counts * cell_lines.nunique())
