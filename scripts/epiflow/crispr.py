"""Benchmark enhancer-gene predictions against CRISPRi screens (EPCrisprBenchmark format), the way EngreitzLab's
CRISPR_comparison does: read the screen, match each tested element-gene pair with the predictions, add baselines
computed from the screen itself, and report AUPRC and precision at 70 % recall with paired bootstrap intervals.

Conventions (documented choices):
- Coordinates are 0-based half-open; an element and a predicted element match when they share a chromosome and
  a gene and overlap by at least one base (touching intervals, ``a.end == b.start``, do not match).
- Genes match by symbol, or by Ensembl gene id without its version (the screen's ``measuredGeneEnsemblId``).
  A prediction whose gene is unknown to the screen (neither a symbol nor an id of any screen pair) falls back to
  its ``TargetGeneTSS``: it names every screen gene whose TSS lies within ``tss_tolerance`` (500 bp) of it.
- Several predictions overlapping one element aggregate by the predictor's ``aggregate`` (max, or sum for
  ABC-like scores); an element without any prediction gets the predictor's ``fill_value``. Aggregation is on
  the raw values, also for inverse predictors (as CRISPR_comparison does).
- Every statistic is on the whole screen (fill values included); ``matched`` counts pairs with a prediction.
- ``distance`` is the file's ``distanceToTSS`` (EPCrisprBenchmark's own, to the TSS of its gene universe) where
  given, else |element midpoint - startTSS|. The ENCODE files' startTSS is sometimes a distant alternative TSS
  (HBE1: 235 kb upstream of the one distanceToTSS uses), and the K562 distance baseline drops from 0.46 to 0.42
  AUPRC when recomputed from it. A pair with an unknown TSS (``startTSS == endTSS == 0``, 81 C19orf43 pairs in
  the K562 set) gets ``gene_tss = MISSING_TSS``; it is dropped only when no distanceToTSS is given either.
"""

from __future__ import annotations

import dataclasses
import logging
import re

import numpy as np
import pandas as pd

from epiflow import liftover, metrics, plots
from epiflow.errors import InputError
from epiflow.io_crispr import MISSING_TSS, strip_version
from epiflow.pairs import expand_ranges, overlaps_by_gene

log = logging.getLogger(__name__)

TSS_TOLERANCE = 500
RECALL_TARGET = 0.7
# [low, high) in bp of |element midpoint - TSS|
DISTANCE_BINS = (
    (0, 10_000, "0-10kb"),
    (10_000, 100_000, "10-100kb"),
    (100_000, 1_000_000, "100kb-1Mb"),
    (1_000_000, np.inf, ">1Mb"),
)
SUMMARY_COLUMNS = [
    "predictor",
    "n",
    "n_pos",
    "matched",
    "aupr",
    "aupr_lo",
    "aupr_hi",
    "precision_at_recall70",
    "precision_at_recall70_lo",
    "precision_at_recall70_hi",
]
_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")


@dataclasses.dataclass(frozen=True)
class Predictor:
    """How one predictor is read and matched (CRISPR_comparison's pred_config: pred_col, aggregate_function,
    fill_value, inverse_predictor)."""

    name: str
    source: str = ""
    score_column: str = "score"
    aggregate: str = "max"
    fill_value: float = 0.0
    inverse: bool = False

    def __post_init__(self):
        if not _NAME.match(self.name):
            raise InputError(f"predictor name {self.name!r} (expected letters, digits, _ . + -)")
        if self.aggregate not in ("max", "sum"):
            raise InputError(f"predictor {self.name}: aggregate {self.aggregate!r} (expected 'max' or 'sum')")

    @classmethod
    def from_dict(cls, spec: dict) -> Predictor:
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in spec.items() if k in fields})


def lift_pairs(frame: pd.DataFrame, chain) -> tuple[pd.DataFrame, dict]:
    """Lift a screen (read_crispr) or predictions (read_predictions) frame to another build with a chain
    (epiflow.liftover.load_chain): elements by both ends, TSSs as points (MISSING_TSS stays). A row whose element
    or TSS fails is dropped. `distance` is kept as read (a build-independent length). Returns (frame, counts
    {"element": reasons, "tss": reasons})."""
    lifted, element = liftover.lift_intervals(frame, chain)
    lifted, tss = liftover.lift_points(lifted, chain, position="gene_tss", missing=MISSING_TSS)
    return lifted.reset_index(drop=True), {"element": element, "tss": tss}


