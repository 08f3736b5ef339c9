"""Evaluation audits on written predictions: locus leakage, distance-stratified AUPR, external anchors.

Inputs are the workflow's own tables (predictions, pair tables) and, for anchors, an outside prediction file; no
model is re-run. Intervals are 0-based half-open; two intervals overlap when each starts before the other ends.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from epiflow.errors import InputError
from epiflow.metrics import aupr, auroc, score_ranks

log = logging.getLogger(__name__)

DISTANCE_BINS = 5
ANCHOR_FORMATS = ("transepi", "tsv")


# ---- locus leakage ------------------------------------------------------------------------------------------------
def _merge(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted, disjoint union of intervals [start, end)."""
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], ends[order]
    reach = np.maximum.accumulate(ends)
    # a new block starts where an interval begins at or after everything before it has ended (half-open)
    first = np.flatnonzero(np.concatenate([[True], starts[1:] >= reach[:-1]]))
    return starts[first], np.maximum.reduceat(ends, first)


def overlaps_any(chrom, starts, ends, ref_chrom, ref_starts, ref_ends) -> np.ndarray:
    """Boolean per query interval: does it overlap any reference interval on the same chromosome?"""
    chrom, starts, ends = np.asarray(chrom), np.asarray(starts), np.asarray(ends)
    ref_chrom = np.asarray(ref_chrom)
    hit = np.zeros(len(chrom), dtype=bool)
    for c in np.unique(chrom):
        on_ref = ref_chrom == c
        if not on_ref.any():
            continue
        m_start, m_end = _merge(np.asarray(ref_starts)[on_ref], np.asarray(ref_ends)[on_ref])
        q = np.flatnonzero(chrom == c)
        # the last merged interval starting before the query's end is the only candidate (they are disjoint)
        k = np.searchsorted(m_start, ends[q], side="left") - 1
        hit[q] = (k >= 0) & (m_end[np.maximum(k, 0)] > starts[q])
    return hit


