"""epiflow.io_crispr (the EPCrisprBenchmark and predictions readers) and epiflow.crispr: matching against a
brute-force loop, baselines, the bootstrap (agreement with metrics.py, coverage, paired deltas), the entry script,
and the real ENCODE K562 screen."""

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from epiflow import crispr, io_crispr, metrics
from epiflow.errors import InputError

REPO = Path(__file__).resolve().parents[1]
HEADER = [
    "chrom", "chromStart", "chromEnd", "name", "measuredGeneSymbol", "measuredGeneEnsemblId", "chrTSS", "startTSS",
    "endTSS", "PowerAtEffectSize25", "ValidConnection", "CellType", "Regulated", "Dataset",
]  # fmt: skip
ROWS = [
    # line 2..: chrom start end name gene id chrTSS startTSS endTSS power valid cell regulated dataset
    ["chr1", 1000, 1500, "e1", "GENEA", "ENSG01.3", "chr1", 11250, 11251, "0.9", "TRUE", "K562", "TRUE", "A"],
    ["chr1", 1000, 1500, "e1", "GENEB", "ENSG02", "chr1", 50000, 50001, "0.95", "TRUE", "K562", "FALSE", "A"],
    ["chr1", 3000, 3500, "e2", "GENEA", "ENSG01.3", "chr1", 11250, 11251, "0.2", "true", "K562", "false", "A"],
    ["chr1", 5000, 5200, "e3", "GENEA", "ENSG01.3", "chr1", 11250, 11251, "NA", "TRUE", "K562", "FALSE", "B"],
    ["chr1", 7000, 7400, "e4", "GENEA", "ENSG01.3", "chr1", 11250, 11251, "NA", "TRUE", "K562", "TRUE", "B"],
    ["chr1", 9000, 9400, "e5", "GENEA", "ENSG01.3", "chr1", 11250, 11251, "0.99", "FALSE", "K562", "TRUE", "B"],
    ["chr2", 100, 600, "e6", "GENEC", "NA", "chr2", 0, 0, "1", "TRUE", "K562", "FALSE", "B"],
]


