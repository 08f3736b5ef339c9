"""The calibrate stage: per chromosome fold, calibrate on validation rows, correct for label shift, pick a threshold.

Everything that is fitted or chosen here (calibration method, calibrator, threshold) sees only the `val` rows of
the fold: training cell lines, chromosomes outside the fold. The held-out line's rows are only transformed, each by
the map fitted on validation (every validation line weighing the same with `fit_balance: lines`, each row 1 with
`pairs`); their positive rate is estimated from their unlabelled scores (the estimator chosen
leave-one-validation-line-out among ESTIMATORS) and reported. Only with `label_shift_apply` (the predict path, a
user's unlabelled line) does an estimator that re-weights (em, bbse) move their probabilities, and the threshold's
validation rows with them. The threshold is chosen on the validation rows with every validation line carrying the
same total weight (`threshold_balance: lines`) or every row weighing 1 (`pairs`).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from epiflow.calibrators import (
    Calibrator,
    adjust_to_prior,
    bbse_prior,
    calibrated_rate,
    em_prior_shift,
    fit_on_validation,
    fit_weights,
    prior_mle_on_boundary,
)
from epiflow.errors import InputError
from epiflow.leakage import assert_no_leakage
from epiflow.metrics import (
    binary_metrics,
    choose_threshold,
    line_weights,
    log_loss,
    reliability_curve,
)

log = logging.getLogger(__name__)


def line_out_fits(
    val: pd.DataFrame, method: str, heldout: str, test_chroms: list[str], balance: str = "lines"
) -> list[tuple[pd.DataFrame, pd.DataFrame, Calibrator]]:
    """(other lines' rows, left-out line's rows, `method` fitted on the other lines, weighted by `balance`) for each
    validation line left out in turn; empty with fewer than two lines, a line skipped when the others hold a single
    class."""
    lines = val.cell_line.unique()
    fits = []
    for line in lines if len(lines) > 1 else []:
        fit, held = val[val.cell_line != line], val[val.cell_line == line]
        if fit.label.nunique() >= 2:
            fits.append((fit, held, fit_on_validation(fit, method, heldout, test_chroms, balance)))
    return fits


def select_method(
    val: pd.DataFrame, methods: list[str], heldout: str, test_chroms: list[str], balance: str = "lines"
) -> tuple[str, dict, list[tuple[pd.DataFrame, pd.DataFrame, Calibrator]]]:
    """The calibration method with the lowest leave-one-validation-line-out log loss (cross-fitted on val only; with
    `balance` lines every fit and the loss weigh each validation line the same).

    Returns the method, every method's cross-fitted validation log loss and the chosen method's line_out_fits.
    """
    if len(methods) == 1 or val.cell_line.nunique() < 2:
        return methods[0], {}, line_out_fits(val, methods[0], heldout, test_chroms, balance)
    losses, fits = {}, {}
    for method in methods:
        fits[method] = line_out_fits(val, method, heldout, test_chroms, balance)
        y = np.concatenate([held.label.to_numpy() for _, held, _ in fits[method]])
        probs = np.concatenate([cal.transform(held.score.to_numpy()) for _, held, cal in fits[method]])
        left_out = pd.concat([held.cell_line for _, held, _ in fits[method]], ignore_index=True)
        losses[method] = log_loss(y, probs, sample_weight=fit_weights(left_out, balance))
    best = min(losses, key=losses.get)
    log.info("calibration method losses %s -> %s", {k: round(v, 5) for k, v in losses.items()}, best)
    return best, losses, fits[best]


def shift_weights(y: np.ndarray, source_prior: float, target_prior: float) -> np.ndarray:
    """Class weights that make rows with positive rate source_prior look like target_prior."""
    return np.where(y == 1, target_prior / source_prior, (1 - target_prior) / (1 - source_prior))


# Label-shift estimators of a new line's positive rate from its unlabelled calibrated probabilities. `none` keeps the
# validation rate; `pcc` (probabilistic classify-and-count) takes the mean calibrated probability and leaves the
# probabilities as they are; `em` (Saerens et al. 2002) and `bbse` (Lipton et al. 2018) assume pure label shift and,
# with `label_shift_apply` (the predict path), re-weight the probabilities to their estimate.
ESTIMATORS = ("none", "pcc", "em", "bbse")
REWEIGHTS = {"none": False, "pcc": False, "em": True, "bbse": True}


def estimate_prior(
    name: str,
    val_y: np.ndarray,
    val_probs: np.ndarray,
    probs: np.ndarray,
    reject_boundary: bool = False,
    val_weight: np.ndarray | None = None,
) -> float:
    """Positive rate of the rows scored `probs` by estimator `name`; val_* are the calibration rows (labelled), whose
    rate as the calibrator weighed them (`val_weight`, None = each row 1) is the one the probabilities mean.

    NaN when the estimator fails: BBSE's confusion matrix is singular or, with `reject_boundary`, EM's likelihood
    is largest at a rate of 0 or 1 or BBSE's solution falls outside (0, 1) (the label-shift model has no interior
    solution for these rows; every line has positives and negatives).
    """
    val_prior = float(np.average(val_y, weights=val_weight))
    if name == "none":
        return val_prior
    if name == "pcc":
        return float(np.clip(np.mean(probs), 1e-6, 1 - 1e-6))
    if name == "em":
        if reject_boundary and prior_mle_on_boundary(probs, val_prior):
            return float("nan")
        return em_prior_shift(probs, val_prior)[0]
    if name == "bbse":
        # hard predictions at the validation rows' positive-rate quantile: as many called positive as there are
        # (BBSE's confusion matrix counts rows, each weighing 1, whatever the calibrator's weights)
        threshold = float(np.quantile(val_probs, 1 - float(np.mean(val_y))))
        try:
            estimate = bbse_prior(val_y, val_probs >= threshold, probs >= threshold)
        except InputError:
            return float("nan")
        if reject_boundary and not 0.0 < estimate < 1.0:
            return float("nan")
        return float(np.clip(estimate, 1e-6, 1 - 1e-6))
    raise ValueError(f"label-shift estimator {name!r} is unknown (expected one of {', '.join(ESTIMATORS)})")


def prior_errors(
    val: pd.DataFrame,
    method: str,
    heldout: str,
    test_chroms: list[str],
    fits: list[tuple[pd.DataFrame, pd.DataFrame, Calibrator]] | None = None,
    reject_boundary: bool = False,
    balance: str = "lines",
) -> dict[str, float]:
    """Each estimator's mean absolute error on the validation lines' positive rates, leave-one-line-out.

    Calibrate on the other validation lines (`fits`: their line_out_fits when already made), estimate the left-out
    line's rate from its unlabelled scores, compare with its true rate. Validation rows only; NaN for an estimator
    that could not be checked (it failed on a line; `reject_boundary` as in estimate_prior).
    """
    errors: dict[str, list[float]] = {name: [] for name in ESTIMATORS}
    for fit, held, cal in line_out_fits(val, method, heldout, test_chroms, balance) if fits is None else fits:
        fit_y, fit_probs = fit.label.to_numpy(), cal.transform(fit.score.to_numpy())
        probs, fit_w = cal.transform(held.score.to_numpy()), fit_weights(fit.cell_line, balance)
        for name in ESTIMATORS:
            estimate = estimate_prior(name, fit_y, fit_probs, probs, reject_boundary, fit_w)
            errors[name].append(abs(estimate - held.label.mean()))
    return {name: float(np.mean(e)) if e and np.all(np.isfinite(e)) else float("nan") for name, e in errors.items()}


def choose_estimator(setting: str, errors: dict[str, float]) -> str:
    """The estimator the config names, or with `auto` the one with the smallest leave-one-line-out error (`none`
    when nothing could be checked or on ties)."""
    return rank_estimators(setting, errors)[0]


def rank_estimators(setting: str, errors: dict[str, float]) -> list[str]:
    """Estimators to try in turn: the one the config names then `none`, or with `auto` every checked one by
    leave-one-line-out error (`none` first on ties; only `none` when it was not checked). `none` never fails."""
    if setting != "auto":
        return [setting] if setting == "none" else [setting, "none"]
    checked = {name: e for name, e in errors.items() if np.isfinite(e)}
    if "none" not in checked:
        return ["none"]
    return sorted(checked, key=lambda name: (checked[name], name != "none"))


def heldout_prior(
    ranking: list[str],
    val_y: np.ndarray,
    val_probs: np.ndarray,
    test_probs: np.ndarray,
    reject_boundary: bool,
    val_weight: np.ndarray | None = None,
) -> tuple[str, float, dict[str, float]]:
    """(estimator used, the held-out rows' estimated positive rate, every estimator's estimate).

    The first estimator of `ranking` with a finite estimate is used, or with `reject_boundary` false the first
    whatever its estimate (the validation rate standing in for a failed one).
    """
    estimates = {
        name: estimate_prior(name, val_y, val_probs, test_probs, reject_boundary, val_weight) for name in ESTIMATORS
    }
    usable = [name for name in ranking if np.isfinite(estimates[name])] if reject_boundary else ranking
    estimator = usable[0] if usable else "none"
    prior = estimates[estimator] if np.isfinite(estimates[estimator]) else estimates["none"]
    return estimator, prior, estimates


THRESHOLD_BALANCE = ("lines", "pairs")


def fold_threshold(
    val_y: np.ndarray, val_probs: np.ndarray, val_lines: pd.Series, prior: float, reweighted: bool, cfg: dict
) -> float:
    """The threshold rule of `cfg` on validation rows (cell lines `val_lines`); with `threshold_balance: lines` (the
    default) each validation line carries the same total weight, with `pairs` each row weighs 1; with `reweighted`
    the rows are first re-weighted to the estimated positive rate `prior` (probabilities by Bayes' rule, rows by
    class weights). `val_probs` are those of the calibrator calibrate_fold fits with the same `cfg` (`fit_balance`)."""
    balance = cfg.get("threshold_balance", "lines")
    if balance not in THRESHOLD_BALANCE:
        raise ValueError(f"calibration.threshold_balance {balance!r} is unknown (expected lines or pairs)")
    val_prior = calibrated_rate(val_y, val_lines, cfg.get("fit_balance", "lines"))
    probs = adjust_to_prior(val_probs, val_prior, prior if reweighted else val_prior)
    rule = cfg["threshold"]
    lines = line_weights(val_lines) if balance == "lines" else np.ones(len(val_y))
    source = float(np.average(val_y, weights=lines))  # the positive rate of the rows as weighted
    # class weights on top of the line weights, so that the weighted rows have the positive rate `prior`
    weight = lines * shift_weights(val_y, source, prior if reweighted else source)
    return choose_threshold(val_y, probs, rule["rule"], rule.get("target"), sample_weight=weight)


def calibrate_fold(fold: pd.DataFrame, heldout: str, test_chroms: list[str], cfg: dict) -> tuple[pd.DataFrame, dict]:
    """Calibrated `prob` and the threshold for one fold's rows (split train/val/test); returns rows and notes."""
    # `always` lets the held-out rows' estimate reach the threshold, so only together with label_shift_apply
    may_apply = bool(cfg.get("label_shift_apply", False))
    always = cfg.get("threshold_reweight", "as_heldout") == "always"
    if always and not may_apply:
        raise ValueError(
            "calibration.threshold_reweight: always re-weights the threshold's rows to the held-out rows' estimate; "
            "it needs calibration.label_shift_apply: true (expected as_heldout otherwise)"
        )
    val = fold[fold.split == "val"]
    assert_no_leakage(val, heldout, test_chroms, "calibration rows")
    balance = cfg.get("fit_balance", "lines")
    method, val_losses, fits = select_method(val, list(cfg["methods"]), heldout, test_chroms, balance)
    cal = fit_on_validation(val, method, heldout, test_chroms, balance)
    out = fold.copy()
    out["prob_calibrated"] = cal.transform(out.score.to_numpy())
    out["prob"] = out.prob_calibrated
    val_y, val_w = val.label.to_numpy(), fit_weights(val.cell_line, balance)
    val_probs = cal.transform(val.score.to_numpy())
    val_prior = calibrated_rate(val_y, val.cell_line, balance)
    is_test = (out.split == "test").to_numpy()
    has_test = bool(is_test.any())
    reject = bool(cfg.get("reject_boundary", True))
    errors = prior_errors(val, method, heldout, test_chroms, fits, reject, balance)
    ranking = rank_estimators(cfg["label_shift"], errors)
    estimator, estimates, test_prior = ranking[0], {name: float("nan") for name in ESTIMATORS}, val_prior
    if has_test:
        test_probs = out.loc[is_test, "prob_calibrated"].to_numpy()
        estimator, test_prior, estimates = heldout_prior(ranking, val_y, val_probs, test_probs, reject, val_w)
    # the held-out rows' own estimate re-weights them (and the threshold's rows) only where the config asks: the
    # predict path; in the evaluation the test line never enters its calibration or threshold (CONTRACT.md)
    apply = may_apply and REWEIGHTS[estimator] and has_test
    if apply:
        out.loc[is_test, "prob"] = adjust_to_prior(test_probs, val_prior, test_prior)
    # validation rows transformed as the held-out rows are (`always`: re-weighted whatever the estimator)
    reweighted = apply or (always and has_test)
    threshold = fold_threshold(val_y, val_probs, val.cell_line, test_prior, reweighted, cfg)
    out["threshold"] = threshold
    out["prior_estimate"] = np.where(is_test, test_prior, np.nan)  # the held-out rows' estimated positive rate
    notes = {
        "method": method,
        "params": cal.params,
        "fit_balance": balance,
        "val_prior": val_prior,
        "test_prior_estimate": float(test_prior),
        "threshold": float(threshold),
        "val_logloss": val_losses,
        "label_shift_estimator": estimator,
        "label_shift_ranking": ",".join(ranking),
        "label_shift_applied": apply,
    }
    notes |= {f"test_prior_{name}": estimates[name] for name in ESTIMATORS if name != "none"}
    notes |= {f"label_shift_val_{name}_error": errors[name] for name in ESTIMATORS}
    return out, notes


