"""Topology priors of enhancer–promoter pairs from OTHER cell lines' Hi-C domains (TADs).

A cell line's own Hi-C defined its labels, so it must never be one of its features: the held-out line's
domains are refused outright (LeakageError) and a training row uses every reference list except its own
line's (leave-self-out). All counts are vectorized per chromosome with ``np.searchsorted``.

Anchors of a pair: ``a = min(E, T)`` and ``b = max(E, T)`` with E the enhancer midpoint and T the TSS
(``tss`` column, or the promoter midpoint). "Between them" means strictly inside ``(a, b)``.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from epiflow.errors import InputError, LeakageError

logger = logging.getLogger(__name__)

INTERVAL_COLUMNS = ("chrom", "start", "end")


def _enhancer_mid_and_tss(pairs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Enhancer midpoints and TSSs (``tss`` column, or the promoter midpoint) as float64 arrays."""
    enhancer_mid = (pairs["enhancer_start"].to_numpy(np.float64) + pairs["enhancer_end"].to_numpy(np.float64)) / 2
    if "tss" in pairs:
        return enhancer_mid, pairs["tss"].to_numpy(np.float64)
    promoter_mid = (pairs["promoter_start"].to_numpy(np.float64) + pairs["promoter_end"].to_numpy(np.float64)) / 2
    return enhancer_mid, promoter_mid


