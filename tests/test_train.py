"""The training protocol: folds, validation lines, leakage guards, and the calibrate stage that follows it."""

import json

import numpy as np
import pandas as pd
import pytest

from epiflow.calibrate import calibrate_scores, split_metrics
from epiflow.errors import LeakageError
from epiflow.metrics import aupr
from epiflow.models import PairData
from epiflow.selection import choose_params, grid_combinations, screen_marks, validation_groups
from epiflow.train import assert_no_leakage, check_cell_line, concat_data, run_heldout

CHROMS = ["chr1", "chr2", "chr3", "chr4"]
CFG = {
    "methods": ["platt", "isotonic"],
    "label_shift": "em",
    "threshold": {"rule": "f1", "target": None},
    "ece_bins": 10,
}


def labelled_pairs(line: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """A line's pairs labelled from one mark's signal and distance: (signal, distance, pair table)."""
    signal = rng.standard_normal(n)
    distance = np.exp(rng.uniform(np.log(5e3), np.log(5e5), n))
    logit = 2.0 * signal - 2.5 * (np.log10(distance) - 4) - 1.0
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame(
        {
            "pair_id": [f"{line}-{i}" for i in range(n)],
            "cell_line": line,
            "chrom": rng.choice(CHROMS, n),
            "label": label,
            "distance": distance.astype(int),
        }
    )
    return signal, distance, frame


def synthetic_line(line: str, n: int, rng: np.random.Generator, shift: float = 0.0) -> PairData:
    """Pairs whose label depends on feature 0 and on distance; `shift` adds a cell-line batch offset."""
    signal, distance, frame = labelled_pairs(line, n, rng)
    table = np.column_stack([signal + shift, rng.standard_normal(n), np.log10(distance)]).astype(np.float32)
    return PairData(frame, table, ["mark_enhancer", "noise", "log_distance"])


@pytest.fixture(scope="module")
def lines():
    rng = np.random.default_rng(0)
    return {c: synthetic_line(c, 400, rng) for c in ["A", "B", "C", "D"]}


def test_run_heldout_splits_and_folds(lines):
    folds = [["chr1", "chr2"], ["chr3", "chr4"]]
    scores, info = run_heldout(lines, "A", ["B", "C", "D"], folds, "gbm", {"max_iter": 20}, seed=0)
    assert set(scores.split) == {"train", "val", "test"}
    fitted = scores[scores.split != "test"]
    assert not (fitted.cell_line == "A").any()
    for f, chroms in enumerate(folds):
        assert not fitted[(fitted.fold == f) & fitted.chrom.isin(chroms)].shape[0]
        test = scores[(scores.split == "test") & (scores.fold == f)]
        assert test.chrom.isin(chroms).all() and (test.cell_line == "A").all()
    # every held-out pair is scored exactly once, by the fold holding its chromosome
    assert scores[scores.split == "test"].pair_id.is_unique
    assert len(scores[scores.split == "test"]) == len(lines["A"])
    # each validation row comes from the model that did not train on its cell line
    assert len(info["fits"]) == 2 * 3
    test = scores[scores.split == "test"]
    assert aupr(test.label, test.score) > test.label.mean() + 0.2


def test_models_beat_chance(lines):
    for model, params in (("distance", {}), ("gbm", {"max_iter": 20}), ("epinet_small", {"epochs": 5})):
        scores, _ = run_heldout(lines, "A", ["B", "C"], None, model, params, seed=0)
        test = scores[scores.split == "test"]
        assert aupr(test.label, test.score) > test.label.mean() + 0.05, model


def test_leakage_guards(lines):
    with pytest.raises(LeakageError, match="own training lines"):
        run_heldout(lines, "A", ["A", "B"], None, "distance", {}, seed=0)
    frame = pd.DataFrame({"pair_id": ["p"], "cell_line": ["B"], "chrom": ["chr3"]})
    with pytest.raises(LeakageError, match="test-fold chromosomes"):
        assert_no_leakage(frame, "A", ["chr3"], "pool")
    assert_no_leakage(frame, "A", ["chr1"], "pool")


def test_injected_heldout_row_in_training_table_is_caught(lines):
    injected = lines["A"].frame.iloc[[0]].copy()
    frame = pd.concat([lines["B"].frame, injected], ignore_index=True)
    with pytest.raises(LeakageError, match=r"B.*row 401.*'A'"):
        check_cell_line(frame, "B", "results/pairs/B.tsv.gz")


def test_same_inputs_same_scores(lines):
    a, _ = run_heldout(lines, "A", ["B", "C"], None, "epinet_small", {"epochs": 3}, seed=3)
    b, _ = run_heldout(lines, "A", ["B", "C"], None, "epinet_small", {"epochs": 3}, seed=3)
    pd.testing.assert_frame_equal(a, b)


def test_calibration_never_reads_test_labels(lines):
    """Flipping every held-out label changes neither the calibrated probabilities nor the threshold."""
    scores, _ = run_heldout(
        lines, "A", ["B", "C", "D"], [["chr1", "chr2"], ["chr3", "chr4"]], "gbm", {"max_iter": 20}, 0
    )
    folds = [["chr1", "chr2"], ["chr3", "chr4"]]
    pred, notes, _ = calibrate_scores(scores, "A", folds, CFG)
    flipped = scores.copy()
    is_test = flipped.split == "test"
    flipped.loc[is_test, "label"] = 1 - flipped.loc[is_test, "label"]
    pred2, notes2, _ = calibrate_scores(flipped, "A", folds, CFG)
    np.testing.assert_array_equal(pred.prob.to_numpy(), pred2.prob.to_numpy())
    assert [n["threshold"] for n in notes] == [n["threshold"] for n in notes2]
    assert [n["test_prior_estimate"] for n in notes] == [n["test_prior_estimate"] for n in notes2]
    metrics = split_metrics(pred, 10)
    assert set(metrics.split) == {"train", "val", "test"}
    assert {"aupr", "ece", "ece_raw", "threshold", "f1", "oracle_f1"} <= set(metrics.columns)


def test_chromosome_validation_keeps_every_training_line_in_each_fit(lines):
    """protocol.validation: chromosome — validation sets are chromosome groups of the pool, never a test chromosome,
    every training line in every fit, each pool row validated exactly once per fold."""
    folds = [["chr1"], ["chr2"]]
    scores, info = run_heldout(
        lines, "A", ["B", "C", "D"], folds, "gbm", {"max_iter": 20}, seed=0, validation="chromosome", validation_folds=2
    )
    assert info["validation"] == "chromosome"
    assert [n["validation_set"] for n in info["fits"]] == ["chr2,chr4", "chr3", "chr1,chr4", "chr3"]
    val = scores[scores.split == "val"]
    assert not (val.cell_line == "A").any()
    for f, chroms in enumerate(folds):
        fold_val = val[val.fold == f]
        assert not fold_val.chrom.isin(chroms).any()
        assert fold_val.pair_id.is_unique and set(fold_val.cell_line) == {"B", "C", "D"}
        pool = pd.concat([lines[c].frame for c in "BCD"])
        assert len(fold_val) == (~pool.chrom.isin(chroms)).sum()
    test = scores[scores.split == "test"]
    assert aupr(test.label, test.score) > test.label.mean() + 0.2


def test_validation_groups_rules(lines):
    pool = pd.concat([lines[c].frame for c in "BC"], ignore_index=True)
    by_line = validation_groups(pool, ["B", "C"])
    assert [name for name, _ in by_line] == ["B", "C"] and by_line[0][1].sum() == 400
    by_chrom = validation_groups(pool, ["B", "C"], "chromosome", n_groups=3)
    assert [name for name, _ in by_chrom] == ["chr1,chr4", "chr2", "chr3"]
    assert sum(mask for _, mask in by_chrom).max() == 1  # a partition of the pool
    with pytest.raises(ValueError, match="unknown"):
        validation_groups(pool, ["B", "C"], "random")
    with pytest.raises(ValueError, match=">= 2 chromosomes"):
        validation_groups(pool[pool.chrom == "chr1"], ["B", "C"], "chromosome")


def cue_line(line: str, n: int, rng: np.random.Generator, link: float) -> PairData:
    """Pairs labelled by a `real` mark and distance; the `cue` mark tracks the label with a per-line `link`
    (negative: it marks the negatives)."""
    real, distance, frame = labelled_pairs(line, n, rng)
    cue = link * (2 * frame.label.to_numpy() - 1) + rng.standard_normal(n)
    table = np.column_stack([real, cue, np.log10(distance)]).astype(np.float32)
    return PairData(frame, table, ["real_enhancer", "cue_enhancer", "log_distance"])


def heldout_aupr(scores: pd.DataFrame) -> float:
    test = scores[scores.split == "test"]
    return aupr(test.label.to_numpy(), test.score.to_numpy())


@pytest.fixture(scope="module")
def flipped():
    """Lines whose cue flips in training line C and in held-out D; the pool of A-C and its validation sets."""
    rng = np.random.default_rng(1)
    links = {"A": 1.5, "B": 1.5, "C": -1.5, "D": -1.5}
    lines = {c: cue_line(c, 500, rng, link) for c, link in links.items()}
    pool = concat_data([lines[c] for c in "ABC"])
    return lines, pool, validation_groups(pool.frame, ["A", "B", "C"])


def test_environment_screen_drops_a_mark_whose_link_does_not_transfer(flipped):
    lines, pool, groups = flipped
    gbm = {"max_iter": 30}
    dropped, trace, gain, _ = screen_marks(pool, groups, "gbm", gbm, seed=0)
    assert dropped == ["cue"]
    first = {t["candidate"]: t["val_aupr"] for t in trace if t["round"] == 1}
    assert first["cue"] > trace[0]["val_aupr"] + 0.005 > first["real"]
    assert gain == pytest.approx(first["cue"] - trace[0]["val_aupr"])
    # the same cue with the same link in every training line is not dropped: the screen is not a plain feature filter
    rng = np.random.default_rng(2)
    steady = concat_data([cue_line(c, 500, rng, 1.5) for c in "ABC"])
    gone = screen_marks(steady, validation_groups(steady.frame, ["A", "B", "C"]), "gbm", gbm, seed=0)[0]
    assert gone == []

    # in the protocol: gbm_screen screens each fold's pool; its final fits are gbm's without the dropped mark
    folds = [["chr1", "chr2"], ["chr3", "chr4"]]
    scores, info = run_heldout(lines, "D", ["A", "B", "C"], folds, "gbm_screen", gbm, seed=0)
    assert [(s["fold"], s["dropped"]) for s in info["screen"]] == [(0, ["cue"]), (1, ["cue"])]
    without, _ = run_heldout(lines, "D", ["A", "B", "C"], folds, "gbm", gbm | {"exclude_columns": ["cue"]}, seed=0)
    assert np.allclose(scores.score.to_numpy(), without.score.to_numpy())
    plain, info_plain = run_heldout(lines, "D", ["A", "B", "C"], folds, "gbm", gbm, seed=0)
    assert "screen" not in info_plain
    assert heldout_aupr(scores) > heldout_aupr(plain)


def test_a_proxy_screens_for_a_network_and_its_decision_does_not_move_with_the_seed(flipped):
    lines, _, _ = flipped
    folds = [["chr1", "chr2"], ["chr3", "chr4"]]
    net = {"epochs": 3, "patience": 3, "screen_marks": True, "screen_with": "gbm"}
    decisions = []
    for seed in (0, 3):
        scores, info = run_heldout(lines, "D", ["A", "B", "C"], folds, "epinet_small", net, seed=seed)
        decisions.append([(s["fold"], s["dropped"], s["with"]) for s in info["screen"]])
        # the network's final fits are its own, on the marks gbm kept: the scores of epinet_small without the cue
        plain = {"epochs": 3, "patience": 3, "exclude_columns": ["cue"]}
        direct, _ = run_heldout(lines, "D", ["A", "B", "C"], folds, "epinet_small", plain, seed=seed)
        np.testing.assert_array_equal(scores.score.to_numpy(), direct.score.to_numpy())
    assert decisions[0] == decisions[1] == [(0, ["cue"], "gbm"), (1, ["cue"], "gbm")]
    # the proxy screens with the network's margin: a margin no mark can clear keeps every mark
    _, info = run_heldout(lines, "D", ["A", "B", "C"], folds, "epinet_small", net | {"screen_margin": 1.0}, seed=0)
    assert [s["dropped"] for s in info["screen"]] == [[], []]


def test_screen_with_is_checked_before_any_fit(lines):
    for params, error, message in (
        ({"screen_with": "gbm"}, ValueError, "needs screen_marks"),
        ({"screen_marks": True, "screen_with": "forest"}, KeyError, "unknown model 'forest'"),
        ({"screen_marks": True, "screen_with": ["gbm"]}, ValueError, "must be a model name"),
    ):
        with pytest.raises(error, match=message):
            run_heldout(lines, "A", ["B", "C"], None, "epinet_small", params, seed=0)


def test_grid_is_chosen_on_the_validation_lines(flipped):
    lines, pool, groups = flipped
    grid = {"max_iter": [1, 30], "exclude_columns": [[], ["cue"]]}
    chosen, trace, _ = choose_params(pool, groups, "gbm", {"grid": grid}, seed=0)
    assert [t["params"] for t in trace] == grid_combinations(grid)  # keys sorted: exclude_columns varies slowest
    assert len(trace) == 4 and chosen == {"exclude_columns": ["cue"], "max_iter": 30}
    assert max(t["val_aupr"] for t in trace) == next(t["val_aupr"] for t in trace if t["params"] == chosen)
    # the first of equally good settings wins
    # (no sequence features here, so leaving them out changes nothing)
    tie, tied, _ = choose_params(pool, groups, "gbm", {"grid": {"exclude_columns": [["sequence"], []]}}, seed=0)
    assert tied[0]["val_aupr"] == tied[1]["val_aupr"] and tie == {"exclude_columns": ["sequence"]}

    # in the protocol: every fold chooses on its own pool, and its final fits are those of the chosen setting
    folds = [["chr1", "chr2"], ["chr3", "chr4"]]
    scores, info = run_heldout(lines, "D", ["A", "B", "C"], folds, "gbm", {"grid": grid}, seed=0)
    assert [g["chosen"] for g in info["grid"]] == [{"exclude_columns": ["cue"], "max_iter": 30}] * 2
    assert json.loads(json.dumps(info["grid"])) == info["grid"]  # train_heldout writes it to the model's JSON
    direct, _ = run_heldout(lines, "D", ["A", "B", "C"], folds, "gbm", {"max_iter": 30, "exclude_columns": ["cue"]}, 0)
    assert np.allclose(scores.score.to_numpy(), direct.score.to_numpy())


def test_grid_settings_are_checked_before_any_fit(lines):
    for grid, message in (
        ([1, 2], "mapping"),
        ({"lr": []}, "non-empty list"),
        ({"lr": 0.1}, "non-empty list"),
        ({"screen_margin": [0.0, 0.01]}, "cannot be searched"),
    ):
        with pytest.raises(ValueError, match=message):
            run_heldout(lines, "A", ["B", "C"], None, "gbm", {"grid": grid}, seed=0)
    with pytest.raises(ValueError, match="cannot be combined"):
        run_heldout(lines, "A", ["B", "C"], None, "gbm_screen", {"grid": {"max_iter": [5, 10]}}, seed=0)


def test_grid_on_an_invariance_weight_is_deterministic(lines):
    params = {"epochs": 3, "patience": 3, "grid": {"irm": [0.0, 1.0]}}
    a, info = run_heldout(lines, "A", ["B", "C"], [["chr1", "chr2"], ["chr3", "chr4"]], "epinet_small", params, 2)
    b, again = run_heldout(lines, "A", ["B", "C"], [["chr1", "chr2"], ["chr3", "chr4"]], "epinet_small", params, 2)
    assert [len(g["trace"]) for g in info["grid"]] == [2, 2] and info["grid"] == again["grid"]
    assert all(g["chosen"]["irm"] in (0.0, 1.0) for g in info["grid"])
    pd.testing.assert_frame_equal(a, b)
    # a fold's final models are the winning setting's validation fits: the same scores as fitting it afresh
    for f, g in enumerate(info["grid"]):
        fresh = {"epochs": 3, "patience": 3, **g["chosen"]}
        folds = [[["chr1", "chr2"], ["chr3", "chr4"]][f]]
        direct, _ = run_heldout(lines, "A", ["B", "C"], folds, "epinet_small", fresh, 2)
        np.testing.assert_array_equal(a[a.fold == f].score.to_numpy(), direct.score.to_numpy())
