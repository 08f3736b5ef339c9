"""Tests of epiflow.calibrators: recovery of planted miscalibration and prior shift, leakage guard."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from epiflow import calibrators, metrics
from epiflow.errors import InputError, LeakageError
from epiflow.leakage import assert_no_leakage


def miscalibrated_sample(seed, n, scale=3.0, shift=1.0):
    """Labels drawn with true p = sigmoid(z); scores = sigmoid(scale * z + shift)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.5, size=n)
    y = rng.binomial(1, expit(z))
    return expit(scale * z + shift), y


@pytest.mark.parametrize(
    ("method", "shift"),
    [("temperature", 0.0), ("platt", 1.0), ("isotonic", 1.0), ("beta", 1.0)],
)
def test_method_recovers_planted_miscalibration(method, shift):
    # temperature has no offset term, so it gets a pure over-confidence miscalibration
    fit_scores, fit_y = miscalibrated_sample(1, 20000, shift=shift)
    test_scores, test_y = miscalibrated_sample(2, 50000, shift=shift)
    calibrator = calibrators.fit_calibrator(method, fit_scores, fit_y)
    probs = calibrator.transform(test_scores)
    raw_ece = metrics.ece(test_y, test_scores)
    calibrated_ece = metrics.ece(test_y, probs)
    assert raw_ece > 0.08
    assert calibrated_ece < 0.02
    assert calibrated_ece < raw_ece / 4
    assert np.all((probs >= 0) & (probs <= 1))


def test_parametric_methods_find_the_planted_parameters():
    scores, y = miscalibrated_sample(3, 40000, scale=3.0, shift=1.0)
    platt = calibrators.fit_calibrator("platt", scores, y).params
    # logit(score) = 3z + 1, so the true map is a = 1/3, b = -1/3
    assert platt["a"] == pytest.approx(1 / 3, abs=0.03)
    assert platt["b"] == pytest.approx(-1 / 3, abs=0.05)
    pure, y_pure = miscalibrated_sample(4, 40000, scale=3.0, shift=0.0)
    temperature = calibrators.fit_calibrator("temperature", pure, y_pure).params["temperature"]
    assert temperature == pytest.approx(3.0, rel=0.1)
    beta = calibrators.fit_calibrator("beta", scores, y).params
    # a logistic map is the beta map with a = b
    assert beta["a"] == pytest.approx(beta["b"], abs=0.05)


@pytest.mark.parametrize("method", calibrators.METHODS)
def test_params_are_json_and_rebuild_the_same_map(method):
    scores, y = miscalibrated_sample(5, 3000)
    calibrator = calibrators.fit_calibrator(method, scores, y)
    params = json.loads(json.dumps(calibrator.params))
    rebuilt = calibrators.Calibrator(method, params)
    grid = np.linspace(0, 1, 101)
    np.testing.assert_allclose(rebuilt.transform(grid), calibrator.transform(grid))
    # fitting twice gives the same map
    again = calibrators.fit_calibrator(method, scores, y)
    np.testing.assert_allclose(again.transform(grid), calibrator.transform(grid))


def test_calibrated_maps_are_monotonic_and_handle_hard_scores():
    scores, y = miscalibrated_sample(6, 5000)
    grid = np.linspace(0, 1, 201)
    for method in calibrators.METHODS:
        out = calibrators.fit_calibrator(method, scores, y).transform(grid)
        assert np.all(np.isfinite(out)), method
        assert np.all(np.diff(out) >= -1e-12), method


def test_none_is_identity_and_bad_method_or_one_class_raise():
    scores = np.array([0.0, 0.3, 1.0])
    identity = calibrators.fit_calibrator("none", scores, [0, 1, 1])
    np.testing.assert_array_equal(identity.transform(scores), scores)
    with pytest.raises(InputError, match="expected one of"):
        calibrators.fit_calibrator("histogram", scores, [0, 1, 1])
    with pytest.raises(InputError, match="one class"):
        calibrators.fit_calibrator("platt", scores, [1, 1, 1])


def prior_shift_sample(seed, n, prior, train_prior=0.05, separation=2.0):
    """Posteriors that are calibrated for ``train_prior`` on a population with ``prior`` positives."""
    rng = np.random.default_rng(seed)
    y = rng.binomial(1, prior, size=n)
    x = rng.normal(separation * y, 1.0)
    log_likelihood_ratio = separation * x - separation**2 / 2
    return expit(log_likelihood_ratio + np.log(train_prior / (1 - train_prior))), y