def _count_between(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Number of sorted ``points`` strictly between a and b (a <= b), per row."""
    return np.maximum(np.searchsorted(points, b, side="left") - np.searchsorted(points, a, side="right"), 0)


def _check_intervals(frame: pd.DataFrame, name: str) -> None:
    missing = [c for c in INTERVAL_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"{name}: missing column(s) {', '.join(missing)} (expected {', '.join(INTERVAL_COLUMNS)})")


def _domain_stats(domains: pd.DataFrame, chrom: np.ndarray, a: np.ndarray, b: np.ndarray):
    """Per row: 1.0 if one domain [start, end) holds both a and b, and the boundaries strictly between."""
    same = np.zeros(a.size)
    crossed = np.zeros(a.size)
    for name, group in domains.groupby("chrom", sort=False):
        rows = np.flatnonzero(chrom == name)
        if rows.size == 0:
            continue
        group = group.sort_values("start")
        starts = group["start"].to_numpy(np.float64)
        # Arrowhead domains nest: the widest reach among domains starting at or before a decides.
        reach = np.maximum.accumulate(group["end"].to_numpy(np.float64))
        k = np.searchsorted(starts, a[rows], side="right") - 1
        same[rows] = np.where(k >= 0, reach[np.maximum(k, 0)] > b[rows], False)
        boundaries = np.unique(np.concatenate([starts, group["end"].to_numpy(np.float64)]))
        crossed[rows] = _count_between(boundaries, a[rows], b[rows])
    return same, crossed


def _leave_self_out_mean(values: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Row means of (n, lists) ``values`` over the usable lists; NaN where a row has none."""
    n_usable = usable.sum(axis=1)
    total = np.where(usable, values, 0.0).sum(axis=1)
    return np.where(n_usable > 0, total / np.maximum(n_usable, 1), np.nan)


def _points_by_group(keys: pd.DataFrame, positions: np.ndarray) -> dict:
    """Sorted unique positions per key tuple (e.g. (cell_line, chrom))."""
    frame = keys.assign(_pos=positions)
    groups = frame.groupby(list(keys.columns))["_pos"]
    return {_as_tuple(key): np.unique(g.to_numpy(np.float64)) for key, g in groups}


def _as_tuple(key) -> tuple:
    return key if isinstance(key, tuple) else (key,)


def _count_by_group(keys: pd.DataFrame, points: dict, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For each row, the number of its group's points strictly between a and b."""
    counts = np.zeros(a.size)
    for key, index in keys.groupby(list(keys.columns)).indices.items():
        if _as_tuple(key) in points:
            counts[index] = _count_between(points[_as_tuple(key)], a[index], b[index])
    return counts


def _table_counts(pairs: pd.DataFrame, a, b, tss: pd.DataFrame | None) -> dict[str, np.ndarray]:
    """promoters_in_window and enhancers_in_window: other TSSs and enhancers strictly between a and b."""
    group_cols = ["cell_line", "chrom"] if "cell_line" in pairs else ["chrom"]
    keys = pairs[group_cols].astype(str).reset_index(drop=True)
    enhancer_mid, pair_tss = _enhancer_mid_and_tss(pairs)
    enhancers = _points_by_group(keys, enhancer_mid)
    if tss is None:
        promoters = _points_by_group(keys, pair_tss)
        promoter_keys = keys
    else:
        column = "tss" if "tss" in tss else "start"
        promoters = _points_by_group(tss[["chrom"]].astype(str).reset_index(drop=True), tss[column].to_numpy())
        promoter_keys = keys[["chrom"]]
    return {
        "promoters_in_window": _count_by_group(promoter_keys, promoters, a, b),
        "enhancers_in_window": _count_by_group(keys, enhancers, a, b),
    }


def topology_features(
    pairs: pd.DataFrame,
    reference_tads: dict[str, pd.DataFrame],
    heldout: str,
    ctcf_peaks: pd.DataFrame | None = None,
    tss: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Topology priors per pair (float32 DataFrame, index of ``pairs``).

    ``reference_tads`` maps a training cell line → its domains (columns chrom, start, end). Columns:
    ``same_tad`` (fraction of usable lists with one domain holding E and T), ``tad_boundaries_crossed``
    (mean number of domain boundaries strictly between), ``ctcf_crossed`` (CTCF peak midpoints between;
    only if ``ctcf_peaks`` is given), ``promoters_in_window`` (TSSs between, from ``tss`` — columns chrom
    and tss or start — or else the table's own TSSs), ``enhancers_in_window`` (the table's other enhancer
    midpoints between). Rows whose ``cell_line`` is a reference key use the other lists only; rows with no
    usable list get NaN. Raises LeakageError if ``heldout`` is among the references.
    """
    if heldout in reference_tads:
        raise LeakageError(f"the held-out cell line {heldout!r} has its own Hi-C domains among the topology references")
    enhancer_mid, pair_tss = _enhancer_mid_and_tss(pairs)
    a, b = np.minimum(enhancer_mid, pair_tss), np.maximum(enhancer_mid, pair_tss)
    chrom = pairs["chrom"].astype(str).to_numpy()
    lines = pairs["cell_line"].astype(str).to_numpy() if "cell_line" in pairs else np.full(len(pairs), "")
    same = np.zeros((len(pairs), len(reference_tads)))
    crossed = np.zeros_like(same)
    usable = np.zeros(same.shape, dtype=bool)
    for j, (line, domains) in enumerate(reference_tads.items()):
        _check_intervals(domains, f"TADs of {line}")
        same[:, j], crossed[:, j] = _domain_stats(domains, chrom, a, b)
        usable[:, j] = lines != line
    if len(pairs) and not usable.any(axis=1).all():
        logger.warning("%d pairs have no reference TAD list of another cell line: NaN", (~usable.any(axis=1)).sum())
    result = {
        "same_tad": _leave_self_out_mean(same, usable),
        "tad_boundaries_crossed": _leave_self_out_mean(crossed, usable),
    }
    if ctcf_peaks is not None:
        _check_intervals(ctcf_peaks, "CTCF peaks")
        mid = (ctcf_peaks["start"].to_numpy(np.float64) + ctcf_peaks["end"].to_numpy(np.float64)) / 2
        peaks = _points_by_group(ctcf_peaks[["chrom"]].astype(str).reset_index(drop=True), mid)
        keys = pd.DataFrame({"chrom": chrom})
        result["ctcf_crossed"] = _count_by_group(keys, peaks, a, b)
    result.update(_table_counts(pairs, a, b, tss))
    return pd.DataFrame(result, index=pairs.index).astype(np.float32)
