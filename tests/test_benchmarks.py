"""The benchmark scripts' own logic (the runs they make are measurements, not tests): the seed comparison, the
per-model summary of the real study and how a run's TAD lists are found."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bengi  # noqa: E402
import calibration_lolo  # noqa: E402
import predict_honesty  # noqa: E402
import rundata  # noqa: E402
import seeds  # noqa: E402

from epiflow.metrics import precision_recall_f1  # noqa: E402


def runs(edge, noise, n=5):
    rng = np.random.default_rng(0)
    base = 0.7 + rng.normal(0, 0.05, n)  # seed noise shared by both models (paired seeds)
    rows = [{"model": "epinet", "seed": s, "test_aupr": b} for s, b in enumerate(base)]
    rows += [{"model": "irm", "seed": s, "test_aupr": b + edge + rng.normal(0, noise)} for s, b in enumerate(base)]
    return pd.DataFrame(rows)


def test_seed_comparison_flags_only_consistent_differences():
    clear = seeds.compare(runs(0.05, 0.005), "epinet").set_index("model")
    assert clear.loc["irm", "beyond_seed_noise"] and clear.loc["irm", "diff_vs_epinet"] == pytest.approx(0.05, abs=0.01)
    assert not clear.loc["epinet", "beyond_seed_noise"]
    noisy = seeds.compare(runs(0.02, 0.05), "epinet").set_index("model")
    assert not noisy.loc["irm", "beyond_seed_noise"]
    assert noisy.loc["irm", "seeds"] == 5 and noisy.loc["irm", "test_aupr_sd"] > 0


def test_bengi_summary_table_gap_and_order():
    rows = []
    for model, train, test in [("gbm", 0.86, 0.61), ("robust", 0.64, 0.62)]:
        for split, value in [("train", train), ("val", 0.3), ("test", test)]:
            rows.append({"heldout": "IMR90", "model": model, "split": split, "aupr": value, "ece": 0.01, "f1": 0.5})
    table = bengi.summary_table(pd.DataFrame(rows))
    assert list(table.model) == ["robust", "gbm"]
    assert table.set_index("model").loc["gbm", "gap"] == pytest.approx(0.25)
    assert {"ece", "f1"} <= set(table.columns) and "auroc" not in table.columns
    # with the prediction tables: validation's choice, by the mean per-line validation AUPR, not the test order
    y = np.tile([1, 0, 0, 0], 20)
    val = lambda score: pd.DataFrame(
        {"cell_line": np.repeat(["A", "B"], 40), "label": y, "split": "val", "score": score}
    )  # noqa: E731
    by_line = {"IMR90": {"gbm": val(y * 0.8 + 0.1), "robust": val(np.linspace(0, 1, len(y)))}}
    chosen = bengi.summary_table(pd.DataFrame(rows), by_line).set_index("model")
    assert chosen.chosen.to_dict() == {"robust": False, "gbm": True} and chosen.loc["gbm", "val_aupr_lines"] == 1.0


def test_tad_paths_resolve_urls_from_the_cache_and_local_sources_by_sheet(tmp_path):
    (tmp_path / "config" / "x").mkdir(parents=True)
    (tmp_path / "resources" / "cache" / "ab12").mkdir(parents=True)
    (tmp_path / "resources" / "cache" / "ab12" / "A_domains.txt.gz").write_text("")
    (tmp_path / "tads").mkdir()
    (tmp_path / "tads" / "b.bed").write_text("")
    sheet = "cell_line\tsource\tformat\nA\thttps://example.org/x/A_domains.txt.gz\tarrowhead\n"
    sheet += "B\t../../tads/b.bed\tbed\nC\thttps://example.org/C_missing.txt.gz\tarrowhead\n"
    (tmp_path / "config" / "x" / "tads.tsv").write_text(sheet)
    found = rundata.tad_paths(tmp_path, {"tads": "config/x/tads.tsv"})
    assert found == {
        "A": tmp_path / "resources/cache/ab12/A_domains.txt.gz",
        "B": (tmp_path / "tads/b.bed").resolve(),
    }
    assert rundata.tad_paths(tmp_path, {"tads": None}) == {}


def test_config_layers_like_snakemake():
    merged = rundata.deep_update({"a": {"x": 1, "y": 2}, "b": 1}, {"a": {"y": 3}, "c": 4})
    assert merged == {"a": {"x": 1, "y": 3}, "b": 1, "c": 4}
    config = rundata.load_config(rundata.REPO / "config/bengi_hg19.yaml")
    assert config["protocol"]["test"] == ["IMR90"] and "ece_bins" in config["calibration"]
    # several overlays, later ones win, as `snakemake --configfile A B`
    zoo, cue = rundata.REPO / "config/demo_zoo.yaml", rundata.REPO / "config/demo_cue/reversed_in_lineD.yaml"
    layered = rundata.load_config([zoo, cue])
    assert layered["simulate"]["seed"] == 13 and layered["simulate"]["spurious"]["strength"]["lineD"] == -1.0
    assert "epinet_screen" in layered["model_params"] and layered["simulate"]["chromosomes"] == 4


def test_seeds_reports_what_was_chosen_on_validation():
    info = {"grid": [{"fold": 0, "chosen": {"irm": 0.1}}, {"fold": 1, "chosen": {"irm": 1.0}}]}
    assert seeds.chosen_on_validation(info) == "fold 0: {'irm': 0.1}; fold 1: {'irm': 1.0}"
    assert seeds.chosen_on_validation({"screen": [{"fold": 0, "dropped": ["H2AZ"]}]}) == "fold 0: dropped ['H2AZ']"
    assert seeds.chosen_on_validation({}) == ""


def test_seeds_keeps_the_screens_validation_trace():
    from epiflow.models import PairData

    rng = np.random.default_rng(4)
    data = {}
    for line, link in {"A": 1.5, "B": 1.5, "C": -1.5, "D": -1.5}.items():  # the cue flips in C and D
        n = 300
        label = (rng.random(n) < 0.3).astype(int)
        frame = pd.DataFrame({"pair_id": [f"{line}{i}" for i in range(n)], "cell_line": line, "label": label})
        frame = frame.assign(chrom=rng.choice(["chr1", "chr2"], n), distance=rng.integers(5_000, 500_000, n))
        table = np.column_stack([2 * label + rng.standard_normal(n), link * (2 * label - 1) + rng.standard_normal(n)])
        data[line] = PairData(frame, table.astype(np.float32), ["real_enhancer", "cue_enhancer"])
    traces = []
    params = {"max_iter": 20, "screen_marks": True}
    row = seeds.one_run(data, "D", ["A", "B", "C"], [["chr1"], ["chr2"]], "gbm", params, 0, traces=traces)
    assert row["chosen"] == "fold 0: dropped ['cue']; fold 1: dropped ['cue']"
    (kept,) = traces
    assert kept["model"] == "gbm" and [s["fold"] for s in kept["screen"]] == [0, 1]
    first = [t for t in kept["screen"][0]["trace"] if t["round"] == 1]
    assert {t["candidate"] for t in first} == {"real", "cue"} and all(0 < t["val_aupr"] <= 1 for t in first)
    seeds.one_run(data, "D", ["A", "B", "C"], [["chr1"], ["chr2"]], "gbm", {"max_iter": 20}, 0, traces=traces)
    assert len(traces) == 1  # a model that chose nothing on validation leaves no trace


def test_line_fits_recover_a_lines_own_calibration_map(tmp_path):
    """Two lines whose scores are calibrated and one whose labels follow sigmoid(1.5 logit(score) + 0.5): its own
    Platt map is found, the others' is the identity; test rows are never read."""
    rng = np.random.default_rng(1)
    parts = []
    for line, (a, b) in {"A": (1.0, 0.0), "B": (1.0, 0.0), "C": (1.5, 0.5)}.items():
        score = expit(rng.normal(-2.5, 1.2, 20000))
        label = (rng.random(score.size) < expit(a * logit(score) + b)).astype(int)
        parts.append(pd.DataFrame({"cell_line": line, "fold": 0, "split": "val", "score": score, "label": label}))
    parts.append(pd.DataFrame({"cell_line": "H", "fold": 0, "split": "test", "score": np.nan, "label": 7}, index=[0]))
    table = pd.concat(parts, ignore_index=True).assign(chrom="chr1")
    table = table.assign(pair_id=[f"p{i}" for i in range(len(table))])
    (tmp_path / "results" / "predictions" / "H").mkdir(parents=True)
    table.to_csv(tmp_path / "results" / "predictions" / "H" / "gbm.tsv.gz", sep="\t", index=False)
    fits = calibration_lolo.line_fits(tmp_path, "gbm").set_index("line")
    assert list(fits.index) == ["A", "B", "C"]
    assert fits.loc["C", "platt_a_own"] == pytest.approx(1.5, abs=0.1)
    assert fits.loc["C", "platt_b_own"] == pytest.approx(0.5, abs=0.2)
    for line in ("A", "B"):
        assert fits.loc[line, "platt_a_own"] == pytest.approx(1.0, abs=0.1)
        assert fits.loc[line, "temperature_own"] == pytest.approx(1.0, abs=0.1)


