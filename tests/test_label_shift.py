"""The held-out line's positive rate without its labels: each estimator where its assumption holds, and the
leave-one-validation-line-out choice between them (epiflow.calibrate)."""

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit

from epiflow.calibrate import (
    ESTIMATORS,
    calibrate_fold,
    choose_estimator,
    compare_methods,
    estimate_prior,
    fold_threshold,
    prior_errors,
    select_method,
    shift_weights,
    split_metrics,
)
from epiflow.calibrators import adjust_to_prior, em_prior_shift
from epiflow.metrics import choose_threshold, line_weights, log_loss

CFG = {"methods": ["platt"], "ece_bins": 10, "label_shift": "auto", "threshold": {"rule": "f1", "target": None}}
APPLY = CFG | {"label_shift_apply": True}  # the predict path: em / bbse re-weight the held-out rows


def label_shift_line(rng, line, prior, n=6000):
    """Pure label shift: p(score | label) is the same in every line, only the positive rate differs."""
    y = rng.binomial(1, prior, n)
    x = rng.normal(1.5 * y, 1.0)
    return pd.DataFrame({"cell_line": line, "label": y, "score": expit(x - 2.0)})


def covariate_shift_line(rng, line, offset, n=6000):
    """Covariate shift: p(label | score) is the same in every line, the score distribution moves by `offset`."""
    x = rng.normal(offset, 1.0, n)
    y = rng.binomial(1, expit(1.5 * x - 3.0))
    return pd.DataFrame({"cell_line": line, "label": y, "score": expit(x)})


def fold_frame(make, settings, test_setting, seed=0):
    """val rows of three training lines and test rows of a held-out line, as calibrate_fold reads them."""
    rng = np.random.default_rng(seed)
    val = pd.concat([make(rng, f"line{i}", s) for i, s in enumerate(settings)], ignore_index=True).assign(split="val")
    test = make(rng, "heldout", test_setting).assign(split="test")
    frame = pd.concat([val, test], ignore_index=True)
    chrom = np.where(frame.split == "test", "chr1", "chr2")
    return frame.assign(pair_id=[f"p{i}" for i in range(len(frame))], chrom=chrom, fold=0)


def test_em_and_bbse_recover_pure_label_shift_and_auto_reweights():
    frame = fold_frame(label_shift_line, [0.04, 0.08, 0.16], 0.25)
    val, test = frame[frame.split == "val"], frame[frame.split == "test"]
    errors = prior_errors(val, "platt", "heldout", ["chr1"])
    assert errors["em"] < errors["none"] / 3 and errors["em"] < errors["pcc"]
    out, notes = calibrate_fold(frame, "heldout", ["chr1"], APPLY)
    true = test.label.mean()
    assert notes["label_shift_estimator"] in {"em", "bbse"} and notes["label_shift_applied"]
    assert notes["test_prior_estimate"] == pytest.approx(true, abs=0.02)
    assert notes["test_prior_em"] == pytest.approx(true, abs=0.02)
    assert notes["test_prior_bbse"] == pytest.approx(true, abs=0.05)  # unbiased, noisier than EM
    assert abs(notes["val_prior"] - true) > 0.1  # the validation rate alone would be far off
    # re-weighted test probabilities now average to the estimate; calibrated ones did not
    is_test = (out.split == "test").to_numpy()
    assert out.prob[is_test].mean() == pytest.approx(notes["test_prior_estimate"], abs=0.01)
    assert abs(out.prob_calibrated[is_test].mean() - true) > 0.05
    summary = split_metrics(out, 10).set_index("split")
    assert summary.loc["test", "pos_rate_estimate"] == pytest.approx(notes["test_prior_estimate"])
    assert np.isnan(summary.loc["val", "pos_rate_estimate"])


def test_pcc_wins_under_covariate_shift_and_keeps_probabilities():
    frame = fold_frame(covariate_shift_line, [0.0, 0.6, 1.2], 1.5)
    val, test = frame[frame.split == "val"], frame[frame.split == "test"]
    errors = prior_errors(val, "platt", "heldout", ["chr1"])
    assert errors["pcc"] < errors["em"] and errors["pcc"] < errors["none"]
    out, notes = calibrate_fold(frame, "heldout", ["chr1"], CFG)
    assert notes["label_shift_estimator"] == "pcc" and not notes["label_shift_applied"]
    assert notes["test_prior_estimate"] == pytest.approx(test.label.mean(), abs=0.02)
    # EM reads the higher scores as more positives *and* more separable ones: it overshoots
    assert notes["test_prior_em"] - test.label.mean() > 0.03
    np.testing.assert_array_equal(out.prob.to_numpy(), out.prob_calibrated.to_numpy())


