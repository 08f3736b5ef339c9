"""The demo simulation's planted spurious cue: where it sits for a positive, zero and negative strength."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from conftest import REPO
from epiflow.simulate import cell_tracks, simulate_genome, simulate_loops


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
