"""The demo simulation: its planted spurious cue (positive, zero and negative strength) and its unlabelled line
(lineE: tracks only; its truth and in-silico CRISPRi screen kept aside; every other output unchanged by it)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO, SHARED_DATA
from epiflow.metrics import aupr
from epiflow.simulate import cell_tracks, simulate_demo, simulate_genome, simulate_loops
from epiflow.simulate_screen import COLUMNS


@pytest.fixture(scope="module")
def small():
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())["simulate"]
    cfg = cfg | {"chromosomes": 1, "chrom_length": 1_500_000, "marks": ["H2AZ"], "batch_scale": {}}
    rng = np.random.default_rng(3)
    genome = simulate_genome(cfg, rng)
    shared = {
        "enhancer": rng.standard_normal(len(genome.enhancers)),
        "promoter": rng.standard_normal(len(genome.genes)),
    }
    state = simulate_loops(genome, "lineA", rng, cfg | {"positive_rate": {"lineA": 0.02}}, shared)
    return cfg, genome, state


def cue_at_enhancers(small, strength: float) -> tuple[np.ndarray, np.ndarray, float]:
    """H2AZ signal at each enhancer's center bin, which enhancers loop, and the track's total signal."""
    cfg, genome, state = small
    cfg = cfg | {"spurious": cfg["spurious"] | {"strength": {"lineA": strength}}}
    tracks = cell_tracks(genome, "lineA", state, np.random.default_rng(0), cfg)
    values = tracks["H2AZ"]["chr1"]
    mid = ((genome.enhancers.start + genome.enhancers.end) // 2).to_numpy() // 100
    looped = np.zeros(len(genome.enhancers), bool)
    looped[state["loops"].enhancer.to_numpy()] = True
    return values[mid], looped, float(values.sum())


def test_cue_follows_the_sign_of_its_strength(small):
    high, looped, _ = cue_at_enhancers(small, 1.0)
    assert 0 < looped.sum() < len(looped) / 2
    none, _, _ = cue_at_enhancers(small, 0.0)
    reversed_, _, _ = cue_at_enhancers(small, -1.0)
    gap = {s: v[looped].mean() - v[~looped].mean() for s, v in (("+", high), ("0", none), ("-", reversed_))}
    assert gap["+"] > 2.0  # looping enhancers carry the cue
    assert gap["-"] < -0.5  # non-looping ones do: at strength -1 looping enhancers get none of it
    assert abs(gap["0"]) < 0.5 * gap["+"]
    assert np.median(reversed_[looped]) < 0.2 * np.median(high[looped])


def test_cue_budget_is_the_same_whatever_the_strength(small):
    """The mark's marginal level does not depend on the strength: only its link to the label does."""
    totals = [cue_at_enhancers(small, s)[2] for s in (1.0, 0.6, 0.0, -0.6, -1.0)]
    assert max(totals) / min(totals) < 1.05


# ---- the unlabelled line (lineE): tracks for the workflow, its truth and CRISPRi screen kept aside for tests
DEMO = yaml.safe_load((REPO / "config/config.yaml").read_text())["simulate"]
REAL_SCREEN = SHARED_DATA / "crispr/EPCrisprBenchmark_K562_odd_chroms.GRCh38.tsv.gz"


@pytest.fixture(scope="module")
def demo_dirs(tmp_path_factory):
    """The demo simulated with its unlabelled line, and again without (same seed)."""
    with_line, without = tmp_path_factory.mktemp("with_unlabelled"), tmp_path_factory.mktemp("without_unlabelled")
    simulate_demo(DEMO, with_line)
    simulate_demo({k: v for k, v in DEMO.items() if k != "unlabelled_lines"}, without)
    return with_line, without


@pytest.fixture(scope="module")
def line_e(demo_dirs):
    """lineE's truth and screen, as a test reads them."""
    folder = demo_dirs[0] / "lineE"
    truth = pd.read_csv(folder / "truth.tsv.gz", sep="\t", dtype={"chrom": str})
    screen = pd.read_csv(folder / "crispri.tsv.gz", sep="\t", dtype={"chrom": str, "chrTSS": str})
    return truth, screen


