"""An in-silico CRISPRi screen of a simulated cell line, written in EPCrisprBenchmark format.

The screen perturbs, for a random set of expressed genes, the line's enhancer peaks near the TSS. A true link's
knock-down lowers expression by its share of the gene's links (the planted mechanism, ABC-like); other pairs have
no effect. Each measurement carries a log-normal standard error, so a weak link measured with low power is missed
(a false negative), as in real screens; Regulated is Significant and negative, as in the benchmark.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pandas as pd

# The column names and order of EPCrisprBenchmark's ENCODE files (e.g. EPCrisprBenchmark_K562_*.GRCh38.tsv.gz).
COLUMNS = [
    "chrom", "chromStart", "chromEnd", "name", "EffectSize", "chrTSS", "startTSS", "endTSS",
    "measuredGeneSymbol", "measuredGeneEnsemblId", "Significant", "pValueAdjusted",
    "PowerAtEffectSize10", "PowerAtEffectSize15", "PowerAtEffectSize20", "PowerAtEffectSize25", "PowerAtEffectSize50",
    "ValidConnection", "CellType", "Reference", "Regulated", "Dataset", "distanceToTSS",
    "measuredGeneUbiquitousExpressed", "elementChromatinCategory", "H3K27ac_peak_overlap", "H3K27ac.RPM",
    "H3K27ac.percentile", "H3K27ac.RPM.expandedRegion", "H3K27ac.expandedRegion.percentile", "DHS.RPM",
    "DHS.percentile", "CTCF_peak_overlap", "CTCF.RPM", "H3K27me3_peak_overlap", "H3K27me3.RPM",
    "H3K4me1_peak_overlap", "H3K4me1.RPM", "direct_vs_indirect_negative", "direct_rate_negative",
    "indirect_rate_negative", "imputed_indirect_rate",
]  # fmt: skip
BOOL_COLUMNS = ["Significant", "ValidConnection", "Regulated", "measuredGeneUbiquitousExpressed"]
POWER_EFFECTS = (10, 15, 20, 25, 50)  # percent knock-downs of the PowerAtEffectSize columns
NORMAL = NormalDist()


def screened_pairs(truth: pd.DataFrame, tracks: dict, rng: np.random.Generator, cfg: dict, cutoff: float, bin_size):
    """The perturbed pairs (rows of `truth`): candidate elements are enhancers within `max_distance` whose center
    bin lies in an H3K27ac peak (signal above `cutoff`); `n_genes` random genes with candidates keep their nearest
    `elements_per_gene`."""
    if "H3K27ac" not in tracks:
        raise ValueError("simulate.crispr_screen: needs H3K27ac in simulate.marks (its peaks are the elements)")
    center = (truth.enhancer_start + truth.enhancer_end).to_numpy() // 2 // bin_size
    signal = np.empty(len(truth))
    for chrom, rows in truth.groupby("chrom").indices.items():
        signal[rows] = tracks["H3K27ac"][chrom][center[rows]]
    candidates = truth[(truth.distance <= cfg["max_distance"]) & (signal > cutoff)]
    genes = np.sort(candidates.gene.unique())  # a screen picks genes with elements to perturb
    chosen = rng.choice(genes, min(int(cfg["n_genes"]), len(genes)), replace=False)
    near = candidates[candidates.gene.isin(chosen)].sort_values(["gene", "distance", "enhancer_start"], kind="stable")
    return near.groupby("gene", sort=False).head(int(cfg["elements_per_gene"])).reset_index(drop=True)


def true_effects(pairs: pd.DataFrame, truth: pd.DataFrame, effect_range) -> np.ndarray:
    """Knock-down of each pair (<= 0): a link loses lo + (hi - lo) * its share of exp(propensity) among the gene's
    links (all of them, screened or not); a pair that does not loop loses nothing."""
    links = truth[truth.label == 1]
    total = np.exp(links.propensity).groupby(links.gene).sum()
    share = np.exp(pairs.propensity) / pairs.gene.map(total).fillna(np.inf)
    lo, hi = effect_range
    return -np.where(pairs.label == 1, lo + (hi - lo) * share, 0.0)


def bh_adjust(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values, in the input's order."""
    order = np.argsort(p)
    scaled = p[order] * len(p) / np.arange(1, len(p) + 1)
    adjusted = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    out = np.empty_like(adjusted)
    out[order] = adjusted
    return out


def measure(effect: np.ndarray, rng: np.random.Generator, cfg: dict) -> dict:
    """Observed effect sizes, adjusted p-values and power of a two-sided z-test at each pair's standard error."""
    se = cfg["se_median"] * np.exp(cfg["se_sd"] * rng.standard_normal(len(effect)))
    observed = np.maximum(effect + se * rng.standard_normal(len(effect)), -1.0)
    cdf = np.vectorize(NORMAL.cdf, otypes=[float])
    padj = bh_adjust(2 * cdf(-np.abs(observed / se))) if len(effect) else np.array([])
    z = NORMAL.inv_cdf(1 - cfg["fdr"] / 2)  # power at the nominal level (BH makes the real test a little stricter)
    power = {d: cdf(d / 100 / se - z) + cdf(-d / 100 / se - z) for d in POWER_EFFECTS}
    return {"EffectSize": observed, "pValueAdjusted": padj, "Significant": padj < cfg["fdr"], "power": power}


