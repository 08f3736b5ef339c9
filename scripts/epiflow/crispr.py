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
import os
import re

import numpy as np
import pandas as pd

from epiflow import liftover, metrics
from epiflow.errors import InputError
from epiflow.io_text import (
    as_int,
    check_field_counts,
    check_start_end,
    fail,
    first_bad,
    harmonize_chroms,
    is_gzip,
    read_table,
)
from epiflow.pairs import expand_ranges, overlaps_by_gene
from epiflow.plots import COLORS, STYLE, to_png  # sets the Agg backend before pyplot is imported below

log = logging.getLogger(__name__)

SCREEN_COLUMNS = (
    "chrom",
    "chromStart",
    "chromEnd",
    "measuredGeneSymbol",
    "startTSS",
    "endTSS",
    "Regulated",
    "ValidConnection",
    "CellType",
)
MISSING_TSS = -1
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
_VERSION = re.compile(r"^(ENS[A-Z]*G\d+)\.\d+$")
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


# ---- reading ----------------------------------------------------------------------------------------------------
def _as_bool(values: pd.Series, path, what: str) -> pd.Series:
    upper = values.str.strip().str.upper()
    line = first_bad(~upper.isin(["TRUE", "FALSE"]))
    if line is not None:
        fail(path, line, f"{what} {values[line]!r} (expected TRUE or FALSE)")
    return upper == "TRUE"


def _as_number(values: pd.Series, path, what: str, missing_ok: bool = False) -> pd.Series:
    """Finite numbers; 'NA' or empty is NaN when missing_ok, else an InputError naming the line."""
    missing = values.str.strip().isin(["", "NA", "NaN", "nan"])
    numbers = pd.to_numeric(values.where(~missing), errors="coerce")
    line = first_bad((~missing | (not missing_ok)) & ~np.isfinite(numbers))
    if line is not None:
        fail(path, line, f"{what} {values[line]!r} is not a finite number")
    return numbers.astype(np.float64)


def strip_version(genes: pd.Series) -> pd.Series:
    """Ensembl gene ids without their version (ENSG00000116198.12 -> ENSG00000116198); other names unchanged."""
    return genes.astype(str).str.replace(_VERSION, r"\1", regex=True)


def read_crispr(
    path: str | os.PathLike,
    cell_line: str | None = None,
    power_column: str | None = None,
    min_power=None,
    chrom_map=None,
) -> tuple[pd.DataFrame, dict]:
    """Read an EPCrisprBenchmark TSV (header row; columns SCREEN_COLUMNS at least).

    Keeps ValidConnection == TRUE rows; with `power_column` and `min_power` drops negatives (Regulated FALSE) whose
    power is below `min_power`, and negatives whose power is missing (NA: a negative of unknown power is not
    trusted). Rows whose CellType differs from `cell_line`, booleans other than TRUE/FALSE (any case), bad
    numbers, a TSS on another chromosome and duplicated element-gene pairs are InputErrors naming the line, and so
    is a bare chromosome name (`1`) unless `chrom_map` (reference.chrom_map) maps it; no pair left after the
    filters is an InputError with the counts.
    Returns (DataFrame[chrom, start, end, gene, gene_id, gene_tss, label, distance, name, dataset, line(, power)],
    stats: rows, invalid_connection, power_missing, power_filtered, missing_tss, missing_tss_dropped, pairs,
    positives)."""
    if min_power is not None and not power_column:
        raise InputError(f"{path}: min_power {min_power} given without a power column")
    table = read_table(path, header=True)
    header_line = int(table.index[0]) - 1
    needed = list(SCREEN_COLUMNS) + ([power_column] if power_column else [])
    missing = [c for c in needed if c not in table.columns]
    if missing:
        fail(path, header_line, f"missing column(s) {missing} (expected the EPCrisprBenchmark header)")
    if cell_line is not None:
        line = first_bad(table["CellType"].str.strip() != cell_line)
        if line is not None:
            fail(path, line, f"CellType {table['CellType'][line]!r} (expected {cell_line!r}, the sheet's cell line)")
    valid = _as_bool(table["ValidConnection"], path, "ValidConnection")
    label = _as_bool(table["Regulated"], path, "Regulated")
    stats = {"rows": len(table), "invalid_connection": int((~valid).sum())}
    table, label = table[valid], label[valid]
    if table.empty:
        raise InputError(f"{path}: no row with ValidConnection TRUE (expected at least one)")
    chroms = harmonize_chroms(table["chrom"].str.strip(), None, chrom_map, path)
    frame = pd.DataFrame({"chrom": chroms}, index=table.index)
    frame["start"] = as_int(table["chromStart"], path, "chromStart")
    frame["end"] = as_int(table["chromEnd"], path, "chromEnd")
    check_start_end(frame["start"], frame["end"], path, names=("chromStart", "chromEnd"))
    frame["gene"] = table["measuredGeneSymbol"].str.strip()
    ids = table["measuredGeneEnsemblId"] if "measuredGeneEnsemblId" in table else pd.Series("", index=table.index)
    frame["gene_id"] = strip_version(ids.str.strip().replace("NA", ""))
    frame["gene_tss"] = as_int(table["startTSS"], path, "startTSS")
    unknown_tss = (frame["gene_tss"] == 0) & (as_int(table["endTSS"], path, "endTSS") == 0)
    if "chrTSS" in table:
        line = first_bad((table["chrTSS"].str.strip() != table["chrom"].str.strip()) & ~unknown_tss)
        if line is not None:
            fail(path, line, f"chrTSS {table['chrTSS'][line]!r} differs from chrom (expected a cis pair)")
    frame["label"] = label.astype(np.int64)
    frame["name"] = table.get("name", "")
    frame["dataset"] = table.get("Dataset", "")
    frame["line"] = frame.index
    frame.loc[unknown_tss, "gene_tss"] = MISSING_TSS
    frame["distance"] = _distance(frame, table, path)
    stats["missing_tss"] = int(unknown_tss.sum())
    stats["missing_tss_dropped"] = int(frame["distance"].isna().sum())
    frame = frame[frame["distance"].notna()]
    frame = _power_filter(frame, table, path, power_column, min_power, stats)
    if frame.empty:
        raise InputError(f"{path}: no pair left after the filters ({stats}; expected at least one)")
    _refuse_duplicates(frame, path, "element-gene pair")
    stats.update(pairs=len(frame), positives=int(frame["label"].sum()))
    log.info("%s: %d pairs (%d regulated); dropped %s", path, len(frame), stats["positives"], stats)
    return frame.reset_index(drop=True), stats