def test_estimators_read_no_test_labels():
    frame = fold_frame(label_shift_line, [0.04, 0.08, 0.16], 0.25)
    flipped = frame.copy()
    is_test = flipped.split == "test"
    flipped.loc[is_test, "label"] = 1 - flipped.loc[is_test, "label"]
    _, notes = calibrate_fold(frame, "heldout", ["chr1"], APPLY)
    _, notes2 = calibrate_fold(flipped, "heldout", ["chr1"], APPLY)
    for key in ["test_prior_estimate", "threshold", *[f"test_prior_{e}" for e in ESTIMATORS if e != "none"]]:
        assert notes[key] == notes2[key], key


def test_choice_rules():
    assert choose_estimator("em", {"none": 0.0, "em": 1.0}) == "em"
    assert choose_estimator("auto", {"none": 0.02, "pcc": 0.01, "em": 0.3, "bbse": np.nan}) == "pcc"
    assert choose_estimator("auto", {"none": 0.01, "pcc": 0.01, "em": 0.3, "bbse": 0.2}) == "none"  # ties: none
    assert choose_estimator("auto", {e: np.nan for e in ESTIMATORS}) == "none"
    probs = expit(logit(np.full(100, 0.3)))
    assert estimate_prior("pcc", np.array([0, 1]), np.array([0.2, 0.8]), probs) == pytest.approx(0.3)
    assert estimate_prior("none", np.array([0, 0, 0, 1]), np.zeros(4), probs) == 0.25
    with pytest.raises(ValueError, match="unknown"):
        estimate_prior("magic", np.array([0, 1]), np.array([0.2, 0.8]), probs)


def test_method_comparison_reports_each_reweighting_estimator():
    frame = fold_frame(label_shift_line, [0.04, 0.08, 0.16], 0.25)
    table = compare_methods(frame, "heldout", ["chr1"], CFG | {"methods": ["platt", "isotonic"]}, 10)
    assert set(table.method) == {"none", "platt", "isotonic"}
    assert set(table.variant) == {"calibrated", "calibrated+em", "calibrated+bbse"}
    platt = table[table.method == "platt"].set_index("variant")
    # under pure label shift the re-weighted probabilities are the better calibrated ones
    assert platt.loc["calibrated+em", "ece"] < platt.loc["calibrated", "ece"] / 2
    none = compare_methods(frame, "heldout", ["chr1"], CFG | {"label_shift": "none"}, 10)
    assert set(none.variant) == {"calibrated"}


def flat_line(rng, line, prior, n=6000):
    """A line whose scores barely separate and sit below every validation line's: few positives look positive."""
    y = rng.binomial(1, prior, n)
    return pd.DataFrame({"cell_line": line, "label": y, "score": expit(rng.normal(0.2 * y, 0.2) - 3.5)})


def test_boundary_estimate_falls_back_to_the_next_validated_estimator():
    frame = fold_frame(label_shift_line, [0.04, 0.08, 0.16], 0.25)
    test = flat_line(np.random.default_rng(1), "heldout", 0.05).assign(split="test", chrom="chr1", fold=0)
    frame = pd.concat([frame[frame.split == "val"], test.assign(pair_id=[f"t{i}" for i in range(len(test))])])
    kept, notes_kept = calibrate_fold(frame, "heldout", ["chr1"], APPLY | {"reject_boundary": False})
    assert notes_kept["label_shift_estimator"] == "em" and notes_kept["test_prior_estimate"] < 1e-3  # collapsed
    out, notes = calibrate_fold(frame, "heldout", ["chr1"], APPLY)
    ranking = notes["label_shift_ranking"].split(",")
    used = ranking.index(notes["label_shift_estimator"])
    assert ranking[0] == "em" and used > 0  # EM failed on the held-out rows, as did any ranked before the one used
    assert all(np.isnan(notes[f"test_prior_{name}"]) for name in ranking[:used])
    assert notes["test_prior_estimate"] > 1e-3  # not the collapsed rate
    is_test = (out.split == "test").to_numpy()
    assert out.prob[is_test].mean() > 10 * kept.prob[is_test].mean()


