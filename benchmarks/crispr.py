"""Benchmark: the whole CRISPRi benchmark of the real ENCODE K562 screen (odd chromosomes, 6,377 pairs).

Run from the repository root:  .venv/bin/python benchmarks/crispr.py [--data ../shared/data] [--bootstrap 1000]

Reads the screen and ABC's predictions (both GRCh38: nothing lifted), adds two fake epiflow-style predictors
(ABC's log score plus N(0, 1) noise; random scores on ABC's elements), matches them, runs the baselines and
`--bootstrap` resamples for the summary and the by-distance table, and draws both figures. Prints each step's
wall time and the total (target: <= 60 s on 2 cores), then the summary table.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from epiflow import crispr, io_crispr  # noqa: E402
from epiflow.liftover import load_chain  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lift", action="store_true", help="also lift screen and ABC to hg19 (times the chains)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    folder = Path(args.data) / "crispr"
    times, start = {}, time.perf_counter()

    def lap(step):
        times[step] = time.perf_counter() - start - sum(times.values())

    pairs, _ = io_crispr.read_crispr(folder / "EPCrisprBenchmark_K562_odd_chroms.GRCh38.tsv.gz", "K562")
    abc = io_crispr.read_predictions(folder / "ABC_K562_Fulco2019Genes_odd_chroms.GRCh38.tsv.gz", "powerlaw.Score")
    lap("read")
    if args.lift:
        chain = load_chain(Path(args.data) / "liftover" / "hg38ToHg19.over.chain.gz")
        pairs, _ = crispr.lift_pairs(pairs, chain)
        abc, _ = crispr.lift_pairs(abc, chain)
        lap("lift")
    rng = np.random.default_rng(args.seed)
    noisy_log = np.log(abc.score) + rng.normal(0, 1.0, len(abc))  # ABC's log score with noise, ranked into [0, 1]
    noisy = abc.assign(score=(np.argsort(np.argsort(noisy_log)) + 1) / len(abc))
    random = abc.assign(score=rng.random(len(abc)))
    tss = pairs.loc[pairs.gene_tss >= 0, ["chrom", "gene_tss", "gene"]].rename(columns={"gene_tss": "tss"})
    predicted = [
        (crispr.Predictor("abc", score_column="powerlaw.Score", aggregate="sum"), abc),
        (crispr.Predictor("fake_noisy_abc"), noisy),
        (crispr.Predictor("fake_random"), random),
    ]
    table, specs = crispr.score_table(pairs, tss.drop_duplicates(), predicted)
    lap("match + baselines")
    counts = crispr.bootstrap_counts(len(table), args.bootstrap, args.seed)
    summary = crispr.summary_table(table, specs, counts=counts)
    lap(f"summary ({args.bootstrap} resamples x {len(specs)} predictors)")
    by_distance = crispr.by_distance_table(table, specs, counts=counts)
    lap("by distance")
    with tempfile.TemporaryDirectory() as tmp:
        table.to_csv(Path(tmp) / "pairs.tsv.gz", sep="\t", index=False, float_format="%.6g")
        (Path(tmp) / "pr.png").write_bytes(crispr.plot_pr_curves(table, specs, "K562"))
        (Path(tmp) / "dist.png").write_bytes(crispr.plot_by_distance(by_distance, "K562"))
    lap("write + plots")
    total = sum(times.values())
    for step, seconds in times.items():
        print(f"{step:<45} {seconds:7.2f} s")
    print(f"{'total':<45} {total:7.2f} s  (target <= 60 s on 2 cores)")
    print(summary.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
