"""The predict path's library: candidates, the final model (never trained on the predicted line), its persistence,
calibration on its validation rows, the outputs a browser reads, and the shift warning."""

import numpy as np
import pandas as pd
import pytest
from test_train import synthetic_line

from epiflow.candidates import one_tss_per_gene, predict_candidates, resize_peaks
from epiflow.errors import InputError, LeakageError
from epiflow.predict import (
    calibrate_candidates,
    calibration_settings,
    check_not_trained_on,
    fit_final,
    load_final,
    save_final,
    training_key,
)
from epiflow.predict_outputs import (
    bedpe_table,
    gene_table,
    prediction_table,
    read_interact,
    write_bedpe,
    write_interact,
)
from epiflow.shift import shift_summary

CFG = {
    "methods": ["platt", "isotonic"],
    "label_shift": "auto",
    "threshold": {"rule": "recall", "target": 0.7},
    "ece_bins": 10,
}


def brute_force_candidates(peaks, tss, genes, sizes, flank, lo, hi):
    """Every (merged element, gene) pair by explicit loops: the definition the vectorized code must meet."""
    merged = []
    for chrom, group in peaks.sort_values(["chrom", "start"]).groupby("chrom"):
        for s, e in zip(group.start, group.end, strict=True):
            if merged and merged[-1][0] == chrom and s < merged[-1][2]:
                merged[-1][2] = max(merged[-1][2], e)
            else:
                merged.append([chrom, s, e])
    out = set()
    for chrom, s, e in merged:
        if any(c == chrom and s - flank <= t < e + flank for c, t in zip(tss.chrom, tss.tss, strict=True)):
            continue  # overlaps a promoter
        mid = (s + e) // 2
        for c, t, g in zip(genes.chrom, genes.tss, genes.gene, strict=True):
            if c == chrom and lo <= abs(mid - t) <= hi:
                out.add((chrom, s, e, g, max(t - flank, 0), min(t + flank, sizes[chrom])))
    return out


