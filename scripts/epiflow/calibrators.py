"""The calibrators (epiflow.calibrate runs the stage): turn raw model scores into probabilities that mean something on
an unseen cell line.

Two steps, both fitted without the held-out cell line's labels:
1. a calibrator (temperature, Platt, isotonic or beta) fitted on validation rows of the training
   cell lines only (``fit_on_validation`` refuses anything else);
2. a label-shift estimate: positive rates differ between cell lines (3.6 % K562 ... 10 % IMR90),
   so the held-out line's prior is estimated from its unlabeled scores (EM or BBSE); on the predict
   path (``label_shift_apply``) the posteriors are then re-weighted by Bayes' rule
   (``adjust_to_prior``), in the evaluation the estimate is only reported (epiflow.calibrate).
A ``Calibrator`` is rebuilt from its JSON-able ``params`` alone, so a rule can write it and a later
rule apply it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.special import expit, logit
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from epiflow import metrics
from epiflow.errors import InputError
from epiflow.leakage import assert_no_leakage

log = logging.getLogger(__name__)

METHODS = ("none", "temperature", "platt", "isotonic", "beta")
# Scores of exactly 0 or 1 (tree ensembles) would give infinite logits.
SCORE_EPS = 1e-6
CALIBRATION_COLUMNS = ("pair_id", "cell_line", "chrom", "label", "score")


def _clip(scores) -> np.ndarray:
    return np.clip(np.asarray(scores, dtype=np.float64), SCORE_EPS, 1.0 - SCORE_EPS)


def _beta_features(scores) -> np.ndarray:
    """Kull et al. (2017) beta-calibration features [ln s, -ln(1 - s)]."""
    s = _clip(scores)
    return np.column_stack([np.log(s), -np.log1p(-s)])


@dataclass(frozen=True)
class Calibrator:
    """A fitted score -> probability map, fully described by ``method`` and ``params``.

    ``transform(scores)`` takes scores in [0, 1] and returns calibrated probabilities in [0, 1].
    ``params`` is JSON-able; ``Calibrator(method, params)`` rebuilds the same map from it.
    """

    method: str
    params: dict = field(default_factory=dict)

    def transform(self, scores) -> np.ndarray:
        """Calibrated probabilities for ``scores`` (array-like in [0, 1])."""
        s = np.asarray(scores, dtype=np.float64)
        if self.method == "none":
            return s.copy()
        if self.method == "temperature":
            return expit(logit(_clip(s)) / self.params["temperature"])
        if self.method == "platt":
            return expit(self.params["a"] * logit(_clip(s)) + self.params["b"])
        if self.method == "isotonic":
            # Same map as IsotonicRegression.predict with out_of_bounds="clip".
            return np.interp(s, self.params["x"], self.params["y"])
        if self.method == "beta":
            z = _beta_features(s) @ np.array([self.params["a"], self.params["b"]])
            return expit(z + self.params["c"])
        raise InputError(f"calibration method {self.method!r} (expected one of {', '.join(METHODS)})")


def _logistic_fit(features: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Unregularized-in-practice logistic regression (rows weighted by w); returns (coefficients, intercept).

    A very weak L2 penalty (C=1e6) keeps the fit finite when the classes separate perfectly.
    """
    model = LogisticRegression(C=1e6, solver="lbfgs", max_iter=1000)
    model.fit(features, y, sample_weight=w)
    return model.coef_[0].astype(float), float(model.intercept_[0])


