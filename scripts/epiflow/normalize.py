"""Per-cell-line normalization of binned signal tracks.

A normalizer is fitted on one cell line's own genome-wide signal (every bin of every chromosome of one
track) and then applied to that track's bin arrays before the cumulative sum. It never sees labels: the
fit takes bin arrays only. Every method is monotone non-decreasing in the bin value.

Methods:
- ``none``: identity.
- ``log1p``: ``sign(x) * log1p(|x|)`` (no fit; the sign keeps it monotone for negative signal too).
- ``rank``: the strict percentile of the bin value among the genome-wide bins, ``P(bin < x)`` in
  ``[0, 1]`` (below 1 for every fitted bin); an empty bin (0) maps to 0 whenever the track is non-negative.
- ``quantile``: the rank mapped onto a fixed reference distribution, the standard exponential
  (mean 1): ``-log(1 - rank)``, rank capped at ``1 - 0.5 / N``. Empty bins map to 0 and the top bin of a
  genome of N bins to about ``log N``, so lines with different signal scales land on one scale.

Memory: the fit streams one chromosome at a time. Zero bins are counted exactly; the nonzero bin values
of a chromosome are kept exactly up to ``per_chrom`` values and otherwise as a sketch of ``per_chrom``
evenly spaced order statistics, each weighted by the values it stands for (rank error < 1/per_chrom
within that chromosome).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

METHODS = ("none", "log1p", "rank", "quantile")
FITTED_METHODS = ("rank", "quantile")


@dataclass(frozen=True)
class Normalizer:
    """A fitted per-track transform; ``transform(bins)`` maps bin values to normalized values.

    ``values`` is the sorted sketch of nonzero genome-wide bin values, ``cum_weight[i]`` the number of
    nonzero bins the first ``i`` sketch values stand for, ``n_zero`` the exact count of zero bins and
    ``n_total`` the count of all bins.
    """

    method: str
    values: np.ndarray = field(default_factory=lambda: np.zeros(0))
    cum_weight: np.ndarray = field(default_factory=lambda: np.zeros(1))
    n_zero: float = 0.0
    n_total: float = 0.0

    def percentile(self, bins: np.ndarray) -> np.ndarray:
        """Strict percentile ``P(genome-wide bin < x)`` of each value in ``bins`` (float64, in [0, 1])."""
        x = np.asarray(bins, dtype=np.float64)
        if self.n_total <= 0:
            return np.zeros_like(x)
        below = self.cum_weight[np.searchsorted(self.values, x, side="left")]
        below = below + np.where(x > 0, self.n_zero, 0.0)
        return below / self.n_total

    def transform(self, bins: np.ndarray) -> np.ndarray:
        """Normalized ``bins`` (float64, same shape; ``none`` may return the input array itself)."""
        x = np.asarray(bins, dtype=np.float64)
        if self.method == "none":
            return x
        # Most bins of a peak track are empty: map 0 once and transform only the others.
        out = np.full(x.shape, self._map(np.zeros(1))[0])
        nonzero = x != 0
        out[nonzero] = self._map(x[nonzero])
        return out

    def _map(self, x: np.ndarray) -> np.ndarray:
        if self.method == "log1p":
            return np.sign(x) * np.log1p(np.abs(x))
        p = self.percentile(x)
        if self.method == "rank":
            return p
        # Values above every genome-wide bin (p = 1) stop half a bin short of the reference's infinite tail.
        return -np.log1p(-np.minimum(p, 1 - 0.5 / max(self.n_total, 1.0)))


def check_method(method: str) -> str:
    """Return ``method`` if it is a known normalization, else raise ValueError naming the choices."""
    if method not in METHODS:
        raise ValueError(f"normalization {method!r} is unknown (expected one of {', '.join(METHODS)})")
    return method


def _sketch(nonzero: np.ndarray, per_chrom: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted values and weights standing for ``nonzero``: all of them, or ``per_chrom`` order statistics."""
    ordered = np.sort(nonzero.astype(np.float64))
    n = ordered.size
    if n <= per_chrom:
        return ordered, np.ones(n)
    # Mid-points of per_chrom equal rank slices: an unbiased quantile sketch of the chromosome.
    ranks = ((np.arange(per_chrom) + 0.5) * n / per_chrom).astype(np.int64)
    return ordered[ranks], np.full(per_chrom, n / per_chrom)


def fit_normalizer(method: str, chromosome_bins: Iterable[np.ndarray], per_chrom: int = 200_000) -> Normalizer:
    """Fit ``method`` on a track's genome-wide bins, given one bin array per chromosome (streamed).

    Takes only signal, never labels. ``none`` and ``log1p`` need no fit and do not consume the iterable.
    """
    check_method(method)
    if method not in FITTED_METHODS:
        return Normalizer(method)
    values, weights, n_zero, n_total = [], [], 0.0, 0.0
    for bins in chromosome_bins:
        bins = np.asarray(bins)
        nonzero = bins[bins != 0]
        n_zero += bins.size - nonzero.size
        n_total += bins.size
        kept, weight = _sketch(nonzero, per_chrom)
        values.append(kept)
        weights.append(weight)
    if not values:
        return Normalizer(method)
    merged = np.concatenate(values)
    order = np.argsort(merged, kind="stable")
    cum_weight = np.concatenate([[0.0], np.cumsum(np.concatenate(weights)[order])])
    return Normalizer(method, merged[order], cum_weight, n_zero, n_total)