def test_threshold_rows_are_transformed_as_the_heldout_rows_are():
    # pcc keeps the held-out probabilities: the threshold is chosen on the validation probabilities as they are
    frame = fold_frame(covariate_shift_line, [0.0, 0.6, 1.2], 1.5)
    out, notes = calibrate_fold(frame, "heldout", ["chr1"], CFG)
    is_val = (out.split == "val").to_numpy()
    assert notes["label_shift_estimator"] == "pcc"
    assert notes["threshold"] == choose_threshold(out.label[is_val], out.prob[is_val])
    _, always = calibrate_fold(frame, "heldout", ["chr1"], APPLY | {"threshold_reweight": "always"})
    assert always["threshold"] != notes["threshold"]
    # `always` lets the held-out rows' estimate reach the threshold: refused unless label_shift_apply allows it
    with pytest.raises(ValueError, match="label_shift_apply"):
        calibrate_fold(frame, "heldout", ["chr1"], CFG | {"threshold_reweight": "always"})
    # em/bbse re-weight the held-out probabilities, so the validation rows are re-weighted in both modes
    frame = fold_frame(label_shift_line, [0.04, 0.08, 0.16], 0.25)
    _, notes = calibrate_fold(frame, "heldout", ["chr1"], APPLY)
    _, always = calibrate_fold(frame, "heldout", ["chr1"], APPLY | {"threshold_reweight": "always"})
    assert notes["label_shift_applied"] and notes["threshold"] == always["threshold"]


def test_by_default_the_heldout_rows_shape_neither_their_probabilities_nor_the_threshold():
    # pure label shift: em wins on validation and its estimate is reported, but (label_shift_apply false) it
    # re-weights nothing, so changing the held-out rows' scores changes no other row's prob and no threshold
    frame = fold_frame(label_shift_line, [0.04, 0.08, 0.16], 0.25)
    out, notes = calibrate_fold(frame, "heldout", ["chr1"], CFG)
    assert notes["label_shift_estimator"] == "em" and not notes["label_shift_applied"]
    assert notes["test_prior_estimate"] == pytest.approx(frame[frame.split == "test"].label.mean(), abs=0.02)
    np.testing.assert_array_equal(out.prob.to_numpy(), out.prob_calibrated.to_numpy())
    is_test = (frame.split == "test").to_numpy()
    moved = frame.copy()
    moved.loc[is_test, "score"] = expit(logit(moved.score[is_test].clip(1e-6, 1 - 1e-6)) + 0.3)  # a shifted line
    out2, notes2 = calibrate_fold(moved, "heldout", ["chr1"], CFG)
    assert notes2["label_shift_estimator"] == "em" and notes2["threshold"] == notes["threshold"]
    assert notes2["test_prior_estimate"] > notes["test_prior_estimate"] + 0.03  # em's estimate did see the shift
    # with label_shift_apply the same shift moves the threshold: the held-out scores reach it
    _, applied = calibrate_fold(frame, "heldout", ["chr1"], APPLY)
    _, applied2 = calibrate_fold(moved, "heldout", ["chr1"], APPLY)
    assert applied["label_shift_estimator"] == applied2["label_shift_estimator"] == "em"
    assert applied["label_shift_applied"] and applied2["threshold"] > applied["threshold"] + 0.02
    # held-out rows whose scores stayed as they were keep their prob, whatever the other held-out rows score
    first, rest = np.flatnonzero(is_test)[:20], np.flatnonzero(is_test)[20:]
    moved = frame.copy()
    moved.iloc[rest, moved.columns.get_loc("score")] = 0.99
    out3, _ = calibrate_fold(moved, "heldout", ["chr1"], CFG)
    np.testing.assert_array_equal(out3.prob.to_numpy()[first], out.prob.to_numpy()[first])