def _distance(frame: pd.DataFrame, table: pd.DataFrame, path) -> pd.Series:
    """The file's distanceToTSS where given, else |element midpoint - startTSS|; NaN when neither is known."""
    computed = np.abs((frame["start"] + frame["end"]) / 2 - frame["gene_tss"]).where(frame["gene_tss"] != MISSING_TSS)
    if "distanceToTSS" not in table:
        return computed
    given = _as_number(table.loc[frame.index, "distanceToTSS"], path, "distanceToTSS", missing_ok=True)
    line = first_bad(given < 0)
    if line is not None:
        fail(path, line, f"distanceToTSS {given[line]} (expected a distance >= 0)")
    return given.fillna(computed)


def _power_filter(frame, table, path, power_column, min_power, stats) -> pd.DataFrame:
    stats["power_missing"] = stats["power_filtered"] = 0
    if not power_column:
        return frame
    power = _as_number(table.loc[frame.index, power_column], path, power_column, missing_ok=True)
    line = first_bad((power < 0) | (power > 1))
    if line is not None:
        fail(path, line, f"{power_column} {power[line]} (expected a power in [0, 1])")
    frame = frame.assign(power=power)
    if min_power is None:
        return frame
    negative = frame["label"] == 0
    no_power = negative & power.isna()
    low = negative & (power < float(min_power))
    stats["power_missing"], stats["power_filtered"] = int(no_power.sum()), int(low.sum())
    return frame[~(no_power | low)]


def read_predictions(path: str | os.PathLike, score_column: str, chroms=None, chrom_map=None) -> pd.DataFrame:
    """Read predictions with ABC / ENCODE-rE2G columns (chrom or chr, start, end, TargetGene, optional
    TargetGeneTSS, the score column), plain or gzip (told by content), header row; a row with another field count
    than the header is an InputError, blank lines are skipped (line numbers stay the file's). Chromosome names are
    harmonized first (a bare `1` is an InputError unless `chrom_map` maps it); rows on chromosomes outside
    `chroms` are skipped, and none left is an InputError, as is an element-gene pair listed twice or a fractional
    TargetGeneTSS. Returns DataFrame[chrom, start, end, gene, gene_tss, score] (gene_tss MISSING_TSS when
    absent)."""
    try:
        compression = "gzip" if is_gzip(path) else None  # by content, whatever the name says
        header = pd.read_csv(path, sep="\t", nrows=0, compression=compression).columns
    except (OSError, ValueError, EOFError) as err:
        raise InputError(f"{path}: cannot read predictions ({err})") from err
    chrom = "chrom" if "chrom" in header else "chr"
    needed = [chrom, "start", "end", "TargetGene", score_column]
    missing = [c for c in needed if c not in header]
    if missing:
        raise InputError(f"{path} line 1: missing column(s) {missing} (expected ABC / ENCODE-rE2G columns)")
    check_field_counts(path, len(header))
    usecols = needed + (["TargetGeneTSS"] if "TargetGeneTSS" in header else [])
    table = pd.read_csv(
        path,
        sep="\t",
        usecols=usecols,
        dtype=str,
        keep_default_na=False,
        skip_blank_lines=False,
        compression=compression,
    )
    table.index = np.arange(len(table)) + 2  # 1-based file lines after the header
    table = table[(table != "").any(axis=1)]  # blank lines
    if table.empty:
        raise InputError(f"{path}: only a header line (expected prediction rows after it)")
    table[chrom] = harmonize_chroms(table[chrom].str.strip(), None, chrom_map, path)
    if chroms is not None:
        table = table[table[chrom].isin(set(chroms))]
        if table.empty:
            raise InputError(
                f"{path}: no prediction on the screen's chromosomes {sorted(chroms)[:5]} (expected some; check the "
                "chromosome names)"
            )
    frame = pd.DataFrame({"chrom": table[chrom]}, index=table.index)
    frame["start"] = as_int(table["start"], path, "start")
    frame["end"] = as_int(table["end"], path, "end")
    check_start_end(frame["start"], frame["end"], path)
    frame["gene"] = strip_version(table["TargetGene"])
    tss = table.get("TargetGeneTSS", pd.Series(str(MISSING_TSS), index=table.index)).replace(["NA", ""], "-1")
    frame["gene_tss"] = pd.to_numeric(tss, errors="coerce")
    line = first_bad(frame["gene_tss"].isna() | (frame["gene_tss"] % 1 != 0))
    if line is not None:
        fail(path, line, f"TargetGeneTSS {tss[line]!r} is not an integer")
    frame["gene_tss"] = frame["gene_tss"].astype(np.int64)
    frame["score"] = _as_number(table[score_column], path, score_column)
    _refuse_duplicates(frame, path, "element-gene prediction")  # `aggregate: sum` would count it twice
    return frame.reset_index(drop=True)


