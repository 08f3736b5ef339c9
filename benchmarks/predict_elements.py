"""Which candidate elements read like the elements the model was trained on? (docs/findings/elements-prereg.md)

For each labelled line L given, the deployed model fitted on every chromosome of the other labelled lines (the final
model a prediction of L uses; never trained on L) scores (a) L's benchmark pairs on their own elements and (b) L's
genome-wide candidates whose element overlaps a benchmark pair's element for the same gene, under each element
definition (`predict.candidates.element_width` / `element_resize`); a pair's (b) score is the max over its covering
candidates, as the honesty check's gene-only join does. No label is read. Prints per line and definition: coverage,
the Spearman correlation of (a) and (b) (agreement) and the mean W1 of the `{mark}_enhancer` features in units of
(a)'s sd.

Run from the repository root on a finished run of config/predict_hg19.yaml (its pairs, features, tracks, final
models; a missing final model is fitted here):
    .venv/bin/python benchmarks/predict_elements.py --workdir RUN --line GM12878 --line HeLa-S3 --line K562
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr, wasserstein_distance

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import rundata  # noqa: E402

from epiflow.candidates import predict_candidates, resize_peaks  # noqa: E402
from epiflow.features import features_by_chromosome  # noqa: E402
from epiflow.io import read_chrom_sizes, read_peaks  # noqa: E402
from epiflow.io_regions import read_tads_by_line  # noqa: E402
from epiflow.models import PairData  # noqa: E402
from epiflow.predict import deployed_params, fit_final, load_final, score_chunk, training_key  # noqa: E402
from epiflow.predict_report import overlap_matches  # noqa: E402
from epiflow.train import add_topology, load_cell_data  # noqa: E402

VARIANTS = {"E0 as called": (None, "fixed"), "E1 500 bp": (500, "fixed"), "E2 >= 500 bp": (500, "at_least")}


def final_model(run: Path, config: dict, line: str, model: str, lines: list[str], tads: dict):
    """(the final model of `model` without `line`: the run's, or fitted here as rule predict_fit does; its training
    lines' TADs, line -> domains). `tads`: line -> TAD file of the run (rundata.tad_paths)."""
    train = sorted(c for c in lines if c != line)
    out = run / "results" / "final" / training_key(train) / model
    tad_lines = [c for c in train if c in tads]
    domains = read_tads_by_line(tad_lines, [tads[c] for c in tad_lines], config["reference"].get("chrom_map"))
    if (out / "model.pkl").exists():
        return load_final(out / "model.pkl", out / "validation.tsv.gz", out / "meta.json"), domains
    data = {c: load_cell_data(run / f"results/pairs/{c}.tsv.gz", run / f"results/features/{c}.npz", c) for c in train}
    data = add_topology(data, domains, heldout=None)
    return fit_final(data, train, model, deployed_params(config, model), 0), domains


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--line", action="append", required=True)
    parser.add_argument("--model", default="gbm_balanced")
    parser.add_argument("--configfile", default="config/predict_hg19.yaml")
    args = parser.parse_args()
    run = args.workdir
    config = rundata.load_config(run / args.configfile)
    cfg = config["predict"]["candidates"]
    lines = sorted(pd.read_csv(run / config["pairs"], sep="\t", comment="#", dtype=str).cell_line.unique())
    sizes = read_chrom_sizes(run / "results/reference/chrom_sizes.tsv")
    chrom_map = config["reference"].get("chrom_map")
    all_tss, gene_tss = rundata.candidate_tss(run, config, sizes)
    symbol = rundata.symbol_of_ensembl(run / cfg["annotation"])
    tad_paths = rundata.tad_paths(run, config)
    rows = []
    for line in args.line:
        final, tads = final_model(run, config, line, args.model, lines, tad_paths)
        bench = load_cell_data(run / f"results/pairs/{line}.tsv.gz", run / f"results/features/{line}.npz", line)
        bench_scored = add_topology({line: bench}, tads, heldout=line)[line]
        own, _ = final.score(bench_scored)
        pairs = bench.frame.reset_index(drop=True)
        pairs = pairs.assign(gene=pairs.gene.str.split(".").str[0].map(symbol).fillna(""))
        path, fmt = rundata.peak_source(run, config, line, cfg["enhancer_mark"])
        peaks = read_peaks(path, fmt, known_chroms=set(sizes), chrom_map=chrom_map, summits=True)
        tracks = {m: str(run / f"results/tracks/{line}/{m}.bw") for m in config["marks"]}
        enhancer_cols = [i for i, c in enumerate(bench.columns) if c.endswith("_enhancer")]
        for name, (width, mode) in VARIANTS.items():
            elements = peaks if width is None else resize_peaks(peaks, width, mode, sizes)
            cand = predict_candidates(
                elements,
                all_tss,
                gene_tss,
                sizes,
                line,
                cfg["promoter_flank"],
                cfg["min_distance"],
                cfg["max_distance"],
            )
            view = cand.rename(columns={"enhancer_start": "start", "enhancer_end": "end", "gene": "TargetGene"})
            owner, hit = overlap_matches(pairs, view)
            used = np.unique(hit)
            sub = cand.iloc[used].reset_index(drop=True)
            score = np.full(len(sub), np.nan)
            values = np.zeros((len(sub), len(enhancer_cols)), np.float32)
            for chrom, idx, table, profile in features_by_chromosome(sub, tracks, sizes, config["features"]):
                data = PairData(
                    sub.iloc[idx].reset_index(drop=True), table.to_numpy(np.float32), list(table.columns), profile
                )
                score[idx], _ = score_chunk(final, line, data, tads, chrom)
                values[idx] = data.table[:, enhancer_cols]
            where = pd.Series(np.arange(len(sub)), index=used)
            per_pair = pd.Series(score[where.loc[hit].to_numpy()]).groupby(owner).max()
            covered = per_pair.index.to_numpy()
            rho = spearmanr(own[covered], per_pair.to_numpy()).statistic
            a = bench.table[:, enhancer_cols]
            w1 = np.mean(
                [wasserstein_distance(a[:, j], values[:, j]) / (a[:, j].std() or 1) for j in range(len(enhancer_cols))]
            )
            width_med = float(np.median(sub.enhancer_end - sub.enhancer_start))
            rows.append(
                {
                    "line": line,
                    "variant": name,
                    "n_candidates": len(cand),
                    "coverage": len(covered) / len(pairs),
                    "agreement": rho,
                    "w1_enhancer": w1,
                    "median_width": width_med,
                }
            )
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format="%.4f"))
    print(table.groupby("variant")[["coverage", "agreement", "w1_enhancer"]].mean().to_string(float_format="%.4f"))


if __name__ == "__main__":
    main()
