"""Benchmark: the cumulative-sum feature engine against a naive pyBigWig loop on real pairs and tracks.

Run from the repository root:  .venv/bin/python benchmarks/features.py [--data ../shared/data] [--naive 2000]

1. Paints the 8 common marks' peak files of each of the 5 cell lines into bigWigs (signalValue over the peak,
   maximum where peaks overlap) in a temporary folder.
2. Times ``compute_features`` (E/P/W means + 64-bin profiles) on every BENGI and TargetFinder pair.
3. Times a naive baseline on a random subsample: one ``bw.stats(..., nBins, exact=True)`` call per
   pair × mark × region (enhancer, promoter, window, profile span), then the same fractional-bin mean.
4. Checks agreement (1e-4 relative) and prints times, rates, the extrapolated ratio and peak RSS.
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyBigWig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from epiflow import features, io  # noqa: E402

MARKS = {  # mark → case-insensitive file-name fragments (ENCODE / Roadmap spellings)
    "CTCF": ("ctcf",),
    "H2AZ": ("h2az", "h2a.z"),
    "H3K27ac": ("h3k27ac",),
    "H3K4me2": ("h3k4me2", "h3k04me2"),
    "H3K4me3": ("h3k4me3", "h3k04me3"),
    "H3K9ac": ("h3k9ac", "h3k09ac"),
    "H4K20me1": ("h4k20me1",),
    "POLR2A": ("pol2",),
}
PAIR_SETS = {  # pair set → {cell line in the peaks folder: file name}
    "bengi": {
        c: f"{b}.HiC-Benchmark.v3.tsv.gz"
        for c, b in [("GM12878",) * 2, ("HeLa-S3", "HeLa"), ("IMR90",) * 2, ("K562",) * 2]
    },
    "targetfinder": {c: f"{c}.targetfinder-ep.pairs.csv.gz" for c in ("GM12878", "HeLa-S3", "HUVEC", "IMR90", "K562")},
}
RESOLUTION, N_BINS, FLANK = 100, 64, 0.25


def peak_file(folder: Path, mark: str) -> Path:
    """The one peak file of ``mark`` in a cell line's folder."""
    hits = [p for p in sorted(folder.glob("*Peak.gz")) if any(k in p.name.lower() for k in MARKS[mark])]
    if len(hits) != 1:
        raise SystemExit(f"{folder}: expected one {mark} peak file, found {[p.name for p in hits]}")
    return hits[0]


def build_tracks(data: Path, chrom_sizes: dict, out: Path) -> dict[str, dict[str, str]]:
    """cell line → mark → bigWig path, painted from the peak files."""
    tracks = {}
    for cell in PAIR_SETS["targetfinder"]:
        tracks[cell] = {}
        for mark in MARKS:
            source = peak_file(data / "peaks" / cell, mark)
            fmt = "broadpeak" if "broadPeak" in source.name else "narrowpeak"
            peaks = io.read_peaks(source, fmt, known_chroms=chrom_sizes)
            path = out / f"{cell}.{mark}.bw"
            io.intervals_to_bigwig(peaks, chrom_sizes, path, drop_unknown=True)
            tracks[cell][mark] = str(path)
    return tracks


def read_all_pairs(data: Path, chrom_sizes: dict) -> dict[tuple[str, str], pd.DataFrame]:
    """(pair set, cell line) → standard pair table."""
    folders = {"bengi": "bengi", "targetfinder": "targetfinder"}
    return {
        (kind, cell): io.read_pairs(data / folders[kind] / name, kind, cell, known_chroms=chrom_sizes)
        for kind, files in PAIR_SETS.items()
        for cell, name in files.items()
    }