def test_em_recovers_planted_prior_shift():
    probs, y = prior_shift_sample(7, 20000, prior=0.15)
    prior, adjusted = calibrators.em_prior_shift(probs, train_prior=0.05)
    assert prior == pytest.approx(0.15, abs=0.02)
    assert abs(probs.mean() - y.mean()) > 0.03  # the unadjusted posteriors were biased
    assert adjusted.mean() == pytest.approx(prior, abs=1e-4)
    assert metrics.ece(y, adjusted) < metrics.ece(y, probs) / 2


def test_em_keeps_the_prior_when_there_is_no_shift():
    probs, _ = prior_shift_sample(8, 20000, prior=0.05)
    prior, _ = calibrators.em_prior_shift(probs, train_prior=0.05)
    assert prior == pytest.approx(0.05, abs=0.01)


def test_boundary_check_matches_where_em_goes():
    shifted, _ = prior_shift_sample(9, 20000, prior=0.15)
    assert not calibrators.prior_mle_on_boundary(shifted, train_prior=0.05)
    # under-confident rows, every posterior below the training rate (each row looks more negative than positive): the
    # label-shift likelihood is largest at a rate of 0, and EM drifts there; all far above it: largest at 1
    flat = np.random.default_rng(10).uniform(0.01, 0.045, 20000)
    assert calibrators.prior_mle_on_boundary(flat, train_prior=0.05)
    assert calibrators.em_prior_shift(flat, train_prior=0.05, max_iter=500)[0] < 1e-3
    assert calibrators.prior_mle_on_boundary(np.full(100, 0.99), train_prior=0.05)
    with pytest.raises(InputError, match="train_prior"):
        calibrators.prior_mle_on_boundary(flat, train_prior=0.0)


def test_adjust_to_prior_identity_and_direction():
    probs = np.array([0.0, 0.01, 0.2, 0.5, 0.9, 1.0])
    np.testing.assert_allclose(calibrators.adjust_to_prior(probs, 0.1, 0.1), probs)
    raised = calibrators.adjust_to_prior(probs, 0.05, 0.15)
    assert np.all(raised[1:-1] > probs[1:-1])
    assert raised[0] == 0.0 and raised[-1] == 1.0
    # odds of 0.5 become new_odds / train_odds = (0.15/0.85) / (0.05/0.95)
    odds = raised[3] / (1 - raised[3])
    assert odds == pytest.approx((0.15 / 0.85) / (0.05 / 0.95))
    # the correction inverts itself
    np.testing.assert_allclose(calibrators.adjust_to_prior(raised, 0.15, 0.05), probs, atol=1e-12)
    with pytest.raises(InputError, match="new_prior"):
        calibrators.adjust_to_prior(probs, 0.1, 1.0)


def test_bbse_recovers_planted_prior_shift():
    val_probs, val_y = prior_shift_sample(9, 20000, prior=0.05)
    test_probs, _ = prior_shift_sample(10, 20000, prior=0.15)
    threshold = 0.2
    estimate = calibrators.bbse_prior(val_y, val_probs >= threshold, test_probs >= threshold)
    assert estimate == pytest.approx(0.15, abs=0.02)


def calibration_frame():
    return pd.DataFrame(
        {
            "pair_id": ["a", "b", "c", "d"],
            "cell_line": ["GM12878", "HeLa", "GM12878", "HeLa"],
            "chrom": ["chr1", "chr2", "chr3", "chr4"],
            "label": [0, 1, 1, 0],
            "score": [0.1, 0.8, 0.6, 0.3],
        }
    )


def test_guard_passes_on_clean_rows_and_fits():
    frame = calibration_frame()
    assert_no_leakage(frame, "K562", ["chr5", "chr6"], "calibration rows")
    calibrator = calibrators.fit_on_validation(frame, "isotonic", "K562", ["chr5"])
    assert calibrator.method == "isotonic"


