"""Shift diagnostics of the report stage: does the held-out line look different, and what did training's model
diagnostics find over the folds?

Data-side (no model): `link_heterogeneity` — whether a feature's link to the label differs between the training
lines (what invariance methods need to see before they can drop a cue; training lines' labels only). The per-feature
shift between the training lines and the held-out line is epiflow.shift.feature_shift, shared with the predict path.
`summarize_diagnostics` averages the per-fold dicts that epiflow.diagnostics.diagnose_model wrote during training.
Every function returns plain numbers; NaN where not measurable.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.special import expit
from scipy.stats import chi2

# ---- data-side: does a feature's link to the label differ between the training lines? -----------------------------
HETEROGENEITY_RIDGE = 1.0  # L2 penalty of the per-line logistic fits (standardized features; intercept free)


def ridge_logistic(x: np.ndarray, y: np.ndarray, ridge: float = HETEROGENEITY_RIDGE) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients and standard errors of a logistic regression of y on the columns of x with an intercept and an
    L2 penalty `ridge` on the slopes, by Newton's method (deterministic). The standard errors are the square roots of
    the inverse penalized Hessian's diagonal at the optimum (the intercept's are not returned)."""
    design = np.column_stack([np.ones(len(x)), np.asarray(x, np.float64)])
    y = np.asarray(y, np.float64)
    penalty = np.full(design.shape[1], float(ridge))
    penalty[0] = 0.0
    beta = np.zeros(design.shape[1])
    for _ in range(100):
        mu = expit(design @ beta)
        hessian = (design * (mu * (1 - mu))[:, None]).T @ design + np.diag(penalty)
        step = np.linalg.solve(hessian, design.T @ (y - mu) - penalty * beta)
        beta += step
        if np.max(np.abs(step)) < 1e-9:
            break
    mu = expit(design @ beta)
    hessian = (design * (mu * (1 - mu))[:, None]).T @ design + np.diag(penalty)
    return beta[1:], np.sqrt(np.diag(np.linalg.inv(hessian)))[1:]


def link_heterogeneity(train: dict[str, tuple[np.ndarray, np.ndarray]], columns: list[str]) -> pd.DataFrame:
    """Does each feature's link to the label differ between the training lines (line -> (values, labels))?

    Every line gets one multivariate logistic fit (`ridge_logistic`) on the features standardized with the pooled
    lines' mean and SD, so the lines' coefficients share one scale. Per feature, Cochran's Q tests that the
    coefficient is the same in every line: Q = sum_l (b_l - b)^2 / se_l^2 with b the inverse-variance weighted mean,
    chi-square with lines - 1 degrees of freedom under the null. A cue whose link is alike in every training line is
    invisible to any method that learns from them (invariance penalties, the environment screen); one whose link
    differs can be found. Lines with a single class are left out; constant features get NaN. Returns one row per
    feature: feature, lines, coefficients, se (per line, in `lines` order), mean, q, df, p, p_adjusted (Bonferroni
    over the features); empty with fewer than two usable lines.
    """
    usable = {line: (np.asarray(v, np.float64), np.asarray(y)) for line, (v, y) in train.items() if len(set(y)) > 1}
    if len(usable) < 2:
        return pd.DataFrame()
    lines = sorted(usable)
    pooled = np.vstack([usable[line][0] for line in lines])
    mean, sd = pooled.mean(axis=0), pooled.std(axis=0)
    varying = np.flatnonzero(sd > 0)
    coef = np.full((len(lines), len(columns)), np.nan)
    se = np.full((len(lines), len(columns)), np.nan)
    for i, line in enumerate(lines):
        values, labels = usable[line]
        coef[i, varying], se[i, varying] = ridge_logistic((values[:, varying] - mean[varying]) / sd[varying], labels)
    weights = 1 / se**2
    weighted = (weights * coef).sum(axis=0) / weights.sum(axis=0)
    q = (weights * (coef - weighted) ** 2).sum(axis=0)
    df = len(lines) - 1
    p = chi2.sf(q, df)
    rows = []
    for j, name in enumerate(columns):
        ok = sd[j] > 0
        rows.append(
            {
                "feature": name,
                "lines": lines,
                "coefficients": [float(c) for c in coef[:, j]],
                "se": [float(s) for s in se[:, j]],
                "mean": float(weighted[j]) if ok else math.nan,
                "q": float(q[j]) if ok else math.nan,
                "df": df,
                "p": float(p[j]) if ok else math.nan,
                "p_adjusted": float(min(1.0, p[j] * len(varying))) if ok else math.nan,
            }
        )
    return pd.DataFrame(rows)


# ---- model-side: training's per-fold diagnostics, summarized ---------------------------------------------------------
def _nanmean(values) -> float:
    """Mean of the finite values (None counts as missing); NaN when there is none."""
    arr = np.array([math.nan if v is None else v for v in values], dtype=np.float64)
    return float(arr[np.isfinite(arr)].mean()) if np.isfinite(arr).any() else math.nan


def summarize_diagnostics(per_fold: list[dict]) -> dict:
    """Mean of each numeric diagnostic over folds (NaN-aware); attribution averaged per column; the marks the
    environment screen dropped in any fold (`screened_out`, only for models that screen) and the model that decided
    them (`screened_with`: the model itself or its `screen_with` proxy; None in files written before it was kept)."""
    if not per_fold:
        return {}
    keys = [k for k, v in per_fold[0].items() if isinstance(v, int | float) and not isinstance(v, bool)]
    out = {key: _nanmean([d.get(key) for d in per_fold]) for key in keys}
    columns = sorted({c for d in per_fold for c in d.get("attribution", {})})
    out["attribution"] = {c: _nanmean([d.get("attribution", {}).get(c) for d in per_fold]) for c in columns}
    out["spurious_columns"] = per_fold[0].get("spurious_columns", [])
    out["spurious_groups"] = per_fold[0].get("spurious_groups", [])
    if any("screened_out" in d for d in per_fold):  # the environment screen ran (epiflow.selection.screen_marks)
        out["screened_out"] = sorted({m for d in per_fold for m in d.get("screened_out", [])})
        out["screened_with"] = per_fold[0].get("screened_with")  # the model whose validation fits decided it
    return out