def test_line_balanced_threshold_ignores_how_many_pairs_a_line_has():
    # a low-rate line listed ten times over (as a big table would be) pulls the pairs-weighted threshold towards
    # its own optimum; with every line the same total weight the threshold is that of the lines, not of the rows
    rng = np.random.default_rng(3)
    lines = [label_shift_line(rng, f"line{i}", prior) for i, prior in enumerate([0.02, 0.1, 0.25])]
    big = pd.concat([lines[0]] * 10, ignore_index=True)
    test = label_shift_line(rng, "heldout", 0.1).assign(split="test")

    def frame_of(parts):
        frame = pd.concat([*[p.assign(split="val") for p in parts], test], ignore_index=True)
        chrom = np.where(frame.split == "test", "chr1", "chr2")
        return frame.assign(pair_id=[f"p{i}" for i in range(len(frame))], chrom=chrom, fold=0)

    cfg = CFG | {"label_shift": "pcc", "methods": ["none"]}
    even = calibrate_fold(frame_of(lines), "heldout", ["chr1"], cfg)[1]["threshold"]
    lines_big = calibrate_fold(frame_of([big, *lines[1:]]), "heldout", ["chr1"], cfg)[1]["threshold"]
    pairs_even = calibrate_fold(frame_of(lines), "heldout", ["chr1"], cfg | {"threshold_balance": "pairs"})
    pairs_big = calibrate_fold(frame_of([big, *lines[1:]]), "heldout", ["chr1"], cfg | {"threshold_balance": "pairs"})
    assert lines_big == pytest.approx(even, abs=1e-9)
    assert pairs_even[1]["threshold"] == pytest.approx(even, abs=1e-9)  # equal-sized lines: the same weights
    assert abs(pairs_big[1]["threshold"] - even) > 0.05, (pairs_big[1]["threshold"], even)
    with pytest.raises(ValueError, match="threshold_balance"):
        calibrate_fold(frame_of(lines), "heldout", ["chr1"], cfg | {"threshold_balance": "rows"})


def test_line_balanced_calibration_in_the_fold():
    # unequal lines: with fit_balance lines the fold's validation rate (what `none` returns, what re-weighting starts
    # from) is the mean of the lines' rates, and the held-out probabilities are those of the line-weighted map
    rng = np.random.default_rng(9)
    val = pd.concat(
        [label_shift_line(rng, line, prior, n) for line, prior, n in [("l0", 0.03, 15000), ("l1", 0.12, 3000)]]
    )
    test = label_shift_line(rng, "heldout", 0.1).assign(split="test")
    frame = pd.concat([val.assign(split="val"), test], ignore_index=True)
    frame = frame.assign(pair_id=[f"p{i}" for i in range(len(frame))], fold=0)
    frame = frame.assign(chrom=np.where(frame.split == "test", "chr1", "chr2"))
    cfg = CFG | {"label_shift": "none"}
    out, notes = calibrate_fold(frame, "heldout", ["chr1"], cfg)
    out_pairs, notes_pairs = calibrate_fold(frame, "heldout", ["chr1"], cfg | {"fit_balance": "pairs"})
    rates = val.groupby("cell_line").label.mean()
    assert notes["val_prior"] == pytest.approx(rates.mean()) and notes["test_prior_estimate"] == notes["val_prior"]
    assert notes_pairs["val_prior"] == pytest.approx(val.label.mean())
    is_test = out.split == "test"
    # the high-rate line counts more: the held-out line (rate 0.1) gets higher probabilities
    assert out.prob[is_test].mean() > out_pairs.prob[is_test].mean() + 0.02
    assert abs(out.prob[is_test].mean() - test.label.mean()) < abs(out_pairs.prob[is_test].mean() - test.label.mean())
    with pytest.raises(ValueError, match="fit_balance"):
        calibrate_fold(frame, "heldout", ["chr1"], cfg | {"fit_balance": "rows"})


