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


def read_all_pairs(data: Path, chrom_sizes: dict) -> dict[str, pd.DataFrame]:
    """cell line → its BENGI and TargetFinder pairs, one standard pair table."""
    by_cell = {}
    for kind, files in PAIR_SETS.items():
        for cell, name in files.items():
            frame = io.read_pairs(data / kind / name, kind, cell, known_chroms=chrom_sizes)
            by_cell.setdefault(cell, []).append(frame.assign(pair_set=kind))
    return {cell: pd.concat(frames, ignore_index=True) for cell, frames in by_cell.items()}


def naive_mean(bw, chrom: str, size: int, start: float, end: float) -> float:
    """Mean over [start, end) of the 100-bp bin means, end bins by fractional overlap: <= 3 exact stats calls."""
    start, end = min(max(start, 0), size), min(max(end, 0), size)
    if end <= start:
        return 0.0
    first, last = int(start // RESOLUTION), int(-(-end // RESOLUTION)) - 1

    def exact_sum(lo: int, hi: int) -> float:
        return bw.stats(chrom, lo, hi, type="sum", exact=True)[0] or 0.0

    def bin_mean(b: int) -> float:
        lo, hi = b * RESOLUTION, min((b + 1) * RESOLUTION, size)
        return exact_sum(lo, hi) / (hi - lo)

    if first == last:
        return bin_mean(first)
    total = bin_mean(first) * ((first + 1) * RESOLUTION - start) + bin_mean(last) * (end - last * RESOLUTION)
    if last > first + 1:
        total += exact_sum((first + 1) * RESOLUTION, last * RESOLUTION)
    return total / (end - start)


def naive_features(pairs: pd.DataFrame, tracks: dict, chrom_sizes: dict, profiles: bool):
    """Per-pair Python loop: (n, marks, 3) E/P/W means and, if asked, (n, marks, N_BINS) profiles."""
    table = np.zeros((len(pairs), len(tracks), 3))
    profile = np.zeros((len(pairs), len(tracks), N_BINS))
    for m, path in enumerate(tracks.values()):
        with pyBigWig.open(path) as bw:
            for i, row in enumerate(pairs.itertuples()):
                size = chrom_sizes[row.chrom]
                window = (min(row.enhancer_end, row.promoter_end), max(row.enhancer_start, row.promoter_start))
                regions = ((row.enhancer_start, row.enhancer_end), (row.promoter_start, row.promoter_end), window)
                for r, (s, e) in enumerate(regions):
                    table[i, m, r] = naive_mean(bw, row.chrom, size, s, e)
                if profiles:
                    lo, hi = min(row.enhancer_start, row.promoter_start), max(row.enhancer_end, row.promoter_end)
                    edges = np.linspace(lo - FLANK * (hi - lo), hi + FLANK * (hi - lo), N_BINS + 1)
                    values = [naive_mean(bw, row.chrom, size, a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]
                    enhancer_downstream = (row.enhancer_start + row.enhancer_end) / 2 > row.tss
                    profile[i, m] = values[::-1] if enhancer_downstream else values
    return table, profile


def max_relative_error(engine: np.ndarray, naive: np.ndarray) -> float:
    return float(np.max(np.abs(engine - naive) / np.maximum(np.abs(naive), 1e-3)))


def time_naive(pairs: dict, tracks: dict, chrom_sizes: dict, chosen: dict, profiles: bool):
    """Seconds the naive loop takes on the chosen rows of each cell line, and its results."""
    t0, results = time.perf_counter(), {}
    for cell, rows in chosen.items():
        results[cell] = naive_features(pairs[cell].iloc[rows], tracks[cell], chrom_sizes, profiles)
    return time.perf_counter() - t0, results


def choose_rows(pairs: dict, n: int, rng) -> dict[str, np.ndarray]:
    """A uniform random subsample of n pairs over all cell lines, as row numbers per cell line."""
    cells = list(pairs)
    owner = np.concatenate([np.full(len(pairs[c]), i) for i, c in enumerate(cells)])
    row = np.concatenate([np.arange(len(pairs[c])) for c in cells])
    picked = np.sort(rng.choice(owner.size, size=min(n, owner.size), replace=False))
    return {c: row[picked][owner[picked] == i] for i, c in enumerate(cells)}


def report_naive(label: str, seconds: float, n: int, n_total: int, t_engine: float) -> None:
    extrapolated = seconds / n * n_total
    print(
        f"naive {label}: {seconds:.1f} s for {n} pairs = {n / seconds:,.1f} pairs/s;"
        f" extrapolated to {n_total} pairs {extrapolated:,.0f} s = {extrapolated / t_engine:,.0f}x the engine"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--naive", type=int, default=2000, help="pairs in the naive E/P/W subsample")
    parser.add_argument("--naive-profiles", type=int, default=200, help="pairs of it also profiled naively")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    chrom_sizes = io.read_chrom_sizes(args.data / "hg19" / "chrom_sizes.tsv")

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        tracks = build_tracks(args.data, chrom_sizes, Path(tmp))
        pairs = read_all_pairs(args.data, chrom_sizes)
        n_total = sum(len(p) for p in pairs.values())
        print(
            f"prepared {len(tracks)} cell lines x {len(MARKS)} marks as bigWig and {n_total} pairs"
            f" in {time.perf_counter() - t0:.1f} s (not timed below)"
        )
        for cell, p in pairs.items():
            print(f"  {cell:8s} " + ", ".join(f"{k} {v}" for k, v in p["pair_set"].value_counts().items()))

        t0, cpu0 = time.perf_counter(), time.process_time()
        engine = {
            cell: features.compute_features(p, tracks[cell], chrom_sizes, RESOLUTION, N_BINS, FLANK)
            for cell, p in pairs.items()
        }
        t_engine, cpu_engine = time.perf_counter() - t0, time.process_time() - cpu0
        rss_engine = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"engine: {t_engine:.1f} s wall ({cpu_engine:.1f} s CPU) for {n_total} pairs x {len(MARKS)} marks"
            f" (E/P/W + {N_BINS}-bin profiles) = {n_total / t_engine:,.0f} pairs/s;"
            f" peak RSS so far {rss_engine:,.0f} MB"
        )

        rng = np.random.default_rng(0)
        chosen = choose_rows(pairs, args.naive, rng)
        profiled = choose_rows({c: pairs[c].iloc[r] for c, r in chosen.items()}, args.naive_profiles, rng)
        profiled = {c: chosen[c][r] for c, r in profiled.items()}
        t_epw, naive_epw = time_naive(pairs, tracks, chrom_sizes, chosen, profiles=False)
        t_all, naive_all = time_naive(pairs, tracks, chrom_sizes, profiled, profiles=True)
        report_naive("E/P/W only (the engine also does profiles)", t_epw, args.naive, n_total, t_engine)
        report_naive(f"E/P/W + {N_BINS}-bin profiles", t_all, args.naive_profiles, n_total, t_engine)

        worst_epw = worst_profile = 0.0
        for cell, rows in chosen.items():
            table, profile = engine[cell]
            if rows.size:
                epw = table.iloc[rows].drop(columns="log_distance").to_numpy().reshape(naive_epw[cell][0].shape)
                worst_epw = max(worst_epw, max_relative_error(epw, naive_epw[cell][0]))
            if profiled[cell].size:
                worst_profile = max(worst_profile, max_relative_error(profile[profiled[cell]], naive_all[cell][1]))
        ok = worst_epw <= 1e-4 and worst_profile <= 1e-4
        print(
            f"agreement: max relative error E/P/W {worst_epw:.1e} ({args.naive} pairs),"
            f" profiles {worst_profile:.1e} ({args.naive_profiles} pairs): {'OK' if ok else 'FAIL'} at 1e-4"
        )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mb:,.0f} MB (whole run)")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
