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
from epiflow.metrics import binary_metrics, choose_threshold, log_loss, reliability_curve

log = logging.getLogger(__name__)


def select_method(val: pd.DataFrame, methods: list[str], heldout: str, test_chroms: list[str]) -> tuple[str, dict]:
    """The calibration method with the lowest leave-one-validation-line-out log loss (cross-fitted on val only).

    Returns the method and every method's cross-fitted validation log loss.
    """
    lines = val.cell_line.unique()
    if len(methods) == 1 or len(lines) < 2:
        return methods[0], {}
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
    return best, losses


def shift_weights(y: np.ndarray, source_prior: float, target_prior: float) -> np.ndarray:
    """Class weights that make rows with positive rate source_prior look like target_prior."""
    return np.where(y == 1, target_prior / source_prior, (1 - target_prior) / (1 - source_prior))


def shift_is_reliable(val: pd.DataFrame, method: str, heldout: str, test_chroms: list[str]) -> tuple[bool, dict]:
    """Does EM estimate an unseen line's positive rate better than assuming the training lines' rate?

    Checked leave-one-validation-line-out: calibrate on the other validation lines, estimate the left-out line's
    rate from its unlabelled scores, compare both estimates' absolute errors with its true rate (validation only).
    """
    lines = val.cell_line.unique()
    em_err, flat_err = [], []
    for line in lines:
        fit, held = val[val.cell_line != line], val[val.cell_line == line]
        if len(lines) < 2 or fit.label.nunique() < 2:
            continue
        probs = fit_on_validation(fit, method, heldout, test_chroms).transform(held.score.to_numpy())
        estimate, _ = em_prior_shift(probs, float(fit.label.mean()))
        em_err.append(abs(estimate - held.label.mean()))
        flat_err.append(abs(fit.label.mean() - held.label.mean()))
    checks = {"em_error": float(np.mean(em_err)) if em_err else float("nan")}
    checks["no_shift_error"] = float(np.mean(flat_err)) if flat_err else float("nan")
    return bool(em_err) and checks["em_error"] < checks["no_shift_error"], checks


def calibrate_fold(fold: pd.DataFrame, heldout: str, test_chroms: list[str], cfg: dict) -> tuple[pd.DataFrame, dict]:
    """Calibrated `prob` and the threshold for one fold's rows (split train/val/test); returns rows and notes."""
    val = fold[fold.split == "val"]
    assert_calibration_rows(val, heldout, test_chroms)
    method, val_losses = select_method(val, list(cfg["methods"]), heldout, test_chroms)
    cal = fit_on_validation(val, method, heldout, test_chroms)
    out = fold.copy()
    out["prob_calibrated"] = cal.transform(out.score.to_numpy())
    out["prob"] = out.prob_calibrated
    val_prior = float(val.label.mean())
    is_test = (out.split == "test").to_numpy()
    test_prior = val_prior
    use_em, shift_checks = shift_is_reliable(val, method, heldout, test_chroms)
    use_em = cfg["label_shift"] == "em" or (cfg["label_shift"] == "auto" and use_em)
    em_prior = float("nan")
    if is_test.any():
        em_prior, adjusted = em_prior_shift(out.loc[is_test, "prob_calibrated"].to_numpy(), val_prior)
        if use_em:
            test_prior = em_prior
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
        "val_logloss": val_losses,
        "test_prior_em": float(em_prior),
        "label_shift_applied": bool(use_em),
        "label_shift_val_em_error": shift_checks["em_error"],
        "label_shift_val_no_shift_error": shift_checks["no_shift_error"],
    }
    return out, notes