def _fit_temperature(scores: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> dict:
    z = logit(_clip(scores))

    def loss(log_t: float) -> float:
        return metrics.log_loss(y, expit(z / np.exp(log_t)), sample_weight=w)

    # T in [e^-5, e^5] spans far more than any sane miscalibration; bounded search is deterministic.
    result = minimize_scalar(loss, bounds=(-5.0, 5.0), method="bounded", options={"xatol": 1e-8})
    return {"temperature": float(np.exp(result.x))}


def _fit_platt(scores: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> dict:
    coef, intercept = _logistic_fit(logit(_clip(scores))[:, None], y, w)
    return {"a": float(coef[0]), "b": intercept}


def _fit_isotonic(scores: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> dict:
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, y, sample_weight=w)
    return {"x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()}


def _fit_beta(scores: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> dict:
    """Beta calibration; a negative a or b would make the map non-monotonic, so that feature is
    dropped and the fit redone (Kull et al. 2017, section 3.3)."""
    features = _beta_features(scores)
    coef, intercept = _logistic_fit(features, y, w)
    if np.any(coef < 0):
        keep = int(np.argmax(coef))
        sub_coef, intercept = _logistic_fit(features[:, [keep]], y, w)
        coef = np.zeros(2)
        coef[keep] = max(sub_coef[0], 0.0)
    return {"a": float(coef[0]), "b": float(coef[1]), "c": intercept}


_FITTERS = {
    "none": lambda scores, y, w: {},
    "temperature": _fit_temperature,
    "platt": _fit_platt,
    "isotonic": _fit_isotonic,
    "beta": _fit_beta,
}


def fit_calibrator(method: str, scores, y, sample_weight=None) -> Calibrator:
    """Fit a calibrator of ``method`` (one of METHODS) on scores in [0, 1] and 0/1 labels, rows weighted by
    ``sample_weight`` when given (e.g. epiflow.metrics.line_weights: every cell line the same total weight)."""
    if method not in _FITTERS:
        raise InputError(f"calibration method {method!r} (expected one of {', '.join(METHODS)})")
    y_arr, s = metrics.check_labels_scores(y, scores)
    if method != "none" and y_arr.min() == y_arr.max():
        raise InputError(f"calibration method {method!r}: labels have one class (expected both 0 and 1)")
    w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if w is not None and (w.shape != s.shape or not np.all(np.isfinite(w)) or w.min() < 0):
        raise InputError(f"calibration weights: {w.size} values for {s.size} rows (expected one finite >= 0 per row)")
    params = _FITTERS[method](s, y_arr, w)
    log.info(
        "fitted %s calibrator on %d rows (%d positive): %s",
        method,
        s.size,
        y_arr.sum(),
        {k: v for k, v in params.items() if not isinstance(v, list)},
    )
    return Calibrator(method, params)


FIT_BALANCE = ("pairs", "lines")


def fit_weights(cell_lines: pd.Series, balance: str) -> np.ndarray | None:
    """Row weights of a calibrator fit: None with `pairs` (each row 1), every cell line the same total weight with
    `lines` (`calibration.fit_balance`)."""
    if balance not in FIT_BALANCE:
        raise ValueError(f"calibration.fit_balance {balance!r} is unknown (expected lines or pairs)")
    return metrics.line_weights(cell_lines) if balance == "lines" else None


def calibrated_rate(labels, cell_lines: pd.Series, balance: str) -> float:
    """The positive rate that probabilities of a calibrator fitted with `balance` mean: the validation rows' rate,
    every cell line weighing the same with `lines`."""
    return float(np.average(labels, weights=fit_weights(cell_lines, balance)))


def fit_on_validation(
    frame: pd.DataFrame, method: str, heldout: str, test_chroms, balance: str = "lines"
) -> Calibrator:
    """Fit a calibrator on validation rows (columns pair_id, cell_line, chrom, label, score), each row weighing 1
    (`balance` pairs) or every cell line the same in total (lines).

    Raises LeakageError if any row belongs to ``heldout`` or to ``test_chroms``.
    """
    missing = [c for c in CALIBRATION_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"calibration rows: missing columns {missing} (expected {', '.join(CALIBRATION_COLUMNS)})")
    assert_no_leakage(frame, heldout, test_chroms, "calibration rows")
    weight = fit_weights(frame["cell_line"], balance)
    return fit_calibrator(method, frame["score"].to_numpy(), frame["label"].to_numpy(), weight)


def _check_prior(name: str, prior: float) -> float:
    if not 0.0 < prior < 1.0:
        raise InputError(f"{name} {prior!r} (expected a number strictly between 0 and 1)")
    return float(prior)


def adjust_to_prior(probs, train_prior: float, new_prior: float) -> np.ndarray:
    """Re-weight posteriors calibrated under ``train_prior`` to a population with ``new_prior``.

    Bayes' rule on the odds: odds_new = odds * [new/(1-new)] / [train/(1-train)]. Identity when the
    priors are equal; probabilities of exactly 0 or 1 stay there.
    """
    p = np.asarray(probs, dtype=np.float64)
    train_prior = _check_prior("train_prior", train_prior)
    new_prior = _check_prior("new_prior", new_prior)
    pos = p * (new_prior / train_prior)
    neg = (1.0 - p) * ((1.0 - new_prior) / (1.0 - train_prior))
    return pos / (pos + neg)


def em_prior_shift(probs, train_prior: float, max_iter: int = 100, tol: float = 1e-6) -> tuple[float, np.ndarray]:
    """Estimate a new population's positive rate from its unlabeled calibrated posteriors.

    EM of Saerens, Latinne & Decaestecker (2002): alternate re-weighting the posteriors to the
    current prior and setting the prior to their mean. ``probs`` must be calibrated for
    ``train_prior``. Returns (estimated prior, posteriors adjusted to it).
    """
    p = np.asarray(probs, dtype=np.float64)
    _check_prior("train_prior", train_prior)
    prior = float(train_prior)
    adjusted = p
    for iteration in range(1, max_iter + 1):  # noqa: B007 - reported after the loop
        adjusted = adjust_to_prior(p, train_prior, prior)
        # Keep the prior inside (0, 1) so the odds correction stays defined.
        new_prior = float(np.clip(adjusted.mean(), 1e-6, 1.0 - 1e-6))
        if abs(new_prior - prior) < tol:
            prior = new_prior
            break
        prior = new_prior
    else:
        log.warning(
            "EM prior shift did not converge in %d iterations (prior %.4f)",
            max_iter,
            prior,
        )
    log.info(
        "EM prior shift: train prior %.4f -> %.4f after %d iterations",
        train_prior,
        prior,
        iteration,
    )
    return prior, adjust_to_prior(p, train_prior, prior)


def prior_mle_on_boundary(probs, train_prior: float) -> bool:
    """True when the label-shift likelihood of unlabelled rows is largest at a positive rate of 0 or 1.

    ``probs`` are posteriors calibrated at ``train_prior``; r = p/(1-p) * (1-train_prior)/train_prior is each row's
    likelihood ratio p(x|1)/p(x|0). The log likelihood sum(log(rate * r + 1 - rate)) is concave in the rate, with
    slope sum(r - 1) at 0 and sum(1 - 1/r) at 1, so its maximum (EM's fixed point) is at 0 when mean(r) <= 1 and at
    1 when mean(1/r) <= 1: the label-shift model then has no interior solution for these rows.
    """
    p = np.clip(np.asarray(probs, dtype=np.float64), SCORE_EPS, 1.0 - SCORE_EPS)
    ratio = p / (1.0 - p) * ((1.0 - _check_prior("train_prior", train_prior)) / train_prior)
    return bool(ratio.mean() <= 1.0 or (1.0 / ratio).mean() <= 1.0)


def bbse_prior(val_y, val_pred, test_pred) -> float:
    """Black-box shift estimate (Lipton et al. 2018) of the test positive rate.

    ``val_y`` are validation labels, ``val_pred`` and ``test_pred`` hard 0/1 predictions of one fixed
    classifier (e.g. prob >= threshold). Solves C w = q, with C[i, j] = P(pred=i, y=j) on validation
    and q[i] = P(pred=i) on test, for the class weights w; returns w[1] * P(y=1), clipped to [0, 1].
    """
    y, _ = metrics.check_labels_scores(val_y, np.zeros(len(val_y)))
    pred = np.asarray(val_pred).astype(np.int64).ravel()
    test = np.asarray(test_pred).astype(np.int64).ravel()
    if pred.shape != y.shape:
        raise InputError(f"val_pred has {pred.size} rows, val_y {y.size} (expected equal length)")
    joint = np.array([[np.mean((pred == i) & (y == j)) for j in (0, 1)] for i in (0, 1)])
    q = np.array([np.mean(test == 0), np.mean(test == 1)])
    if abs(np.linalg.det(joint)) < 1e-12:
        raise InputError("bbse_prior: validation confusion matrix is singular (expected an informative classifier)")
    weights = np.linalg.solve(joint, q)
    return float(np.clip(weights[1] * y.mean(), 0.0, 1.0))


def calibration_table(y, raw, calibrated_by_method: dict, n_bins: int = 15, threshold: float = 0.5) -> pd.DataFrame:
    """Metrics of the raw scores and of each calibrated version, one row per method.

    ``raw`` and each value of ``calibrated_by_method`` are probability vectors aligned with ``y``.
    Returns a DataFrame with column ``method`` ("raw" first) plus metrics.METRIC_KEYS, computed by
    metrics.binary_metrics at ``threshold``.
    """
    by_method = {
        "raw": raw,
        **{k: v for k, v in calibrated_by_method.items() if k != "raw"},
    }
    rows = [
        {"method": name, **metrics.binary_metrics(y, probs, threshold, n_bins)} for name, probs in by_method.items()
    ]
    return pd.DataFrame(rows, columns=["method", *metrics.METRIC_KEYS])
