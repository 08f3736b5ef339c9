"""Baselines: distance alone, and TargetFinder's gradient boosting on E/P/W features."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from epiflow.models.base import Model, PairData


def log_distance(data: PairData) -> np.ndarray:
    return np.log10(data.frame["distance"].to_numpy(dtype=np.float64) + 1)[:, None]


class DistanceModel(Model):
    """Logistic regression on log distance: the floor any EPI model must clear."""

    def fit(self, train: PairData, val: PairData) -> Model:
        self.clf = LogisticRegression().fit(log_distance(train), train.y)
        return self

    def predict(self, data: PairData) -> np.ndarray:
        return self.clf.predict_proba(log_distance(data))[:, 1]


class GBMModel(Model):
    """HistGradientBoosting on the tabular features (TargetFinder's method); early stopping on validation rows."""

    def fit(self, train: PairData, val: PairData) -> Model:
        params = {"max_iter": 200, "learning_rate": 0.05, "max_leaf_nodes": 15} | self.params
        best = None
        # choose the number of boosting rounds on the validation cell line, then keep that model
        clf = HistGradientBoostingClassifier(random_state=self.seed, early_stopping=False, **params)
        clf.fit(train.table, train.y)
        losses = [
            -np.mean(val.y * np.log(p[:, 1] + 1e-9) + (1 - val.y) * np.log(p[:, 0] + 1e-9))
            for p in clf.staged_predict_proba(val.table)
        ]
        best = int(np.argmin(losses)) + 1
        self.clf = HistGradientBoostingClassifier(
            random_state=self.seed, early_stopping=False, **(params | {"max_iter": best})
        )
        self.clf.fit(train.table, train.y)
        self.rounds = best
        return self

    def predict(self, data: PairData) -> np.ndarray:
        return self.clf.predict_proba(data.table)[:, 1]
