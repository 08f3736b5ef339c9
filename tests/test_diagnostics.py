"""Shift and invariance diagnostics (epiflow.diagnostics of training, epiflow.report_diagnostics of the report) on
tiny constructed data, with a real epinet_small and non-torch models."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from epiflow.diagnostics import (
    diagnose_model,
    domain_probe,
    feature_groups,
    separation_ratio,
    sharpness,
    spurious_share,
)
from epiflow.models import PairData, make_model
from epiflow.report_diagnostics import link_heterogeneity, ridge_logistic, summarize_diagnostics
from epiflow.shift import feature_shift

COLUMNS = ["H3K27ac_enhancer", "H3K27ac_promoter", "H3K27ac_window", "H2AZ_enhancer", "H2AZ_promoter", "H2AZ_window"]
COLUMNS += ["log_distance"]


def cell_line(name: str, n: int, cue: float, scale: float, seed: int) -> PairData:
    """Pairs of one line: H3K27ac carries a weak invariant signal; H2AZ_enhancer tracks the label with `cue`."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.25).astype(int)
    table = rng.normal(size=(n, len(COLUMNS))).astype(np.float32)
    table[:, 0] += 0.6 * y
    table[:, 3] += cue * 3.0 * y
    table[:, :6] = np.abs(table[:, :6]) * scale
    frame = pd.DataFrame(
        {
            "pair_id": [f"{name}:{i}" for i in range(n)],
            "cell_line": name,
            "chrom": np.where(np.arange(n) % 2, "chr1", "chr2"),
            "label": y,
            "distance": rng.integers(5_000, 500_000, n),
            "fold": 0,
        }
    )
    profile = rng.random((n, 2, 4)).astype(np.float32)  # two marks' channels, in the order of *_enhancer columns
    return PairData(frame, table, list(COLUMNS), profile, None)


def stack(parts: list[PairData]) -> PairData:
    return PairData(
        pd.concat([p.frame for p in parts], ignore_index=True),
        np.concatenate([p.table for p in parts]),
        list(COLUMNS),
        np.concatenate([p.profile for p in parts]),
        None,
    )


@pytest.fixture(scope="module")
def lines():
    train = stack([cell_line("lineA", 300, 1.0, 1.0, 1), cell_line("lineB", 300, 0.8, 1.0, 2)])
    val = cell_line("lineC", 200, 0.6, 1.0, 3)
    test = cell_line("lineD", 300, 0.0, 3.0, 4)
    return train, val, test


@pytest.fixture(scope="module")
def epinet(lines):
    train, val, _ = lines
    params = {"epochs": 6, "patience": 6, "batch_size": 64, "hidden": 16}
    return make_model("epinet_small", params, seed=0).fit(train, val)


def test_diagnose_epinet_small_measures_everything(lines, epinet):
    train, _, test = lines
    out = diagnose_model(epinet, train, test, spurious_columns=[c for c in COLUMNS if c.startswith("H2AZ")], seed=0)
    json.dumps(out)  # JSON-able
    assert out["n_train"] == 600 and out["n_test"] == 300
    assert out["domain_probe_chance"] == pytest.approx(1 / 3)
    assert 0.0 <= out["domain_probe_accuracy"] <= 1.0
    # lineD is scaled x3: its inputs, and so its embedding, are easy to tell apart from lineA/B
    assert out["domain_probe_input_accuracy"] > 0.5
    assert out["separation_train"] > 0 and np.isfinite(out["separation_test"])
    assert np.isfinite(out["sharpness"]) and out["loss"] > 0
    assert set(out["attribution"]) >= {"H3K27ac", "H2AZ", "log_distance"}
    assert out["spurious_groups"] == ["H2AZ"]
    # the label is carried mostly by the planted H2AZ cue in the training lines
    assert out["spurious_share"] > 0.5


def test_diagnose_restores_weights(lines, epinet):
    train, _, test = lines
    before = epinet.predict(test)
    sharpness(epinet, train.subset(np.arange(200)), rho=0.5, draws=2)
    assert np.array_equal(before, epinet.predict(test))


def test_diagnose_non_torch_models(lines):
    train, val, test = lines
    distance = make_model("distance", {}, seed=0).fit(train, val)
    out = diagnose_model(distance, train, test, spurious_columns=["H2AZ_enhancer"])
    assert math.isnan(out["domain_probe_accuracy"]) and math.isnan(out["separation_train"])  # embed() is None
    assert math.isnan(out["sharpness"])  # no torch .net
    assert math.isnan(out["spurious_share"])  # shuffling table columns cannot change a distance-only model
    assert np.isfinite(out["domain_probe_input_accuracy"])
    gbm = make_model("gbm", {"max_iter": 30}, seed=0).fit(train, val)
    out = diagnose_model(gbm, train, test, spurious_columns=["H2AZ_enhancer"])
    assert math.isnan(out["sharpness"])
    assert out["spurious_share"] > 0.5


def test_feature_groups_bundle_mark_columns_and_profile(lines):
    train, _, _ = lines
    groups = feature_groups(train)
    assert groups["H2AZ"]["columns"] == ["H2AZ_enhancer", "H2AZ_promoter", "H2AZ_window"]
    assert groups["H2AZ"]["channel"] == 1 and groups["H3K27ac"]["channel"] == 0
    assert groups["log_distance"]["columns"] == ["log_distance"]


