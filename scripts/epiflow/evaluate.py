"""The calibrate stage: per chromosome fold, calibrate on validation rows, correct for label shift, pick a threshold.

Everything that is fitted or chosen here (calibration method, calibrator, threshold) sees only the `val` rows of
the fold: training cell lines, chromosomes outside the fold. The held-out line's rows are only transformed; their
positive rate is estimated from unlabelled scores (EM), never read from labels.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from epiflow.calibrate import adjust_to_prior, assert_calibration_rows, em_prior_shift, fit_on_validation
from epiflow.metrics import binary_metrics, choose_threshold, log_loss

log = logging.getLogger(__name__)


def select_method(val: pd.DataFrame, methods: list[str], heldout: str, test_chroms: list[str]) -> str:
    """The calibration method with the lowest leave-one-validation-line-out log loss (cross-fitted on val only)."""
    lines = val.cell_line.unique()
    if len(methods) == 1 or len(lines) < 2:
        return methods[0]
    losses = {}
    for method in methods:
        parts = []
        for line in lines:
            fit, held = val[val.cell_line != line], val[val.cell_line == line]
            if fit.label.nunique() < 2:
                continue
            cal = fit_on_validation(fit, method, heldout, test_chroms)
            parts.append((held.label.to_numpy(), cal.transform(held.score.to_numpy())))
        y = np.concatenate([p[0] for p in parts])
        losses[method] = log_loss(y, np.concatenate([p[1] for p in parts]))
    best = min(losses, key=losses.get)
    log.info("calibration method losses %s -> %s", {k: round(v, 5) for k, v in losses.items()}, best)
    return best


def shift_weights(y: np.ndarray, source_prior: float, target_prior: float) -> np.ndarray:
    """Class weights that make rows with positive rate source_prior look like target_prior."""
    return np.where(y == 1, target_prior / source_prior, (1 - target_prior) / (1 - source_prior))


def calibrate_fold(fold: pd.DataFrame, heldout: str, test_chroms: list[str], cfg: dict) -> tuple[pd.DataFrame, dict]:
    """Calibrated `prob` and the threshold for one fold's rows (split train/val/test); returns rows and notes."""
    val = fold[fold.split == "val"]
    assert_calibration_rows(val, heldout, test_chroms)
    method = select_method(val, list(cfg["methods"]), heldout, test_chroms)
    cal = fit_on_validation(val, method, heldout, test_chroms)
    out = fold.copy()
    out["prob_calibrated"] = cal.transform(out.score.to_numpy())
    out["prob"] = out.prob_calibrated
    val_prior = float(val.label.mean())
    is_test = (out.split == "test").to_numpy()
    test_prior = val_prior
    if cfg["label_shift"] == "em" and is_test.any():
        test_prior, adjusted = em_prior_shift(out.loc[is_test, "prob_calibrated"].to_numpy(), val_prior)
        out.loc[is_test, "prob"] = adjusted
    # choose the threshold on validation rows re-weighted to the held-out line's estimated positive rate
    val_y = val.label.to_numpy()
    val_prob = adjust_to_prior(cal.transform(val.score.to_numpy()), val_prior, test_prior)
    rule = cfg["threshold"]
    threshold = choose_threshold(
        val_y, val_prob, rule["rule"], rule.get("target"), sample_weight=shift_weights(val_y, val_prior, test_prior)
    )
    out["threshold"] = threshold
    notes = {
        "method": method,
        "params": cal.params,
        "val_prior": val_prior,
        "test_prior_estimate": float(test_prior),
        "threshold": float(threshold),
    }
    return out, notes


def calibrate_scores(
    scores: pd.DataFrame, heldout: str, chrom_folds: list | None, cfg: dict
) -> tuple[pd.DataFrame, list]:
    """Calibrate every fold of a score table; returns the prediction table and per-fold notes."""
    parts, notes = [], []
    for f, fold in scores.groupby("fold", sort=True):
        test_chroms = list(chrom_folds[f]) if chrom_folds else []
        rows, note = calibrate_fold(fold, heldout, test_chroms, cfg)
        test = rows[rows.split == "test"]
        note.update(fold=int(f), test_prior_true=float(test.label.mean()) if len(test) else float("nan"))
        parts.append(rows)
        notes.append(note)
    return pd.concat(parts, ignore_index=True), notes


def split_metrics(pred: pd.DataFrame, n_bins: int) -> pd.DataFrame:
    """Metrics per split at each row's own fold threshold; threshold column = mean of the fold thresholds."""
    rows = []
    for split in ("train", "val", "test"):
        part = pred[pred.split == split]
        if part.empty:
            continue
        y, p, t = part.label.to_numpy(), part.prob.to_numpy(), part.threshold.to_numpy()
        m = binary_metrics(y, p, float(np.mean(t)), n_bins)
        # per-fold thresholds: precision/recall/F1 from each row's own threshold
        hit = p >= t
        tp = float(np.sum(hit & (y == 1)))
        m["precision"] = tp / max(hit.sum(), 1)
        m["recall"] = tp / max((y == 1).sum(), 1)
        m["f1"] = 2 * m["precision"] * m["recall"] / max(m["precision"] + m["recall"], 1e-12)
        m["ece_raw"] = binary_metrics(y, part.score.to_numpy(), 0.5, n_bins)["ece"]
        m["pos_rate"] = float(np.mean(y))
        oracle = choose_threshold(y, p) if y.sum() else float("nan")
        m["oracle_threshold"] = oracle
        m["oracle_f1"] = binary_metrics(y, p, oracle, n_bins)["f1"] if y.sum() else float("nan")
        rows.append({"split": split, **m})
    return pd.DataFrame(rows)