def test_guard_raises_on_heldout_row():
    frame = calibration_frame()
    frame.loc[2, "cell_line"] = "K562"
    with pytest.raises(LeakageError, match=r"calibration rows: 1 of 4 .* pair_id 'c'"):
        assert_no_leakage(frame, "K562", ["chr5"], "calibration rows")
    with pytest.raises(LeakageError):
        calibrators.fit_on_validation(frame, "platt", "K562", ["chr5"])


def test_guard_raises_on_test_fold_chromosome_row():
    frame = calibration_frame()
    with pytest.raises(LeakageError, match=r"2 of 4 .* pair_id 'b'"):
        assert_no_leakage(frame, "K562", ["chr2", "chr4"], "calibration rows")
    with pytest.raises(LeakageError):
        calibrators.fit_on_validation(frame, "beta", "K562", ["chr4"])


def test_fit_on_validation_requires_columns():
    with pytest.raises(InputError, match="missing columns"):
        calibrators.fit_on_validation(calibration_frame().drop(columns="score"), "platt", "K562", [])


@pytest.mark.parametrize("method", ["temperature", "platt", "isotonic", "beta"])
def test_integer_weights_fit_the_map_of_repeated_rows(method):
    # a weight of k is k copies of the row, for every method; equal weights change nothing
    scores, y = miscalibrated_sample(5, 1500, scale=2.0, shift=0.5)
    k = np.where(y == 1, 3, 1) * np.random.default_rng(6).integers(1, 3, scores.size)  # positives count more
    weighted = calibrators.fit_calibrator(method, scores, y, sample_weight=k)
    repeated = calibrators.fit_calibrator(method, np.repeat(scores, k), np.repeat(y, k))
    grid = np.linspace(0.01, 0.99, 50)
    np.testing.assert_allclose(weighted.transform(grid), repeated.transform(grid), atol=1e-5)
    unweighted = calibrators.fit_calibrator(method, scores, y)
    flat = calibrators.fit_calibrator(method, scores, y, sample_weight=np.full(scores.size, 2.0))
    np.testing.assert_allclose(flat.transform(grid), unweighted.transform(grid), atol=1e-5)
    assert np.abs(weighted.transform(grid) - unweighted.transform(grid)).max() > 0.03  # the weights did something
    with pytest.raises(InputError, match="weights"):
        calibrators.fit_calibrator(method, scores, y, sample_weight=k[:-1])


def test_line_balanced_fit_means_the_average_lines_rate():
    # a big low-rate line and a small high-rate one, the same score distribution: Platt's intercept makes the
    # weighted mean probability equal the weighted rate, the average line's rate with fit_balance lines and the
    # pooled rows' rate with pairs
    rng = np.random.default_rng(8)
    parts = []
    for line, rate, n in (("big", 0.03, 20000), ("small", 0.15, 2000)):
        y = rng.binomial(1, rate, n)
        parts.append(pd.DataFrame({"cell_line": line, "label": y, "score": expit(rng.normal(y - 2.0, 1.0))}))
    frame = pd.concat(parts, ignore_index=True)
    frame = frame.assign(pair_id=[f"p{i}" for i in range(len(frame))], chrom="chr2")
    rates = frame.groupby("cell_line").label.mean()
    for balance, expected in (("lines", rates.mean()), ("pairs", frame.label.mean())):
        probs = calibrators.fit_on_validation(frame, "platt", "K562", ["chr5"], balance).transform(frame.score)
        weights = calibrators.fit_weights(frame.cell_line, balance)
        assert np.average(probs, weights=weights) == pytest.approx(expected, abs=1e-3)
    assert rates.mean() > frame.label.mean() + 0.04
    with pytest.raises(ValueError, match="fit_balance"):
        calibrators.fit_weights(frame.cell_line, "rows")


def test_calibration_table_has_raw_first_and_metrics_per_method():
    scores, y = miscalibrated_sample(11, 5000)
    calibrated = {m: calibrators.fit_calibrator(m, scores, y).transform(scores) for m in ("platt", "isotonic")}
    table = calibrators.calibration_table(y, scores, calibrated, n_bins=10)
    assert table["method"].tolist() == ["raw", "platt", "isotonic"]
    assert list(table.columns) == ["method", *metrics.METRIC_KEYS]
    raw = table.set_index("method").loc["raw"]
    assert raw["ece"] == pytest.approx(metrics.ece(y, scores, n_bins=10))
    assert table.set_index("method").loc["platt", "ece"] < raw["ece"]