def test_calibration_lolo_reads_validation_rows_only(tmp_path):
    """Each validation line of each fold left out in turn; test rows (here unreadable labels) are never touched."""
    rng = np.random.default_rng(0)
    parts = []
    for fold in (0, 1):
        for line in ("A", "B", "C"):
            big = fold == 1 and line == "C"  # fold 1: one big, low-rate line
            score = rng.beta(1, 20, 8000) if big else rng.beta(1, 6, 2000)
            parts.append(
                pd.DataFrame(
                    {
                        "cell_line": line,
                        "fold": fold,
                        "split": "val",
                        "score": score,
                        "label": (rng.random(score.size) < score).astype(int),
                    }
                )
            )
        parts.append(
            pd.DataFrame(
                {"cell_line": "H", "fold": fold, "split": "test", "score": np.nan, "label": 7}, index=range(50)
            )
        )
    table = pd.concat(parts, ignore_index=True)
    table = table.assign(pair_id=[f"p{i}" for i in range(len(table))], chrom=np.where(table.fold == 0, "chr1", "chr2"))
    (tmp_path / "results" / "predictions" / "H").mkdir(parents=True)
    table.to_csv(tmp_path / "results" / "predictions" / "H" / "gbm.tsv.gz", sep="\t", index=False)
    rows = calibration_lolo.left_out_rows(tmp_path, "gbm")
    assert len(rows) == 6 and set(rows.left_out) == {"A", "B", "C"} and set(rows.heldout) == {"H"}
    # scores that are probabilities already: small ECE and rate gap, small regret either way
    assert rows.ece.max() < 0.03 and rows.gap.abs().max() < 0.02
    assert rows.regret_expected.max() < 0.05 and rows[rows.fold == 0].regret_validation.max() < 0.05
    # lines of equal size (fold 0): weighing each line the same is weighing each row the same; with the big line
    # among the fitted ones (fold 1, A or B left out) the balanced threshold is another one
    even, uneven = rows[rows.fold == 0], rows[(rows.fold == 1) & (rows.left_out != "C")]
    np.testing.assert_allclose(even.regret_balanced, even.regret_validation, atol=1e-12)
    np.testing.assert_allclose(even.recall_error_balanced, even.recall_error_validation, atol=1e-12)
    # ... nearer the left-out small line's own: the big low-rate line no longer sets it
    assert np.all(uneven.regret_balanced < uneven.regret_validation)
    assert np.all(uneven.recall_error_balanced < uneven.recall_error_validation)
    # equal-sized lines: the line-balanced calibrator is the rows' one; with the big low-rate line fitted, it is not
    np.testing.assert_allclose(even.ece_lines, even.ece, atol=1e-6)
    assert np.all(np.abs(uneven.gap_lines - uneven.gap) > 1e-4)
    with pytest.raises(SystemExit, match="no finished held-out line"):
        calibration_lolo.left_out_rows(tmp_path, "distance")


