"""Signal features of enhancer–promoter pairs from bigWig tracks, at the speed of the data.

Engine: per (chromosome, mark) a bigWig is read once into a float64 array of bin means at
``resolution`` bp (bin i covers ``[i*res, (i+1)*res)``, the last bin ends at the chromosome end; missing
data counts as 0), optionally normalized (see ``epiflow.normalize``), and turned into a cumulative sum.
Any region's mean signal is then two O(1) look-ups.

Region convention: a region ``[start, end)`` in bp is clipped to the chromosome; its mean is the integral
of the piecewise-constant bin signal over it divided by its clipped length, i.e. the bins at its two ends
count by their fractional overlap. At ``resolution=1`` this is exactly pyBigWig
``stats(type="sum", exact=True) / length`` (the exact mean with missing bases as 0). An empty region
(zero length after clipping) has mean 0.

Geometry of a pair: the enhancer ``[enhancer_start, enhancer_end)``, the promoter
``[promoter_start, promoter_end)`` and the window between them, exclusive of both:
``[min(enhancer_end, promoter_end), max(enhancer_start, promoter_start))`` — this handles the enhancer
up- or downstream and is empty (signal 0) when the two touch or overlap.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyBigWig

from epiflow.errors import InputError
from epiflow.normalize import Normalizer, check_method, fit_normalizer

logger = logging.getLogger(__name__)

REGION_NAMES = ("enhancer", "promoter", "window")
PAIR_COLUMNS = ("chrom", "enhancer_start", "enhancer_end", "promoter_start", "promoter_end")


@dataclass(frozen=True)
class BinnedTrack:
    """One chromosome of one mark: bin means (float64) and their cumulative integral ``cs`` (bp × signal)."""

    bins: np.ndarray
    cs: np.ndarray
    size: int
    resolution: int

    def integral(self, x: np.ndarray) -> np.ndarray:
        """Integral of the signal over ``[0, x)`` for positions ``x`` (bp, float) clipped to the chromosome."""
        x = np.clip(np.asarray(x, dtype=np.float64), 0, self.size)
        k = np.minimum((x // self.resolution).astype(np.int64), self.bins.size - 1)
        return self.cs[k] + (x - k * self.resolution) * self.bins[k]

    def means(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Mean signal over each region ``[start, end)`` clipped to the chromosome; 0 where empty."""
        s = np.clip(np.asarray(starts, dtype=np.float64), 0, self.size)
        e = np.clip(np.asarray(ends, dtype=np.float64), 0, self.size)
        length = e - s
        total = self.integral(e) - self.integral(s)
        return np.where(length > 0, total / np.where(length > 0, length, 1.0), 0.0)


