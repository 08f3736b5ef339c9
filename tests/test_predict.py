"""The predict path's library: candidates, the final model (never trained on the predicted line), its persistence,
calibration on its validation rows, the outputs a browser reads, and the shift warning."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from test_train import synthetic_line

from conftest import REPO
from epiflow.candidates import one_tss_per_gene, predict_candidates, read_candidate_peaks, resize_peaks
from epiflow.errors import InputError, LeakageError
from epiflow.io import track_to_bigwig
from epiflow.pairs import candidate_enhancers, merge_intervals
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
    BEDPE_COLUMNS,
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
        if any(c == chrom and s - flank < t < e + flank for c, t in zip(tss.chrom, tss.tss, strict=True)):
            continue  # shares a base with a promoter [t - flank, t + flank)
        mid = (s + e) // 2
        for c, t, g in zip(genes.chrom, genes.tss, genes.gene, strict=True):
            if c == chrom and lo <= abs(mid - t) <= hi:
                out.add((chrom, s, e, g, max(t - flank, 0), min(t + flank, sizes[chrom])))
    return out


def test_candidates_match_brute_force():
    rng = np.random.default_rng(3)
    sizes = {"chr1": 60_000, "chr2": 40_000}
    planted = bookended = 0
    for _ in range(20):
        chroms = rng.choice(list(sizes), 40)
        starts = rng.integers(0, 39_000, 40)
        peaks = pd.DataFrame({"chrom": chroms, "start": starts, "end": starts + rng.integers(50, 900, 40)})
        peaks.loc[39, ["chrom", "start"]] = [peaks.chrom[38], peaks.end[38]]  # bookended: touching, not merged
        peaks.loc[39, "end"] = peaks.start[39] + 300
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
        # and one exactly at +max_distance (inside the chromosome, so the TSS is not clipped off the bound)
        k = next(i for i in range(3, 38) if mids[i] + hi < sizes[peaks.chrom[i]])
        tss.loc[3, ["chrom", "tss"]] = [peaks.chrom[k], mids[k] + hi]
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
        planted += int(((got.gene == "G3") & (got.enhancer_start == peaks.start[k])).any())
        bookended += int({peaks.start[38], peaks.start[39]} <= set(got.enhancer_start))
        if len(got):
            assert (got.label == -1).all() and got.pair_id.is_unique
            assert got.distance.between(lo, hi).all()
    # merging and promoter exclusion can remove a planted row: the edge cases must really have been scored
    assert planted > 0 and bookended > 0


def test_distance_bounds_are_inclusive_from_the_floor_midpoint():
    sizes = {"chr1": 300_000}
    peaks = pd.DataFrame({"chrom": ["chr1"], "start": [100_000], "end": [100_401]})  # odd width: mid is floored
    mid = (100_000 + 100_401) // 2
    lo, hi = 5000, 50_000
    offsets = {"+hi": hi, "-hi": -hi, "+hi+1": hi + 1, "-hi-1": -hi - 1}
    offsets |= {"+lo": lo, "-lo": -lo, "+lo-1": lo - 1, "-lo+1": -lo + 1}
    tss = pd.DataFrame(
        {"chrom": "chr1", "tss": [mid + o for o in offsets.values()], "strand": "+", "gene": list(offsets)}
    )
    got = predict_candidates(peaks, tss, tss, sizes, "X", 1000, lo, hi)
    assert set(got.gene) == {g for g, o in offsets.items() if lo <= abs(o) <= hi}
    assert {"+hi", "-hi", "+lo", "-lo"} <= set(got.gene)  # the planted rows at both bounds on both sides
    assert (got.distance == (mid - got.tss).abs()).all()


def test_promoter_exclusion_window_is_half_open():
    """An element is dropped when a promoter [tss - flank, tss + flank) shares a base with it, i.e. a TSS lies in
    (start - flank, end + flank) (epiflow.pairs.candidate_enhancers): a promoter that only touches it does not."""
    flank = 500
    starts = np.arange(5) * 10_000 + 1000
    peaks = pd.DataFrame({"chrom": "chr1", "start": starts, "end": starts + 200})
    s, e = peaks.start, peaks.end
    sites = [s[0] - flank, s[1] - flank + 1, e[2] + flank - 1, e[3] + flank]  # element 4 has no TSS near it
    tss = pd.DataFrame({"chrom": "chr1", "tss": sites, "strand": "+", "gene": ["A", "B", "C", "D"]})
    tss = pd.concat([tss, tss.assign(chrom="chr2", tss=s[4], gene="E")])  # another chromosome's TSS does not count
    kept = candidate_enhancers(peaks, tss, flank)
    assert list(kept.start) == [s[0], s[3], s[4]]
    assert list(kept.end) == [e[0], e[3], e[4]]


def test_overlapping_peaks_merge_but_bookended_ones_stay_apart():
    peaks = pd.DataFrame(
        {
            "chrom": ["chr1", "chr1", "chr1", "chr1", "chr1", "chr1", "chr2", "chr2"],
            "start": [100, 200, 400, 499, 700, 750, 200, 100],
            "end": [200, 300, 500, 600, 900, 800, 300, 200],
        }
    )
    merged = merge_intervals(peaks)
    assert merged.values.tolist() == [
        ["chr1", 100, 200],
        ["chr1", 200, 300],  # touching [100, 200): no shared base, not merged
        ["chr1", 400, 600],  # one shared base: merged
        ["chr1", 700, 900],  # contained
        ["chr2", 100, 200],
        ["chr2", 200, 300],
    ]
    # the elements of the predict path are these merged intervals, each paired from its own midpoint
    tss = pd.DataFrame({"chrom": ["chr1"], "tss": [20_000], "strand": ["+"], "gene": ["A"]})
    got = predict_candidates(peaks, tss, tss, {"chr1": 50_000, "chr2": 50_000}, "X", 10, 5000, 50_000)
    assert list(zip(got.enhancer_start, got.enhancer_end, strict=True)) == [
        (100, 200),
        (200, 300),
        (400, 600),
        (700, 900),
    ]
    assert list(got.distance) == [
        20_000 - (s + e) // 2 for s, e in zip(got.enhancer_start, got.enhancer_end, strict=True)
    ]


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


def test_candidate_peaks_past_the_chromosome_end(tmp_path):
    """Candidate elements come from the enhancer-mark peaks: one that starts past its chromosome's end (peaks of
    another build) stops, naming the line, as it would stop the mark's track; one that overhangs the end is clipped
    there (it was an element reaching beyond the genome). The same peak file stops the tracks path."""
    sizes = {"chr1": 100_000}
    row = "chr1\t{}\t{}\t.\t0\t.\t5\t1\t1\t100\n"
    path = tmp_path / "H3K27ac.narrowPeak"
    path.write_text(row.format(50_000, 50_500) + row.format(99_800, 100_900))
    peaks = read_candidate_peaks(path, "narrowpeak", {}, sizes)
    assert peaks[["start", "end"]].values.tolist() == [[50_000, 50_500], [99_800, 100_000]]
    # clipped to 200 bp, then re-sized to 500 bp around its summit (99900), shifted inside the chromosome
    peaks = read_candidate_peaks(path, "narrowpeak", {"element_width": 500, "element_resize": "at_least"}, sizes)
    assert peaks[["start", "end"]].values.tolist() == [[50_000, 50_500], [99_500, 100_000]]
    path.write_text(row.format(50_000, 50_500) + row.format(150_000, 150_500))
    message = r"H3K27ac\.narrowPeak line 2: start 150000 beyond chr1 length 100000 \(expected coordinates of the config"
    with pytest.raises(InputError, match=message):
        read_candidate_peaks(path, "narrowpeak", {}, sizes)
    with pytest.raises(InputError, match=message):
        track_to_bigwig(path, "narrowpeak", sizes, tmp_path / "H3K27ac.bw")


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
    meta = json.loads(paths[2].read_text())  # the saved metadata decides: a model whose meta lists D refuses D
    paths[2].write_text(json.dumps(meta | {"training_lines": [*meta["training_lines"], "D"]}))
    with pytest.raises(LeakageError, match="'D' is among the training lines"):
        check_not_trained_on("D", load_final(*paths))
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
    # the element is [start, end), the gene's TSS the one base [TSS, TSS + 1); some TSSs lie past their element
    tss_end = calls.TargetGeneTSS + 1
    assert (calls.TargetGeneTSS >= calls.end).any() and (calls.TargetGeneTSS < calls.start).any()
    write_bedpe(calls, tmp_path / "p.bedpe.gz")
    bedpe = pd.read_csv(tmp_path / "p.bedpe.gz", sep="\t", header=None, names=BEDPE_COLUMNS, dtype={"name": str})
    expected = pd.DataFrame(
        {
            "chrom1": calls.chrom,
            "start1": calls.start,
            "end1": calls.end,
            "chrom2": calls.chrom,
            "start2": calls.TargetGeneTSS,
            "end2": tss_end,
            "name": calls.name + "|" + calls.TargetGene,
        }
    )
    pd.testing.assert_frame_equal(bedpe[expected.columns], expected, check_dtype=False)
    assert (bedpe.strand1 == ".").all() and (bedpe.strand2 == ".").all()
    np.testing.assert_array_equal(bedpe.score, np.round(calls.prob * 1000).astype(int))
    np.testing.assert_array_equal(bedpe_table(calls).score, np.round(calls.prob * 1000).astype(int))
    write_interact(calls, {"chr1": 1_000_000, "chr2": 1_000_000, "chr3": 5}, tmp_path / "i.bb")
    back = read_interact(tmp_path / "i.bb")
    assert len(back) == len(calls)
    # bigBed rows come back sorted by position: match them to the calls by element and gene
    order = ["sourceChrom", "sourceStart", "sourceEnd", "targetName", "targetStart"]
    back = back.sort_values(order).reset_index(drop=True)
    calls = calls.sort_values(["chrom", "start", "end", "TargetGene", "TargetGeneTSS"]).reset_index(drop=True)
    tss_end = calls.TargetGeneTSS + 1
    expected = pd.DataFrame(
        {
            "chrom": calls.chrom,
            "chromStart": np.minimum(calls.start, calls.TargetGeneTSS),
            "chromEnd": np.maximum(calls.end, tss_end),
            "name": calls.name + "/" + calls.TargetGene,
            "score": np.round(calls.prob * 1000).astype(int),
            "sourceChrom": calls.chrom,
            "sourceStart": calls.start,
            "sourceEnd": calls.end,
            "sourceName": calls.name,
            "targetChrom": calls.chrom,
            "targetStart": calls.TargetGeneTSS,
            "targetEnd": tss_end,
            "targetName": calls.TargetGene,
        }
    )
    pd.testing.assert_frame_equal(back[expected.columns], expected, check_dtype=False)
    np.testing.assert_allclose(back.value, calls.prob, rtol=1e-5)
    # the interaction spans both regions (UCSC: start of the lower, end of the upper region)
    assert (back.chromStart <= np.minimum(back.sourceStart, back.targetStart)).all()
    assert (back.chromEnd >= np.maximum(back.sourceEnd, back.targetEnd)).all()
    assert (back.sourceStrand == ".").all() and (back.targetStrand == ".").all()


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


def test_shift_warning_compares_with_the_furthest_validation_line_on_each_criterion():
    """Validation lines differing in scale (large W1, a linear probe near chance) and in location (the probe finds
    it): a line inside their W1 range is silent, one past it on only W1 or only the probe warns."""
    rng = np.random.default_rng(0)
    columns = [f"m{i}_enhancer" for i in range(6)]
    train = {"A": rng.normal(0, 0.6, (800, 6)), "B": rng.normal(0.35, 1, (800, 6)), "C": rng.normal(0, 1.8, (800, 6))}
    lines = {
        "inside": rng.normal(0.1, 2.2, (800, 6)),  # wider than most, not as far as the furthest validation line
        "wider": rng.normal(0.1, 4.0, (800, 6)),  # far on W1, still not linearly separable
        "moved": rng.normal(0.8, 1.0, (800, 6)),  # a location shift: modest W1, an easy probe
    }
    records = {name: shift_summary(train | {"N": x}, "N", list("ABC"), columns)[0] for name, x in lines.items()}
    validation = records["inside"]["validation_lines"]
    assert set(validation) == set("ABC")
    w1 = [v["w1_raw"] for v in validation.values()]
    probe = [v["domain_probe_accuracy"] for v in validation.values()]
    for record in records.values():  # the validation lines do not depend on the predicted line
        assert [v["w1_raw"] for v in record["validation_lines"].values()] == w1
    inside = records["inside"]["distance"]
    assert np.mean(w1) < inside["w1_raw"] < max(w1) and inside["domain_probe_accuracy"] < max(probe)
    assert records["inside"]["beyond_validation_range"] == [] and records["inside"]["warning"] is None
    wider = records["wider"]["distance"]
    assert wider["w1_raw"] > max(w1) and wider["domain_probe_accuracy"] < max(probe)
    assert records["wider"]["beyond_validation_range"] == ["w1_raw"] and records["wider"]["warning"]
    moved = records["moved"]["distance"]
    assert moved["w1_raw"] < max(w1) and moved["domain_probe_accuracy"] > max(probe)
    assert records["moved"]["beyond_validation_range"] == ["domain_probe_accuracy"]
    assert "further from the training lines than any validation line" in records["moved"]["warning"]


# the Snakemake script run as Snakemake runs it: a `snakemake` object in its globals
RUNNER = """
import json, runpy, sys, types
spec = json.load(open(sys.argv[1]))
ns = {k: types.SimpleNamespace(**v) if isinstance(v, dict) else v for k, v in spec.items()}
runpy.run_path(sys.argv[2], init_globals={"snakemake": types.SimpleNamespace(**ns)})
"""


def test_predict_score_script_refuses_a_model_trained_on_the_line(lines, tmp_path):
    final = fit_final(lines, ["A", "B", "C"], "distance", {}, seed=0)
    model = {"model": tmp_path / "model.pkl", "validation": tmp_path / "validation.tsv.gz", "meta": tmp_path / "m.json"}
    save_final(final, *model.values())
    outputs = {"scores": tmp_path / "scores.tsv.gz", "calibration": tmp_path / "calibration.json"}
    spec = {
        "scriptdir": str(REPO / "scripts"),
        "log": [str(tmp_path / "log.txt")],
        "threads": 1,
        "input": {k: str(v) for k, v in model.items()}
        | {"candidates": str(tmp_path / "candidates.tsv.gz"), "features": str(tmp_path), "tads": []},
        "output": {k: str(v) for k, v in outputs.items()},
        "params": {"tad_lines": [], "chrom_map": None, "calibration": CFG},
    }
    script = REPO / "scripts" / "predict_score.py"

    def run(line):
        (tmp_path / "spec.json").write_text(json.dumps(spec | {"wildcards": {"line": line}}))
        (tmp_path / "log.txt").write_text("")
        proc = subprocess.run([sys.executable, "-c", RUNNER, str(tmp_path / "spec.json"), str(script)], timeout=600)
        return proc.returncode, (tmp_path / "log.txt").read_text()

    code, log = run("B")
    assert code != 0
    # refused before reading the candidates (none were written): a LeakageError, not a missing file
    assert "LeakageError" in log and "'B' is among the training lines" in log, log[-3000:]
    assert not any(path.exists() for path in outputs.values())
    code, log = run("D")  # a line the model was not fitted on passes the check (and stops at the missing candidates)
    assert code != 0 and "candidates.tsv.gz" in log and "LeakageError" not in log, log[-3000:]


def test_every_model_pair_of_lines_gets_its_own_key():
    keys = {training_key([c for c in "ABCD" if c != x]) for x in "ABCDE"}
    assert len(keys) == 5 and "A+B+C+D" in keys
    assert all("+" in k for k in keys) and not any(k.startswith("+") for k in keys)