def test_expected_threshold_is_the_brute_force_plug_in_optimum():
    """Expected TP at t = sum of p >= t, expected positives = sum of p: F1 maximized, recall and precision targets
    met, checked against a loop over every candidate threshold."""
    p = np.random.default_rng(4).beta(0.6, 4.0, 300)
    candidates = np.unique(p)
    tp = np.array([p[p >= t].sum() for t in candidates])
    called = np.array([(p >= t).sum() for t in candidates])
    f1 = 2 * tp / (called + p.sum())
    assert calibration_lolo.expected_threshold(p) == candidates[np.flatnonzero(f1 == f1.max())[-1]]
    assert calibration_lolo.expected_threshold(p, "recall", 0.7) == candidates[tp / p.sum() >= 0.7].max()
    assert calibration_lolo.expected_threshold(p, "precision", 0.4) == candidates[tp / called >= 0.4].min()
    with pytest.raises(calibration_lolo.InputError, match="probabilities"):
        calibration_lolo.expected_threshold(np.zeros(5))


def test_line_mean_threshold_is_the_brute_force_mean_of_the_lines_metrics():
    """Round 5's R5b (not adopted): every candidate threshold, each line's F1 and recall by precision_recall_f1,
    averaged over the lines (a line without positives left out)."""
    rng = np.random.default_rng(12)
    p = np.round(rng.beta(1, 5, 900), 3)  # ties
    lines = np.repeat(["A", "B", "C", "D"], [500, 250, 100, 50])
    y = (rng.random(p.size) < np.where(lines == "B", 2.5 * p, p)).astype(int)
    y[lines == "D"] = 0
    candidates = np.unique(p)
    scored = list("ABC")
    f1 = [np.mean([precision_recall_f1(y[lines == k], p[lines == k], t)[2] for k in scored]) for t in candidates]
    recall = [np.mean([precision_recall_f1(y[lines == k], p[lines == k], t)[1] for k in scored]) for t in candidates]
    f1, recall = np.array(f1), np.array(recall)
    assert calibration_lolo.choose_threshold_line_mean(y, p, lines) == candidates[np.flatnonzero(f1 == f1.max())[-1]]
    expected = candidates[recall >= 0.7 - 1e-12].max()
    assert calibration_lolo.choose_threshold_line_mean(y, p, lines, "recall", 0.7) == expected
    for rule, target in (("precision", 0.5), ("recall", None)):
        with pytest.raises(calibration_lolo.InputError, match="rule"):
            calibration_lolo.choose_threshold_line_mean(y, p, lines, rule, target)