def test_unlabelled_line_leaves_every_other_output_byte_identical(demo_dirs):
    with_line, without = demo_dirs
    files = sorted(p.relative_to(without) for p in without.rglob("*") if p.is_file())
    assert len(files) == 4 + 7 * len(DEMO["cell_lines"])  # genome (+.fai, .gzi), annotation; per line 5 tracks, 2
    for name in files:
        assert (with_line / name).read_bytes() == (without / name).read_bytes(), name
    written = {p.name for p in (with_line / "lineE").iterdir()}
    marks = {f"{m}.narrowPeak.gz" if m in DEMO["peak_marks"] else f"{m}.bw" for m in DEMO["marks"]}
    assert written == marks | {"loops.bedpe", "tads.bed.gz", "truth.tsv.gz", "crispri.tsv.gz"}


def test_unlabelled_line_is_in_the_tracks_sheet_only():
    tracks = pd.read_csv(REPO / "config/demo/tracks.tsv", sep="\t")
    assert set(tracks.mark[tracks.cell_line == "lineE"]) == set(DEMO["marks"])
    for sheet in ("pairs.tsv", "tads.tsv"):
        assert "lineE" not in set(pd.read_csv(REPO / "config/demo" / sheet, sep="\t").cell_line), sheet


def test_truth_has_positives_at_the_configured_rate(line_e, demo_dirs):
    truth, _ = line_e
    assert list(truth.columns) == [
        "chrom", "enhancer_start", "enhancer_end", "gene", "tss", "distance", "label", "propensity", "probability",
    ]  # fmt: skip
    assert set(truth.label) == {0, 1} and truth.probability.between(0, 1).all()
    assert truth.distance.between(DEMO["min_distance"], DEMO["max_distance"]).all()
    assert abs(truth.label.mean() - DEMO["positive_rate"]["lineE"]) < 0.005
    loops = pd.read_csv(demo_dirs[0] / "lineE/loops.bedpe", sep="\t", header=None)
    assert 0.5 * truth.label.sum() < len(loops) <= truth.label.sum()  # links sharing anchor bins merge


def test_planted_propensity_predicts_the_label_far_above_distance(line_e):
    truth, _ = line_e
    planted = aupr(truth.label, truth.probability)
    distance = aupr(truth.label, 1 / (1 + truth.distance / 10_000))
    assert planted > 0.8 and planted > distance + 0.3, (planted, distance)


def test_screen_is_in_epcrisprbenchmark_format(line_e):
    _, screen = line_e
    assert list(screen.columns) == COLUMNS
    if REAL_SCREEN.exists():
        assert list(pd.read_csv(REAL_SCREEN, sep="\t", nrows=1).columns) == COLUMNS
    cfg = DEMO["crispr_screen"]
    assert screen.measuredGeneSymbol.nunique() == cfg["n_genes"]
    assert screen.groupby("measuredGeneSymbol").size().max() <= cfg["elements_per_gene"]
    assert (screen.CellType == "lineE").all() and (screen.chromStart < screen.chromEnd).all()
    assert (screen.chrom == screen.chrTSS).all() and (screen.endTSS == screen.startTSS + 1).all()
    assert screen.distanceToTSS.le(cfg["max_distance"]).all()
    for column in ("Significant", "ValidConnection", "Regulated"):
        assert screen[column].dtype == bool, column
    assert abs((~screen.ValidConnection).mean() - cfg["invalid_fraction"]) < 0.01
    assert 0 < (screen.PowerAtEffectSize25 < 0.8).sum() < 0.5 * len(screen)
    assert (screen.Regulated == (screen.Significant & (screen.EffectSize < 0))).all()


def test_screen_regulated_pairs_are_the_true_links(line_e):
    truth, screen = line_e
    keys = ["chrom", "chromStart", "chromEnd", "measuredGeneSymbol"]
    truth = truth.rename(columns={"enhancer_start": "chromStart", "enhancer_end": "chromEnd", "gene": keys[3]})
    joined = screen.merge(truth, on=keys, how="left", validate="one_to_one")
    assert joined.label.notna().all(), "every screened pair is one the simulation considered"
    link = joined.label == 1
    assert 0.05 < link.mean() < 0.5
    assert (link & joined.Regulated).sum() >= 0.95 * joined.Regulated.sum()  # false discoveries within the FDR
    assert (joined.EffectSize[link] < 0).mean() > 0.9
    powered = link & (joined.PowerAtEffectSize25 >= 0.8)
    assert joined.Regulated[powered].mean() > 0.85
    missed = link & ~joined.Regulated
    assert 0 < missed.sum() < 0.3 * link.sum()  # a few false negatives, mostly weak or low-power links