def test_every_step_of_the_line_balanced_fit_weighs_the_lines_alike():
    # three unequal lines: the method's leave-one-line-out log loss, the estimators' validation errors, EM's prior and
    # the method comparison all use the line-weighted rows (fit_balance lines), not each row once
    rng = np.random.default_rng(11)
    sizes = [("l0", 0.03, 12000), ("l1", 0.08, 3000), ("l2", 0.15, 1500)]
    val = pd.concat([label_shift_line(rng, line, prior, n) for line, prior, n in sizes], ignore_index=True)
    val = val.assign(pair_id=[f"p{i}" for i in range(len(val))], chrom="chr2", split="val")
    rates = val.groupby("cell_line").label.mean()
    best, losses, fits = select_method(val, ["temperature", "platt"], "heldout", ["chr1"], "lines")
    y = np.concatenate([held.label.to_numpy() for _, held, _ in fits])
    probs = np.concatenate([cal.transform(held.score.to_numpy()) for _, held, cal in fits])
    left_out = pd.concat([held.cell_line for _, held, _ in fits], ignore_index=True)
    assert losses[best] == pytest.approx(log_loss(y, probs, sample_weight=line_weights(left_out)))
    assert abs(losses[best] - log_loss(y, probs)) > 1e-3
    # `none` estimates a left-out line's rate as the mean of the other lines' rates
    errors = prior_errors(val, "platt", "heldout", ["chr1"], balance="lines")
    expected = np.mean([abs(rates.drop(line).mean() - rates[line]) for line in rates.index])
    assert errors["none"] == pytest.approx(expected)
    assert abs(prior_errors(val, "platt", "heldout", ["chr1"], balance="pairs")["none"] - expected) > 1e-3
    # EM starts from the rate the probabilities mean
    p = val.score.to_numpy()
    w = line_weights(val.cell_line)
    assert estimate_prior("em", val.label.to_numpy(), p, p[:500], val_weight=w) == pytest.approx(
        em_prior_shift(p[:500], np.average(val.label, weights=w))[0]
    )
    # the reported method comparison uses the same fit as the fold
    test = label_shift_line(rng, "heldout", 0.1).assign(split="test", chrom="chr1")
    fold = pd.concat([val, test.assign(pair_id=[f"t{i}" for i in range(len(test))])], ignore_index=True)
    cfg = CFG | {"methods": ["platt"], "label_shift": "pcc"}
    table = compare_methods(fold, "heldout", ["chr1"], cfg, 10).set_index(["method", "variant"])
    out, _ = calibrate_fold(fold, "heldout", ["chr1"], cfg)
    test_rows = out[out.split == "test"]
    assert table.loc[("platt", "calibrated"), "logloss"] == pytest.approx(log_loss(test_rows.label, test_rows.prob))
    pairs = compare_methods(fold, "heldout", ["chr1"], cfg | {"fit_balance": "pairs"}, 10).set_index(
        ["method", "variant"]
    )
    assert abs(pairs.loc[("platt", "calibrated"), "logloss"] - table.loc[("platt", "calibrated"), "logloss"]) > 1e-4


def test_line_balanced_rows_reweighted_to_the_estimate_have_the_estimated_rate():
    # unequal lines and label_shift_apply: the class weights must bring the *line-weighted* rows to the estimate
    rng = np.random.default_rng(5)
    lines = [("line0", 0.036, 20000), ("line1", 0.06, 8000), ("line2", 0.099, 4000)]
    val = pd.concat([label_shift_line(rng, line, prior, n) for line, prior, n in lines])
    y, p, lines = val.label.to_numpy(), val.score.to_numpy(), val.cell_line
    cfg = CFG | {"threshold": {"rule": "f1", "target": None}}
    balanced = line_weights(lines)
    source = np.average(y, weights=balanced)
    weight = balanced * shift_weights(y, source, 0.2)
    assert np.average(y, weights=weight) == pytest.approx(0.2)
    # the probabilities mean the rate the calibrator weighed the rows to: the line-weighted one (fit_balance: lines)
    expected = choose_threshold(y, adjust_to_prior(p, source, 0.2), "f1", None, sample_weight=weight)
    assert fold_threshold(y, p, lines, 0.2, True, cfg) == expected
    pairs_fit = choose_threshold(y, adjust_to_prior(p, y.mean(), 0.2), "f1", None, sample_weight=weight)
    assert fold_threshold(y, p, lines, 0.2, True, cfg | {"fit_balance": "pairs"}) == pairs_fit != expected
    # without re-weighting: the line weights alone
    assert fold_threshold(y, p, lines, 0.2, False, cfg) == choose_threshold(y, p, "f1", None, sample_weight=balanced)