def test_round3_test_f1_uses_each_folds_expected_threshold(tmp_path):
    rng = np.random.default_rng(1)
    prob = rng.beta(1, 5, 400)
    test = pd.DataFrame({"fold": np.repeat([0, 1], 200), "split": "test", "prob": prob, "score": prob})
    test["label"] = (rng.random(400) < prob).astype(int)
    (tmp_path / "results" / "predictions" / "H").mkdir(parents=True)
    test.to_csv(tmp_path / "results" / "predictions" / "H" / "gbm.tsv.gz", sep="\t", index=False)
    thresholds = np.repeat(
        [calibration_lolo.expected_threshold(prob[:200]), calibration_lolo.expected_threshold(prob[200:])], 200
    )
    called, y = prob >= thresholds, test.label.to_numpy() == 1
    precision, recall = (called & y).sum() / called.sum(), (called & y).sum() / y.sum()
    f1 = calibration_lolo.round3_test_f1(tmp_path, "gbm")
    assert f1["H"] == pytest.approx(2 * precision * recall / (precision + recall))


def test_honesty_label_units_count_rows_per_element_gene_pair():
    """BENGI lists an element-gene pair once per transcript TSS: rows of one element and gene are one unit."""
    pairs = pd.DataFrame(
        {
            "chrom": ["chr1", "chr1", "chr1", "chr1", "chr2"],
            "enhancer_start": [100, 100, 100, 100, 100],
            "enhancer_end": [600, 600, 600, 600, 600],
            "gene": ["A", "A", "B", "B", "A"],  # A on chr1 twice (two TSSs), B twice with mixed labels, A on chr2
            "tss": [50_000, 52_000, 70_000, 71_000, 50_000],
            "label": [1, 1, 0, 1, 0],
        }
    )
    units = predict_honesty.label_units(pairs)
    assert units["element-gene pairs"] == 3 and units["rows per pair"] == 5 / 3
    assert units["pairs with several rows"] == 2 / 3 and units["pairs with mixed labels"] == 1 / 3


def test_honesty_join_needs_the_same_element_and_promoter():
    """A pair is covered by a candidate of its gene whose element overlaps its own and, with a tolerance, whose TSS
    is that close to the pair's; its score is the max over such candidates."""
    pairs = pd.DataFrame(
        {
            "chrom": ["chr1"] * 4,
            "enhancer_start": [1000, 1000, 5000, 9000],
            "enhancer_end": [1500, 1500, 5600, 9500],
            "tss": [50_000, 80_000, 50_000, 50_000],
            "symbol": ["A", "A", "A", None],
        }
    )
    predictions = pd.DataFrame(
        {
            "chrom": ["chr1"] * 4,
            "start": [1400, 900, 5600, 9000],
            "end": [1900, 1100, 6000, 9500],
            "TargetGene": ["A", "A", "A", "B"],
            "TargetGeneTSS": [50_800, 49_400, 50_000, 50_000],
            "score": [0.8, 0.7, 0.9, 0.5],
        }
    )
    same = predict_honesty.join_genome_wide(pairs, predictions, 1000).genome_wide
    assert same.iloc[0] == 0.8 and same.iloc[1:].isna().all()  # touching (5600) does not overlap; gene None: none
    tight = predict_honesty.join_genome_wide(pairs, predictions, 600).genome_wide
    assert tight.iloc[0] == 0.7 and np.isnan(tight.iloc[1])  # 800 bp off is out, 600 bp off (the bound) is in
    assert np.isnan(predict_honesty.join_genome_wide(pairs, predictions, 599).genome_wide.iloc[0])
    any_tss = predict_honesty.join_genome_wide(pairs, predictions, None).genome_wide
    assert any_tss.iloc[0] == 0.8 and any_tss.iloc[1] == 0.8 and any_tss.iloc[2:].isna().all()
