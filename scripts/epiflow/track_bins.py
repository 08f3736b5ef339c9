"""Binned signal of one bigWig track, one chromosome at a time: the engine under epiflow.features.

Per (chromosome, mark) a bigWig is read once into a float64 array of bin means at ``resolution`` bp (bin i covers
``[i*res, (i+1)*res)``, the last bin ends at the chromosome end; missing data counts as 0), optionally normalized
(see ``epiflow.normalize``), and turned into a cumulative sum, which `Positions` answers for any bp position with two
gathers. Memory: one chromosome × one mark at a time (sparse tracks painted from their intervals, dense ones summed
from per-base values in chunks).
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyBigWig

from epiflow.normalize import Normalizer

logger = logging.getLogger(__name__)

DENSE_FRACTION = 0.25  # a track covering more of the genome than this is read base by base, not by intervals
CHUNK_BP = 10_000_000  # bases per bw.values call for dense tracks (40 MB of float32)


@dataclass(frozen=True)
class Positions:
    """bp positions placed once on one chromosome's bin grid, then reused for every mark of it."""

    k: np.ndarray  # bin holding each position (int64)
    frac: np.ndarray  # part of that bin's width left of the position, 0..1

    @classmethod
    def locate(cls, x: np.ndarray, size: int, resolution: int) -> Positions:
        """Place positions ``x`` (bp, float) clipped to the chromosome ``[0, size]``."""
        x = np.clip(x, 0, size)
        last = _n_bins(size, resolution) - 1
        k = np.minimum((x // resolution).astype(np.int64), last)
        width = np.where(k == last, _last_width(size, resolution), resolution)
        return cls(k, (x - k * resolution) / width)

    def integral(self, cs: np.ndarray) -> np.ndarray:
        """Signal integral over ``[0, x)`` from ``cs``, the integral up to each bin edge (linear inside a bin)."""
        below = cs[self.k]
        return below + self.frac * (cs[self.k + 1] - below)


def _n_bins(size: int, resolution: int) -> int:
    return max(1, -(-size // resolution))


def _paint_bins(starts, ends, values, size: int, resolution: int) -> np.ndarray:
    """Integral of sorted, non-overlapping intervals over each bin (float64), in O(intervals + bins).

    A bin inside an interval gets value × res through a difference array; the interval's first and last
    bins get value × their overlap. Intervals are clipped to the chromosome first.
    """
    n_bins = _n_bins(size, resolution)
    keep = (starts < size) & (ends > starts)
    starts, ends, values = starts[keep], np.minimum(ends[keep], size), values[keep]
    first, last = starts // resolution, (ends - 1) // resolution
    one_bin = first == last
    left = np.where(one_bin, ends, (first + 1) * resolution) - starts
    right = np.where(one_bin, 0, ends - last * resolution)
    inner = last > first + 1
    full = values[inner] * resolution
    # Few passes over the (long) bin array: one bincount for the difference array, one for the end bins.
    step = np.bincount(np.concatenate([first[inner] + 1, last[inner]]), np.concatenate([full, -full]), n_bins + 1)
    step = np.cumsum(step, dtype=np.float64)  # (bincount of nothing is int64)
    ends_mass = np.bincount(np.concatenate([first, last]), np.concatenate([values * left, values * right]), n_bins)
    step[:n_bins] += ends_mass
    return step[:n_bins]


def _last_width(size: int, resolution: int) -> int:
    """Width of the chromosome's last bin (shorter than ``resolution`` unless size is a multiple)."""
    return size - (_n_bins(size, resolution) - 1) * resolution


def _bin_widths(size: int, resolution: int) -> np.ndarray:
    widths = np.full(_n_bins(size, resolution), float(resolution))
    widths[-1] = _last_width(size, resolution)
    return widths


def _read_mass(bw, chrom: str, size: int, resolution: int) -> np.ndarray | None:
    """Integral of the signal over each bin of ``chrom`` (float64); None if the track lacks the chromosome.

    Sparse tracks (peaks) are painted from their intervals; dense ones (covering > DENSE_FRACTION of the
    genome) are summed from per-base values, CHUNK_BP at a time, so memory stays bounded either way.
    """
    if chrom not in bw.chroms():
        return None
    if bw.header()["nBasesCovered"] > DENSE_FRACTION * sum(bw.chroms().values()):
        return _sum_values(bw, chrom, min(size, bw.chroms(chrom)), size, resolution)
    intervals = bw.intervals(chrom)
    if not intervals:
        return np.zeros(_n_bins(size, resolution))
    table = np.asarray(intervals, dtype=np.float64)
    positions = table[:, :2].astype(np.int64)
    return _paint_bins(positions[:, 0], positions[:, 1], table[:, 2], size, resolution)


def _sum_values(bw, chrom: str, track_size: int, size: int, resolution: int) -> np.ndarray:
    """Per-bin integral from ``bw.values`` read in chunks of whole bins (missing bases count 0)."""
    mass = np.zeros(_n_bins(size, resolution))
    chunk = max(1, CHUNK_BP // resolution) * resolution
    for lo in range(0, track_size, chunk):
        values = np.nan_to_num(bw.values(chrom, lo, min(lo + chunk, track_size), numpy=True))
        values = np.pad(values, (0, -values.size % resolution))
        mass[lo // resolution : lo // resolution + values.size // resolution] = values.reshape(-1, resolution).sum(
            axis=1, dtype=np.float64
        )
    return mass


def _read_bins(bw, chrom: str, size: int, resolution: int) -> np.ndarray | None:
    """Bin means (float64) of ``chrom``; None if the track lacks it."""
    mass = _read_mass(bw, chrom, size, resolution)
    return None if mass is None else mass / _bin_widths(size, resolution)


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
        bins = np.zeros(_n_bins(size, resolution))
    return bins.astype(np.float32)


def _load_cumulative(bw, chrom: str, size: int, resolution: int, normalizer: Normalizer) -> np.ndarray | None:
    """Signal integral up to each bin edge (float64, n_bins + 1) of one chromosome of one mark, normalized
    bin by bin first; None if the track lacks the chromosome."""
    mass = _read_mass(bw, chrom, size, resolution)
    if mass is None:
        return None
    if normalizer.method != "none":  # normalization acts on bin means, before the cumulative sum
        widths = _bin_widths(size, resolution)
        mass = normalizer.transform(mass / widths) * widths
    cs = np.zeros(mass.size + 1)
    np.cumsum(mass, out=cs[1:])
    return cs
