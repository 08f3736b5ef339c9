"""Tests of epiflow.metrics against scikit-learn and hand-computed tiny cases."""

import math

import numpy as np
import pytest
import sklearn.metrics as skm

from epiflow import metrics
from epiflow.errors import InputError


@pytest.fixture
def random_data():
    rng = np.random.default_rng(0)
    y = rng.binomial(1, 0.2, size=2000)
    # Rounded so ties occur, as they do with tree-ensemble scores.
    p = np.clip(np.round(0.2 + 0.3 * y + rng.normal(0, 0.2, size=y.size), 2), 0, 1)
    return y, p


def test_aupr_auroc_brier_logloss_agree_with_sklearn(random_data):
    y, p = random_data
    assert metrics.aupr(y, p) == pytest.approx(skm.average_precision_score(y, p))
    assert metrics.auroc(y, p) == pytest.approx(skm.roc_auc_score(y, p))
    assert metrics.brier(y, p) == pytest.approx(skm.brier_score_loss(y, p))
    inner = np.clip(p, 0.01, 0.99)
    assert metrics.log_loss(y, inner) == pytest.approx(skm.log_loss(y, inner))


def test_log_loss_is_finite_on_hard_scores():
    assert math.isfinite(metrics.log_loss([1, 0], [0.0, 1.0]))
    assert metrics.log_loss([1, 0], [1.0, 0.0]) == pytest.approx(0.0, abs=1e-12)


def test_one_class_gives_nan_not_exception():
    y = np.zeros(5, dtype=int)
    p = np.linspace(0.1, 0.5, 5)
    assert math.isnan(metrics.auroc(y, p))
    assert math.isnan(metrics.aupr(y, p))
    assert math.isnan(metrics.auroc(np.ones(5, dtype=int), p))


def test_ece_equal_mass_hand_checked():
    # two bins {0.1, 0.2} and {0.3, 0.4}: 0.5 * |0.15 - 0| + 0.5 * |0.35 - 1| = 0.4
    assert metrics.ece([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4], n_bins=2) == pytest.approx(0.4)
    # tied scores stay together: bins {0.2, 0.2, 0.2} and {0.8}
    # 0.75 * |0.2 - 1/3| + 0.25 * |0.8 - 1| = 0.1 + 0.05
    assert metrics.ece([0, 1, 0, 1], [0.2, 0.2, 0.2, 0.8], n_bins=2) == pytest.approx(0.15)
    # unsorted input gives the same answer
    assert metrics.ece([1, 0, 1, 0], [0.8, 0.2, 0.2, 0.2], n_bins=2) == pytest.approx(0.15)
    # perfectly calibrated bins give zero
    assert metrics.ece([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5], n_bins=3) == pytest.approx(0.0)


def test_reliability_curve_bins_have_equal_mass():
    rng = np.random.default_rng(1)
    p = rng.uniform(size=1500)
    y = rng.binomial(1, p)
    curve = metrics.reliability_curve(y, p, n_bins=15)
    assert list(curve.columns) == ["bin", "p_mean", "y_mean", "n"]
    assert curve["n"].tolist() == [100] * 15
    assert curve["p_mean"].is_monotonic_increasing
    assert curve["y_mean"].to_numpy() @ curve["n"].to_numpy() == y.sum()


def test_reliability_curve_with_few_distinct_scores():
    p = np.repeat([0.1, 0.9], [90, 10])
    y = np.repeat([0, 1], [90, 10])
    curve = metrics.reliability_curve(y, p, n_bins=15)
    assert curve["n"].tolist() == [90, 10]
    assert curve["bin"].tolist() == [0, 1]


def test_precision_recall_f1_matches_sklearn(random_data):
    y, p = random_data
    for threshold in (0.0, 0.3, 0.45, 0.7, 1.0):
        pred = p >= threshold
        expected = (
            skm.precision_score(y, pred, zero_division=0),
            skm.recall_score(y, pred, zero_division=0),
            skm.f1_score(y, pred, zero_division=0),
        )
        assert metrics.precision_recall_f1(y, p, threshold) == pytest.approx(expected)


def test_choose_threshold_f1_is_the_brute_force_max(random_data):
    y, p = random_data
    threshold = metrics.choose_threshold(y, p, rule="f1")
    brute = max(skm.f1_score(y, p >= t) for t in np.unique(p))
    assert metrics.precision_recall_f1(y, p, threshold)[2] == pytest.approx(brute)
    assert threshold in set(p)


def test_choose_threshold_recall_and_precision_rules(random_data):
    y, p = random_data
    candidates = np.unique(p)
    recalls = np.array([skm.recall_score(y, p >= t) for t in candidates])
    precisions = np.array([skm.precision_score(y, p >= t, zero_division=0) for t in candidates])
    assert metrics.choose_threshold(y, p, "recall", 0.8) == candidates[recalls >= 0.8].max()
    assert metrics.choose_threshold(y, p, "precision", 0.7) == candidates[precisions >= 0.7].min()


def test_choose_threshold_unreachable_precision_falls_back_to_best():
    y = [0, 1, 0, 1]
    p = [0.9, 0.8, 0.7, 0.1]
    # precision by threshold: 0.9 -> 0, 0.8 -> 1/2, 0.7 -> 1/3, 0.1 -> 1/2; the lowest best wins
    assert metrics.choose_threshold(y, p, "precision", 0.9) == pytest.approx(0.1)


def test_choose_threshold_rejects_bad_rule_and_target():
    with pytest.raises(InputError, match="rule"):
        metrics.choose_threshold([0, 1], [0.2, 0.8], rule="youden")
    with pytest.raises(InputError, match="target"):
        metrics.choose_threshold([0, 1], [0.2, 0.8], rule="recall")
    with pytest.raises(InputError, match="no positive"):
        metrics.choose_threshold([0, 0], [0.2, 0.8])


def test_threshold_f1_curve_matches_pointwise(random_data):
    y, p = random_data
    curve = metrics.threshold_f1_curve(y, p, n_points=21)
    assert list(curve.columns) == ["threshold", "precision", "recall", "f1"]
    assert len(curve) == 21
    for row in curve.itertuples():
        expected = metrics.precision_recall_f1(y, p, row.threshold)
        assert (row.precision, row.recall, row.f1) == pytest.approx(expected)


def test_binary_metrics_keys_and_values(random_data):
    y, p = random_data
    result = metrics.binary_metrics(y, p, threshold=0.4)
    assert list(result) == [
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
    ]
    assert result["n"] == y.size and result["n_pos"] == y.sum()
    assert result["f1"] == pytest.approx(skm.f1_score(y, p >= 0.4))
    assert result["ece"] == pytest.approx(metrics.ece(y, p))
    assert all(isinstance(v, (int, float)) for v in result.values())


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [
        ([0, 1], [0.5], "expected equal length"),
        ([0, 2], [0.1, 0.5], "labels row 2"),
        ([0, 1], [0.1, float("nan")], "scores row 2"),
        ([0, 1], [-0.1, 0.5], "scores row 1"),
        ([], [], "empty"),
    ],
)
def test_bad_input_names_the_row(y, p, message):
    with pytest.raises(InputError, match=message):
        metrics.binary_metrics(y, p, threshold=0.5)


@pytest.mark.parametrize("target", [None, 0, 1.5, "0.7", True])
def test_threshold_rule_refuses_a_target_outside_0_1(target):
    with pytest.raises(InputError, match=r"expected a number in \(0, 1\]"):
        metrics.check_threshold_rule("precision", target)
    metrics.check_threshold_rule("f1", target)  # f1 takes no target
    metrics.check_threshold_rule("recall", np.float32(0.7))