def _bin_edges(size: int, resolution: int) -> np.ndarray:
    """Bin edges 0, res, 2*res, ..., size (the last bin may be shorter)."""
    n_bins = max(1, -(-size // resolution))
    return np.minimum(np.arange(n_bins + 1, dtype=np.int64) * resolution, size)


def _integral_at(x: np.ndarray, starts, ends, values) -> np.ndarray:
    """Exact integral over ``[0, x)`` of sorted, non-overlapping intervals (the bigWig guarantee)."""
    before = np.concatenate([[0.0], np.cumsum(values * (ends - starts))])[:-1]
    j = np.searchsorted(starts, x, side="right") - 1
    jc = np.maximum(j, 0)
    inside = np.clip(x - starts[jc], 0, ends[jc] - starts[jc])
    return np.where(j >= 0, before[jc] + values[jc] * inside, 0.0)


def _read_bins(bw, chrom: str, size: int, resolution: int) -> np.ndarray | None:
    """Bin means (float64) of ``chrom`` painted from the bigWig's intervals; None if the track lacks it."""
    if chrom not in bw.chroms():
        return None
    edges = _bin_edges(size, resolution)
    intervals = bw.intervals(chrom)
    if not intervals:
        return np.zeros(edges.size - 1)
    starts, ends, values = np.asarray(intervals, dtype=np.float64).T
    return np.diff(_integral_at(edges, starts, ends, values)) / np.diff(edges)


def load_track(bw, chrom: str, size: int, resolution: int = 100) -> np.ndarray:
    """Bin means of one chromosome of a bigWig (open pyBigWig handle or path) as float32.

    Returns ``ceil(size / resolution)`` values; bin i is the mean over ``[i*res, min((i+1)*res, size))``
    with missing data as 0. A chromosome absent from the track gives zeros and a logged warning.
    """
    with ExitStack() as stack:
        if isinstance(bw, str | Path):
            bw = stack.enter_context(pyBigWig.open(str(bw)))
        bins = _read_bins(bw, chrom, size, resolution)
    if bins is None:
        logger.warning("bigWig lacks %s: its signal is taken as 0", chrom)
        bins = np.zeros(_bin_edges(size, resolution).size - 1)
    return bins.astype(np.float32)


def _binned_track(bins: np.ndarray, size: int, resolution: int) -> BinnedTrack:
    """Cumulative integral of bin means (float64, widths respected for the short last bin)."""
    widths = np.diff(_bin_edges(size, resolution))
    cs = np.concatenate([[0.0], np.cumsum(bins * widths)])
    return BinnedTrack(bins, cs, size, resolution)


@dataclass(frozen=True)
class PairGeometry:
    """Validated coordinates of a pair table as numpy arrays (row order of the table)."""

    chrom: np.ndarray
    enhancer: np.ndarray  # (n, 2) int64 start, end
    promoter: np.ndarray  # (n, 2)
    tss: np.ndarray  # (n,) float64
    distance: np.ndarray  # (n,) float64

    @property
    def window(self) -> np.ndarray:
        """(n, 2) window between enhancer and promoter, exclusive of both; empty when they overlap."""
        start = np.minimum(self.enhancer[:, 1], self.promoter[:, 1])
        end = np.maximum(self.enhancer[:, 0], self.promoter[:, 0])
        return np.stack([start, np.maximum(start, end)], axis=1)

    @property
    def enhancer_mid(self) -> np.ndarray:
        return self.enhancer.mean(axis=1)


def pair_geometry(pairs: pd.DataFrame, chrom_sizes: dict, source: str = "pairs") -> PairGeometry:
    """Check a pair table's coordinates and return them as arrays; InputError names the 1-based row."""
    missing = [c for c in PAIR_COLUMNS if c not in pairs.columns]
    if missing:
        raise InputError(f"{source}: missing column(s) {', '.join(missing)} (expected {', '.join(PAIR_COLUMNS)})")
    chrom = pairs["chrom"].astype(str).to_numpy()
    unknown = ~np.isin(chrom, list(chrom_sizes))
    if unknown.any():
        row = int(np.flatnonzero(unknown)[0])
        raise InputError(f"{source} row {row + 1}: chromosome {chrom[row]!r} not in chrom_sizes")
    coords = pairs[list(PAIR_COLUMNS[1:])].to_numpy(dtype=np.int64).reshape(-1, 2, 2)
    bad = coords[:, :, 0] > coords[:, :, 1]
    if bad.any():
        row, which = (int(i) for i in np.argwhere(bad)[0])
        name = ("enhancer", "promoter")[which]
        s, e = coords[row, which]
        raise InputError(f"{source} row {row + 1}: {name} start {s} > end {e} (expected start <= end)")
    tss = pairs["tss"].to_numpy(np.float64) if "tss" in pairs else coords[:, 1].mean(axis=1)
    enhancer_mid = coords[:, 0].mean(axis=1)
    distance = pairs["distance"].to_numpy(np.float64) if "distance" in pairs else np.abs(enhancer_mid - tss)
    return PairGeometry(chrom, coords[:, 0], coords[:, 1], tss, distance)


def _profile_edges(geom: PairGeometry, rows: np.ndarray, n_bins: int, flank_fraction: float) -> np.ndarray:
    """(len(rows), n_bins + 1) bp edges along [min(E,P) - flank, max(E,P) + flank], flank = fraction × span."""
    lo = np.minimum(geom.enhancer[rows, 0], geom.promoter[rows, 0]).astype(np.float64)
    hi = np.maximum(geom.enhancer[rows, 1], geom.promoter[rows, 1]).astype(np.float64)
    flank = flank_fraction * (hi - lo)
    lo, hi = lo - flank, hi + flank
    return lo[:, None] + (hi - lo)[:, None] * (np.arange(n_bins + 1) / n_bins)[None, :]


def _profile(track: BinnedTrack, edges: np.ndarray, flip: np.ndarray) -> np.ndarray:
    """Mean signal in each profile bin; rows in ``flip`` reversed so the enhancer side is bin 0."""
    profile = track.means(edges[:, :-1], edges[:, 1:])
    profile[flip] = profile[flip, ::-1]
    return profile


def _fit_normalizers(handles: dict, chrom_sizes: dict, resolution: int, method: str) -> dict[str, Normalizer]:
    """One normalizer per mark, fitted on all bins of all chromosomes the track has (one at a time)."""
    check_method(method)

    def bins_of(bw):
        for chrom, size in chrom_sizes.items():
            bins = _read_bins(bw, chrom, int(size), resolution)
            if bins is not None:
                yield bins

    return {mark: fit_normalizer(method, bins_of(bw)) for mark, bw in handles.items()}


def _run(pairs, tracks, chrom_sizes, resolution, n_bins, flank_fraction, normalization):
    """Shared pass over (chromosome, mark): E/P/W means (n, marks, 3) and profiles (n, marks, n_bins)."""
    geom = pair_geometry(pairs, chrom_sizes)
    marks = list(tracks)
    table = np.zeros((len(pairs), len(marks), len(REGION_NAMES)), dtype=np.float32)
    profile = np.zeros((len(pairs), len(marks), n_bins), dtype=np.float32)
    window = geom.window
    flip = geom.enhancer_mid > geom.tss  # enhancer downstream of the TSS
    with ExitStack() as stack:
        handles = {m: stack.enter_context(pyBigWig.open(str(tracks[m]))) for m in marks}
        normalizers = _fit_normalizers(handles, chrom_sizes, resolution, normalization)
        lacking = {m: [] for m in marks}
        for chrom in pd.unique(geom.chrom):
            rows = np.flatnonzero(geom.chrom == chrom)
            size = int(chrom_sizes[chrom])
            edges = _profile_edges(geom, rows, n_bins, flank_fraction) if n_bins else None
            for m, mark in enumerate(marks):
                bins = _read_bins(handles[mark], chrom, size, resolution)
                if bins is None:
                    lacking[mark].append(chrom)
                    continue  # absent chromosome: zeros, already in place
                track = _binned_track(normalizers[mark].transform(bins), size, resolution)
                for r, region in enumerate((geom.enhancer, geom.promoter, window)):
                    table[rows, m, r] = track.means(region[rows, 0], region[rows, 1])
                if n_bins:
                    profile[rows, m] = _profile(track, edges, flip[rows])
    for mark, chroms in lacking.items():
        if chroms:
            logger.warning("track %s (%s) lacks %s: their signal is 0", mark, tracks[mark], ", ".join(chroms))
    return geom, marks, table, profile


def _table_frame(table: np.ndarray, marks: list[str], index) -> pd.DataFrame:
    """(n, marks, 3) array → DataFrame with columns {mark}_enhancer, {mark}_promoter, {mark}_window."""
    columns = [f"{mark}_{region}" for mark in marks for region in REGION_NAMES]
    return pd.DataFrame(table.reshape(len(table), -1), columns=columns, index=index)


def epw_features(
    pairs: pd.DataFrame, tracks: dict[str, str], chrom_sizes: dict, resolution: int = 100, normalization: str = "none"
) -> pd.DataFrame:
    """Mean signal of each mark over each pair's enhancer, promoter and window (float32 DataFrame).

    ``tracks`` maps mark → bigWig path of one cell line; columns follow its order; index is ``pairs.index``.
    """
    _, marks, table, _ = _run(pairs, tracks, chrom_sizes, resolution, 0, 0.0, normalization)
    return _table_frame(table, marks, pairs.index)


def context_profiles(
    pairs: pd.DataFrame,
    tracks: dict[str, str],
    chrom_sizes: dict,
    n_bins: int = 64,
    flank_fraction: float = 0.25,
    resolution: int = 100,
    normalization: str = "none",
) -> np.ndarray:
    """(n_pairs, n_marks, n_bins) float32 signal along each pair, enhancer side at bin 0.

    Bins split ``[min(E, P) - flank, max(E, P) + flank]`` equally, where E and P are the enhancer and
    promoter intervals and flank = ``flank_fraction`` × their outer span; rows whose enhancer midpoint
    lies downstream of the TSS are reversed. Parts outside the chromosome are left out of a bin's mean.
    """
    _, _, _, profile = _run(pairs, tracks, chrom_sizes, resolution, n_bins, flank_fraction, normalization)
    return profile


def compute_features(
    pairs: pd.DataFrame,
    tracks: dict[str, str],
    chrom_sizes: dict,
    resolution: int = 100,
    n_bins: int = 64,
    flank_fraction: float = 0.25,
    normalization: str = "none",
) -> tuple[pd.DataFrame, np.ndarray]:
    """``epw_features`` plus ``log_distance`` (log10(distance + 1)) and ``context_profiles``, in one pass.

    Each track-chromosome is read once. Returns (table DataFrame, profile array (n, marks, n_bins)).
    """
    geom, marks, table, profile = _run(pairs, tracks, chrom_sizes, resolution, n_bins, flank_fraction, normalization)
    frame = _table_frame(table, marks, pairs.index)
    frame["log_distance"] = np.log10(geom.distance + 1).astype(np.float32)
    return frame, profile


_BASE_CODES = np.full(256, 4, dtype=np.int8)
for _code, _letters in enumerate(("Aa", "Cc", "Gg", "Tt")):
    for _letter in _letters:
        _BASE_CODES[ord(_letter)] = _code


def sequence_codes(fasta_path: str | Path, pairs: pd.DataFrame, length: int = 256) -> np.ndarray:
    """(n, 2, length) int8 base codes (A,C,G,T → 0..3, other → 4) around the enhancer midpoint and the TSS.

    Window ``[c - length // 2, c - length // 2 + length)`` around centre c (enhancer midpoint rounded
    down; ``tss`` column, or the promoter midpoint without one); positions off the chromosome are 4.
    Reads a (bgzipped, indexed) FASTA with pysam, one fetch per chromosome.
    """
    import pysam

    chrom = pairs["chrom"].astype(str).to_numpy()
    enhancer_mid = (pairs["enhancer_start"].to_numpy(np.int64) + pairs["enhancer_end"].to_numpy(np.int64)) // 2
    if "tss" in pairs:
        tss = pairs["tss"].to_numpy(np.int64)
    else:
        tss = (pairs["promoter_start"].to_numpy(np.int64) + pairs["promoter_end"].to_numpy(np.int64)) // 2
    starts = np.stack([enhancer_mid, tss], axis=1) - length // 2
    codes = np.full((len(pairs), 2, length), 4, dtype=np.int8)
    offsets = np.arange(length)
    with pysam.FastaFile(str(fasta_path)) as fasta:
        for name in pd.unique(chrom):
            rows = np.flatnonzero(chrom == name)
            if name not in fasta.references:
                raise InputError(f"{fasta_path}: chromosome {name!r} (pairs row {rows[0] + 1}) not in the FASTA")
            size = fasta.get_reference_length(name)
            lo = int(np.clip(starts[rows].min(), 0, size))
            hi = int(np.clip(starts[rows].max() + length, lo, size))
            if hi == lo:
                continue  # every window lies off the chromosome
            # Only the span the windows need, once per chromosome.
            bases = _BASE_CODES[np.frombuffer(fasta.fetch(name, lo, hi).encode("ascii"), dtype=np.uint8)]
            pos = starts[rows][:, :, None] + offsets
            inside = (pos >= lo) & (pos < hi)
            codes[rows] = np.where(inside, bases[np.clip(pos - lo, 0, hi - lo - 1)], 4)
    return codes


def save_features(path, pair_ids, table: pd.DataFrame, profile: np.ndarray, profile_marks, seq=None) -> None:
    """Write one compressed npz: pair_id, columns, values (float32), profile, profile_marks, seq (optional)."""
    values = table.to_numpy(dtype=np.float32)
    pair_ids = np.asarray(pair_ids, dtype=str)
    if not (len(pair_ids) == len(values) == len(profile)):
        raise ValueError(f"{path}: {len(pair_ids)} pair ids, {len(values)} table rows, {len(profile)} profiles")
    arrays = {
        "pair_id": pair_ids,
        "columns": np.asarray(table.columns, dtype=str),
        "values": values,
        "profile": np.asarray(profile, dtype=np.float32),
        "profile_marks": np.asarray(profile_marks, dtype=str),
    }
    if seq is not None:
        arrays["seq"] = np.asarray(seq, dtype=np.int8)
    with open(path, "wb") as handle:  # a file handle keeps numpy from appending ".npz"
        np.savez_compressed(handle, **arrays)


def load_features(path) -> dict:
    """Read ``save_features`` output back into a dict of numpy arrays (same keys; ``seq`` only if saved)."""
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}