def element_signal(tracks: dict, mark: str, pairs: pd.DataFrame, bin_size: int) -> np.ndarray:
    """Mean signal of a mark over each pair's element (NaN when the line has no such track)."""
    if mark not in tracks:
        return np.full(len(pairs), np.nan)
    out = np.empty(len(pairs))
    for chrom, rows in pairs.groupby("chrom").indices.items():
        csum = np.concatenate([[0.0], np.cumsum(tracks[mark][chrom], dtype=np.float64)])
        lo = pairs.enhancer_start.to_numpy()[rows] // bin_size
        hi = np.maximum(-(-pairs.enhancer_end.to_numpy()[rows] // bin_size), lo + 1)
        out[rows] = (csum[hi] - csum[lo]) / (hi - lo)
    return out


def chromatin_columns(pairs: pd.DataFrame, tracks: dict, cutoff: float, bin_size: int) -> dict:
    """The benchmark's chromatin columns from the line's own tracks; NA for marks the simulation has not."""
    h3k27ac, dhs, ctcf = (element_signal(tracks, m, pairs, bin_size) for m in ("H3K27ac", "DNase", "CTCF"))
    pct = pd.Series(h3k27ac).rank(pct=True).to_numpy()
    return {
        "elementChromatinCategory": np.where(pct > 0.9, "High H3K27ac", "H3K27ac"),
        "H3K27ac_peak_overlap": 1,  # every screened element was chosen in an H3K27ac peak
        "H3K27ac.RPM": h3k27ac,
        "H3K27ac.percentile": pct,
        "DHS.RPM": dhs,
        "DHS.percentile": pd.Series(dhs).rank(pct=True).to_numpy(),
        "CTCF_peak_overlap": (ctcf > cutoff).astype(int),
        "CTCF.RPM": ctcf,
    }


def simulate_screen(
    truth: pd.DataFrame,
    tracks: dict,
    rng: np.random.Generator,
    cfg: dict,
    cell: str,
    cutoff: float,
    reference: str,
    bin_size: int = 100,
) -> pd.DataFrame:
    """A CRISPRi screen of one line as an EPCrisprBenchmark table (COLUMNS; NA where the simulation has nothing).

    truth: the line's considered pairs (simulate.truth_table); tracks: mark -> chrom -> per-bin signal; cfg: the
    `crispr_screen` config block; cutoff: the line's peak threshold. Coordinates are 0-based half-open.
    """
    pairs = screened_pairs(truth, tracks, rng, cfg, cutoff, bin_size)
    result = measure(true_effects(pairs, truth, cfg["effect_size"]), rng, cfg)
    invalid = np.zeros(len(pairs), bool)
    invalid[rng.choice(len(pairs), int(round(cfg["invalid_fraction"] * len(pairs))), replace=False)] = True
    coords = pairs.chrom + ":" + pairs.enhancer_start.astype(str) + "-" + pairs.enhancer_end.astype(str)
    frame = pd.DataFrame(
        {
            "chrom": pairs.chrom,
            "chromStart": pairs.enhancer_start,
            "chromEnd": pairs.enhancer_end,
            "name": pairs.gene + "|" + coords + ":*",
            "EffectSize": result["EffectSize"],
            "chrTSS": pairs.chrom,
            "startTSS": pairs.tss,
            "endTSS": pairs.tss + 1,
            "measuredGeneSymbol": pairs.gene,
            "measuredGeneEnsemblId": pairs.gene,  # the annotation's gene_id
            "Significant": result["Significant"],
            "pValueAdjusted": result["pValueAdjusted"],
            **{f"PowerAtEffectSize{d}": result["power"][d] for d in POWER_EFFECTS},
            "ValidConnection": ~invalid,  # a random few, as the benchmark flags e.g. elements in the gene's promoter
            "CellType": cell,
            "Reference": reference,
            "Regulated": result["Significant"] & (result["EffectSize"] < 0),
            "Dataset": f"epiflow_{cell}",
            "distanceToTSS": pairs.distance,
            "measuredGeneUbiquitousExpressed": False,
            **chromatin_columns(pairs, tracks, cutoff, bin_size),
        }
    )
    frame = frame.reindex(columns=COLUMNS)
    return frame.sort_values(["chrom", "chromStart", "startTSS"], ignore_index=True)


def screen_to_tsv(frame: pd.DataFrame) -> str:
    """The screen as the benchmark's TSV text: TRUE/FALSE booleans, NA for missing values."""
    out = frame.copy()
    for column in BOOL_COLUMNS:
        out[column] = np.where(out[column].astype(bool), "TRUE", "FALSE")
    return out.to_csv(sep="\t", index=False, na_rep="NA", float_format="%.6g")