def _refuse_duplicates(frame: pd.DataFrame, path, what: str) -> None:
    """An element-gene pair on a second line is an InputError naming both lines."""
    keys = ["chrom", "start", "end", "gene"]
    line = first_bad(frame.duplicated(keys))
    if line is not None:
        same = (frame[keys] == frame.loc[line, keys]).all(axis=1)
        fail(
            path,
            line,
            f"{what} {frame.loc[line, 'gene']} at this element listed twice, first on line {same.idxmax()} "
            "(expected once)",
        )


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
    """PR curves of every predictor (plots.pr_curves style) with the point at `recall` marked."""
    y = table["label"].to_numpy()
    curves = {spec.name: (y, orient(table[f"score.{spec.name}"], spec.inverse)) for spec in specs}
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    with plt.rc_context(STYLE | {"figure.figsize": (5.2, 4.2)}):
        fig, ax = plt.subplots()
        for i, (name, (labels, p)) in enumerate(curves.items()):
            if labels.sum() == 0:
                continue
            color = COLORS[i % len(COLORS)]
            precision, recalls, _ = precision_recall_curve(labels, p)
            ls = "--" if name.startswith("baseline_") else "-"
            aupr, at_recall = point_metrics(labels, p, recall)
            ax.plot(
                recalls, precision, lw=1.2, ls=ls, color=color, drawstyle="steps-post", label=f"{name} ({aupr:.2f})"
            )
            ax.plot([recall], [at_recall], "o", ms=4, color=color)
        ax.axvline(recall, color="0.7", lw=0.8, ls=":")
        ax.set(xlabel="recall", ylabel="precision", title=title, xlim=(0, 1), ylim=(0, 1.02))
        ax.legend(frameon=False, fontsize=6)
        return to_png(fig)


def plot_by_distance(by_distance: pd.DataFrame, title: str) -> bytes:
    """AUPRC per distance bin (by_distance_table), one line per predictor, 95 % intervals as error bars."""
    first = by_distance.drop_duplicates("bin")
    labels = [f"{b}\n{n} pairs, {k} +" for b, n, k in zip(first["bin"], first["n"], first["n_pos"], strict=True)]
    import matplotlib.pyplot as plt

    with plt.rc_context(STYLE | {"figure.figsize": (5.2, 3.6)}):
        fig, ax = plt.subplots()
        for i, (name, rows) in enumerate(by_distance.groupby("predictor", sort=False)):
            x = np.arange(len(rows)) + (i - by_distance["predictor"].nunique() / 2) * 0.03
            err = np.abs(rows[["aupr_lo", "aupr_hi"]].to_numpy().T - rows["aupr"].to_numpy())
            ls = "--" if name.startswith("baseline_") else "-"
            ax.errorbar(
                x,
                rows["aupr"],
                yerr=err,
                marker="o",
                ms=3,
                lw=1.1,
                ls=ls,
                capsize=2,
                color=COLORS[i % len(COLORS)],
                label=name,
            )
        ax.set_xticks(range(len(labels)), labels)
        ax.set(xlabel="element midpoint to TSS", ylabel="AUPRC", title=title, ylim=(0, 1.02))
        ax.legend(frameon=False, fontsize=6)
        return to_png(fig)
