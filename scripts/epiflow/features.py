"""Signal features of enhancer–promoter pairs from bigWig tracks, at the speed of the data.

Engine (epiflow.track_bins): per (chromosome, mark) a bigWig is read once into bin means at ``resolution`` bp,
optionally normalized (see ``epiflow.normalize``), and turned into a cumulative sum. Every position a chromosome's
pairs need (region ends, profile edges) is placed on the bin grid once; each mark then answers all of them with two
gathers from its cumulative sum: no per-pair Python loop. Results are float32.

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
from epiflow.track_bins import Positions, _load_cumulative, _read_bins

logger = logging.getLogger(__name__)

REGION_NAMES = ("enhancer", "promoter", "window")
PAIR_COORDINATES = ("chrom", "enhancer_start", "enhancer_end", "promoter_start", "promoter_end")


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
    missing = [c for c in PAIR_COORDINATES if c not in pairs.columns]
    if missing:
        raise InputError(f"{source}: missing column(s) {', '.join(missing)} (expected {', '.join(PAIR_COORDINATES)})")
    chrom = pairs["chrom"].astype(str).to_numpy()
    unknown = ~np.isin(chrom, list(chrom_sizes))
    if unknown.any():
        row = int(np.flatnonzero(unknown)[0])
        raise InputError(f"{source} row {row + 1}: chromosome {chrom[row]!r} not in chrom_sizes")
    coords = pairs[list(PAIR_COORDINATES[1:])].to_numpy(dtype=np.int64).reshape(-1, 2, 2)
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


def _inverse(length: np.ndarray) -> np.ndarray:
    """1 / length, and 0 for empty regions (so their mean is 0)."""
    return np.where(length > 0, 1.0 / np.where(length > 0, length, 1.0), 0.0)


@dataclass(frozen=True)
class ChromosomeQueries:
    """Every bp position the pairs of one chromosome need (region ends, profile edges), placed once."""

    positions: Positions
    region_scale: np.ndarray  # (m, 3) 1 / clipped length of enhancer, promoter, window
    profile_scale: np.ndarray  # (m, n_bins) 1 / clipped length of each profile bin

    @classmethod
    def build(cls, geom: PairGeometry, rows, size: int, resolution: int, n_bins: int, flank_fraction: float):
        window = geom.window[rows]
        starts = np.stack([geom.enhancer[rows, 0], geom.promoter[rows, 0], window[:, 0]], axis=1)
        ends = np.stack([geom.enhancer[rows, 1], geom.promoter[rows, 1], window[:, 1]], axis=1)
        starts, ends = np.clip(starts, 0, size).astype(np.float64), np.clip(ends, 0, size).astype(np.float64)
        edges = np.clip(_profile_edges(geom, rows, n_bins, flank_fraction), 0, size) if n_bins else np.zeros((0, 0))
        x = np.concatenate([starts.ravel(), ends.ravel(), edges.ravel()])
        profile_scale = _inverse(np.diff(edges, axis=1)) if n_bins else edges
        return cls(Positions.locate(x, size, resolution), _inverse(ends - starts), profile_scale)

    def answer(self, cs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(m, 3) region means and (m, n_bins) profile-bin means of the track whose cumulative sum is ``cs``."""
        integral = self.positions.integral(cs)
        m3 = self.region_scale.size
        regions = (integral[m3 : 2 * m3] - integral[:m3]).reshape(-1, 3) * self.region_scale
        if not self.profile_scale.size:
            return regions, self.profile_scale
        edges = integral[2 * m3 :].reshape(len(regions), -1)
        return regions, np.diff(edges, axis=1) * self.profile_scale


def _fit_normalizers(handles: dict, chrom_sizes: dict, resolution: int, method: str) -> dict[str, Normalizer]:
    """One normalizer per mark, fitted on all bins of all chromosomes the track has (one at a time)."""
    check_method(method)

    def bins_of(bw):
        for chrom, size in chrom_sizes.items():
            bins = _read_bins(bw, chrom, int(size), resolution)
            if bins is not None:
                yield bins

    return {mark: fit_normalizer(method, bins_of(bw)) for mark, bw in handles.items()}


