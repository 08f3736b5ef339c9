"""Pair extraction from loops: candidates, loop support, distance-matched negatives, folds and validation."""

import numpy as np
import pandas as pd
import pytest

from epiflow.errors import InputError
from epiflow.pairs import (
    assign_folds,
    candidate_enhancers,
    candidate_pairs,
    distance_matched_negatives,
    expand_ranges,
    finalize_pairs,
    loop_support,
    merge_intervals,
    pairs_from_loops,
)

PARAMS = {
    "promoter_flank": 1000,
    "min_distance": 5000,
    "max_distance": 200_000,
    "negatives_per_positive": 2,
    "distance_bins": 4,
    "seed": 0,
}


def test_expand_ranges_matches_python():
    lo, hi = np.array([0, 5, 3, 7]), np.array([2, 5, 6, 8])
    rows, cols = expand_ranges(lo, hi)
    expected = [(i, j) for i in range(4) for j in range(lo[i], hi[i])]
    assert list(zip(rows.tolist(), cols.tolist(), strict=True)) == expected


def test_merge_intervals_joins_overlaps_only():
    frame = pd.DataFrame({"chrom": ["chr1"] * 4, "start": [100, 150, 400, 300], "end": [200, 250, 500, 400]})
    merged = merge_intervals(frame)
    # half-open: [300, 400) and [400, 500) only touch, so they stay apart
    assert merged[["start", "end"]].values.tolist() == [[100, 250], [300, 400], [400, 500]]


def test_candidate_enhancers_drop_promoter_peaks():
    peaks = pd.DataFrame({"chrom": ["chr1"] * 3, "start": [10_000, 49_500, 90_000], "end": [10_500, 50_200, 90_400]})
    tss = pd.DataFrame({"chrom": ["chr1"], "tss": [51_000], "gene": ["G"]})
    enh = candidate_enhancers(peaks, tss, promoter_flank=1000)
    assert enh.start.tolist() == [10_000, 90_000]


def hand_case():
    tss = pd.DataFrame({"chrom": ["chr1", "chr1"], "tss": [100_000, 300_000], "strand": "+", "gene": ["GA", "GB"]})
    peaks = pd.DataFrame(
        {
            "chrom": ["chr1"] * 4,
            "start": [40_000, 150_000, 160_000, 250_000],
            "end": [41_000, 151_000, 161_000, 251_000],
            "signal": 1.0,
        }
    )
    # one loop: the enhancer at 150 kb with the promoter of GB at 300 kb
    loops = pd.DataFrame(
        {
            "chrom1": ["chr1"],
            "start1": [145_000],
            "end1": [155_000],
            "chrom2": ["chr1"],
            "start2": [295_000],
            "end2": [305_000],
        }
    )
    return tss, peaks, loops


def test_loop_support_hand_checked():
    tss, peaks, loops = hand_case()
    enh = candidate_enhancers(peaks, tss, 1000)
    cands = candidate_pairs(enh, tss, 5000, 200_000)
    support = loop_support(cands, loops, 1000)
    positives = cands[support]
    assert positives[["enhancer_start", "gene"]].values.tolist() == [[150_000, "GB"]]


def test_pairs_from_loops_hand_checked():
    tss, peaks, loops = hand_case()
    pairs = pairs_from_loops(loops, tss, peaks, "cellX", PARAMS)
    pos = pairs[pairs.label == 1]
    assert len(pos) == 1 and pos.iloc[0].gene == "GB" and pos.iloc[0].enhancer_start == 150_000
    assert (pairs.label == 0).sum() == 2  # negatives_per_positive
    assert (pairs.promoter_end - pairs.promoter_start == 2000).all()


def test_pairs_from_loops_without_candidates_names_the_files():
    """Peaks that give no pair (here all further from every TSS than max_distance) stop the line with a message
    naming the peak and TSS files and the distance window expected."""
    tss, peaks, loops = hand_case()
    far = {**PARAMS, "max_distance": 6000}
    with pytest.raises(
        InputError,
        match=r"cellX: no enhancer–promoter candidates from p\.narrowPeak \(\d+ peaks .*"
        r"and tss\.tsv \(expected peaks 5000–6000 bp from a TSS",
    ):
        pairs_from_loops(loops, tss, peaks, "cellX", far, ("p.narrowPeak", "tss.tsv"))


def test_distance_matched_negatives_follow_positive_distances():
    rng = np.random.default_rng(0)
    n = 20_000
    dist = np.exp(rng.uniform(np.log(5e3), np.log(1e6), n)).astype(int)
    # positives concentrate at short range, as real loops do
    is_pos = rng.random(n) < np.where(dist < 50_000, 0.2, 0.01)
    cands = pd.DataFrame({"distance": dist})
    neg = distance_matched_negatives(cands, is_pos, per_positive=3, n_bins=10, rng=np.random.default_rng(1))
    assert not is_pos[neg].any()
    assert len(neg) == 3 * is_pos.sum()
    pos_median, neg_median = np.median(dist[is_pos]), np.median(dist[neg])
    assert abs(np.log10(pos_median) - np.log10(neg_median)) < 0.1
    # without matching, negatives would sit at much longer range
    assert np.median(dist[~is_pos]) > 3 * neg_median


def test_assign_folds():
    chroms = pd.Series(["chr1", "chr2", "chr3", "chrX"])
    assert assign_folds(chroms, [["chr1"], ["chr2", "chrX"]]).tolist() == [0, 1, -1, 1]
    assert assign_folds(chroms, None).tolist() == [0, 0, 0, 0]


def frame_for(chrom="chr1", end=2_000, label=1):
    return pd.DataFrame(
        {
            "chrom": [chrom, chrom],
            "enhancer_start": [1_000, 5_000],
            "enhancer_end": [end, 6_000],
            "promoter_start": [50_000, 60_000],
            "promoter_end": [52_000, 62_000],
            "tss": [51_000, 61_000],
            "gene": ["G1", "G2"],
            "label": [label, 0],
        }
    )


def test_finalize_pairs_adds_ids_distance_and_fold():
    out = finalize_pairs(frame_for(), "cellX", [["chr1"]], {"chr1": 100_000}, "sheet.tsv")
    assert out.pair_id.tolist() == ["chr1:1000-2000|50000-52000", "chr1:5000-6000|60000-62000"]
    assert out.distance.tolist() == [49_500, 55_500]
    assert (out.fold == 0).all() and (out.cell_line == "cellX").all()


def test_finalize_pairs_rejects_unknown_chromosome_with_row():
    with pytest.raises(InputError, match=r"pairs\.tsv row 1: chromosome 'chr9' .*genome build"):
        finalize_pairs(frame_for("chr9"), "cellX", None, {"chr1": 100_000}, "pairs.tsv")


def test_finalize_pairs_rejects_coordinates_beyond_chromosome():
    with pytest.raises(InputError, match=r"row 1: end 52000 beyond chr1 length 40000"):
        finalize_pairs(frame_for(), "cellX", None, {"chr1": 40_000}, "pairs.tsv")


def test_finalize_pairs_requires_positives():
    with pytest.raises(InputError, match="no positive pairs"):
        finalize_pairs(frame_for(label=0), "cellX", None, {"chr1": 100_000}, "pairs.tsv")