def test_domain_probe_chance_and_separation():
    rng = np.random.default_rng(0)
    same = rng.normal(size=(400, 3))
    lines = np.repeat(["a", "b"], 200)
    assert domain_probe(same, lines)["accuracy"] < 0.65  # no line signal: near chance 0.5
    apart = same + (lines == "b")[:, None] * 5.0
    assert domain_probe(apart, lines)["accuracy"] > 0.95
    y = np.repeat([0, 1], 200)
    assert separation_ratio(apart, y) > 3 * separation_ratio(same, y)
    assert math.isnan(separation_ratio(same, np.zeros(400)))


def test_feature_shift_separates_scale_from_shape():
    rng = np.random.default_rng(0)
    train = {"a": rng.gamma(2.0, size=(2000, 2)), "b": rng.gamma(2.0, size=(2000, 2))}
    test = rng.gamma(2.0, size=(2000, 2))
    test[:, 0] *= 3.0  # a lab's scale: large raw, ~0 after per-line normalization
    test[:, 1] = rng.normal(size=2000) ** 3  # a change of shape: survives normalization
    shift = feature_shift(train, test, ["scaled", "reshaped"]).set_index("feature")
    assert shift.loc["scaled", "w1_raw"] > 1.0 and shift.loc["scaled", "w1_normalized"] < 0.1
    assert shift.loc["reshaped", "w1_normalized"] > 0.2


def test_spurious_share_and_summary():
    assert spurious_share({"a": 0.3, "b": 0.1, "c": -0.2}, ["a"]) == pytest.approx(0.75)
    assert math.isnan(spurious_share({"a": 0.0}, ["a"]))
    folds = [{"x": 1.0, "y": math.nan, "attribution": {"a": 0.2}}, {"x": 3.0, "y": math.nan, "attribution": {"a": 0.4}}]
    summary = summarize_diagnostics(folds)
    assert summary["x"] == 2.0 and math.isnan(summary["y"]) and summary["attribution"]["a"] == pytest.approx(0.3)


def lines_with_links(coefs: dict[str, list[float]], n: int, seed: int) -> dict:
    """line -> (values, labels) from a logistic model with the given per-line coefficients on N(0, 1) features."""
    rng = np.random.default_rng(seed)
    out = {}
    for line, beta in coefs.items():
        x = rng.normal(size=(n, len(beta)))
        y = (rng.random(n) < 1 / (1 + np.exp(-(x @ np.array(beta) - 1.5)))).astype(int)
        out[line] = (x, y)
    return out


def test_ridge_logistic_matches_sklearn():
    from sklearn.linear_model import LogisticRegression

    x, y = lines_with_links({"a": [1.0, -0.5, 0.0]}, 800, 3)["a"]
    coef, se = ridge_logistic(x, y, ridge=1.0)
    # sklearn minimizes ||w||^2 / 2 + C * sum(log-loss): C = 1 / ridge
    reference = LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(x, y).coef_[0]
    np.testing.assert_allclose(coef, reference, atol=1e-4)
    assert np.all((se > 0.05) & (se < 0.3))  # ~1 / sqrt(n p (1 - p)) for 800 rows


def test_link_heterogeneity_finds_the_line_specific_link():
    # feature 0: the same link in every line (a mechanism); 1: linked in a and b, absent in c (a cue); 2: noise
    train = lines_with_links({"a": [1.0, 1.5, 0.0], "b": [1.0, 1.5, 0.0], "c": [1.0, 0.0, 0.0]}, 3000, 0)
    table = link_heterogeneity(train, ["mechanism", "cue", "noise"]).set_index("feature")
    assert table.loc["cue", "p_adjusted"] < 1e-6 and table.loc["cue", "q"] > 10 * table.loc["mechanism", "q"]
    assert table.loc["mechanism", "p_adjusted"] > 0.01 and table.loc["noise", "p_adjusted"] > 0.01
    assert table.loc["cue", "lines"] == ["a", "b", "c"] and table.loc["cue", "df"] == 2
    cue, se = np.array(table.loc["cue", "coefficients"]), np.array(table.loc["cue", "se"])
    assert np.all(np.abs(cue - [1.5, 1.5, 0.0]) < 4 * se + 0.1)  # the ridge shrinks a little


def test_link_heterogeneity_is_calibrated_under_the_null():
    # identical links in three lines: Cochran's Q rejects at 5% about 5% of the time (not 0, not 50%)
    p = [
        link_heterogeneity(lines_with_links({k: [0.8, 0.0] for k in "abc"}, 600, seed), ["x", "z"]).p.to_numpy()
        for seed in range(150)
    ]
    rate = float(np.mean(np.concatenate(p) < 0.05))
    assert 0.02 < rate < 0.10, rate


def test_link_heterogeneity_edge_cases():
    train = lines_with_links({"a": [1.0, 0.0], "b": [1.0, 0.0]}, 500, 1)
    one_class = (train["b"][0], np.zeros(500, int))
    assert link_heterogeneity({"a": train["a"], "b": one_class}, ["x", "z"]).empty  # one usable line is not a test
    constant = {k: (np.column_stack([v[0], np.ones(len(v[1]))]), v[1]) for k, v in train.items()}
    table = link_heterogeneity(constant, ["x", "z", "const"]).set_index("feature")
    assert math.isnan(table.loc["const", "q"]) and math.isfinite(table.loc["x", "q"])
    assert table.loc["x", "p_adjusted"] == pytest.approx(min(1.0, 2 * table.loc["x", "p"]))  # 2 varying features