def write_screen(path, rows=ROWS, header=HEADER):
    lines = ["\t".join(header)] + ["\t".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def changed(row, column, value):
    row = list(row)
    row[HEADER.index(column)] = value
    return row


# ---- reader ------------------------------------------------------------------------------------------------------
def test_reader_drops_invalid_connections_and_low_power_negatives(tmp_path):
    path = write_screen(tmp_path / "screen.tsv")
    pairs, stats = io_crispr.read_crispr(path, "K562", "PowerAtEffectSize25", 0.8)
    assert stats["rows"] == 7 and stats["invalid_connection"] == 1
    # e2 (negative, power 0.2) filtered; e3 (negative, power NA) dropped as missing; e4 (positive, NA) kept
    assert stats["power_filtered"] == 1 and stats["power_missing"] == 1
    assert stats["pairs"] == 3 and stats["positives"] == 2
    assert list(pairs.name) == ["e1", "e1", "e4"] and list(pairs.label) == [1, 0, 1]
    assert list(pairs.line) == [2, 3, 6]
    assert pairs.gene_id.tolist() == ["ENSG01", "ENSG02", "ENSG01"]  # version dropped
    assert pairs.distance.tolist() == [10000.0, 48750.0, 4050.0]  # |midpoint - startTSS| (no distanceToTSS)


def test_reader_without_power_filter_keeps_negatives_and_flags_unknown_tss(tmp_path):
    pairs, stats = io_crispr.read_crispr(write_screen(tmp_path / "s.tsv"))
    assert stats["pairs"] == 5 and stats["power_filtered"] == 0
    # chr2 pair: startTSS == endTSS == 0 and no distanceToTSS column -> dropped and counted
    assert stats["missing_tss"] == 1 and stats["missing_tss_dropped"] == 1
    header = HEADER + ["distanceToTSS"]
    rows = [row + [123] for row in ROWS]
    pairs, stats = io_crispr.read_crispr(write_screen(tmp_path / "d.tsv", rows, header))
    assert stats["missing_tss_dropped"] == 0
    unknown = pairs[pairs.chrom == "chr2"].iloc[0]
    assert unknown.gene_tss == io_crispr.MISSING_TSS and unknown.distance == 123
    assert (pairs.distance == 123).all()  # the file's distanceToTSS wins where given


@pytest.mark.parametrize(
    ("row", "column", "value", "message"),
    [
        (3, "Regulated", "yes", r"line 5: Regulated 'yes' \(expected TRUE or FALSE\)"),
        (5, "CellType", "GM12878", r"line 7: CellType 'GM12878' \(expected 'K562'"),
        (2, "PowerAtEffectSize25", "high", r"line 4: PowerAtEffectSize25 'high' is not a finite number"),
        (2, "PowerAtEffectSize25", "1.5", r"line 4: PowerAtEffectSize25 1.5 \(expected a power in \[0, 1\]\)"),
        (4, "chromStart", "x", r"line 6: chromStart 'x' is not a non-negative integer"),
        (4, "chromStart", "1.5e9", r"line 6: chromStart 1500000000 > chromEnd \d+ \(expected start <= end\)"),
        (0, "chrTSS", "chr9", r"line 2: chrTSS 'chr9' differs from chrom"),
    ],
)
def test_reader_errors_name_the_line(tmp_path, row, column, value, message):
    rows = [changed(r, column, value) if i == row else r for i, r in enumerate(ROWS)]
    with pytest.raises(InputError, match=message) as error:
        io_crispr.read_crispr(write_screen(tmp_path / "bad.tsv", rows), "K562", "PowerAtEffectSize25", 0.8)
    assert str(tmp_path / "bad.tsv") in str(error.value)


def test_reader_drops_rows_whose_valid_connection_is_a_reason(tmp_path, caplog):
    """CRISPR_comparison's filters write why a pair is not valid into ValidConnection (`underpowered`, `overlaps
    potential promoter`, ...) rather than FALSE: such rows are dropped and counted like FALSE ones, as the
    benchmark itself keeps only ValidConnection == "TRUE"; none left valid is still an InputError."""
    caplog.set_level("INFO")
    reasons = {1: "underpowered", 3: "overlaps potential promoter"}
    rows = [changed(r, "ValidConnection", reasons[i]) if i in reasons else r for i, r in enumerate(ROWS)]
    pairs, stats = io_crispr.read_crispr(write_screen(tmp_path / "reasons.tsv", rows), "K562")
    assert stats["invalid_connection"] == 3  # the two reasons and e5's FALSE
    assert list(pairs.name) == ["e1", "e2", "e4"] and "'underpowered': 1" in caplog.text
    rows = [changed(r, "ValidConnection", "underpowered") for r in ROWS]
    with pytest.raises(InputError, match=r"all\.tsv: no row with ValidConnection TRUE"):
        io_crispr.read_crispr(write_screen(tmp_path / "all.tsv", rows), "K562")


def test_reader_missing_column_and_duplicates(tmp_path):
    header = [c if c != "Regulated" else "regulated_x" for c in HEADER]
    with pytest.raises(InputError, match=r"line 1: missing column\(s\) \['Regulated'\]"):
        io_crispr.read_crispr(write_screen(tmp_path / "h.tsv", ROWS, header))
    # the header's own line, after a comment line and before a blank one (not the line above the first row)
    path = write_screen(tmp_path / "h.tsv", ROWS, header)
    lines = path.read_text().split("\n", 1)
    path.write_text(f"# screen\n{lines[0]}\n\n{lines[1]}")
    with pytest.raises(InputError, match=r"h\.tsv line 2: missing column\(s\) \['Regulated'\]"):
        io_crispr.read_crispr(path)
    with pytest.raises(
        InputError, match="line 3: element-gene pair GENEA at this element listed twice, first on line 2 "
    ):
        io_crispr.read_crispr(write_screen(tmp_path / "dup.tsv", [ROWS[0], ROWS[0]]))
    with pytest.raises(InputError, match="without a power column"):
        io_crispr.read_crispr(write_screen(tmp_path / "s.tsv"), min_power=0.8)


def test_read_predictions_abc_columns_and_errors(tmp_path):
    path = tmp_path / "abc.tsv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("chr\tstart\tend\tname\tTargetGene\tTargetGeneTSS\tCellType\tABC.Score\n")
        handle.write("chr1\t10\t20\tx\tGENEA\t11250\tK562\t0.5\nchr3\t10\t20\tx\tGENEA\t11250\tK562\t0.5\n")
    frame = io_crispr.read_predictions(path, "ABC.Score", chroms={"chr1"})
    assert frame.to_dict("records") == [
        {"chrom": "chr1", "start": 10, "end": 20, "gene": "GENEA", "gene_tss": 11250, "score": 0.5}
    ]
    with pytest.raises(InputError, match="missing column"):
        io_crispr.read_predictions(path, "powerlaw.Score")
    bad = tmp_path / "bad.tsv"
    bad.write_text("chrom\tstart\tend\tTargetGene\tscore\nchr1\t1\t2\tG\t0.1\nchr1\t1\t2\tG\tNA\n")
    with pytest.raises(InputError, match=r"line 3: score 'NA' is not a finite number"):
        io_crispr.read_predictions(bad, "score")


def test_reader_maps_bare_chromosome_names_only_with_chrom_map(tmp_path):
    rows = [changed(r, "chrom", r[0].removeprefix("chr")) for r in ROWS]
    path = write_screen(tmp_path / "bare.tsv", [changed(r, "chrTSS", r[0]) for r in rows])
    with pytest.raises(InputError, match=r"bare\.tsv line 2: chromosome '1' .*reference\.chrom_map: auto"):
        io_crispr.read_crispr(path, "K562")
    pairs, _ = io_crispr.read_crispr(path, "K562", chrom_map="auto")
    assert set(pairs.chrom) == {"chr1"} and len(pairs) == 5  # the chr2 pair has no TSS and is dropped


def test_reader_with_no_pair_left_after_the_filters(tmp_path):
    negatives = [changed(r, "PowerAtEffectSize25", "0.1") for r in ROWS if r[12] == "FALSE"]
    with pytest.raises(
        InputError,
        match=r"low\.tsv: no pair left after the filters \(.*'missing_tss_dropped': 1, .*'power_filtered': 2",
    ):
        io_crispr.read_crispr(write_screen(tmp_path / "low.tsv", negatives), "K562", "PowerAtEffectSize25", 0.8)


def test_read_predictions_refuses_what_would_silently_score_nothing(tmp_path):
    header = "chr\tstart\tend\tTargetGene\tscore\n"
    only = tmp_path / "header.tsv"
    only.write_text(header)
    with pytest.raises(InputError, match=r"header\.tsv: only a header line"):
        io_crispr.read_predictions(only, "score")
    bare = tmp_path / "bare.tsv"
    bare.write_text(header + "11\t1\t2\tG\t0.1\n")
    with pytest.raises(InputError, match=r"bare\.tsv line 2: chromosome '11' .*reference\.chrom_map"):
        io_crispr.read_predictions(bare, "score", chroms={"chr11"})
    assert io_crispr.read_predictions(bare, "score", chroms={"chr11"}, chrom_map="auto").chrom.tolist() == ["chr11"]
    elsewhere = tmp_path / "elsewhere.tsv"
    elsewhere.write_text(header + "chr3\t1\t2\tG\t0.1\n")
    with pytest.raises(InputError, match=r"elsewhere\.tsv: no prediction on the screen's chromosomes \['chr1'\]"):
        io_crispr.read_predictions(elsewhere, "score", chroms={"chr1"})
    twice = tmp_path / "twice.tsv"
    twice.write_text(header + "chr1\t1\t2\tG\t0.1\nchr1\t5\t9\tG\t0.1\nchr1\t1\t2\tG\t0.3\n")
    with pytest.raises(
        InputError, match=r"twice\.tsv line 4: element-gene prediction G at this element listed twice, first on line 2 "
    ):
        io_crispr.read_predictions(twice, "score")
    tss = tmp_path / "tss.tsv"
    tss.write_text("chr\tstart\tend\tTargetGene\tTargetGeneTSS\tscore\nchr1\t1\t2\tG\t1.5\t0.1\n")
    with pytest.raises(InputError, match=r"tss\.tsv line 2: TargetGeneTSS '1\.5' is not an integer"):
        io_crispr.read_predictions(tss, "score")
    # a blank line keeps the file's line numbers: the bad score is on line 4
    blank = tmp_path / "blank.tsv"
    blank.write_text(header + "chr1\t1\t2\tG\t0.1\n\nchr1\t1\t2\tG\tx\n")
    with pytest.raises(InputError, match=r"blank\.tsv line 4: score 'x'"):
        io_crispr.read_predictions(blank, "score")


NAMED = "chr\tstart\tend\tname\tTargetGene\tscore\n"


@pytest.mark.parametrize(
    ("rows", "message"),
    [  # read with usecols, pandas would take a row with a field to spare (a tab in a name) or one short silently
        ("chr1\t1\t2\te1\tG\t0.1\n\nchr1\t5\t9\te\t2\tG\t0.3\n", r"line 4: 7 columns \(expected 6, as the header"),
        ("chr1\t1\t2\te1\tG\t0.1\nchr1\t5\t9\tG\t0.3\n", r"line 3: 5 columns \(expected 6"),
    ],
)
def test_read_predictions_refuses_a_row_whose_field_count_differs_from_the_header(tmp_path, rows, message):
    path = tmp_path / "rows.tsv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(NAMED + rows)
    with pytest.raises(InputError, match=r"rows\.tsv\.gz " + message):
        io_crispr.read_predictions(path, "score")
    path.write_text(NAMED + rows.replace("e\t2", "e2").replace("9\tG", "9\te2\tG").replace("\n", "\r\n"))
    assert io_crispr.read_predictions(path, "score").score.tolist() == [0.1, 0.3]  # mended, as plain CRLF text


def test_read_predictions_takes_quotes_as_text_and_skips_whitespace_lines(tmp_path):
    path = tmp_path / "quoted.tsv"
    # a stray quote: with pandas' default quoting the two rows would merge into one (gene 'G\t0.1\nchr1...')
    path.write_text(NAMED + 'chr1\t1\t2\te1\t"G\t0.1\n   \nchr1\t5\t9\te2\tH\t0.3\n \t \nchr1\t7\t9\te3\tH\tx\n')
    with pytest.raises(InputError, match=r"quoted\.tsv line 6: score 'x'"):  # line numbers stay the file's
        io_crispr.read_predictions(path, "score")
    path.write_text(NAMED + 'chr1\t1\t2\te1\t"G\t0.1\n   \nchr1\t5\t9\te2\tH\t0.3\n')
    frame = io_crispr.read_predictions(path, "score")
    assert frame.gene.tolist() == ['"G', "H"] and frame.score.tolist() == [0.1, 0.3]


def test_a_file_without_any_chain_is_refused(tmp_path):
    from epiflow.liftover import load_chain

    page = tmp_path / "hg38ToHg19.over.chain"
    page.write_text("<html><body>404 Not Found</body></html>\n")
    with pytest.raises(InputError, match=r"over\.chain line 1: '<html>.*' before any chain header"):
        load_chain(page)
    page.write_text("# a comment, and no chain\n\n")
    with pytest.raises(InputError, match=r"over\.chain: no chain in it \(expected a UCSC"):
        load_chain(page)


# ---- matching ----------------------------------------------------------------------------------------------------
def screen_frame(rows):
    """rows: (chrom, start, end, gene, gene_id, gene_tss)"""
    frame = pd.DataFrame(rows, columns=["chrom", "start", "end", "gene", "gene_id", "gene_tss"])
    return frame.assign(label=0, distance=0.0)


def prediction_frame(rows):
    return pd.DataFrame(rows, columns=["chrom", "start", "end", "gene", "gene_tss", "score"])


def test_overlap_is_half_open_and_touching_does_not_match():
    pairs = screen_frame([("chr1", 100, 200, "G", "ENSG1", 1000)])
    cases = {(50, 100): False, (200, 300): False, (199, 300): True, (50, 101): True, (120, 150): True, (0, 1000): True}
    for (start, end), expected in cases.items():
        scored = crispr.match_predictions(pairs, prediction_frame([("chr1", start, end, "G", 1000, 0.7)]))
        assert bool(scored.matched.iloc[0]) is expected, (start, end)
        assert scored.score.iloc[0] == (0.7 if expected else 0.0)


def test_gene_by_symbol_id_or_tss_fallback():
    pairs = screen_frame([("chr1", 100, 200, "GENEA", "ENSG1", 1000), ("chr1", 100, 200, "GENEB", "", 5000)])
    predictions = prediction_frame(
        [
            ("chr1", 150, 160, "ENSG1", -1, 0.3),  # by Ensembl id
            ("chr1", 150, 160, "GENEB", 9999, 0.2),  # by symbol, its own TSS ignored
            ("chr1", 150, 160, "OTHER", 5400, 0.9),  # unknown gene, TSS within 500 bp of GENEB's
            ("chr1", 150, 160, "OTHER2", 1600, 0.8),  # unknown gene, TSS 600 bp away: no gene
            ("chr2", 150, 160, "GENEA", 1000, 5.0),  # another chromosome
        ]
    )
    scored = crispr.match_predictions(pairs, predictions, "max")
    assert scored.score.tolist() == [0.3, 0.9] and scored.n_overlaps.tolist() == [1, 2]
    assert crispr.match_predictions(pairs, predictions, "sum").score.tolist() == pytest.approx([0.3, 1.1])
    wide = crispr.match_predictions(pairs, predictions, "max", tss_tolerance=700)
    assert wide.score.tolist() == [0.8, 0.9]


def test_tss_fallback_includes_a_tss_exactly_at_the_tolerance():
    # "within tss_tolerance": a prediction's TSS exactly TSS_TOLERANCE away on either side names the gene, one base
    # further does not
    tolerance = crispr.TSS_TOLERANCE
    pairs = screen_frame([("chr1", 100, 200, "GENEB", "", 5000)])
    for offset, expected in ((tolerance, True), (-tolerance, True), (tolerance + 1, False), (-tolerance - 1, False)):
        predictions = prediction_frame([("chr1", 150, 160, "OTHER", 5000 + offset, 0.6)])
        scored = crispr.match_predictions(pairs, predictions)
        assert scored.matched.tolist() == [expected], offset
        assert scored.score.tolist() == [0.6 if expected else 0.0], offset


def brute_force(pairs, predictions, aggregate, fill_value, tolerance):
    alias = {}
    for gene, gene_id in zip(pairs.gene, pairs.gene_id, strict=True):
        alias.setdefault(gene, gene)
        if gene_id:
            alias.setdefault(gene_id, gene)
    sites = [(c, g, t) for c, g, t in zip(pairs.chrom, pairs.gene, pairs.gene_tss, strict=True) if t != -1]
    scores, matched = [], []
    for p in pairs.itertuples():
        values = []
        for q in predictions.itertuples():
            if q.chrom != p.chrom or not (q.start < p.end and q.end > p.start):
                continue
            stripped = q.gene.split(".")[0] if q.gene.startswith("ENSG") else q.gene
            if stripped in alias:
                names = alias[stripped] == p.gene
            else:
                names = q.gene_tss != -1 and any(
                    c == q.chrom and g == p.gene and abs(t - q.gene_tss) <= tolerance for c, g, t in sites
                )
            if names:
                values.append(q.score)
        matched.append(bool(values))
        scores.append((max(values) if aggregate == "max" else sum(values)) if values else fill_value)
    return np.array(scores), np.array(matched)


@pytest.mark.parametrize("seed", range(30))
def test_matching_equals_a_brute_force_loop(seed):
    rng = np.random.default_rng(seed)
    genes = {"G1": ("ENSG1", 40), "G2": ("ENSG2", 90), "G3": ("", 90), "G4": ("ENSG4", -1)}
    rows = []
    for _ in range(rng.integers(1, 25)):
        gene = str(rng.choice(list(genes)))
        start = int(rng.integers(0, 120))
        rows.append((str(rng.choice(["chr1", "chr2"])), start, start + int(rng.integers(1, 30)), gene, *genes[gene]))
    pairs = screen_frame(rows).drop_duplicates(["chrom", "start", "end", "gene"]).reset_index(drop=True)
    names = ["G1", "G2", "G3", "G4", "ENSG1.7", "ENSG2", "X1", "X2"]
    predictions = []
    for _ in range(rng.integers(0, 40)):
        start = int(rng.integers(0, 150))
        tss = int(rng.choice([-1, 40, 90, int(rng.integers(0, 150))]))
        predictions.append(
            (str(rng.choice(["chr1", "chr2"])), start, start + int(rng.integers(0, 40)), str(rng.choice(names)),
             tss, float(rng.integers(0, 5)) / 4)
        )  # fmt: skip
    predictions = prediction_frame(predictions) if predictions else prediction_frame([]).astype({"start": int})
    for aggregate in ("max", "sum"):
        fill = float(rng.choice([0.0, -1.0]))
        expected_score, expected_matched = brute_force(pairs, predictions, aggregate, fill, 5)
        scored = crispr.match_predictions(pairs, predictions, aggregate, fill, tss_tolerance=5)
        assert scored.matched.tolist() == expected_matched.tolist()
        np.testing.assert_allclose(scored.score.to_numpy(), expected_score)


# ---- baselines ---------------------------------------------------------------------------------------------------
def test_baselines_nearest_tss_and_within_100kb():
    pairs = screen_frame(
        [("chr1", 1000, 1200, "A", "ENSG0001", 5000), ("chr1", 1000, 1200, "B", "", 8000), ("chr2", 0, 10, "A", "", 5)]
    ).assign(distance=[3900.0, 150_000.0, 0.0])
    tss = pd.DataFrame({"chrom": ["chr1", "chr1", "chr1"], "tss": [500, 1700, 3000], "gene": ["B", "ENSG0001.2", "C"]})
    # midpoint 1100: 500 is 600 away, 1700 is 600 away -> the upstream one (B) wins the tie
    assert crispr.baseline_nearest_tss(pairs, tss).tolist() == [0.0, 1.0, 0.0]
    assert crispr.baseline_nearest_expressed_tss(pairs, tss, ["ENSG0001", "C"]).tolist() == [1.0, 0.0, 0.0]
    assert crispr.baseline_within_100kb(pairs).tolist() == [1.0, 0.0, 1.0]
    names = [spec.name for spec, _ in crispr.baselines(pairs, tss, expressed=["C"])]
    assert names == ["baseline_distance", "baseline_nearest_tss", "baseline_nearest_expressed_tss",
                     "baseline_within_100kb"]  # fmt: skip
    assert all(name.startswith("baseline_") for name in names)


def test_expressed_genes_must_name_annotation_genes(caplog):
    """An expressed-gene list of which no gene is in the TSS table (symbols against an id-only annotation, another
    species' ids) would score baseline_nearest_expressed_tss 0 for every pair: an InputError naming the list."""
    tss = pd.DataFrame({"chrom": ["chr1", "chr1"], "tss": [500, 1700], "gene": ["ENSG0001.2", "ENSG0002.1"]})
    crispr.check_expressed_genes(["ENSG0001", "GATA1"], tss, "expressed.txt")  # version-less id matches
    assert "1 of 2 listed genes not in the TSS annotation" in caplog.text
    with pytest.raises(
        InputError, match=r"expressed\.txt: none of its 2 genes \(e\.g\. \['GATA1', 'TAL1'\]\) is a gene"
    ):
        crispr.check_expressed_genes(["GATA1", "TAL1"], tss, "expressed.txt")


def test_within_100kb_includes_exactly_100kb():
    pairs = screen_frame([("chr1", 0, 10, "A", "", 5)] * 3).assign(distance=[99_999.0, 100_000.0, 100_001.0])
    assert crispr.baseline_within_100kb(pairs).tolist() == [1.0, 1.0, 0.0]  # within: <= 100 kb


def test_orient_keeps_ties_and_inverts():
    p = crispr.orient([5.0, 1.0, 5.0, 3.0], inverse=True)
    assert p.tolist() == [pytest.approx(1 / 3), 1.0, pytest.approx(1 / 3), pytest.approx(2 / 3)]
    assert ((p > 0) & (p <= 1)).all()


# ---- statistics --------------------------------------------------------------------------------------------------
def test_bootstrap_metrics_equal_metrics_py_on_each_resample():
    rng = np.random.default_rng(3)
    y = (rng.random(300) < 0.15).astype(int)
    p = crispr.orient(np.round(rng.normal(y, 1.0), 1))  # rounding makes ties
    counts = crispr.bootstrap_counts(len(y), 20, seed=5)
    assert (counts.sum(axis=1) == len(y)).all()
    boot_aupr, boot_recall = crispr.bootstrap_metrics(y, p, counts)
    for b in range(len(counts)):
        rows = np.repeat(np.arange(len(y)), counts[b])
        aupr, at_recall = crispr.point_metrics(y[rows], p[rows])
        assert boot_aupr[b] == pytest.approx(metrics.aupr(y[rows], p[rows]), abs=1e-12)
        assert boot_recall[b] == pytest.approx(at_recall, abs=1e-12)
    whole = crispr.bootstrap_metrics(y, p, np.ones((1, len(y)), np.int32))
    assert whole[0][0] == pytest.approx(metrics.aupr(y, p), abs=1e-12)


def draw(n, rng):
    y = (rng.random(n) < 0.1).astype(int)
    return y, rng.normal(1.5 * y, 1.0)


def test_percentile_interval_covers_the_population_aupr():
    population = metrics.aupr(*(lambda y, s: (y, crispr.orient(s)))(*draw(2_000_000, np.random.default_rng(1))))
    covered = 0
    for k in range(200):
        y, s = draw(500, np.random.default_rng(100 + k))
        boot, _ = crispr.bootstrap_metrics(y, crispr.orient(s), crispr.bootstrap_counts(len(y), 1000, seed=k))
        lo, hi = np.nanpercentile(boot, [2.5, 97.5])
        covered += lo <= population <= hi
    assert 0.90 <= covered / 200 <= 0.99


def scored_table(n=400, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.1).astype(int)
    table = pd.DataFrame({"label": y, "distance": rng.uniform(0, 2e6, n)})
    specs = [crispr.Predictor("baseline_distance", inverse=True), crispr.Predictor("baseline_within_100kb")]
    table["score.baseline_distance"] = table.distance - 3e5 * y * rng.random(n)
    table["score.baseline_within_100kb"] = (table.distance < 1e5).astype(float)
    specs += [crispr.Predictor("model"), crispr.Predictor("copy_of_best")]
    table["score.model"] = rng.normal(y, 1.0)
    table["score.copy_of_best"] = -table["score.baseline_distance"]
    for spec in specs:
        table[f"matched.{spec.name}"] = True
    return table, specs


def test_summary_columns_and_paired_delta_of_a_predictor_with_itself_is_zero():
    table, specs = scored_table()
    summary = crispr.summary_table(table, specs, n_boot=1000, seed=0)
    assert list(summary.columns[: len(crispr.SUMMARY_COLUMNS)]) == crispr.SUMMARY_COLUMNS
    assert list(summary.columns[len(crispr.SUMMARY_COLUMNS) :]) == [
        "delta_aupr", "delta_aupr_lo", "delta_aupr_hi", "best_baseline", "inverse"
    ]  # fmt: skip
    rows = summary.set_index("predictor")
    assert (rows.best_baseline == "baseline_distance").all()
    for name in ("baseline_distance", "copy_of_best"):  # the best baseline itself, and the same ranking renamed
        assert rows.loc[name, ["delta_aupr", "delta_aupr_lo", "delta_aupr_hi"]].tolist() == [0.0, 0.0, 0.0]
    assert rows.loc["model", "delta_aupr"] == pytest.approx(
        rows.loc["model", "aupr"] - rows.loc["baseline_distance", "aupr"]
    )
    assert (rows.aupr_lo <= rows.aupr).all() and (rows.aupr <= rows.aupr_hi).all()
    again = crispr.summary_table(table, specs, n_boot=1000, seed=0)
    pd.testing.assert_frame_equal(summary, again)  # seeded


def test_reported_intervals_are_the_95_percent_percentiles_of_the_seeded_draws():
    table, specs = scored_table(n=300, seed=2)
    summary = crispr.summary_table(table, specs, n_boot=400, seed=7).set_index("predictor")
    counts = crispr.bootstrap_counts(len(table), 400, seed=7)  # the resamples summary_table draws
    y, boots = table.label.to_numpy(), {}
    for spec in specs:
        p = crispr.orient(table[f"score.{spec.name}"], spec.inverse)
        boots[spec.name], boot_recall = crispr.bootstrap_metrics(y, p, counts)
        row = summary.loc[spec.name]
        np.testing.assert_allclose([row.aupr_lo, row.aupr_hi], np.nanpercentile(boots[spec.name], [2.5, 97.5]))
        np.testing.assert_allclose(
            [row.precision_at_recall70_lo, row.precision_at_recall70_hi], np.nanpercentile(boot_recall, [2.5, 97.5])
        )
    best = summary.best_baseline.iloc[0]
    delta = np.nanpercentile(boots["model"] - boots[best], [2.5, 97.5])
    np.testing.assert_allclose(summary.loc["model", ["delta_aupr_lo", "delta_aupr_hi"]].tolist(), delta)


def test_distance_bins_are_half_open_at_their_edges():
    # DISTANCE_BINS are [low, high): a pair exactly at an edge belongs to the bin that starts there
    distance = [0, 9_999, 10_000, 10_000, 99_999, 100_000, 100_000, 100_000, 999_999, 1_000_000]
    label = [0, 1, 1, 0, 0, 1, 0, 1, 0, 1]
    table = pd.DataFrame({"label": label, "distance": np.asarray(distance, np.float64)})
    table["score.baseline_distance"], table["matched.baseline_distance"] = table.distance, True
    specs = [crispr.Predictor("baseline_distance", inverse=True)]
    bins = crispr.by_distance_table(table, specs, n_boot=20).set_index("bin")
    assert bins.n.to_dict() == {"0-10kb": 2, "10-100kb": 3, "100kb-1Mb": 4, ">1Mb": 1}
    assert bins.n_pos.to_dict() == {"0-10kb": 1, "10-100kb": 1, "100kb-1Mb": 2, ">1Mb": 1}


def test_by_distance_bins_partition_the_pairs():
    table, specs = scored_table()
    counts = crispr.bootstrap_counts(len(table), 200, 0)
    bins = crispr.by_distance_table(table, specs, counts=counts)
    assert list(bins.columns[:2]) == ["bin", "predictor"]
    assert list(dict.fromkeys(bins.bin)) == ["0-10kb", "10-100kb", "100kb-1Mb", ">1Mb"]
    per_bin = bins.drop_duplicates("bin")
    assert per_bin.n.sum() == len(table) and per_bin.n_pos.sum() == table.label.sum()


def test_plots_are_png():
    table, specs = scored_table()
    counts = crispr.bootstrap_counts(len(table), 50, 0)
    assert crispr.plot_pr_curves(table, specs, "t")[:4] == b"\x89PNG"
    assert crispr.plot_by_distance(crispr.by_distance_table(table, specs, counts=counts), "t")[:4] == b"\x89PNG"


# ---- real data ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def k562(shared_data):
    folder = shared_data / "crispr"
    pairs, stats = io_crispr.read_crispr(folder / "EPCrisprBenchmark_K562_odd_chroms.GRCh38.tsv.gz", "K562")
    abc = io_crispr.read_predictions(folder / "ABC_K562_Fulco2019Genes_odd_chroms.GRCh38.tsv.gz", "powerlaw.Score")
    return pairs, stats, abc


def test_real_k562_distance_baseline_and_abc(k562):
    pairs, stats, abc = k562
    assert stats["pairs"] == 6377 and stats["positives"] == 266
    tss = pairs.loc[pairs.gene_tss >= 0, ["chrom", "gene_tss", "gene"]].rename(columns={"gene_tss": "tss"})
    spec = crispr.Predictor("abc", score_column="powerlaw.Score", aggregate="sum", fill_value=0.0)
    table, specs = crispr.score_table(pairs, tss.drop_duplicates(), [(spec, abc)])
    counts = crispr.bootstrap_counts(len(table), 1000, 0)
    summary = crispr.summary_table(table, specs, counts=counts).set_index("predictor")
    assert summary.loc["baseline_distance", "aupr"] == pytest.approx(0.46, abs=0.03)
    assert summary.loc["abc", "matched"] > 2000
    covered = pairs.gene.isin(set(abc.gene)).to_numpy()  # the Fulco 2019 genes ABC's file predicts
    on_covered = crispr.evaluate(table, specs, counts, rows=covered).set_index("predictor")
    assert on_covered.loc["abc", "aupr"] > on_covered.loc["baseline_distance", "aupr"]
    assert on_covered.loc["abc", "delta_aupr_lo"] > 0  # paired 95 % interval above 0


RUNNER = """
import json, runpy, sys, types
spec = json.load(open(sys.argv[1]))
ns = {k: types.SimpleNamespace(**v) if isinstance(v, dict) else v for k, v in spec.items()}
runpy.run_path(sys.argv[2], init_globals={"snakemake": types.SimpleNamespace(**ns)})
"""


def test_entry_script_lifts_to_hg19_and_writes_every_output(shared_data, tmp_path):
    from epiflow.liftover import lift_predictions, load_chain

    folder = shared_data / "crispr"
    screen = folder / "EPCrisprBenchmark_K562_odd_chroms.GRCh38.tsv.gz"
    abc_path = folder / "ABC_K562_Fulco2019Genes_odd_chroms.GRCh38.tsv.gz"
    pairs, _ = io_crispr.read_crispr(screen)
    tss = pairs.loc[pairs.gene_tss >= 0, ["chrom", "gene_tss", "gene"]].rename(columns={"gene_tss": "tss"})
    tss.assign(strand="+").to_csv(tmp_path / "tss.tsv.gz", sep="\t", index=False)
    model = pd.read_csv(abc_path, sep="\t").rename(columns={"chr": "chrom"})  # an epiflow-style file: ranks in [0, 1]
    model = model.assign(score=model["powerlaw.Score"].rank(pct=True), name="", distance=0)
    # epiflow's predictions are in the reference build (hg19 here), as rule crispr_benchmark gets them
    model, _ = lift_predictions(model, load_chain(shared_data / "liftover" / "hg38ToHg19.over.chain.gz"))
    model[["chrom", "start", "end", "TargetGene", "TargetGeneTSS", "score"]].to_csv(
        tmp_path / "model.tsv.gz", sep="\t", index=False
    )
    names = ["pairs.tsv.gz", "summary.tsv", "by_distance.tsv", "pr_curves.png", "by_distance.png", "stats.json"]
    keys = ["pairs", "summary", "by_distance", "pr_curves", "by_distance_png", "stats"]
    out = {key: str(tmp_path / "out" / name) for key, name in zip(keys, names, strict=True)}
    (tmp_path / "out").mkdir()
    abc = {"name": "abc", "cell_line": "K562", "build": "hg38", "score_column": "powerlaw.Score", "aggregate": "sum"}
    spec = {
        "scriptdir": str(REPO / "scripts"),
        "log": [str(tmp_path / "log.txt")],
        "input": {
            "screen": str(screen),
            "tss": str(tmp_path / "tss.tsv.gz"),
            "chrom_sizes": str(shared_data / "hg19" / "chrom_sizes.tsv"),
            "predictions": [str(tmp_path / "model.tsv.gz")],
            "external": [str(abc_path)],
            "expressed": str(tmp_path / "expressed.txt"),
        },
        "output": out,
        "params": {
            "screen": {"name": "K562_odd", "cell_line": "K562", "build": "hg38"},
            "reference_build": "hg19",
            "chains": {"hg38": str(shared_data / "liftover" / "hg38ToHg19.over.chain.gz")},
            "models": ["gbm"],
            "external": [abc | {"fill_value": 0.0, "inverse": False}],
            "options": {"power_column": "PowerAtEffectSize25", "min_power": 0.8, "bootstrap": 200, "seed": 1},
            "chrom_map": None,
        },
    }
    # crispr_options.expressed_genes, a rule input: one gene per line, # comments and blank lines skipped
    expressed = sorted(set(pairs.gene))[::2]
    (tmp_path / "expressed.txt").write_text("# expressed in K562\n\n" + "\n".join(f" {g} " for g in expressed) + "\n")
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    script = REPO / "scripts" / "crispr_benchmark.py"
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, str(tmp_path / "spec.json"), str(script)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:] + (tmp_path / "log.txt").read_text()[-3000:]
    summary = pd.read_csv(out["summary"], sep="\t").set_index("predictor")
    assert list(summary.index) == [
        "baseline_distance",
        "baseline_nearest_tss",
        "baseline_nearest_expressed_tss",
        "baseline_within_100kb",
        "gbm",
        "abc",
    ]
    stats = json.loads(Path(out["stats"]).read_text())
    assert stats["power_filtered"] > 0 and set(stats["lift"]) == {"screen", "abc"}
    element = stats["lift"]["screen"]["element"]
    assert sum(element.values()) == stats["pairs"]  # every pair read is lifted or counted under a reason
    written = pd.read_csv(out["pairs"], sep="\t")
    # the expressed list was read whole: its genes' nearest expressed TSS scores 1 only for listed genes
    scored = written.loc[written["score.baseline_nearest_expressed_tss"] > 0, "gene"]
    assert len(scored) > 0 and set(scored) <= set(expressed)
    assert len(written) == summary.loc["abc", "n"] <= element["lifted"]
    assert summary.loc["abc", "matched"] > 2000  # lifted along with the screen: still overlaps it
    assert abs(summary.loc["abc", "matched"] - 2321) < 25  # 2321 of the pairs match in GRCh38 without lifting
    # the model file is the same ABC predictions, already in the reference build: it matches the same pairs
    assert summary.loc["gbm", "matched"] == summary.loc["abc", "matched"]
    assert {"score.abc", "matched.abc", "score.gbm", "label", "gene", "distance"} <= set(written.columns)
    # epiflow's models (probabilities) aggregate by max over the predictions overlapping one screen element: the
    # written scores are match_predictions' max on the written (lifted) pairs, where some pairs have several
    lifted = pd.read_csv(out["pairs"], sep="\t", dtype={"gene": str, "gene_id": str}, keep_default_na=False)
    model_rows = io_crispr.read_predictions(tmp_path / "model.tsv.gz", "score", set(lifted.chrom))
    expected = crispr.match_predictions(lifted, model_rows, "max", 0.0)
    assert (expected.n_overlaps > 1).sum() > 10
    np.testing.assert_allclose(written["score.gbm"], expected.score, rtol=1e-5)
    for png in ("pr_curves", "by_distance_png"):
        assert Path(out[png]).read_bytes()[:4] == b"\x89PNG"