def naive_means(bw, chrom: str, size: int, edges: np.ndarray) -> np.ndarray:
    """Means between consecutive bp ``edges`` from ONE exact pyBigWig stats call over the bins they touch."""
    lo, hi = np.clip(edges[0], 0, size), np.clip(edges[-1], 0, size)
    if hi <= lo:
        return np.zeros(len(edges) - 1)
    b0, b1 = int(lo // RESOLUTION), int(-(-hi // RESOLUTION))
    end = min(b1 * RESOLUTION, size)
    # A chromosome's short last bin would break the equal split of nBins; ask it separately.
    full = b1 - b0 - (end < b1 * RESOLUTION)
    sums = (
        bw.stats(chrom, b0 * RESOLUTION, b0 * RESOLUTION + full * RESOLUTION, type="sum", nBins=full, exact=True)
        if full
        else []
    )
    if end < b1 * RESOLUTION:
        sums = list(sums) + bw.stats(chrom, (b1 - 1) * RESOLUTION, end, type="sum", exact=True)
    bin_edges = np.minimum(np.arange(b0, b1 + 1) * RESOLUTION, size)
    cumulative = np.concatenate([[0.0], np.cumsum([s or 0.0 for s in sums])])
    x = np.clip(edges, 0, size)
    integral = np.interp(x, bin_edges, cumulative)
    length = np.diff(x)
    return np.where(length > 0, np.diff(integral) / np.where(length > 0, length, 1), 0.0)


def naive_features(pairs: pd.DataFrame, tracks: dict, chrom_sizes: dict, profiles: bool):
    """Per-pair Python loop: (n, marks, 3) E/P/W means and, if asked, (n, marks, N_BINS) profiles."""
    table = np.zeros((len(pairs), len(tracks), 3))
    profile = np.zeros((len(pairs), len(tracks), N_BINS))
    for m, path in enumerate(tracks.values()):
        with pyBigWig.open(path) as bw:
            for i, row in enumerate(pairs.itertuples()):
                size = chrom_sizes[row.chrom]
                window = (min(row.enhancer_end, row.promoter_end), max(row.enhancer_start, row.promoter_start))
                for r, (s, e) in enumerate(
                    ((row.enhancer_start, row.enhancer_end), (row.promoter_start, row.promoter_end), window)
                ):
                    table[i, m, r] = naive_means(bw, row.chrom, size, np.array([s, max(s, e)], dtype=float))[0]
                if profiles:
                    lo, hi = min(row.enhancer_start, row.promoter_start), max(row.enhancer_end, row.promoter_end)
                    edges = np.linspace(lo - FLANK * (hi - lo), hi + FLANK * (hi - lo), N_BINS + 1)
                    values = naive_means(bw, row.chrom, size, edges)
                    enhancer_downstream = (row.enhancer_start + row.enhancer_end) / 2 > row.tss
                    profile[i, m] = values[::-1] if enhancer_downstream else values
    return table, profile


def max_relative_error(engine: np.ndarray, naive: np.ndarray) -> float:
    return float(np.max(np.abs(engine - naive) / np.maximum(np.abs(naive), 1e-3)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--naive", type=int, default=2000, help="pairs in the naive subsample")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    chrom_sizes = io.read_chrom_sizes(args.data / "hg19" / "chrom_sizes.tsv")

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        tracks = build_tracks(args.data, chrom_sizes, Path(tmp))
        pairs = read_all_pairs(args.data, chrom_sizes)
        t_prep = time.perf_counter() - t0
        n_total = sum(len(p) for p in pairs.values())
        print(f"prepared {len(tracks)} cell lines x {len(MARKS)} marks as bigWig and {n_total} pairs in {t_prep:.1f} s")

        t0 = time.perf_counter()
        results = {
            key: features.compute_features(p, tracks[key[1]], chrom_sizes, RESOLUTION, N_BINS, FLANK)
            for key, p in pairs.items()
        }
        t_engine = time.perf_counter() - t0
        for (kind, cell), p in pairs.items():
            print(f"  {kind:12s} {cell:8s} {len(p):6d} pairs")
        print(
            f"engine: {t_engine:.1f} s for {n_total} pairs (E/P/W + {N_BINS}-bin profiles, {len(MARKS)} marks)"
            f" = {n_total / t_engine:,.0f} pairs/s"
        )

        rng = np.random.default_rng(0)
        keys = list(pairs)
        owner = np.concatenate([np.full(len(pairs[k]), i) for i, k in enumerate(keys)])
        chosen = np.sort(rng.choice(len(owner), size=min(args.naive, len(owner)), replace=False))
        offsets = np.concatenate([[0], np.cumsum([len(pairs[k]) for k in keys])])
        t_epw = t_all = 0.0
        worst_epw = worst_profile = 0.0
        for i, key in enumerate(keys):
            rows = chosen[owner[chosen] == i] - offsets[i]
            if rows.size == 0:
                continue
            sub = pairs[key].iloc[rows]
            t0 = time.perf_counter()
            naive_features(sub, tracks[key[1]], chrom_sizes, profiles=False)
            t_epw += time.perf_counter() - t0
            t0 = time.perf_counter()
            table, profile = naive_features(sub, tracks[key[1]], chrom_sizes, profiles=True)
            t_all += time.perf_counter() - t0
            engine_table, engine_profile = results[key]
            engine_table = engine_table.iloc[rows].drop(columns="log_distance").to_numpy().reshape(table.shape)
            worst_epw = max(worst_epw, max_relative_error(engine_table, table))
            worst_profile = max(worst_profile, max_relative_error(engine_profile[rows], profile))
        n = len(chosen)
        for label, t_naive in (("E/P/W only", t_epw), ("E/P/W + profiles", t_all)):
            extrapolated = t_naive / n * n_total
            print(
                f"naive ({label}): {t_naive:.1f} s for {n} pairs = {n / t_naive:,.0f} pairs/s;"
                f" extrapolated to all pairs {extrapolated:,.0f} s; engine is {extrapolated / t_engine:,.0f}x faster"
            )
        ok = worst_epw <= 1e-4 and worst_profile <= 1e-4
        print(
            f"agreement on {n} pairs: max relative error E/P/W {worst_epw:.2e}, profiles {worst_profile:.2e}"
            f" ({'OK' if ok else 'FAIL'} at 1e-4)"
        )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mb:,.0f} MB")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