# ---- matching ---------------------------------------------------------------------------------------------------
def _gene_of_predictions(pairs: pd.DataFrame, predictions: pd.DataFrame, tss_tolerance: int):
    """(row of `predictions`, screen gene symbol) for every prediction that names a screen gene: by symbol or id,
    else (unknown gene) by TSS within tss_tolerance of a screen gene's TSS on the same chromosome."""
    alias = pd.concat(
        [
            pd.Series(pairs["gene"].to_numpy(), index=pairs["gene"]),
            pd.Series(pairs["gene"].to_numpy(), pairs["gene_id"]),
        ]
    )
    alias = alias[(alias.index != "") & ~alias.index.duplicated()]
    symbol = strip_version(predictions["gene"]).map(alias)
    known = symbol.notna().to_numpy()
    rows, genes = [np.flatnonzero(known)], [symbol.to_numpy()[known]]
    unknown = predictions[~known & (predictions["gene_tss"] != MISSING_TSS).to_numpy()]
    sites = pairs.loc[pairs["gene_tss"] != MISSING_TSS, ["chrom", "gene_tss", "gene"]].drop_duplicates()
    for chrom, site in sites.groupby("chrom", sort=False):
        site = site.sort_values("gene_tss")
        query = unknown[unknown["chrom"] == chrom]
        lo = np.searchsorted(site["gene_tss"].to_numpy(), query["gene_tss"].to_numpy() - tss_tolerance, "left")
        hi = np.searchsorted(site["gene_tss"].to_numpy(), query["gene_tss"].to_numpy() + tss_tolerance, "right")
        owner, hit = expand_ranges(lo, hi)
        rows.append(predictions.index.get_indexer(query.index[owner]))
        genes.append(site["gene"].to_numpy()[hit])
    return np.concatenate(rows).astype(np.int64), np.concatenate(genes).astype(object)


def match_predictions(
    pairs: pd.DataFrame,
    predictions: pd.DataFrame,
    aggregate: str = "max",
    fill_value: float = 0.0,
    tss_tolerance: int = TSS_TOLERANCE,
) -> pd.DataFrame:
    """Score each screen pair by the predictions that overlap its element and name its gene (see the module
    docstring). `pairs`: read_crispr's frame; `predictions`: read_predictions' frame. Returns DataFrame[score,
    matched, n_overlaps] on pairs' index. Sorted search per (chromosome, gene) group, no pair x prediction loop."""
    if aggregate not in ("max", "sum"):
        raise InputError(f"aggregate {aggregate!r} (expected 'max' or 'sum')")
    predictions = predictions.reset_index(drop=True)
    row, gene = _gene_of_predictions(pairs, predictions, tss_tolerance)
    pred = pd.DataFrame({"chrom": predictions["chrom"].to_numpy()[row], "gene": gene})
    pred["start"], pred["end"] = predictions["start"].to_numpy()[row], predictions["end"].to_numpy()[row]
    owner, hit = overlaps_by_gene(pairs, pred)
    values = predictions["score"].to_numpy()[row][hit]
    n_overlaps = np.bincount(owner, minlength=len(pairs))
    if aggregate == "sum":
        score = np.bincount(owner, weights=values, minlength=len(pairs))
    else:
        score = np.full(len(pairs), -np.inf)
        np.maximum.at(score, owner, values)
    matched = n_overlaps > 0
    score = np.where(matched, score, float(fill_value))
    return pd.DataFrame({"score": score, "matched": matched, "n_overlaps": n_overlaps}, index=pairs.index)


# ---- baselines --------------------------------------------------------------------------------------------------
def baseline_distance(pairs: pd.DataFrame) -> pd.Series:
    """Distance from element midpoint to TSS (bp): an inverse predictor (nearer ranks higher)."""
    return pairs["distance"].astype(np.float64)


def baseline_within_100kb(pairs: pd.DataFrame) -> pd.Series:
    """1 when the element midpoint is within 100 kb of the gene's TSS, else 0."""
    return (pairs["distance"] <= 100_000).astype(np.float64)