def compare_methods(fold: pd.DataFrame, heldout: str, test_chroms: list[str], cfg: dict, n_bins: int) -> pd.DataFrame:
    """Test metrics of every calibration method, with and without the label-shift correction (reported only:
    the method used is chosen on validation data by select_method)."""
    val, test = fold[fold.split == "val"], fold[fold.split == "test"]
    if test.empty or test.label.nunique() < 2:
        return pd.DataFrame()
    y, rows = test.label.to_numpy(), []
    val_prior = float(val.label.mean())
    for method in ["none", *[m for m in cfg["methods"] if m != "none"]]:
        probs = fit_on_validation(val, method, heldout, test_chroms).transform(test.score.to_numpy())
        variants = {"calibrated": probs}
        if cfg["label_shift"] != "none":
            variants["calibrated+label_shift"] = em_prior_shift(probs, val_prior)[1]
        for variant, p in variants.items():
            m = binary_metrics(y, p, 0.5, n_bins)
            rows.append({"method": method, "variant": variant} | {k: m[k] for k in ("ece", "brier", "logloss", "aupr")})
    return pd.DataFrame(rows)


def reliability_table(pred: pd.DataFrame, n_bins: int) -> pd.DataFrame:
    """Reliability curve data of the test rows: raw score, calibrated, calibrated + label shift."""
    test = pred[pred.split == "test"]
    parts = []
    for name, column in (("raw", "score"), ("calibrated", "prob_calibrated"), ("final", "prob")):
        parts.append(reliability_curve(test.label.to_numpy(), test[column].to_numpy(), n_bins).assign(curve=name))
    return pd.concat(parts, ignore_index=True)


def calibrate_scores(
    scores: pd.DataFrame, heldout: str, chrom_folds: list | None, cfg: dict, compare: bool = False
) -> tuple[pd.DataFrame, list, pd.DataFrame | None]:
    """Calibrate every fold of a score table; returns predictions, per-fold notes and (with compare) the test
    metrics of every calibration method per fold (reported only, never used for a choice)."""
    parts, notes, comparisons = [], [], []
    for f, fold in scores.groupby("fold", sort=True):
        test_chroms = list(chrom_folds[f]) if chrom_folds else []
        rows, note = calibrate_fold(fold, heldout, test_chroms, cfg)
        if compare:
            comparisons.append(compare_methods(fold, heldout, test_chroms, cfg, int(cfg["ece_bins"])).assign(fold=f))
        test = rows[rows.split == "test"]
        note.update(fold=int(f), test_prior_true=float(test.label.mean()) if len(test) else float("nan"))
        parts.append(rows)
        notes.append(note)
    return pd.concat(parts, ignore_index=True), notes, pd.concat(comparisons, ignore_index=True) if compare else None


def split_metrics(pred: pd.DataFrame, n_bins: int) -> pd.DataFrame:
    """Metrics per split at each row's own fold threshold; threshold column = mean of the fold thresholds.

    aupr/auroc rank the raw scores; brier, ece, logloss, precision, recall and f1 use the calibrated `prob`.
    """
    rows = []
    for split in ("train", "val", "test"):
        part = pred[pred.split == split]
        if part.empty:
            continue
        y, p, t = part.label.to_numpy(), part.prob.to_numpy(), part.threshold.to_numpy()
        m = binary_metrics(y, p, float(np.mean(t)), n_bins)
        # ranking metrics from the raw score: per-fold calibration and label-shift factors differ, so pooling
        # calibrated probabilities across folds would reorder pairs that no model ordered that way
        raw = binary_metrics(y, part.score.to_numpy(), 0.5, n_bins)
        m["aupr"], m["auroc"] = raw["aupr"], raw["auroc"]
        # per-fold thresholds: precision/recall/F1 from each row's own threshold
        hit = p >= t
        tp = float(np.sum(hit & (y == 1)))
        m["precision"] = tp / max(hit.sum(), 1)
        m["recall"] = tp / max((y == 1).sum(), 1)
        m["f1"] = 2 * m["precision"] * m["recall"] / max(m["precision"] + m["recall"], 1e-12)
        m["ece_raw"] = raw["ece"]
        m["pos_rate"] = float(np.mean(y))
        oracle = choose_threshold(y, p) if y.sum() else float("nan")
        m["oracle_threshold"] = oracle
        m["oracle_f1"] = binary_metrics(y, p, oracle, n_bins)["f1"] if y.sum() else float("nan")
        rows.append({"split": split, **m})
    return pd.DataFrame(rows)