def _run(pairs, tracks, chrom_sizes, resolution, n_bins, flank_fraction, normalization, normalizers=None):
    """Shared pass over (chromosome, mark): E/P/W means (n, marks, 3) and profiles (n, marks, n_bins); the marks'
    normalizers are fitted genome-wide unless given (`fit_track_normalizers`)."""
    geom = pair_geometry(pairs, chrom_sizes)
    marks = list(tracks)
    table = np.zeros((len(pairs), len(marks), len(REGION_NAMES)), dtype=np.float32)
    profile = np.zeros((len(pairs), len(marks), n_bins), dtype=np.float32)
    flip = geom.enhancer_mid > geom.tss  # enhancer downstream of the TSS
    with ExitStack() as stack:
        handles = {m: stack.enter_context(pyBigWig.open(str(tracks[m]))) for m in marks}
        if normalizers is None:
            normalizers = _fit_normalizers(handles, chrom_sizes, resolution, normalization)
        lacking = {m: [] for m in marks}
        for chrom in pd.unique(geom.chrom):
            rows = np.flatnonzero(geom.chrom == chrom)
            size = int(chrom_sizes[chrom])
            queries = ChromosomeQueries.build(geom, rows, size, resolution, n_bins, flank_fraction)
            for m, mark in enumerate(marks):
                cs = _load_cumulative(handles[mark], chrom, size, resolution, normalizers[mark])
                if cs is None:
                    lacking[mark].append(chrom)
                    continue  # absent chromosome: zeros, already in place
                table[rows, m], bins = queries.answer(cs)
                if n_bins:
                    bins[flip[rows]] = bins[flip[rows], ::-1]  # enhancer side first
                    profile[rows, m] = bins
    for mark, chroms in lacking.items():
        if chroms:
            logger.warning("track %s (%s) lacks %s: their signal is 0", mark, tracks[mark], ", ".join(chroms))
    return geom, marks, table, profile


def _table_frame(table: np.ndarray, marks: list[str], index) -> pd.DataFrame:
    """(n, marks, 3) array → DataFrame with columns {mark}_enhancer, {mark}_promoter, {mark}_window."""
    columns = [f"{mark}_{region}" for mark in marks for region in REGION_NAMES]
    return pd.DataFrame(table.reshape(len(table), len(columns)), columns=columns, index=index)


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
    normalizers: dict[str, Normalizer] | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """``epw_features`` plus ``log_distance`` (log10(distance + 1)) and ``context_profiles``, in one pass.

    Each track-chromosome is read once; the marks' normalizers are fitted genome-wide unless given
    (``fit_track_normalizers``). Returns (table DataFrame, profile array (n, marks, n_bins)).
    """
    args = (resolution, n_bins, flank_fraction, normalization, normalizers)
    geom, marks, table, profile = _run(pairs, tracks, chrom_sizes, *args)
    frame = _table_frame(table, marks, pairs.index)
    frame["log_distance"] = np.log10(geom.distance + 1).astype(np.float32)
    return frame, profile


def compute_configured(
    pairs: pd.DataFrame, tracks: dict[str, str], chrom_sizes: dict, options: dict, normalization: str | None = None
) -> tuple[pd.DataFrame, np.ndarray]:
    """compute_features with the config's `features:` options (resolution, profile_bins, flank_fraction,
    normalization); `normalization` given here overrides the option."""
    return compute_features(
        pairs,
        tracks,
        chrom_sizes,
        resolution=options["resolution"],
        n_bins=options["profile_bins"],
        flank_fraction=options["flank_fraction"],
        normalization=options["normalization"] if normalization is None else normalization,
    )


def fit_track_normalizers(tracks: dict[str, str], chrom_sizes: dict, options: dict) -> dict[str, Normalizer]:
    """The per-mark normalizers of one cell line's tracks (config `features:` options), fitted genome-wide once."""
    with ExitStack() as stack:
        handles = {m: stack.enter_context(pyBigWig.open(str(path))) for m, path in tracks.items()}
        return _fit_normalizers(handles, chrom_sizes, options["resolution"], options["normalization"])


def features_by_chromosome(pairs: pd.DataFrame, tracks: dict[str, str], chrom_sizes: dict, options: dict, n_bins=None):
    """compute_configured one chromosome at a time (memory bounded by the largest chromosome's pairs), with the
    normalizers fitted once: yields (chromosome, row positions in `pairs`, table DataFrame, profile array).
    `n_bins` overrides options["profile_bins"] (0: no profiles)."""
    normalizers = fit_track_normalizers(tracks, chrom_sizes, options)
    n_bins = options["profile_bins"] if n_bins is None else n_bins
    chroms = pairs["chrom"].astype(str).to_numpy()
    for chrom in pd.unique(chroms):
        rows = np.flatnonzero(chroms == chrom)
        frame, profile = compute_features(
            pairs.iloc[rows],
            tracks,
            chrom_sizes,
            options["resolution"],
            n_bins,
            options["flank_fraction"],
            options["normalization"],
            normalizers,
        )
        yield chrom, rows, frame, profile


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