def baseline_nearest_tss(pairs: pd.DataFrame, tss: pd.DataFrame) -> pd.Series:
    """1 when the TSS nearest to the element midpoint (of the TSS table: chrom, tss, gene) is the pair's gene (by
    symbol or version-less Ensembl id), else 0. Equidistant TSSs: the upstream one wins."""
    nearest = pd.Series("", index=pairs.index, dtype=object)
    for chrom, sites in tss.groupby("chrom", sort=False):
        sites = sites.sort_values("tss")
        positions, genes = sites["tss"].to_numpy(np.float64), strip_version(sites["gene"]).to_numpy(object)
        here = pairs["chrom"] == chrom
        mid = ((pairs.loc[here, "start"] + pairs.loc[here, "end"]) / 2).to_numpy()
        right = np.clip(np.searchsorted(positions, mid), 0, len(positions) - 1)
        left = np.clip(right - 1, 0, len(positions) - 1)
        pick = np.where(np.abs(mid - positions[left]) <= np.abs(positions[right] - mid), left, right)
        nearest[here] = genes[pick]
    return ((nearest == pairs["gene"]) | ((nearest == pairs["gene_id"]) & (pairs["gene_id"] != ""))).astype(float)


def baseline_nearest_expressed_tss(pairs: pd.DataFrame, tss: pd.DataFrame, expressed) -> pd.Series:
    """baseline_nearest_tss among the TSSs of `expressed` genes only (symbols or ids, version-less)."""
    keep = strip_version(tss["gene"]).isin(set(strip_version(pd.Series(list(expressed), dtype=str))))
    return baseline_nearest_tss(pairs, tss[keep.to_numpy()])


def check_expressed_genes(expressed, tss: pd.DataFrame, source) -> None:
    """At least one gene of the expressed-gene list `source` names a gene of the TSS table (by symbol or version-less
    Ensembl id): with none, baseline_nearest_expressed_tss would score 0 for every pair. Genes the table lacks are
    logged."""
    listed = set(strip_version(pd.Series(list(expressed), dtype=str)))
    known = listed & set(strip_version(tss["gene"]))
    if not known:
        raise InputError(
            f"{source}: none of its {len(listed)} genes (e.g. {sorted(listed)[:3]}) is a gene of the TSS annotation "
            f"(e.g. {sorted(set(tss['gene']))[:3]}; expected the annotation's gene names or ids)"
        )
    if len(known) < len(listed):
        log.warning(
            "%s: %d of %d listed genes not in the TSS annotation", source, len(listed) - len(known), len(listed)
        )


def baselines(pairs: pd.DataFrame, tss: pd.DataFrame, expressed=None) -> list[tuple[Predictor, pd.Series]]:
    """The baselines as (spec, score per pair); nearest expressed TSS only when a gene list is given."""
    out = [
        (Predictor("baseline_distance", inverse=True), baseline_distance(pairs)),
        (Predictor("baseline_nearest_tss"), baseline_nearest_tss(pairs, tss)),
        (Predictor("baseline_within_100kb"), baseline_within_100kb(pairs)),
    ]
    if expressed is not None:
        out.insert(
            2, (Predictor("baseline_nearest_expressed_tss"), baseline_nearest_expressed_tss(pairs, tss, expressed))
        )
    return out


def score_table(
    pairs, tss, predicted: list[tuple[Predictor, pd.DataFrame]], expressed=None, tss_tolerance=TSS_TOLERANCE
):
    """Every pair with every predictor's score and matched flag: pairs' columns plus `score.<name>` and
    `matched.<name>`; baselines first, then `predicted` in order. Returns (table, specs)."""
    table, specs = pairs.copy(), []
    for spec, score in baselines(pairs, tss, expressed):
        table[f"score.{spec.name}"], table[f"matched.{spec.name}"] = score.to_numpy(), True
        specs.append(spec)
    for spec, predictions in predicted:
        if spec.name in {s.name for s in specs}:
            raise InputError(f"predictor name {spec.name!r} used twice (expected unique names)")
        scored = match_predictions(pairs, predictions, spec.aggregate, spec.fill_value, tss_tolerance)
        table[f"score.{spec.name}"], table[f"matched.{spec.name}"] = scored["score"], scored["matched"]
        specs.append(spec)
        log.info("%s: %d of %d pairs matched", spec.name, int(scored["matched"].sum()), len(pairs))
    return table, specs


