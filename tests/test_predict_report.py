"""The predict report: the disagreement table on constructed pairs, the choice of locus genes, a locus figure on a
tiny bigWig, and the whole page on a constructed predict run (with and without a shift warning, with labels and a
CRISPRi screen)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyBigWig
import pytest

from epiflow import loci, plots
from epiflow.errors import InputError
from epiflow.predict_outputs import gene_table, write_table
from epiflow.predict_report import (
    PredictReportInputs,
    best_matches,
    build_predict_report,
    crispr_sentence,
    disagreement_table,
    join_pairs,
    screen_genes,
)

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "resources" / "report" / "predict.html.j2"
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//""", re.I)
PNG = b"\x89PNG\r\n\x1a\n"
CHROM_SIZE = 400_000
MARKS = ["H3K27ac", "DNase"]


def labelled_pairs(starts, genes, labels, chrom="chr1", width=1000) -> pd.DataFrame:
    starts = np.asarray(starts)
    return pd.DataFrame(
        {
            "pair_id": [f"{chrom}:{s}|{g}" for s, g in zip(starts, genes, strict=True)],
            "cell_line": "L",
            "chrom": chrom,
            "enhancer_start": starts,
            "enhancer_end": starts + width,
            "promoter_start": 200_000,
            "promoter_end": 201_000,
            "tss": 200_500,
            "gene": list(genes),
            "label": list(labels),
            "distance": np.abs(starts + width // 2 - 200_500),
            "fold": -1,
        }
    )


def prediction_rows(starts, genes, prob, score_sd, threshold=0.5, chrom="chr1", width=1000) -> pd.DataFrame:
    starts, prob = np.asarray(starts), np.asarray(prob, np.float64)
    return pd.DataFrame(
        {
            "chrom": chrom,
            "start": starts,
            "end": starts + width,
            "name": [f"{chrom}:{s}-{s + width}" for s in starts],
            "TargetGene": list(genes),
            "TargetGeneTSS": 200_500,
            "CellType": "L",
            "distance": np.abs(starts + width // 2 - 200_500),
            "score": prob,
            "prob": prob,
            "predicted": prob >= threshold,
            "score_sd": np.asarray(score_sd, np.float64),
        }
    )


# ---- disagreement ---------------------------------------------------------------------------------------------------
def test_precision_falls_in_the_bin_where_errors_are_planted():
    rng = np.random.default_rng(0)
    n = 500
    starts = np.arange(n) * 2000 + 10_000
    label = (rng.random(n) < 0.3).astype(int)
    sd = rng.random(n)
    prob = np.where(label == 1, 0.8, 0.1)
    high = sd >= np.quantile(sd, 0.8)
    planted = high & (label == 0) & (rng.random(n) < 0.7)  # confident errors where the fits disagree
    prob[planted] = 0.9
    genes = [f"G{i % 7}" for i in range(n)]
    pairs = labelled_pairs(starts, genes, label)
    # the element overlaps the pair's enhancer by part of it: overlap, not identity, is what matches
    predictions = prediction_rows(starts + 300, genes, prob, sd)
    table = disagreement_table(predictions, pairs, threshold=0.5)
    assert list(table.bin) == [1, 2, 3, 4, 5] and table.n.sum() == n
    assert (table.sd_lo.diff().dropna() > 0).all(), "bins run from low to high score_sd"
    assert (table.precision.iloc[:4] == 1.0).all() and table.precision.iloc[4] < 0.6
    assert table.aupr.iloc[4] < table.aupr.iloc[:4].min()
    assert (table.recall == 1.0).all() and {"n", "n_pos", "precision", "recall", "aupr"} <= set(table.columns)


def test_join_takes_the_pair_gene_and_half_open_overlap():
    # two genes' pairs on one enhancer: G1's prediction there is confident, G2's is not
    pairs = labelled_pairs([10_000, 10_000, 50_000, 90_000], ["G1", "G2", "G3", "G1"], [1, 0, 1, 0])
    predictions = prediction_rows(
        [10_200, 10_500, 10_400, 50_000, 91_000],
        ["G1", "G1", "G2", "G1", "G1"],
        prob=[0.9, 0.4, 0.05, 0.99, 0.7],
        score_sd=[0.01, 0.2, 0.3, 0.0, 0.0],
    )
    joined = join_pairs(predictions, pairs).set_index("pair_id")
    # G1 at 10 kb: the highest prob of its two overlapping elements, and that element's score_sd
    assert joined.loc["chr1:10000|G1", ["prob", "score_sd"]].tolist() == [0.9, 0.01]
    # G2 takes its own prediction, not G1's (a join that ignored the gene would give 0.9)
    assert joined.loc["chr1:10000|G2", "prob"] == 0.05
    # G3: a G1 prediction overlaps its enhancer, but for another gene: unmatched
    assert not joined.loc["chr1:50000|G3", "matched"] and np.isnan(joined.loc["chr1:50000|G3", "prob"])
    # [91000, 92000) only touches [90000, 91000): no overlap
    assert not joined.loc["chr1:90000|G1", "matched"]
    table = disagreement_table(predictions, pairs, threshold=0.5)
    assert table.n.sum() == 2 and table.n_pos.sum() == 1


def test_best_matches_takes_the_highest_key_per_pair_and_the_first_on_ties():
    # pair 0 matches rows 3, 1, 2 (key 0.2, 0.9, 0.9: the tie goes to the first match, row 1); pair 2 matches row 0;
    # pair 1 and pair 3 match nothing
    owner, hit = np.array([0, 0, 0, 2]), np.array([3, 1, 2, 0])
    key = np.array([0.1, 0.9, 0.9, 0.2])
    assert best_matches(owner, hit, key, 4).tolist() == [1, -1, 0, -1]
    assert best_matches(owner[:0], hit[:0], key, 2).tolist() == [-1, -1]


def test_disagreement_table_without_matches_is_empty():
    pairs = labelled_pairs([10_000], ["G1"], [1])
    predictions = prediction_rows([10_000], ["G9"], [0.9], [0.1])
    assert disagreement_table(predictions, pairs, 0.5).empty


# ---- loci -----------------------------------------------------------------------------------------------------------
def test_choose_genes_named_then_top_then_screen_each_once(caplog):
    predictions = prediction_rows(np.arange(8) * 2000, ["A", "A", "A", "B", "B", "C", "D", "E"], [0.9] * 8, [0] * 8)
    predictions.loc[predictions.TargetGene.isin(["D", "E"]), "predicted"] = False
    genes = gene_table(predictions)
    chosen = loci.choose_genes(genes, predictions, named=["C", "nowhere"], top=2, screen_genes=["B", "E", "gone"])
    assert chosen == ["C", "A", "B", "E"]
    assert "predict.loci.genes ['nowhere'] have no candidate link" in caplog.text  # a misspelt name is said
    # genes without a call are never "top", whatever `top` asks for
    assert loci.choose_genes(genes, predictions, [], top=10) == ["A", "B", "C"]


def write_bigwig(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    starts = np.arange(0, CHROM_SIZE, 200)
    with pyBigWig.open(str(path), "w") as bw:
        bw.addHeader([("chr1", CHROM_SIZE)])
        bw.addEntries(
            ["chr1"] * len(starts),
            starts.tolist(),
            ends=(starts + 200).tolist(),
            values=rng.random(len(starts)).tolist(),
        )
    return path


def write_tads(path: Path, bounds) -> Path:
    path.write_text("".join(f"chr1\t{a}\t{b}\n" for a, b in zip(bounds[:-1], bounds[1:], strict=True)))
    return path


def test_locus_figure_renders_on_a_tiny_bigwig(tmp_path):
    tracks = {m: write_bigwig(tmp_path / f"{m}.bw", i) for i, m in enumerate(MARKS)}
    starts = np.arange(20) * 9000 + 100_000
    prob = np.linspace(0.01, 0.6, 20)
    predictions = prediction_rows(starts, ["G1"] * 20, prob, np.zeros(20), threshold=0.3)
    tads = {"lineA": pd.DataFrame({"chrom": "chr1", "start": [0, 150_000], "end": [150_000, CHROM_SIZE]})}
    png = loci.gene_locus("G1", predictions, tracks, tads, threshold=0.3, flank=50_000)
    assert png.startswith(PNG) and len(png) > 20_000
    edges, values = loci.read_signal(tracks["DNase"], "chr1", 380_000, 450_000, n_bins=1000)
    assert edges[-1] == CHROM_SIZE and len(values) == 1000 and (values > 0).all()  # clipped to the chromosome
    _, missing = loci.read_signal(tracks["DNase"], "chr9", 0, 1000)
    assert (missing == 0).all()
    with pytest.raises(ValueError, match="G9"):
        loci.gene_locus("G9", predictions, tracks, tads, 0.3, 50_000)


# ---- the page -------------------------------------------------------------------------------------------------------
def write_run(tmp_path: Path, warning: str | None, labelled: bool = True, crispr: bool = True) -> PredictReportInputs:
    """One predicted line L (model gbm) with final-model training lines A and B, tracks, TADs; optionally a pair
    table of L and a CRISPRi screen of L."""
    rng = np.random.default_rng(1)
    run = tmp_path / "run"
    run.mkdir()
    n = 60
    starts = np.sort(rng.choice(np.arange(20, 380) * 1000, n, replace=False))
    genes = np.where(starts < 200_000, "GA", "GB")
    label = (rng.random(n) < 0.3).astype(int)
    prob = np.clip(0.5 * label + 0.5 * rng.random(n), 0, 1)
    table = prediction_rows(starts, genes, prob, rng.random(n) * 0.1, threshold=0.5, width=800)
    table["TargetGeneTSS"] = np.where(genes == "GA", 100_000, 300_000)
    write_table(table, run / "predictions.tsv.gz")
    gene_table(table).to_csv(run / "genes.tsv", sep="\t", index=False)
    notes = {"method": "platt", "threshold": 0.5, "threshold_rule": "recall 0.7", "label_shift_estimator": "em"}
    notes |= {"label_shift_applied": True, "test_prior_estimate": 0.031, "val_prior": 0.072, "genome_wide_rate": 0.03}
    (run / "calibration.json").write_text(json.dumps(notes))
    distance = {"w1_raw": 0.9, "w1_normalized": 0.2, "domain_probe_accuracy": 0.8}
    validation = {c: {"w1_raw": 0.3, "w1_normalized": 0.1, "domain_probe_accuracy": 0.6} for c in ("A", "B")}
    features = [{"feature": f"f{i}", "w1_raw": i / 10, "w1_normalized": i / 20} for i in range(12)]
    shift = {"line": "L", "training_lines": ["A", "B"], "distance": distance, "validation_lines": validation}
    shift |= {"beyond_validation_range": ["w1_raw"] if warning else [], "warning": warning, "features": features}
    (run / "shift.json").write_text(json.dumps(shift))
    (run / "meta.json").write_text(json.dumps({"model": "gbm", "training_lines": ["A", "B"]}))
    tracks = {m: str(write_bigwig(run / f"{m}.bw", i)) for i, m in enumerate(MARKS)}
    bounds = {"A": [0, 150_000, CHROM_SIZE], "B": [0, CHROM_SIZE]}
    tads = {c: str(write_tads(run / f"{c}.bed", b)) for c, b in bounds.items()}
    key = ("L", "gbm")
    inputs = PredictReportInputs(
        predictions={key: str(run / "predictions.tsv.gz")},
        genes={key: str(run / "genes.tsv")},
        calibration={key: str(run / "calibration.json")},
        shift={key: str(run / "shift.json")},
        meta={key: str(run / "meta.json")},
        tracks={"L": tracks},
        tads=tads,
    )
    if labelled:
        pairs = labelled_pairs(starts, genes, label, width=800)
        pairs.to_csv(run / "pairs.tsv.gz", sep="\t", index=False)
        inputs.pairs = {"L": str(run / "pairs.tsv.gz")}
    if crispr:
        inputs.crispr = [write_screen(run, starts[:3], genes[:3])]
    return inputs


def write_screen(run: Path, starts, genes, regulated=None) -> dict:
    """A CRISPRi screen of L (EPCrisprBenchmark columns) and the files the crispr rules write for it."""
    regulated = ["TRUE"] * len(genes) if regulated is None else regulated
    screen = pd.DataFrame(
        {
            "chrom": "chr1",
            "chromStart": starts,
            "chromEnd": np.asarray(starts) + 500,
            "measuredGeneSymbol": genes,
            "startTSS": 100_000,
            "endTSS": 100_001,
            "Regulated": regulated,
            "ValidConnection": "TRUE",
            "CellType": "L",
        }
    )
    screen.to_csv(run / "screen.tsv", sep="\t", index=False)
    summary = pd.DataFrame(
        {
            "predictor": ["baseline_distance", "baseline_nearest_tss", "gbm", "gbm_notopo"],
            "n": 200,
            "n_pos": 20,
            "matched": [200, 200, 180, 150],
            "aupr": [0.30, 0.20, 0.55, 0.33],
            "aupr_lo": [0.2, 0.1, 0.45, 0.22],
            "aupr_hi": [0.4, 0.3, 0.65, 0.44],
            "precision_at_recall70": [0.2, 0.1, 0.5, 0.3],
            "precision_at_recall70_lo": [0.1, 0.05, 0.4, 0.2],
            "precision_at_recall70_hi": [0.3, 0.2, 0.6, 0.4],
            "delta_aupr": [0.0, -0.1, 0.25, 0.03],
            "delta_aupr_lo": [0.0, -0.2, 0.12, -0.05],
            "delta_aupr_hi": [0.0, 0.0, 0.38, 0.11],
            "best_baseline": "baseline_distance",
        }
    )
    summary.to_csv(run / "summary.tsv", sep="\t", index=False)
    figure = plots.bars({"x": {"aupr": 0.5}}, "constructed", "AUPR")
    (run / "pr_curves.png").write_bytes(figure)
    (run / "by_distance.png").write_bytes(figure)
    files = {"summary": "summary.tsv", "pr_curves": "pr_curves.png", "by_distance": "by_distance.png"}
    return {"name": "screenL", "cell_line": "L", "screen": str(run / "screen.tsv")} | {
        k: str(run / v) for k, v in files.items()
    }


def assert_self_contained(html: str) -> None:
    assert not EXTERNAL.search(html), EXTERNAL.search(html)
    images = re.findall(r"<img\b[^>]*>", html)
    assert images and all(re.search(r'src="data:image/png;base64,', i) for i in images)


WARNING = "L is further from the training lines than any validation line was (constructed)."


@pytest.mark.parametrize("warning", [WARNING, None], ids=["warning", "no-warning"])
def test_report_renders_with_and_without_a_warning(tmp_path, warning):
    inputs = write_run(tmp_path, warning)
    out, loci_dir = tmp_path / "predict.html", tmp_path / "loci"
    options = {"loci": {"genes": ["GB"], "top": 1, "flank": 20_000}, "chrom_map": None}
    context = build_predict_report(inputs, TEMPLATE, out, options, loci_dir)
    html = out.read_text(encoding="utf-8")
    assert_self_contained(html)
    for section in ("overview", "shift", "disagreement", "loci", "crispr"):
        assert f'id="{section}"' in html, section
    assert (WARNING in html) == (warning is not None) and ('class="warning"' in html) == (warning is not None)
    row = context["overview"][0]
    assert row["candidates"] == 60 and row["estimate"] == 0.031 and row["validation_rate"] == 0.072
    # the top 8 features by raw W1, largest first
    assert [f["feature"] for f in context["shifts"][0]["features"]] == [f"f{i}" for i in range(11, 3, -1)]
    (section,) = context["disagreement"]
    assert section["coverage"] == 1.0 and sum(r["n"] for r in section["rows"]) == 60
    # the precision-vs-score_sd figure is drawn and embedded under its id
    assert (section["figure"] or "").startswith("data:image/png;base64,")
    assert 'id="fig-disagreement-L-gbm"' in html and f'src="{section["figure"]}"' in html
    # named GB, then the top gene, then the screen's genes: each drawn once, also as a file
    drawn = [f["gene"] for f in context["loci"][0]["figures"]]
    assert drawn[0] == "GB" and sorted(drawn) == ["GA", "GB"]
    assert sorted(p.name for p in (loci_dir / "L" / "gbm").iterdir()) == ["GA.png", "GB.png"]
    assert html.count('id="fig-locus-') == 2
    sentences = context["crispr"][0]["sentences"]
    assert sentences[0].startswith("gbm beats the best baseline (baseline_distance)")
    assert sentences[1].startswith("gbm_notopo does not beat the best baseline") and "includes 0" in sentences[1]
    assert "gbm beats the best baseline" in html and "180 (90%)" in html


def test_report_without_labels_or_screens(tmp_path):
    inputs = write_run(tmp_path, None, labelled=False, crispr=False)
    out = tmp_path / "predict.html"
    build_predict_report(inputs, TEMPLATE, out, {"loci": {"top": 1, "flank": 10_000}})
    html = out.read_text(encoding="utf-8")
    assert_self_contained(html)
    assert "No predicted line has labels" in html and 'id="crispr"' not in html


def test_screen_genes_most_regulated_first_and_capped(tmp_path):
    genes = ["Y", "X", "Y", "Z", "X", "Y", "W"]
    regulated = ["FALSE", "TRUE", "FALSE", "TRUE", "TRUE", "FALSE", "FALSE"]
    screen = write_screen(tmp_path, np.arange(7) * 5000 + 10_000, genes, regulated)
    assert screen_genes([screen], "L") == ["X", "Z", "Y", "W"]
    assert screen_genes([screen], "L", limit=2) == ["X", "Z"] and screen_genes([screen], "other") == []


def test_crispr_sentence_reads_missing_deltas():
    row = {"predictor": "gbm", "aupr": 0.4, "best_baseline": float("nan")}
    assert "no paired difference" in crispr_sentence(row)
    worse = {"predictor": "gbm", "aupr": 0.1, "best_baseline": "baseline_distance", "delta_aupr": -0.2}
    worse |= {"delta_aupr_lo": -0.3, "delta_aupr_hi": -0.1}
    assert "does not beat" in crispr_sentence(worse) and "below 0" in crispr_sentence(worse)


def test_distance_profile_shows_where_labels_and_regulation_part():
    from epiflow.predict_report import distance_profile

    # training labels peak at 50-100 kb (Hi-C loops), the screen's regulated rate falls with distance
    training = pd.DataFrame({"distance": [7e3, 8e3, 60e3, 70e3, 80e3, 90e3], "label": [0, 0, 1, 1, 0, 1]})
    screen = pd.DataFrame({"distance": [1e3, 2e3, 6e3, 60e3, 70e3], "label": [1, 1, 1, 0, 0]})
    rows = {r["bin"]: r for r in distance_profile(training, screen)}
    assert rows["5–10 kb"]["training_rate"] == 0 and rows["5–10 kb"]["screen_rate"] == 1
    assert rows["50–100 kb"]["training_rate"] == 0.75 and rows["50–100 kb"]["screen_rate"] == 0
    assert np.isnan(rows["0–5 kb"]["training_rate"]) and rows["0–5 kb"]["screen_n"] == 2
    assert sum(r["training_n"] for r in rows.values()) == len(training)


def test_screen_genes_reads_a_screen_as_the_benchmark_does(tmp_path):
    """A screen with bare chromosome names, which crispr_benchmark reads under reference.chrom_map, is read here too
    (report_predict passes the same chrom_map); without it, the naming mismatch is an InputError."""
    screen = write_screen(tmp_path, [10_000, 20_000], ["X", "Y"], ["TRUE", "FALSE"])
    path = Path(screen["screen"])
    path.write_text(path.read_text().replace("chr1\t", "1\t"))
    assert screen_genes([screen], "L", chrom_map="auto") == ["X", "Y"]
    with pytest.raises(InputError, match="chrom_map"):
        screen_genes([screen], "L")
