"""Benchmark: peak memory of feature extraction on real data, and how it grows with pairs and marks.

Run from the repository root:  .venv/bin/python benchmarks/memory.py [--data ../shared/data] [--cell K562]

benchmarks/features.py reports one peak RSS for its whole process (track painting, every cell line and the naive
loop together), so it cannot say what feature extraction itself needs. Here each measurement is a fresh process
(multiprocessing "spawn") that imports epiflow, reads the pairs, notes its RSS, resets the kernel's peak-RSS mark
(/proc/self/clear_refs), runs ``compute_features`` (E/P/W means + 64-bin profiles) and reports the new peak. The
engine holds one (chromosome, mark) array of 100-bp bin means at a time, so the extra memory should be about that
array and its cumulative sum (chr1: 2.5 M bins x 8 B x 2 = 40 MB) plus the output (pairs x marks x (3 + 64)
values), whatever the number of pairs or marks.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import multiprocessing
import resource
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from epiflow import io  # noqa: E402

RESOLUTION, N_BINS, FLANK = 100, 64, 0.25


def rss_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, in MB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so the peak of the next step is its own, not the imports'."""
    Path("/proc/self/clear_refs").write_text("5")


def bench_features():
    """benchmarks/features.py as a module (its mark table and peak-file lookup)."""
    spec = importlib.util.spec_from_file_location("bench_features", REPO / "benchmarks" / "features.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def paint_tracks(data: Path, cell: str, chrom_sizes: dict, out: Path) -> dict[str, str]:
    """mark -> bigWig painted from the cell line's peak file (as benchmarks/features.py does)."""
    bench = bench_features()
    tracks = {}
    for mark in bench.MARKS:
        source = bench.peak_file(data / "peaks" / cell, mark)
        fmt = "broadpeak" if "broadPeak" in source.name else "narrowpeak"
        peaks = io.read_peaks(source, fmt, known_chroms=chrom_sizes)
        tracks[mark] = str(out / f"{cell}.{mark}.bw")
        io.intervals_to_bigwig(peaks, chrom_sizes, tracks[mark], drop_unknown=True)
    return tracks


def measure(pairs_path: str, tracks: dict, chrom_sizes: dict, n: int, queue) -> None:
    """In a fresh process: RSS before and peak RSS during compute_features on the first n pairs."""
    from epiflow.features import compute_features

    pairs = pd.read_pickle(pairs_path).iloc[:n]
    reset_peak()
    before = rss_mb("VmRSS")
    t0 = time.perf_counter()
    table, profile = compute_features(pairs, tracks, chrom_sizes, RESOLUTION, N_BINS, FLANK)
    seconds = time.perf_counter() - t0
    output_mb = (table.memory_usage(deep=True).sum() + profile.nbytes) / 2**20
    queue.put((before, rss_mb("VmHWM"), seconds, output_mb))


def run_one(pairs_path: Path, tracks: dict, chrom_sizes: dict, n: int) -> tuple:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    proc = context.Process(target=measure, args=(str(pairs_path), tracks, chrom_sizes, n, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--cell", default="K562", help="a cell line with BENGI and TargetFinder pairs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    chrom_sizes = io.read_chrom_sizes(args.data / "hg19" / "chrom_sizes.tsv")
    bench = bench_features()
    frames = [
        io.read_pairs(args.data / kind / files[args.cell], kind, args.cell, known_chroms=chrom_sizes)
        for kind, files in bench.PAIR_SETS.items()
        if args.cell in files
    ]
    # shuffled, so the first n pairs spread over every chromosome as the full set does
    pairs = pd.concat(frames, ignore_index=True).sample(frac=1.0, random_state=0).reset_index(drop=True)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        tracks = paint_tracks(args.data, args.cell, chrom_sizes, Path(tmp))
        pairs_path = Path(tmp) / "pairs.pkl"
        pairs.to_pickle(pairs_path)
        print(f"{args.cell}: {len(pairs)} pairs, {len(tracks)} marks painted in {time.perf_counter() - t0:.0f} s")
        print("marks  pairs   s      RSS before  peak RSS  extraction  output   extraction - output (MB)")
        for marks in (1, len(tracks)):
            chosen = dict(list(tracks.items())[:marks])
            for n in (1_000, 10_000, len(pairs)):
                before, peak, seconds, output = run_one(pairs_path, chosen, chrom_sizes, min(n, len(pairs)))
                extra = peak - before
                print(
                    f"{marks:5d}  {min(n, len(pairs)):6d}  {seconds:5.1f}  {before:10.0f}  {peak:8.0f}  "
                    f"{extra:10.0f}  {output:6.0f}   {extra - output:6.0f}"
                )


if __name__ == "__main__":
    main()