# ---- a screen as labelled pairs (pairs sheet `format: crispr`) -----------------------------------------------
def test_screen_as_labelled_pairs(tmp_path):
    from epiflow.io_pairs import CRISPR_PROMOTER_FLANK, read_pairs

    path = write_screen(tmp_path / "screen.tsv")
    screen, _ = io_crispr.read_crispr(path, "K562")
    pairs = read_pairs(path, "crispr", "K562", known_chroms={"chr1": 10**8, "chr2": 10**8, "chr3": 10**8})
    known = screen[screen.gene_tss >= 0]
    assert len(pairs) == len(known.drop_duplicates(["chrom", "start", "end", "gene_tss"]))
    assert pairs.label.sum() == known.drop_duplicates(["chrom", "start", "end", "gene_tss"]).label.sum()
    assert ((pairs.promoter_end - pairs.promoter_start) <= 2 * CRISPR_PROMOTER_FLANK).all()
    assert (pairs.cell_line == "K562").all() and set(pairs.label) <= {0, 1}
    with pytest.raises(InputError, match="CellType"):
        read_pairs(path, "crispr", "GM12878")


def test_predictions_lift_to_hg38_and_back(shared_data):
    from epiflow.liftover import lift_predictions, load_chain

    to38 = load_chain(shared_data / "liftover/hg19ToHg38.over.chain.gz")
    to19 = load_chain(shared_data / "liftover/hg38ToHg19.over.chain.gz")
    table = pd.DataFrame(
        {
            "chrom": ["chr8", "chr11", "chr1"],
            "start": [128_700_000, 5_280_000, 540_530],
            "end": [128_700_500, 5_280_400, 540_769],
            "TargetGene": ["MYC", "HBE1", "FAM138A"],
            "TargetGeneTSS": [128_748_314, 5_291_372, 36_080],
        }
    ).assign(name="", distance=0)
    lifted, counts = lift_predictions(table, to38)
    assert counts["rows"] == 3 and counts["element"]["lifted"] == 3
    assert (lifted.end - lifted.start).tolist() == (table.end - table.start).tolist()
    assert lifted.start.iloc[0] != table.start.iloc[0]  # hg38 coordinates differ on chr8
    assert (lifted.distance == ((lifted.start + lifted.end) // 2 - lifted.TargetGeneTSS).abs()).all()
    back, _ = lift_predictions(lifted, to19)
    pd.testing.assert_frame_equal(
        back[["chrom", "start", "end", "TargetGeneTSS"]], table[["chrom", "start", "end", "TargetGeneTSS"]]
    )
