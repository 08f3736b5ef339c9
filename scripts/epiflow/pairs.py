"""EP pairs: labelled enhancer–promoter pairs from Hi-C loops, distance-matched negatives, chromosome folds.

Every pair table in epiflow has the columns of PAIR_COLUMNS (0-based half-open coordinates, one chromosome per pair;
defined in epiflow.io_pairs, below this stage, so the readers need not import it from here).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from epiflow.errors import InputError
from epiflow.io_pairs import PAIR_COLUMNS

log = logging.getLogger(__name__)


def expand_ranges(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For half-open index ranges [lo[i], hi[i]) return (i, j) for every j in range i, vectorized."""
    counts = np.maximum(hi - lo, 0)
    rows = np.repeat(np.arange(len(lo)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return rows, lo[rows] + offsets


def merge_intervals(frame: pd.DataFrame) -> pd.DataFrame:
    """Merge overlapping [start, end) intervals per chromosome; returns sorted chrom, start, end."""
    out = []
    for chrom, group in frame.sort_values(["chrom", "start"]).groupby("chrom", sort=True):
        starts, ends = group.start.to_numpy(), group.end.to_numpy()
        reach = np.maximum.accumulate(ends)
        first = np.flatnonzero(np.concatenate([[True], starts[1:] >= reach[:-1]]))
        out.append(pd.DataFrame({"chrom": chrom, "start": starts[first], "end": np.maximum.reduceat(ends, first)}))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=["chrom", "start", "end"])


def candidate_enhancers(peaks: pd.DataFrame, tss: pd.DataFrame, promoter_flank: int) -> pd.DataFrame:
    """Distal enhancer candidates: merged peaks that share no base with any promoter [TSS - promoter_flank, TSS +
    promoter_flank)."""
    merged = merge_intervals(peaks[["chrom", "start", "end"]])
    keep = np.ones(len(merged), bool)
    for chrom, idx in merged.groupby("chrom").indices.items():
        sites = np.sort(tss.loc[tss.chrom == chrom, "tss"].to_numpy())
        s, e = merged.start.to_numpy()[idx], merged.end.to_numpy()[idx]
        # a peak overlaps a promoter when some TSS lies in (start - flank, end + flank)
        hits = np.searchsorted(sites, e + promoter_flank) - np.searchsorted(sites, s - promoter_flank, side="right")
        keep[idx] = hits == 0
    return merged[keep].reset_index(drop=True)


def candidate_pairs(enhancers: pd.DataFrame, tss: pd.DataFrame, min_distance: int, max_distance: int) -> pd.DataFrame:
    """All enhancer–TSS pairs on one chromosome with min_distance <= |enhancer midpoint - tss| <= max_distance."""
    out = []
    for chrom, enh in enhancers.groupby("chrom", sort=True):
        prom = tss[tss.chrom == chrom].sort_values("tss")
        sites = prom.tss.to_numpy()
        mid = ((enh.start.to_numpy() + enh.end.to_numpy()) // 2).astype(np.int64)
        lo = np.searchsorted(sites, mid - max_distance)
        hi = np.searchsorted(sites, mid + max_distance, side="right")
        ei, pi = expand_ranges(lo, hi)
        dist = np.abs(mid[ei] - sites[pi])
        ok = dist >= min_distance
        out.append(
            pd.DataFrame(
                {
                    "chrom": chrom,
                    "enhancer_start": enh.start.to_numpy()[ei[ok]],
                    "enhancer_end": enh.end.to_numpy()[ei[ok]],
                    "tss": sites[pi[ok]],
                    "gene": prom.gene.to_numpy()[pi[ok]],
                    "distance": dist[ok],
                }
            )
        )
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def _overlapping(starts: np.ndarray, ends: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(query i, interval j) for each interval [starts[j], ends[j]) (starts sorted) overlapping query [lo[i], hi[i])."""
    reach = int((ends - starts).max()) if len(starts) else 0
    # an interval overlapping [lo, hi) starts in (lo - reach, hi): one contiguous run of the sorted starts
    query, j = expand_ranges(np.searchsorted(starts, lo - reach, side="right"), np.searchsorted(starts, hi))
    keep = ends[j] > lo[query]
    return query[keep], j[keep]


def overlaps_by_gene(elements: pd.DataFrame, predictions: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(element row, prediction row), by position, of every prediction naming an element's gene on its chromosome
    whose [start, end) overlaps the element's by >= 1 base (touching does not count). Both frames have columns
    chrom, gene, start, end. A sorted search per (chromosome, gene) group, no element x prediction loop."""
    groups = pd.MultiIndex.from_arrays([elements["chrom"], elements["gene"]]).unique()
    pair_group = groups.get_indexer(pd.MultiIndex.from_arrays([elements["chrom"], elements["gene"]]))
    pred_group = groups.get_indexer(pd.MultiIndex.from_arrays([predictions["chrom"], predictions["gene"]]))
    inside = np.flatnonzero(pred_group >= 0)
    q_start, q_end = predictions["start"].to_numpy(np.int64), predictions["end"].to_numpy(np.int64)
    order = inside[np.lexsort((q_start[inside], pred_group[inside]))]
    q_group = pred_group[order]
    p_start, p_end = elements["start"].to_numpy(np.int64), elements["end"].to_numpy(np.int64)
    span = int(max(p_end.max(initial=0), q_end.max(initial=0))) + 1
    longest = np.zeros(len(groups), np.int64)
    np.maximum.at(longest, q_group, q_end[order] - q_start[order])
    key = q_group * span + q_start[order]
    # a prediction overlaps only if it starts after start - longest and before end
    lo = np.searchsorted(key, pair_group * span + np.maximum(p_start - longest[pair_group] + 1, 0), "left")
    hi = np.searchsorted(key, pair_group * span + p_end, "left")
    owner, hit = expand_ranges(lo, hi)
    hit = order[hit]
    overlap = (q_end[hit] > p_start[owner]) & (q_start[hit] < p_end[owner])
    return owner[overlap], hit[overlap]


def _anchor_links(enh: pd.DataFrame, sites: np.ndarray, near: tuple, far: tuple, flank: int) -> np.ndarray:
    """Codes `enhancer * len(sites) + site` of pairs whose enhancer overlaps a loop's `near` anchor and whose
    promoter (site +- flank) overlaps the same loop's `far` anchor."""
    loop_e, e = _overlapping(enh.enhancer_start.to_numpy(), enh.enhancer_end.to_numpy(), *near)
    # a promoter overlaps [s, e) iff its TSS lies in (s - flank, e + flank)
    lo, hi = np.searchsorted(sites, far[0] - flank, side="right"), np.searchsorted(sites, far[1] + flank)
    loop_t, t = expand_ranges(lo, hi)
    links = pd.DataFrame({"loop": loop_e, "e": e}).merge(pd.DataFrame({"loop": loop_t, "t": t}), on="loop")
    return links.e.to_numpy(np.int64) * len(sites) + links.t.to_numpy(np.int64)


def loop_support(pairs: pd.DataFrame, loops: pd.DataFrame, promoter_flank: int) -> np.ndarray:
    """True where one loop anchor overlaps the enhancer and the other the promoter (TSS +- flank)."""
    supported = np.zeros(len(pairs), bool)
    intra = loops[loops.chrom1 == loops.chrom2]
    for chrom, idx in pairs.groupby("chrom").indices.items():
        lp = intra[intra.chrom1 == chrom]
        if lp.empty:
            continue
        sub = pairs.iloc[idx]
        # index the loops' anchors against the chromosome's distinct enhancers and TSSs, not pairs x loops
        enh = sub[["enhancer_start", "enhancer_end"]].drop_duplicates().sort_values(["enhancer_start", "enhancer_end"])
        sites = np.unique(sub.tss.to_numpy())
        a1 = (lp.start1.to_numpy(), lp.end1.to_numpy())
        a2 = (lp.start2.to_numpy(), lp.end2.to_numpy())
        links = np.concatenate(
            [_anchor_links(enh, sites, a1, a2, promoter_flank), _anchor_links(enh, sites, a2, a1, promoter_flank)]
        )
        e = pd.MultiIndex.from_frame(enh).get_indexer(pd.MultiIndex.from_frame(sub[enh.columns]))
        supported[idx] = np.isin(e.astype(np.int64) * len(sites) + np.searchsorted(sites, sub.tss.to_numpy()), links)
    return supported


def distance_matched_negatives(
    candidates: pd.DataFrame, is_positive: np.ndarray, per_positive: int, n_bins: int, rng: np.random.Generator
) -> np.ndarray:
    """Indexes of negatives sampled so their log-distance distribution matches the positives' (quantile bins)."""
    log_d = np.log10(candidates.distance.to_numpy() + 1)
    pos = np.flatnonzero(is_positive)
    if len(pos) == 0:
        return np.array([], dtype=np.int64)
    edges = np.unique(np.quantile(log_d[pos], np.linspace(0, 1, n_bins + 1)))
    edges[0], edges[-1] = -np.inf, np.inf
    bins = np.digitize(log_d, edges[1:-1])
    chosen = []
    for b in np.unique(bins[pos]):
        pool = np.flatnonzero((bins == b) & ~is_positive)
        want = per_positive * int(np.sum(bins[pos] == b))
        chosen.append(rng.choice(pool, size=min(want, len(pool)), replace=False))
    return np.sort(np.concatenate(chosen)) if chosen else np.array([], dtype=np.int64)


def pairs_from_loops(
    loops: pd.DataFrame,
    tss: pd.DataFrame,
    peaks: pd.DataFrame,
    cell_line: str,
    params: dict,
    sources: tuple[str, str] = ("the enhancer peaks", "the TSS table"),
) -> pd.DataFrame:
    """Label pairs from a cell line's loops: positives = loop-supported EP pairs, plus distance-matched negatives.
    `sources` names the files of the peaks and TSSs in the message when they give no candidate pair."""
    flank = int(params["promoter_flank"])
    tss = tss.drop_duplicates(["chrom", "tss"])
    enhancers = candidate_enhancers(peaks, tss, flank)
    low, high = int(params["min_distance"]), int(params["max_distance"])
    cands = candidate_pairs(enhancers, tss, low, high)
    if cands.empty:
        raise InputError(
            f"{cell_line}: no enhancer–promoter candidates from {sources[0]} ({len(enhancers)} peaks outside the "
            f"±{flank} bp promoters) and {sources[1]} (expected peaks {low}–{high} bp from a TSS on a chromosome "
            "both name)"
        )
    positive = loop_support(cands, loops, flank)
    rng = np.random.default_rng(int(params["seed"]))
    negatives = distance_matched_negatives(
        cands, positive, int(params["negatives_per_positive"]), int(params["distance_bins"]), rng
    )
    keep = np.sort(np.concatenate([np.flatnonzero(positive), negatives]))
    frame = cands.iloc[keep].assign(label=positive[keep].astype(int))
    frame["promoter_start"] = np.maximum(frame.tss - flank, 0)
    frame["promoter_end"] = frame.tss + flank
    log.info("%s: %d positives, %d negatives from %d candidates", cell_line, positive.sum(), len(negatives), len(cands))
    return frame.reset_index(drop=True)


def assign_folds(chroms: pd.Series, chrom_folds: list[list[str]] | None) -> np.ndarray:
    """Fold index of each chromosome: its position in chrom_folds, -1 if in none, 0 for all when no folds."""
    if not chrom_folds:
        return np.zeros(len(chroms), dtype=np.int64)
    lookup = {c: i for i, fold in enumerate(chrom_folds) for c in fold}
    return chroms.map(lookup).fillna(-1).astype(np.int64).to_numpy()


def check_fold_chroms(chrom_folds: list[list[str]] | None, chrom_sizes: dict) -> None:
    """Every chromosome named in protocol.chrom_folds must be in the genome (else its fold would silently be empty)."""
    for f, fold in enumerate(chrom_folds or []):
        unknown = [c for c in fold if c not in chrom_sizes]
        if unknown:
            raise InputError(
                f"config protocol.chrom_folds fold {f + 1}: chromosome(s) {unknown} not in the genome's chrom sizes "
                f"(expected names of the reference, e.g. {', '.join(list(chrom_sizes)[:3])})"
            )


def finalize_pairs(
    frame: pd.DataFrame, cell_line: str, chrom_folds: list[list[str]] | None, chrom_sizes: dict, source: str
) -> pd.DataFrame:
    """Validate coordinates against the genome, add pair_id, distance and fold, drop pairs outside every fold."""
    check_fold_chroms(chrom_folds, chrom_sizes)
    unknown = ~frame.chrom.isin(list(chrom_sizes))
    if unknown.any():
        row = int(np.flatnonzero(unknown)[0])
        raise InputError(
            f"{source} row {row + 1}: chromosome {frame.chrom.iloc[row]!r} is not in the genome's chrom sizes "
            f"(expected one of {', '.join(list(chrom_sizes)[:5])}, ...; is the genome build right?)"
        )
    ends = np.maximum(frame.enhancer_end, frame.promoter_end).to_numpy()
    beyond = ends > frame.chrom.map(chrom_sizes).to_numpy()
    if beyond.any():
        row = int(np.flatnonzero(beyond)[0])
        raise InputError(
            f"{source} row {row + 1}: end {ends[row]} beyond {frame.chrom.iloc[row]} length "
            f"{chrom_sizes[frame.chrom.iloc[row]]} (expected coordinates of the configured genome build)"
        )
    out = frame.copy()
    out["cell_line"] = cell_line
    mid = (out.enhancer_start + out.enhancer_end) // 2
    out["distance"] = (mid - out.tss).abs().astype(np.int64)
    out["pair_id"] = (
        out.chrom
        + ":"
        + out.enhancer_start.astype(str)
        + "-"
        + out.enhancer_end.astype(str)
        + "|"
        + out.promoter_start.astype(str)
        + "-"
        + out.promoter_end.astype(str)
    )
    out = out.drop_duplicates("pair_id")
    out["fold"] = assign_folds(out.chrom, chrom_folds)
    outside = out.fold < 0
    if outside.any():
        log.info("%s: %d pairs on chromosomes in no fold dropped", cell_line, int(outside.sum()))
    out = out[~outside]
    if out.label.sum() == 0:
        raise InputError(f"{source}: cell line {cell_line} has no positive pairs (expected at least one label 1)")
    return out[PAIR_COLUMNS].sort_values(["chrom", "tss", "enhancer_start"]).reset_index(drop=True)
