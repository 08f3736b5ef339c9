"""The real-data path: the hg19 configs' sources resolve offline in ../shared/data with their public sha256, loop
lists become labelled pairs on a real cell line, and the BENGI study runs end to end offline on a subset."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO, copy_workflow, run_snakemake
from epiflow.download import is_url, mirror_lookup
from epiflow.io import read_bedpe, read_chrom_sizes, read_peaks, read_tss
from epiflow.models import available_models
from epiflow.pairs import finalize_pairs, pairs_from_loops

BENGI_CONFIG = REPO / "config" / "bengi_hg19.yaml"
TARGETFINDER_CONFIG = REPO / "config" / "targetfinder_hg19.yaml"
MARKS = ["CTCF", "H2AZ", "H3K27ac", "H3K4me2", "H3K4me3", "H3K9ac", "H4K20me1", "POLR2A"]
URL_HOSTS = (
    "https://hgdownload.soe.ucsc.edu/goldenPath/hg19/encodeDCC/",
    "https://egg2.wustl.edu/roadmap/data/byFileType/peaks/consolidated/narrowPeak/",
    "https://raw.githubusercontent.com/biomed-AI/TransEPI/main/data/BENGI/",
    "https://ftp.ncbi.nlm.nih.gov/geo/series/GSE63nnn/GSE63525/suppl/",
    "https://raw.githubusercontent.com/weng-lab/BENGI/master/Benchmark/Annotations/",
    "https://raw.githubusercontent.com/shwhalen/targetfinder/master/paper/targetfinder/",
)
# sources with no copy in ../shared/data: TargetFinder's six files all named pairs.csv, and NHEK (not mirrored)
NOT_MIRRORED = ("/output-ep/pairs.csv", "Nhek", "_NHEK_")


@cache
def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def config_of(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def sheet(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(REPO / path, sep="\t", comment="#", dtype=str).fillna("")


def sheet_rows(path: str) -> list[tuple[str, str, str]]:
    """(where, source, sha256) of every row of a sheet; local sources resolved relative to the sheet."""
    return [
        (
            f"{path} data row {i + 1}",
            row.source if is_url(row.source) else str((REPO / path).parent / row.source),
            row.get("sha256", ""),
        )
        for i, row in sheet(path).iterrows()
    ]


def sheet_sources(config: dict) -> list[tuple[str, str, str]]:
    """(where, source, sha256) of every sheet row and reference source of a config."""
    out = [row for key in ("pairs", "tracks", "tads") for row in sheet_rows(config[key])]
    for key in ("fasta", "annotation", "chrom_sizes"):
        if config["reference"].get(key):
            out.append((f"reference.{key}", config["reference"][key], config["reference"].get(f"{key}_sha256") or ""))
    return out


def test_bengi_config_is_the_strict_protocol():
    config = config_of(BENGI_CONFIG)
    assert config["protocol"]["train"] == ["GM12878", "HeLa-S3", "K562"]
    assert config["protocol"]["test"] == ["IMR90"]
    assert config["marks"] == MARKS
    assert {"distance", "gbm", "gbm_robust"} <= set(config["models"])
    assert set(config["models"]) <= set(available_models())  # every model it names exists
    folds = config["protocol"]["chrom_folds"]
    assert [sorted(f) for f in folds] == [
        sorted(["chr1", "chr10", "chr15", "chr21"]),
        sorted(["chr19", "chr3", "chr4", "chr7", "chrX"]),
        sorted(["chr13", "chr17", "chr2", "chr22", "chr9"]),
        sorted(["chr12", "chr14", "chr16", "chr18", "chr20"]),
        sorted(["chr11", "chr5", "chr6", "chr8"]),
    ]
    assert config["reference"]["fasta"] is None and config["features"]["sequence_length"] == 0
    tracks = sheet(config["tracks"])
    for cell in ["GM12878", "HeLa-S3", "K562", "IMR90"]:
        assert sorted(tracks[tracks.cell_line == cell].mark) == sorted(MARKS), cell
    assert set(sheet(config["pairs"]).cell_line) == {"GM12878", "HeLa-S3", "K562", "IMR90"}
    assert set(sheet(config["tads"]).format) == {"arrowhead"}


@pytest.mark.parametrize("config_path", [BENGI_CONFIG, TARGETFINDER_CONFIG], ids=["bengi", "targetfinder"])
def test_sources_resolve_in_mirror_with_matching_sha256(shared_data, config_path):
    config = config_of(config_path)
    sources = sheet_sources(config)
    if config_path == TARGETFINDER_CONFIG:  # its offline pairs sheet reads the cut copies by path
        sources += sheet_rows("config/targetfinder/pairs_offline.tsv")
    checked = 0
    for where, source, digest in sources:
        if is_url(source):
            assert source.startswith(URL_HOSTS), f"{where}: {source} is not one of the public origins"
            local = mirror_lookup(source, shared_data)
            if any(part in source for part in NOT_MIRRORED):
                assert local is None and not digest, f"{where}: {source}"
                continue
            assert local is not None, f"{where}: basename of {source} not found under {shared_data}"
        else:
            local = (REPO / source).resolve()
            assert local.is_file(), f"{where}: {source} not found"
            if local.name == "chrom_sizes.tsv":
                continue  # a local cut of UCSC hg19.chrom.sizes (see the config's comment): no public digest
        assert digest, f"{where}: {source} has no sha256"
        assert sha256(local) == digest, f"{where}: sha256 of {local} differs from the sheet's"
        checked += 1
    assert checked == (41 if config_path == BENGI_CONFIG else 51)  # every mirrored source was checked


def test_loops_become_distance_matched_pairs_on_gm12878(shared_data):
    """HiCCUPS loops + GENCODE TSSs + H3K27ac peaks of GM12878 on chr21-22 -> positives and negatives with folds."""
    sizes = read_chrom_sizes(shared_data / "hg19" / "chrom_sizes.tsv")
    keep = ["chr21", "chr22"]
    hic = shared_data / "hic" / "GSE63525_GM12878_primary+replicate_HiCCUPS_looplist.txt.gz"
    loops = read_bedpe(hic, known_chroms=sizes, chrom_map="auto")
    loops = loops[loops.chrom1.isin(keep)]
    tss = read_tss(shared_data / "hg19" / "GENCODEv19-TSSs.bed.gz", known_chroms=sizes)
    tss = tss[tss.chrom.isin(keep)]
    peak_file = shared_data / "peaks" / "GM12878" / "wgEncodeBroadHistoneGm12878H3k27acStdPk.broadPeak.gz"
    peaks = read_peaks(peak_file, "broadpeak", known_chroms=sizes)
    peaks = peaks[peaks.chrom.isin(keep)]
    params = config_of(BENGI_CONFIG)["pairs_from_loops"]
    folds = config_of(BENGI_CONFIG)["protocol"]["chrom_folds"]
    pairs = finalize_pairs(pairs_from_loops(loops, tss, peaks, "GM12878", params), "GM12878", folds, sizes, hic.name)

    pos, neg = pairs[pairs.label == 1], pairs[pairs.label == 0]
    assert len(pos) > 50
    assert len(neg) == pytest.approx(params["negatives_per_positive"] * len(pos), rel=0.05)
    assert set(pairs.fold) == {0, 2}  # chr21 is in TransEPI's fold 0, chr22 in fold 2
    assert (pairs.groupby("chrom").fold.nunique() == 1).all()
    assert pairs.distance.between(params["min_distance"], params["max_distance"]).all()
    # distance-matched: the negatives' log-distance quartiles sit near the positives'
    q = [0.25, 0.5, 0.75]
    assert np.allclose(np.log10(neg.distance.quantile(q)), np.log10(pos.distance.quantile(q)), atol=0.15)
    # every positive is supported by a loop, checked naively: one anchor on the enhancer, the other on the promoter
    flank = params["promoter_flank"]
    for row in pos.sample(20, random_state=0).itertuples():
        lp = loops[loops.chrom1 == row.chrom]
        e1 = (lp.start1 < row.enhancer_end) & (lp.end1 > row.enhancer_start)
        e2 = (lp.start2 < row.enhancer_end) & (lp.end2 > row.enhancer_start)
        p1 = (lp.start1 < row.tss + flank) & (lp.end1 > row.tss - flank)
        p2 = (lp.start2 < row.tss + flank) & (lp.end2 > row.tss - flank)
        assert ((e1 & p2) | (e2 & p1)).any(), row.pair_id


def transepi_anchor(data: Path) -> Path:
    return data / "anchors" / "transepi" / "results_IMR90.HiC-Benchmark.v3.all_strict.prediction.txt.gz"


def subset_args(data: Path, extra: str = "") -> list[str]:
    """Offline BENGI config on chr21 (TransEPI fold 0) and chr22 (fold 2) only (pairs elsewhere are dropped), with
    the two cheapest models."""
    return [
        "--configfile",
        "config/bengi_hg19.yaml",
        "--config",
        f"mirror={data}",
        f"reference={{chrom_sizes: {data / 'hg19' / 'chrom_sizes.tsv'}}}",
        "protocol={chrom_folds: [[chr21], [chr22]]}",
        "models=[distance,gbm]",
        f"report={{anchors: [{{name: TransEPI, heldout: IMR90, source: {transepi_anchor(data)}, format: transepi}}]}}",
        *([extra] if extra else []),
    ]


@pytest.mark.slow
def test_loop_sheet_runs_pairs_extract_offline(shared_data, tmp_path):
    """The `bedpe` sheet of HiCCUPS loop lists through the real rule chain (mirror -> TSS -> pairs_extract)."""
    workdir = copy_workflow(tmp_path / "loops")
    run_snakemake(workdir, "results/pairs/GM12878.tsv.gz", *subset_args(shared_data, "pairs=config/bengi/loops.tsv"))
    pairs = pd.read_csv(workdir / "results" / "pairs" / "GM12878.tsv.gz", sep="\t")
    assert set(pairs.chrom) == {"chr21", "chr22"} and set(pairs.fold) == {0, 1}
    assert pairs.label.sum() > 50
    assert (pairs.label == 0).sum() >= 4 * pairs.label.sum()


@pytest.fixture(scope="module")
def bengi_subset(shared_data, tmp_path_factory) -> Path:
    """The real BENGI config run offline (mirror) from a clean directory on the chr21/chr22 subset."""
    workdir = copy_workflow(tmp_path_factory.mktemp("bengi"))
    run_snakemake(workdir, *subset_args(shared_data), timeout=1800)
    return workdir


@pytest.mark.slow
def test_bengi_subset_contract_outputs(bengi_subset):
    summary = pd.read_csv(bengi_subset / "results" / "metrics" / "summary.tsv", sep="\t")
    needed = ["heldout", "model", "split", "n", "n_pos", "aupr", "auroc", "brier", "ece", "threshold"]
    needed += ["precision", "recall", "f1"]
    assert set(needed) <= set(summary.columns)
    assert set(summary.heldout) == {"IMR90"} and set(summary.model) == {"distance", "gbm"}
    assert {"train", "val", "test"} <= set(summary.split)
    test = summary[summary.split == "test"].set_index("model")
    assert (test.n_pos > 0).all() and test.aupr.between(0, 1).all()
    # IMR90's BENGI pairs on chr21/22 (306 rows, 292 once repeated pair_ids are dropped)
    assert (test.n == 292).all() and (test.n_pos > 20).all()
    assert (bengi_subset / "results" / "report" / "reflection.html").stat().st_size > 10_000
    for model in ("distance", "gbm"):
        pred = pd.read_csv(bengi_subset / "results" / "predictions" / "IMR90" / f"{model}.tsv.gz", sep="\t")
        assert {"pair_id", "cell_line", "chrom", "label", "score", "prob", "fold"} <= set(pred.columns)
        assert pred.prob.between(0, 1).all()


@pytest.mark.slow
def test_bengi_subset_honest_evaluation(bengi_subset):
    """IMR90 and the test fold's chromosome never in training; IMR90's own Hi-C (TADs) never a feature."""
    pred = pd.read_csv(bengi_subset / "results" / "predictions" / "IMR90" / "gbm.tsv.gz", sep="\t")
    test = pred[pred.split == "test"]
    assert set(test.cell_line) == {"IMR90"} and set(test.chrom) <= {"chr21", "chr22"}
    assert not (pred[pred.split != "test"].cell_line == "IMR90").any()
    for fold, chrom in enumerate(["chr21", "chr22"]):
        assert set(test[test.fold == fold].chrom) == {chrom}
        # rows scored as validation/training for this fold never sit on its test chromosome
        fit = pred[(pred.split != "test") & (pred.fold == fold)]
        assert chrom not in set(fit.chrom)
    log = (bengi_subset / "logs" / "train" / "IMR90" / "gbm.log").read_text()
    assert "IMR90_Arrowhead" not in log
    # only the training lines' TAD lists were fetched: IMR90's was never needed
    fetched = {p.name for p in (bengi_subset / "resources" / "cache").glob("*/*Arrowhead*")}
    assert fetched and not any("IMR90" in name for name in fetched)


@pytest.mark.slow
def test_bengi_subset_reruns_nothing_for_settings_it_does_not_use(bengi_subset, shared_data):
    """`pairs_from_loops` shapes only bedpe lines' tables (these are BENGI's), and `mirror` says only where a URL's
    bytes come from: changing either plans no job on the finished run."""

    def planned(*args) -> str:
        proc = run_snakemake(bengi_subset, "-n", *args)
        return "" if "Nothing to be done" in proc.stdout + proc.stderr else proc.stdout[-3000:]

    args = subset_args(shared_data)
    assert planned(*args) == ""
    (bengi_subset / "loops.yaml").write_text("pairs_from_loops: {seed: 2, max_distance: 1000000}\n")
    assert planned("--configfile", "config/bengi_hg19.yaml", "loops.yaml", *args[2:]) == ""
    assert planned(*[a for a in args if not a.startswith("mirror=")]) == ""