def locus_overlap(test: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Per test pair (standard pair table rows): enhancer_seen, promoter_seen — overlap with any reference pair's
    enhancer / promoter. Returns a frame aligned with `test`."""
    out = {}
    for side in ("enhancer", "promoter"):
        out[f"{side}_seen"] = overlaps_any(
            test.chrom,
            test[f"{side}_start"],
            test[f"{side}_end"],
            reference.chrom,
            reference[f"{side}_start"],
            reference[f"{side}_end"],
        )
    return pd.DataFrame(out, index=test.index)


def _safe(metric, y, p) -> float:
    return metric(y, p) if len(y) and np.sum(y) > 0 else math.nan


def leakage_audit(
    predictions: dict[str, pd.DataFrame],
    test_pairs: pd.DataFrame,
    train_pairs: pd.DataFrame,
    chrom_folds: list[list[str]] | None,
) -> pd.DataFrame:
    """Locus leakage of one held-out line, one row per model.

    predictions: model -> prediction table (split/fold/pair_id/label/prob); test_pairs: the held-out line's pair
    table; train_pairs: the training lines' pair tables concatenated. "Seen" = overlap with a pair of the fold's
    training pool (training lines, chromosomes outside the fold); "shared" = overlap with a training-line pair on
    any chromosome (what a random, non-chromosome split would have leaked). Columns: model, n, share_enhancer,
    share_promoter, share_both, share_shared, aupr_seen, aupr_unseen, aupr_shared, aupr_not_shared.
    """
    test_pairs = test_pairs.drop_duplicates("pair_id").reset_index(drop=True)  # pair_id is the join key
    pairs = test_pairs.set_index("pair_id")
    shared_all = locus_overlap(test_pairs, train_pairs).set_index(test_pairs.pair_id)
    rows = []
    for model, pred in predictions.items():
        test = pred[pred.split == "test"]
        parts = []
        for fold, rows_f in test.groupby("fold"):
            test_chroms = chrom_folds[int(fold)] if chrom_folds else sorted(train_pairs.chrom.unique())
            pool = train_pairs[~train_pairs.chrom.isin(test_chroms)] if chrom_folds else train_pairs
            seen = locus_overlap(pairs.loc[rows_f.pair_id].reset_index(), pool)
            parts.append(seen.set_index(rows_f.index))
        seen = pd.concat(parts).loc[test.index]
        shared = shared_all.loc[test.pair_id].to_numpy().any(axis=1)
        either = seen.to_numpy().any(axis=1)
        y, p = test.label.to_numpy(), test.prob.to_numpy()
        rows.append(
            {
                "model": model,
                "n": len(test),
                "share_enhancer": float(seen.enhancer_seen.mean()),
                "share_promoter": float(seen.promoter_seen.mean()),
                "share_both": float((seen.enhancer_seen & seen.promoter_seen).mean()),
                "share_shared": float(shared.mean()),
                "aupr_seen": _safe(aupr, y[either], p[either]),
                "aupr_unseen": _safe(aupr, y[~either], p[~either]),
                "aupr_shared": _safe(aupr, y[shared], p[shared]),
                "aupr_not_shared": _safe(aupr, y[~shared], p[~shared]),
            }
        )
    return pd.DataFrame(rows)


# ---- distance strata ----------------------------------------------------------------------------------------------
def distance_edges(distance: np.ndarray, n_bins: int = DISTANCE_BINS) -> np.ndarray:
    """Quantile edges of the distances (unique, so ties may give fewer bins)."""
    return np.unique(np.quantile(np.asarray(distance, np.float64), np.linspace(0, 1, n_bins + 1)))


def distance_strata(predictions: dict[str, pd.DataFrame], n_bins: int = DISTANCE_BINS) -> pd.DataFrame:
    """Test AUPR per distance quantile bin per model (bins shared by the models of one held-out line).

    Returns rows model, bin, lo, hi, n, pos_rate, aupr, lift (= aupr / pos_rate; ~1 when the model ranks pairs of
    similar distance no better than chance, i.e. it has learned little beyond distance).
    """
    first = next(iter(predictions.values()))
    edges = distance_edges(first.loc[first.split == "test", "distance"], n_bins)
    rows = []
    for model, pred in predictions.items():
        test = pred[pred.split == "test"]
        b = np.clip(np.searchsorted(edges, test.distance.to_numpy(), side="right") - 1, 0, len(edges) - 2)
        for k in range(len(edges) - 1):
            part = test[b == k]
            rate = float(part.label.mean()) if len(part) else math.nan
            value = _safe(aupr, part.label.to_numpy(), part.prob.to_numpy())
            rows.append(
                {"model": model, "bin": k, "lo": edges[k], "hi": edges[k + 1], "n": len(part), "pos_rate": rate}
                | {"aupr": value, "lift": value / rate if rate else math.nan}
            )
    return pd.DataFrame(rows)


# ---- external anchors ---------------------------------------------------------------------------------------------
def _coordinates(names: pd.Series, path, what: str) -> pd.DataFrame:
    """`chrN:A-B|...` names -> chrom, start, end; InputError naming the first bad line."""
    parts = names.str.extract(r"^([^:|]+):(\d+)-(\d+)")
    bad = np.flatnonzero(parts[0].isna().to_numpy())
    if bad.size:
        raise InputError(f"{path} row {bad[0] + 1}: {what} {names.iloc[bad[0]]!r} (expected 'chrN:start-end|...')")
    return pd.DataFrame({"chrom": parts[0], "start": parts[1].astype(np.int64), "end": parts[2].astype(np.int64)})


def read_anchor(path: str | Path, fmt: str, pairs: pd.DataFrame) -> pd.DataFrame:
    """An outside model's predictions matched to the held-out line's pair table by coordinates.

    fmt `transepi`: TransEPI's evaluate_model output (`#true pred chrom enh_name prom_name`; the enhancer from
    enh_name, the TSS from the start of prom_name); fmt `tsv`: columns pair_id, score. Returns pair_id, score
    (mean over repeated rows) for the pairs found in `pairs`.
    """
    if fmt not in ANCHOR_FORMATS:
        raise InputError(f"{path}: anchor format {fmt!r} (expected one of {', '.join(ANCHOR_FORMATS)})")
    if fmt == "tsv":
        table = pd.read_csv(path, sep="\t", dtype={"pair_id": str})
        missing = {"pair_id", "score"} - set(table.columns)
        if missing:
            raise InputError(f"{path} line 1: missing column(s) {sorted(missing)} (expected pair_id, score)")
        return table.groupby("pair_id", as_index=False)["score"].mean().merge(pairs[["pair_id"]])
    table = pd.read_csv(path, sep="\t", comment="#", header=None, usecols=range(5), dtype={2: str, 3: str, 4: str})
    table.columns = ["label", "score", "chrom", "enh_name", "prom_name"]
    enh = _coordinates(table.enh_name, path, "enh_name")
    tss = _coordinates(table.prom_name, path, "prom_name").start
    keyed = pd.DataFrame(
        {"chrom": enh.chrom, "enhancer_start": enh.start, "enhancer_end": enh.end, "tss": tss, "score": table.score}
    )
    keys = ["chrom", "enhancer_start", "enhancer_end", "tss"]
    keyed = keyed.groupby(keys, as_index=False)["score"].mean()
    matched = pairs[["pair_id", *keys]].merge(keyed, on=keys)
    log.info("%s: %d of %d anchor pairs matched the pair table", path, len(matched), len(keyed))
    return matched[["pair_id", "score"]]


def anchor_comparison(anchor: pd.DataFrame, predictions: dict[str, pd.DataFrame], name: str) -> pd.DataFrame:
    """AUPR/AUROC of the anchor and of every model on exactly the test pairs both have (labels are epiflow's).

    Returns rows: scorer (the anchor's name or a model), n, n_pos, aupr, auroc.
    """
    first = next(iter(predictions.values()))
    test = first.loc[first.split == "test", ["pair_id", "label"]].merge(anchor, on="pair_id")
    test["score"] = score_ranks(test.score)  # outside scores need not be probabilities
    rows = [{"scorer": name, "n": len(test), "n_pos": int(test.label.sum())}]
    rows[0] |= {"aupr": _safe(aupr, test.label, test.score), "auroc": _safe(auroc, test.label, test.score)}
    for model, pred in predictions.items():
        same = pred.loc[pred.split == "test", ["pair_id", "label", "prob"]].merge(test[["pair_id"]], on="pair_id")
        rows.append(
            {"scorer": model, "n": len(same), "n_pos": int(same.label.sum())}
            | {"aupr": _safe(aupr, same.label, same.prob), "auroc": _safe(auroc, same.label, same.prob)}
        )
    return pd.DataFrame(rows)
