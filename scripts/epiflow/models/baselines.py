"""Baselines: distance alone, and TargetFinder's gradient boosting on E/P/W (+ topology) features."""

from __future__ import annotations

import numpy as np

from epiflow.metrics import line_weights
from epiflow.models.base import PROTOCOL_PARAMS, Model, PairData


def log_distance(data: PairData) -> np.ndarray:
    """(n, 1) log10(distance + 1)."""
    return np.log10(data.frame["distance"].to_numpy(dtype=np.float64) + 1)[:, None]


class DistanceModel(Model):
    """Logistic regression on log distance: the floor any EPI model must clear."""

    family = "logistic regression on log distance (baseline)"
    needs = ("distance",)

    def fit(self, train: PairData, val: PairData) -> Model:
        from sklearn.linear_model import LogisticRegression

        self.clf = LogisticRegression().fit(log_distance(train), train.y)
        return self

    def predict(self, data: PairData) -> np.ndarray:
        return self.clf.predict_proba(log_distance(data))[:, 1]


class GBMModel(Model):
    """HistGradientBoosting on the tabular features (TargetFinder's method); rounds chosen on validation rows.

    params: sklearn's max_iter, learning_rate, max_leaf_nodes, ...; `line_balance` (every training cell line the
    same total weight, whatever its number of pairs; rounds then chosen on the validation rows weighted alike); and the
    PROTOCOL_PARAMS (exclude_columns, ...).
    """

    family = "gradient boosting, sklearn HistGradientBoosting (TargetFinder)"
    needs = ("distance", "tracks", "tads")
    defaults = {"max_iter": 200, "learning_rate": 0.05, "max_leaf_nodes": 15}
    # further HistGradientBoostingClassifier params, at sklearn's defaults (random_state and early_stopping are set
    # by fit; min_samples_leaf is capped at 5 % of the training rows). Written out rather than read from sklearn, so
    # that the Snakefile's model checks do not import it; tests/test_models.py compares them with sklearn's.
    optional = {
        "class_weight": None, "l2_regularization": 0.0, "max_bins": 255, "max_depth": None, "max_features": 1.0,
        "min_samples_leaf": 20, "line_balance": False,
    }  # fmt: skip

    def fit(self, train: PairData, val: PairData) -> Model:
        from sklearn.ensemble import HistGradientBoostingClassifier

        train, val = self.inputs(train), self.inputs(val)
        params = {k: v for k, v in self.params.items() if k not in (*PROTOCOL_PARAMS, "line_balance")}
        balance = bool(self.params.get("line_balance", False))
        weight = line_weights(train.frame["cell_line"]) if balance else None
        val_weight = line_weights(val.frame["cell_line"]) if balance else None
        if "min_samples_leaf" in params:  # a leaf never needs more than 5 % of the rows (small data still splits)
            params["min_samples_leaf"] = int(min(params["min_samples_leaf"], max(20, len(train) // 20)))
        # choose the number of boosting rounds on the validation cell line, then keep that model
        clf = HistGradientBoostingClassifier(random_state=self.seed, early_stopping=False, **params)
        clf.fit(train.table, train.y, sample_weight=weight)
        losses = [
            -np.average(val.y * np.log(p[:, 1] + 1e-9) + (1 - val.y) * np.log(p[:, 0] + 1e-9), weights=val_weight)
            for p in clf.staged_predict_proba(val.table)
        ]
        best = int(np.argmin(losses)) + 1
        self.clf = HistGradientBoostingClassifier(
            random_state=self.seed, early_stopping=False, **(params | {"max_iter": best})
        )
        self.clf.fit(train.table, train.y, sample_weight=weight)
        self.rounds = best
        return self

    def predict(self, data: PairData) -> np.ndarray:
        return self.clf.predict_proba(self.inputs(data).table)[:, 1]