def compare_methods(fold: pd.DataFrame, heldout: str, test_chroms: list[str], cfg: dict, n_bins: int) -> pd.DataFrame:
    """Test metrics of every calibration method, as calibrated and re-weighted by each re-weighting estimator
    (reported only: the method and estimator used are chosen on validation data)."""
    val, test = fold[fold.split == "val"], fold[fold.split == "test"]
    if test.empty or test.label.nunique() < 2:
        return pd.DataFrame()
    y, rows = test.label.to_numpy(), []
    balance = cfg.get("fit_balance", "lines")
    val_y, val_w = val.label.to_numpy(), fit_weights(val.cell_line, balance)
    val_prior = calibrated_rate(val_y, val.cell_line, balance)
    for method in ["none", *[m for m in cfg["methods"] if m != "none"]]:
        cal = fit_on_validation(val, method, heldout, test_chroms, balance)
        probs, val_probs = cal.transform(test.score.to_numpy()), cal.transform(val.score.to_numpy())
        variants = {"calibrated": probs}  # = the pcc variant: its probabilities are not re-weighted
        for name in [e for e in ESTIMATORS if REWEIGHTS[e]] if cfg["label_shift"] != "none" else []:
            estimate = estimate_prior(name, val_y, val_probs, probs, val_weight=val_w)
            if np.isfinite(estimate):
                variants[f"calibrated+{name}"] = adjust_to_prior(probs, val_prior, estimate)
        for variant, p in variants.items():
            m = binary_metrics(y, p, 0.5, n_bins)
            rows.append({"method": method, "variant": variant} | {k: m[k] for k in ("ece", "brier", "logloss", "aupr")})
    return pd.DataFrame(rows)


def reliability_table(pred: pd.DataFrame, n_bins: int) -> pd.DataFrame:
    """Reliability curve data of the test rows: raw score, calibrated, final `prob` (= calibrated unless
    `label_shift_apply` re-weighted it)."""
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
        # label-free estimate of pos_rate (test rows: each fold's estimate, weighted by its rows)
        m["pos_rate_estimate"] = float(np.mean(part.prior_estimate)) if "prior_estimate" in part else float("nan")
        oracle = choose_threshold(y, p) if y.sum() else float("nan")
        m["oracle_threshold"] = oracle
        m["oracle_f1"] = binary_metrics(y, p, oracle, n_bins)["f1"] if y.sum() else float("nan")
        rows.append({"split": split, **m})
    return pd.DataFrame(rows)