def test_candidates_match_brute_force():
    rng = np.random.default_rng(3)
    sizes = {"chr1": 60_000, "chr2": 40_000}
    for _ in range(20):
        chroms = rng.choice(list(sizes), 40)
        starts = rng.integers(0, 39_000, 40)
        peaks = pd.DataFrame({"chrom": chroms, "start": starts, "end": starts + rng.integers(50, 900, 40)})
        n = 12
        gene_chroms = rng.choice(list(sizes), n)
        tss = pd.DataFrame(
            {
                "chrom": gene_chroms,
                "tss": [int(rng.integers(0, sizes[c])) for c in gene_chroms],
                "strand": rng.choice(["+", "-"], n),
                "gene": [f"G{i}" for i in range(n)],
            }
        )
        # some distances exactly at the bounds: both are inclusive
        lo, hi = 2000, 15_000
        mids = ((peaks.start + peaks.end) // 2).to_numpy()
        tss.loc[0, ["chrom", "tss"]] = [peaks.chrom[0], mids[0] + lo]
        tss.loc[1, ["chrom", "tss"]] = [peaks.chrom[1], mids[1] - hi]
        tss.loc[2, ["chrom", "tss"]] = [peaks.chrom[2], min(mids[2] + hi + 1, sizes[peaks.chrom[2]] - 1)]
        tss["tss"] = tss.tss.clip(0).astype(int)
        genes = one_tss_per_gene(tss)
        try:
            got = predict_candidates(peaks, tss, genes, sizes, "X", 500, lo, hi)
        except InputError:
            got = pd.DataFrame(columns=["chrom", "enhancer_start", "enhancer_end", "gene", "promoter_start"])
        found = set(
            zip(
                got.chrom,
                got.enhancer_start,
                got.enhancer_end,
                got.gene,
                got.get("promoter_start", []),
                got.get("promoter_end", []),
                strict=True,
            )
        )
        assert found == brute_force_candidates(peaks, tss, genes, sizes, 500, lo, hi)
        if len(got):
            assert (got.label == -1).all() and got.pair_id.is_unique
            assert got.distance.between(lo, hi).all()


def test_resize_peaks_around_summit_or_midpoint_clipped_to_the_chromosome():
    sizes = {"chr1": 10_000}
    peaks = pd.DataFrame(
        {
            "chrom": ["chr1"] * 4,
            "start": [1000, 3000, 100, 9800],
            "end": [1200, 5000, 300, 9990],
            "summit": [1150, 3100, 200, 9900],
        }
    )
    fixed = resize_peaks(peaks, 500, "fixed", sizes)  # windows at either end are shifted inside, keeping 500 bp
    assert list(zip(fixed.start, fixed.end, strict=True)) == [(900, 1400), (2850, 3350), (0, 500), (9500, 10_000)]
    at_least = resize_peaks(peaks, 500, "at_least", sizes)  # the 2 kb peak stays as called
    assert list(zip(at_least.start, at_least.end, strict=True)) == [(900, 1400), (3000, 5000), (0, 500), (9500, 10_000)]
    midpoint = resize_peaks(peaks.drop(columns="summit"), 501, "fixed", sizes)
    assert list(midpoint.start) == [850, 3750, 0, 9499] and (midpoint.end - midpoint.start).eq(501).all()
    assert peaks.start.iloc[0] == 1000  # the input is not changed
    exact = pd.DataFrame({"chrom": ["chr1"], "start": [2000], "end": [2500], "summit": [2010]})
    assert resize_peaks(exact, 500, "at_least", sizes).start.iloc[0] == 2000  # as wide as asked: as called
    assert resize_peaks(exact, 500, "fixed", sizes).start.iloc[0] == 1760
    tiny = pd.DataFrame({"chrom": ["chrT"], "start": [10], "end": [20], "summit": [15]})
    assert resize_peaks(tiny, 500, "fixed", {"chrT": 300})[["start", "end"]].values.tolist() == [[0, 300]]
    with pytest.raises(ValueError, match="element_resize"):
        resize_peaks(peaks, 500, "centre", sizes)
    with pytest.raises(ValueError, match="chr9"):
        resize_peaks(peaks.assign(chrom="chr9"), 500, "fixed", sizes)


def test_resized_elements_merge_before_pairs():
    """Two narrow peaks whose 500 bp windows overlap become one element; the pair distance is from its midpoint."""
    sizes = {"chr1": 100_000}
    peaks = pd.DataFrame({"chrom": ["chr1"] * 2, "start": [50_000, 50_400], "end": [50_100, 50_500]})
    peaks["summit"] = [50_050, 50_450]
    tss = pd.DataFrame({"chrom": ["chr1"], "tss": [70_000], "strand": ["+"], "gene": ["A"]})
    got = predict_candidates(resize_peaks(peaks, 500, "fixed", sizes), tss, tss, sizes, "X", 1000, 5000, 50_000)
    assert list(zip(got.enhancer_start, got.enhancer_end, strict=True)) == [(49_800, 50_700)]
    assert got.distance.iloc[0] == 70_000 - 50_250


def test_promoter_clipped_at_chromosome_ends():
    sizes = {"chr1": 20_000}
    peaks = pd.DataFrame({"chrom": ["chr1"], "start": [10_000], "end": [10_400]})
    tss = pd.DataFrame({"chrom": ["chr1", "chr1"], "tss": [300, 19_900], "strand": ["+", "-"], "gene": ["A", "B"]})
    got = predict_candidates(peaks, tss, one_tss_per_gene(tss), sizes, "X", 1000, 5000, 20_000)
    assert got.set_index("gene").loc["A", "promoter_start"] == 0
    assert got.set_index("gene").loc["B", "promoter_end"] == 20_000


def test_one_tss_per_gene_is_five_prime_and_checks_the_gene_list():
    tss = pd.DataFrame(
        {
            "chrom": ["chr1"] * 4,
            "tss": [500, 100, 900, 300],
            "strand": ["+", "+", "-", "-"],
            "gene": ["P", "P", "M", "M"],
        }
    )
    picked = one_tss_per_gene(tss).set_index("gene").tss
    assert picked["P"] == 100 and picked["M"] == 900
    assert list(one_tss_per_gene(tss, ["M"]).gene) == ["M"]
    with pytest.raises(InputError, match="not in the annotation"):
        one_tss_per_gene(tss, ["M", "NOPE"])


def test_no_candidates_and_empty_peaks_are_errors():
    tss = pd.DataFrame({"chrom": ["chr1"], "tss": [100], "strand": ["+"], "gene": ["A"]})
    peaks = pd.DataFrame({"chrom": ["chr2"], "start": [5000], "end": [5200]})
    with pytest.raises(InputError, match="chromosome names"):
        predict_candidates(peaks, tss, tss, {"chr1": 10_000, "chr2": 10_000}, "X")
    with pytest.raises(InputError, match="no peaks"):
        predict_candidates(peaks.iloc[:0], tss, tss, {"chr1": 10_000}, "X")


@pytest.fixture(scope="module")
def lines():
    rng = np.random.default_rng(1)
    return {c: synthetic_line(c, 500, rng, shift=0.3 * i) for i, c in enumerate("ABCD")}


@pytest.mark.parametrize("model", ["gbm", "gbm_robust", "distance"])
def test_final_model_round_trip_and_never_trained_on_its_line(lines, model, tmp_path):
    final = fit_final(lines, ["A", "B", "C"], model, {"max_iter": 20} if "gbm" in model else {}, seed=0)
    assert final.meta["training_lines"] == ["A", "B", "C"] and len(final.models) == 3
    assert set(final.validation.cell_line) == {"A", "B", "C"} and (final.validation.split == "val").all()
    paths = [tmp_path / "model.pkl", tmp_path / "validation.tsv.gz", tmp_path / "meta.json"]
    save_final(final, *paths)
    again = load_final(*paths)
    score, sd = final.score(lines["D"])
    score2, sd2 = again.score(lines["D"])
    np.testing.assert_array_equal(score, score2)
    np.testing.assert_array_equal(sd, sd2)
    check_not_trained_on("D", again)
    with pytest.raises(LeakageError, match="among the training lines"):
        check_not_trained_on("B", again)
    assert training_key(["C", "A", "B"]) == "A+B+C"


def test_score_sd_is_the_spread_of_the_line_out_models(lines):
    final = fit_final(lines, ["A", "B", "C"], "gbm", {"max_iter": 20}, seed=0)
    each = np.stack([m.predict(lines["D"]) for m in final.models])
    score, sd = final.score(lines["D"])
    np.testing.assert_allclose(sd, each.std(axis=0))
    assert sd.max() > 0


def test_calibration_of_candidates_uses_validation_rows_only(lines):
    final = fit_final(lines, ["A", "B", "C"], "gbm", {"max_iter": 20}, seed=0)
    score, _ = final.score(lines["D"])
    prob, notes = calibrate_candidates(final, "D", score, CFG)
    assert prob.shape == score.shape and np.all((prob >= 0) & (prob <= 1))
    # the calibrated call keeps the ranking, and the threshold reaches the target recall on validation rows
    assert np.corrcoef(np.argsort(np.argsort(prob)), np.argsort(np.argsort(score)))[0, 1] > 0.99
    assert 0 < notes["threshold"] < 1 and 0 < notes["test_prior_estimate"] < 1
    # labels of D never enter: shuffling them leaves the probabilities as they were
    shuffled = lines["D"].frame.label.sample(frac=1, random_state=0).to_numpy()
    assert not np.array_equal(shuffled, lines["D"].frame.label.to_numpy())
    again, _ = calibrate_candidates(final, "D", score, CFG)
    np.testing.assert_array_equal(prob, again)


def test_a_predicted_line_is_re_weighted_by_a_re_weighting_estimator(lines):
    # the predict path's settings: its own threshold rule and estimator, and (nothing held out) em re-weights
    config = {"calibration": CFG | {"threshold": {"rule": "f1"}}, "predict": {"threshold": CFG["threshold"]}}
    settings = calibration_settings(config | {"predict": config["predict"] | {"label_shift": "em"}})
    assert settings["label_shift_apply"] and settings["label_shift"] == "em"
    assert settings["threshold"] == {"rule": "recall", "target": 0.7}
    final = fit_final(lines, ["A", "B", "C"], "gbm", {"max_iter": 20}, seed=0)
    score, _ = final.score(lines["D"])
    kept, pcc = calibrate_candidates(final, "D", score, settings | {"label_shift": "pcc"})
    moved, em = calibrate_candidates(final, "D", score, settings)
    assert not pcc["label_shift_applied"] and em["label_shift_estimator"] == "em" and em["label_shift_applied"]
    assert moved.mean() == pytest.approx(em["test_prior_estimate"], abs=0.01)
    assert not np.allclose(moved, kept)


def candidate_table(n=60, seed=0):
    rng = np.random.default_rng(seed)
    chrom = rng.choice(["chr1", "chr2"], n)
    start = rng.integers(10_000, 900_000, n)
    tss = rng.integers(10_000, 900_000, n)
    return pd.DataFrame(
        {
            "chrom": chrom,
            "enhancer_start": start,
            "enhancer_end": start + 500,
            "gene": rng.choice(["G1", "G2", "G3", "G4"], n),
            "tss": tss,
            "distance": np.abs(start + 250 - tss),
        }
    )


def test_bedpe_and_interact_read_back_the_calls(tmp_path):
    candidates = candidate_table()
    rng = np.random.default_rng(1)
    prob = rng.random(len(candidates))
    table = prediction_table(candidates, prob, prob / 10, prob, 0.6, "X")
    calls = table[table.predicted].reset_index(drop=True)
    assert len(calls) == (prob >= 0.6).sum() > 0
    write_bedpe(calls, tmp_path / "p.bedpe.gz")
    bedpe = pd.read_csv(tmp_path / "p.bedpe.gz", sep="\t", header=None)
    assert len(bedpe) == len(calls)
    assert set(zip(bedpe[0], bedpe[1], bedpe[4], strict=True)) == set(
        zip(calls.chrom, calls.start, calls.TargetGeneTSS, strict=True)
    )
    write_interact(calls, {"chr1": 1_000_000, "chr2": 1_000_000, "chr3": 5}, tmp_path / "i.bb")
    back = read_interact(tmp_path / "i.bb")
    assert len(back) == len(calls)
    key = lambda f, s, t, g: sorted(zip(f, s, t, g, strict=True))  # noqa: E731
    assert key(back.sourceChrom, back.sourceStart, back.targetStart, back.targetName) == key(
        calls.chrom, calls.start, calls.TargetGeneTSS, calls.TargetGene
    )
    np.testing.assert_allclose(sorted(back.value), sorted(calls.prob), rtol=1e-5)
    assert (back.chromStart <= np.minimum(back.sourceStart, back.targetStart)).all()
    np.testing.assert_array_equal(bedpe_table(calls).score, np.round(calls.prob * 1000).astype(int))


def test_gene_table_counts():
    candidates = candidate_table(seed=2)
    prob = np.linspace(0, 1, len(candidates))
    table = prediction_table(candidates, prob, prob, prob, 0.5, "X")
    genes = gene_table(table).set_index("TargetGene")
    for gene, rows in table.groupby("TargetGene"):
        assert genes.loc[gene, "n_candidates"] == len(rows)
        assert genes.loc[gene, "n_predicted"] == rows.predicted.sum()
        assert genes.loc[gene, "sum_prob"] == pytest.approx(rows.prob.sum())
        called = rows[rows.predicted].distance
        assert genes.loc[gene, "median_distance"] == pytest.approx(called.median()) or called.empty


def test_shift_warning_fires_beyond_the_validation_range_only():
    rng = np.random.default_rng(0)
    columns = [f"m{i}_enhancer" for i in range(6)]
    train = {c: rng.normal(0.1 * i, 1, (800, 6)) for i, c in enumerate("ABC")}
    inside = rng.normal(0.1, 1, (800, 6))
    beyond = rng.lognormal(0.8, 0.6, (800, 6))  # another lab's pipeline: shifted and skewed
    quiet, _ = shift_summary(train | {"N": inside}, "N", list("ABC"), columns)
    loud, table = shift_summary(train | {"N": beyond}, "N", list("ABC"), columns)
    assert quiet["warning"] is None and quiet["beyond_validation_range"] == []
    assert "further from the training lines than any validation line" in loud["warning"]
    assert loud["distance"]["w1_raw"] > max(v["w1_raw"] for v in loud["validation_lines"].values())
    assert list(table.feature) == columns


def test_every_model_pair_of_lines_gets_its_own_key():
    keys = {training_key([c for c in "ABCD" if c != x]) for x in "ABCDE"}
    assert len(keys) == 5 and "A+B+C+D" in keys
    assert all("+" in k for k in keys) and not any(k.startswith("+") for k in keys)
