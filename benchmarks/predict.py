"""Benchmark: the predict path on one real cell line genome-wide, stage by stage, against a per-pair pyBigWig baseline.

Run from the repository root on a finished predict run (it reads that run's bigWigs, final model and TADs):
    .venv/bin/python benchmarks/predict.py --workdir RUN --line K562 [--model MODEL] [--max-distance 2000000]
where RUN ran `snakemake --configfile config/predict_hg19.yaml --config mirror=../shared/data`. The config is this
checkout's config/config.yaml with RUN's --configfile laid over it (nested keys merged, as Snakemake does).

In one process it times: candidates (peaks + gene TSSs -> pairs), features (the cumulative-sum engine, chromosome
by chromosome), scoring (topology prior + the final model's leave-one-line-out fits), calibration and the outputs
(tables, BEDPE, interact bigBed, genes). It prints pairs/s per stage and the peak RSS of the process (an upper bound
for every stage), then times the baseline — one exact pyBigWig `stats` call per pair x mark x region on a random
sample — in the same run, and prints the engine's speed-up as a ratio.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyBigWig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import rundata  # noqa: E402

from epiflow import predict_outputs as out  # noqa: E402
from epiflow.candidates import predict_candidates, read_candidate_peaks  # noqa: E402
from epiflow.features import features_by_chromosome  # noqa: E402
from epiflow.io import read_chrom_sizes, read_tads  # noqa: E402
from epiflow.models import PairData  # noqa: E402
from epiflow.predict import (  # noqa: E402
    calibrate_candidates,
    calibration_settings,
    load_final,
    score_chunk,
    training_key,
)


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def naive_features(pairs: pd.DataFrame, tracks: dict[str, str]) -> np.ndarray:
    """E/P/W exact means by one pyBigWig stats call per pair x mark x region (missing bases count 0)."""
    values = np.zeros((len(pairs), len(tracks), 3))
    handles = {m: pyBigWig.open(p) for m, p in tracks.items()}
    for i, row in enumerate(pairs.itertuples()):
        lo, hi = min(row.enhancer_end, row.promoter_end), max(row.enhancer_start, row.promoter_start)
        regions = [(row.enhancer_start, row.enhancer_end), (row.promoter_start, row.promoter_end), (lo, max(lo, hi))]
        for m, bw in enumerate(handles.values()):
            for r, (s, e) in enumerate(regions):
                if e > s and row.chrom in bw.chroms():
                    total = bw.stats(row.chrom, int(s), int(e), type="sum", exact=True)[0] or 0.0
                    values[i, m, r] = total / (e - s)
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--line", default="K562")
    parser.add_argument("--model", help="default: the config's first predict.models")
    parser.add_argument("--configfile", default="config/predict_hg19.yaml")
    parser.add_argument("--max-distance", type=int, default=None)
    parser.add_argument("--naive", type=int, default=1000, help="pairs the per-pair baseline is timed on")
    args = parser.parse_args()
    run = args.workdir
    cfg = rundata.load_config(run / args.configfile)
    opts = cfg["predict"]["candidates"]
    args.model = args.model or cfg["predict"]["models"][0]
    max_distance = args.max_distance or opts["max_distance"]
    sizes = read_chrom_sizes(run / "results/reference/chrom_sizes.tsv")
    peak_path, peak_format = rundata.peak_source(run, cfg, args.line, opts["enhancer_mark"])
    tracks = {m: str(run / f"results/tracks/{args.line}/{m}.bw") for m in cfg["marks"]}
    timings = {}

    start = time.perf_counter()
    all_tss, gene_tss = rundata.candidate_tss(run, cfg, sizes)
    peaks = read_candidate_peaks(peak_path, peak_format, opts, sizes, cfg["reference"]["chrom_map"])
    pairs = predict_candidates(
        peaks,
        all_tss,
        gene_tss,
        sizes,
        args.line,
        opts["promoter_flank"],
        opts["min_distance"],
        max_distance,
    )
    timings["candidates"] = time.perf_counter() - start
    n = len(pairs)
    print(f"{args.line}: {n:,} candidate pairs at max_distance {max_distance:,} bp", flush=True)

    train_lines = [c for c in pd.read_csv(run / cfg["pairs"], sep="\t", comment="#").cell_line if c != args.line]
    final_dir = run / "results/final" / training_key(train_lines) / args.model
    final = load_final(final_dir / "model.pkl", final_dir / "validation.tsv.gz", final_dir / "meta.json")
    tads = {
        line: read_tads(path, chrom_map="auto")
        for line, path in rundata.tad_paths(run, cfg).items()
        if line in final.meta["tad_lines"]
    }
    score, spread = np.zeros(n), np.zeros(n)
    timings["features"] = timings["scoring"] = 0.0
    start = time.perf_counter()
    for _, rows, table, _ in features_by_chromosome(pairs, tracks, sizes, cfg["features"], n_bins=0):
        timings["features"] += time.perf_counter() - start
        start = time.perf_counter()
        data = PairData(pairs.iloc[rows].reset_index(drop=True), table.to_numpy(), list(table.columns))
        score[rows], spread[rows] = score_chunk(final, args.line, data, tads, "benchmark")
        timings["scoring"] += time.perf_counter() - start
        start = time.perf_counter()
    start = time.perf_counter()
    prob, notes = calibrate_candidates(final, args.line, score, calibration_settings(cfg))
    timings["calibration"] = time.perf_counter() - start
    start = time.perf_counter()
    table = out.prediction_table(pairs, score, spread, prob, notes["threshold"], args.line)
    with tempfile.TemporaryDirectory() as tmp:
        out.write_table(table, f"{tmp}/predictions.tsv.gz")
        calls = table[table.predicted].reset_index(drop=True)
        out.write_table(calls, f"{tmp}/predictions.threshold.tsv.gz")
        out.write_bedpe(calls, f"{tmp}/predictions.bedpe.gz")
        out.write_interact(calls, sizes, f"{tmp}/interact.bb")
        out.gene_table(table).to_csv(f"{tmp}/genes.tsv", sep="\t", index=False)
    timings["outputs"] = time.perf_counter() - start
    total = sum(timings.values())
    for stage, seconds in timings.items():
        print(f"  {stage:12s} {seconds:8.1f} s  {n / seconds:12,.0f} pairs/s")
    print(f"  {'total':12s} {total:8.1f} s  peak RSS {peak_rss_gb():.2f} GB; calls {int(table.predicted.sum()):,}")

    sample = pairs.sample(min(args.naive, n), random_state=0).sort_values(["chrom", "enhancer_start"])
    start = time.perf_counter()
    naive_features(sample, tracks)
    naive = time.perf_counter() - start
    engine_rate, naive_rate = n / timings["features"], len(sample) / naive
    print(f"baseline (per-pair pyBigWig stats, {len(sample):,} pairs): {naive_rate:,.0f} pairs/s")
    print(f"features engine / baseline: {engine_rate / naive_rate:,.0f}x")


if __name__ == "__main__":
    main()