# ---- statistics -------------------------------------------------------------------------------------------------
def orient(score, inverse: bool = False) -> np.ndarray:
    """Scores mapped into (0, 1] by dense rank (ties kept), higher = more confident; inverse predictors negated
    first. AUPRC and precision at recall depend on the order only, so metrics.py's [0, 1] functions apply."""
    values = -np.asarray(score, np.float64) if inverse else np.asarray(score, np.float64)
    ranks = np.unique(values, return_inverse=True)[1] + 1
    return ranks / ranks.max()


def point_metrics(y, p, recall: float = RECALL_TARGET) -> tuple[float, float]:
    """(AUPRC as metrics.aupr, precision at the highest threshold reaching `recall`); NaN without positives."""
    y = np.asarray(y)
    if y.sum() == 0:
        return float("nan"), float("nan")
    threshold = metrics.choose_threshold(y, p, rule="recall", target=recall)
    return metrics.aupr(y, p), metrics.precision_recall_f1(y, p, threshold)[0]


def bootstrap_counts(n: int, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """(n_boot, n) int32: how often each row is drawn in each resample (n draws with replacement)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(n_boot, n)) + (np.arange(n_boot) * n)[:, None]
    return np.bincount(draws.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(np.int32)


def bootstrap_metrics(y, p, counts: np.ndarray, recall: float = RECALL_TARGET) -> tuple[np.ndarray, np.ndarray]:
    """AUPRC and precision at `recall` of each resample given as row counts (bootstrap_counts), vectorized: the
    weighted form of sklearn's average precision, equal to metrics.aupr on the resampled rows."""
    y, p = np.asarray(y, np.int32), np.asarray(p, np.float64)
    order = np.argsort(-p, kind="stable")
    last = np.append(np.flatnonzero(np.diff(p[order]) != 0), len(p) - 1)  # last row of each tie block
    weights = counts[:, order]
    tp = np.cumsum(weights * y[order], axis=1, dtype=np.int64)[:, last]
    drawn = np.cumsum(weights, axis=1, dtype=np.int64)[:, last]
    positives = tp[:, -1].astype(np.float64)
    precision = np.divide(tp, drawn, out=np.zeros(tp.shape), where=drawn > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = (np.diff(tp, axis=1, prepend=0) * precision).sum(axis=1) / positives
        reached = tp / positives[:, None] >= recall
    at_recall = precision[np.arange(len(tp)), reached.argmax(axis=1)]
    at_recall[positives == 0] = np.nan
    return ap, at_recall


def _interval(values: np.ndarray, conf: float) -> tuple[float, float]:
    if np.isnan(values).all():
        return float("nan"), float("nan")
    lo, hi = np.nanpercentile(values, [50 * (1 - conf), 50 * (1 + conf)])
    return float(lo), float(hi)


def evaluate(table, specs, counts: np.ndarray, recall=RECALL_TARGET, conf=0.95, rows=None) -> pd.DataFrame:
    """Per predictor: n, n_pos, matched, point AUPRC and precision at recall with percentile intervals, and the
    paired AUPRC difference to the best baseline (highest point AUPRC) on the same resamples. `rows` (a boolean
    mask) restricts to a subset of pairs, keeping each resample's draws of those pairs."""
    rows = np.ones(len(table), bool) if rows is None else np.asarray(rows, bool)
    y, counts = table["label"].to_numpy()[rows], counts[:, rows]
    records, boots = [], {}
    for spec in specs:
        p = orient(table[f"score.{spec.name}"].to_numpy()[rows], spec.inverse)
        if rows.any():
            aupr, at_recall = point_metrics(y, p, recall)
            boot_aupr, boot_recall = bootstrap_metrics(y, p, counts, recall)
        else:
            aupr = at_recall = np.nan
            boot_aupr = boot_recall = np.full(len(counts), np.nan)
        boots[spec.name] = boot_aupr
        aupr_lo, aupr_hi = _interval(boot_aupr, conf)
        recall_lo, recall_hi = _interval(boot_recall, conf)
        records.append(
            {
                "predictor": spec.name,
                "n": int(rows.sum()),
                "n_pos": int(y.sum()),
                "matched": int(table[f"matched.{spec.name}"].to_numpy()[rows].sum()),
                "aupr": aupr,
                "aupr_lo": aupr_lo,
                "aupr_hi": aupr_hi,
                "precision_at_recall70": at_recall,
                "precision_at_recall70_lo": recall_lo,
                "precision_at_recall70_hi": recall_hi,
            }
        )
    out = pd.DataFrame(records, columns=SUMMARY_COLUMNS)
    base = out[out["predictor"].str.startswith("baseline_")].dropna(subset=["aupr"])
    best = base.loc[base["aupr"].idxmax(), "predictor"] if len(base) else None
    best_aupr = out.set_index("predictor")["aupr"].get(best, np.nan)
    deltas = [
        (aupr - best_aupr, *_interval(boots[name] - boots[best] if best else boots[name] * np.nan, conf))
        for name, aupr in zip(out["predictor"], out["aupr"], strict=True)
    ]
    out[["delta_aupr", "delta_aupr_lo", "delta_aupr_hi"]] = pd.DataFrame(deltas, index=out.index)
    out["best_baseline"] = best
    out["inverse"] = [spec.inverse for spec in specs]
    return out


def summary_table(table, specs, n_boot: int = 1000, seed: int = 0, recall=RECALL_TARGET, counts=None) -> pd.DataFrame:
    """One row per predictor: SUMMARY_COLUMNS, then delta_aupr, delta_aupr_lo, delta_aupr_hi (vs best_baseline),
    best_baseline, inverse. `counts` (bootstrap_counts) can be shared with by_distance_table."""
    counts = bootstrap_counts(len(table), n_boot, seed) if counts is None else counts
    return evaluate(table, specs, counts, recall)


def by_distance_table(table, specs, n_boot=1000, seed=0, recall=RECALL_TARGET, counts=None, bins=DISTANCE_BINS):
    """summary_table per distance bin (DISTANCE_BINS: [low, high) of `distance`), a `bin` column first; the same
    resamples as the summary when `counts` is shared; deltas are to the best baseline within each bin."""
    counts = bootstrap_counts(len(table), n_boot, seed) if counts is None else counts
    parts = []
    for low, high, label in bins:
        rows = ((table["distance"] >= low) & (table["distance"] < high)).to_numpy()
        if not rows.any():
            continue  # no screen pair at these distances (e.g. a screen within 500 kb)
        parts.append(evaluate(table, specs, counts, recall, rows=rows).assign(bin=label))
    out = pd.concat(parts, ignore_index=True)
    return out[["bin"] + [c for c in out.columns if c != "bin"]]


# ---- plots ------------------------------------------------------------------------------------------------------
def plot_pr_curves(table, specs, title: str, recall: float = RECALL_TARGET) -> bytes:
    """PR curves of every predictor (plots.pr_curves_at_recall), each named with its AUPRC and marked at `recall`;
    baselines dashed."""
    y = table["label"].to_numpy()
    curves, dashed = {}, set()
    for spec in specs:
        p = orient(table[f"score.{spec.name}"], spec.inverse)
        aupr, at_recall = point_metrics(y, p, recall)
        label = f"{spec.name} ({aupr:.2f})"
        curves[label] = (y, p, at_recall)
        if spec.name.startswith("baseline_"):
            dashed.add(label)
    return plots.pr_curves_at_recall(curves, recall, title, dashed)


def plot_by_distance(by_distance: pd.DataFrame, title: str) -> bytes:
    """AUPRC per distance bin (by_distance_table), one line per predictor, 95 % intervals as error bars."""
    first = by_distance.drop_duplicates("bin")
    labels = [f"{b}\n{n} pairs, {k} +" for b, n, k in zip(first["bin"], first["n"], first["n_pos"], strict=True)]
    groups = by_distance.groupby("predictor", sort=False)
    series = {name: rows[["aupr", "aupr_lo", "aupr_hi"]].to_numpy() for name, rows in groups}
    dashed = {name for name in series if name.startswith("baseline_")}
    return plots.by_bin_intervals(series, labels, title, "element midpoint to TSS", dashed)
