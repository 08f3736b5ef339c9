"""Honesty check: a labelled line predicted genome-wide (its final model never saw it), joined onto its benchmark
pairs, against the evaluation protocol's test AUPR for the same model on the same line.

Run from the repository root on a finished run of config/predict_hg19.yaml (which also evaluates IMR90 held out):
    .venv/bin/python benchmarks/predict_honesty.py --workdir RUN [--line IMR90] [--model MODEL]

A benchmark pair is covered when a candidate of the same gene has an element overlapping the pair's enhancer
(BENGI names genes by Ensembl id; the candidates by symbol: CollapsedGeneBounds maps them) and its TSS lies within
`--tss-tolerance` bp (default `predict.candidates.promoter_flank`) of the pair's TSS: the same element and the same
promoter. The candidates have one TSS per gene, a BENGI pair the TSS its Hi-C loop reached, so a pair of another TSS
of its gene is not among the candidates. Its genome-wide score is the max over such candidates. Prints the coverage
and why the rest is not covered (gene not in the gene set, distance outside the candidate bounds, no overlapping
element, another TSS of the gene), the genome-wide AUPR on the covered pairs and the evaluation's test AUPR on all
pairs and on the covered ones; the same for the gene-only join (`--tss-tolerance` ignored: any TSS of the gene),
which sessions before 2026-12-01 reported. With --deployed-params it also reruns the evaluation
protocol (epiflow.train.run_heldout: the same folds, training lines and validation) with the deployed model's params
(its model_params plus predict.exclude_columns), so both sides are the same model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import rundata  # noqa: E402

from epiflow.metrics import aupr  # noqa: E402
from epiflow.predict_outputs import read_predictions  # noqa: E402
from epiflow.predict_report import overlap_matches  # noqa: E402
from epiflow.train import run_heldout  # noqa: E402


def symbol_of_ensembl(bounds: Path) -> dict[str, str]:
    """Ensembl gene id (no version) -> symbol, from ABC's CollapsedGeneBounds BED (name = symbol, column 7 = id)."""
    table = pd.read_csv(bounds, sep="\t", dtype=str)  # header: #chr start end name score strand Ensembl_ID gene_type
    return dict(zip(table.Ensembl_ID, table.name, strict=True))


def join_genome_wide(pairs: pd.DataFrame, predictions: pd.DataFrame, tss_tolerance: int | None) -> pd.DataFrame:
    """Each pair's max genome-wide score over candidates of its gene whose element overlaps its enhancer and, unless
    `tss_tolerance` is None, whose TSS is within that many bp of the pair's."""
    pairs = pairs.reset_index(drop=True)
    owner, hit = overlap_matches(pairs.assign(gene=pairs.symbol.fillna("")), predictions)
    if tss_tolerance is not None:
        near = np.abs(predictions.TargetGeneTSS.to_numpy()[hit] - pairs.tss.to_numpy()[owner]) <= tss_tolerance
        owner, hit = owner[near], hit[near]
    best = pd.Series(predictions.score.to_numpy()[hit]).groupby(owner).max()
    return pairs.assign(genome_wide=best.reindex(range(len(pairs))).to_numpy())


def report(name: str, joined: pd.DataFrame, any_tss: pd.Series, cfg: dict, deployed: pd.Series | None) -> None:
    """Coverage, why the rest is not covered, and the AUPRs of one join (see the module docstring); `any_tss`: the
    gene-only join's coverage, which tells a pair without an overlapping element from one of another TSS."""
    covered = joined.genome_wide.notna()
    in_bounds = joined.distance.between(cfg["min_distance"], cfg["max_distance"])
    known = joined.symbol.notna()
    print(f"{name}: covered by a genome-wide candidate {covered.mean():.3f} ({covered.sum():,})")
    print(
        f"  not covered: gene not in the gene set {(~known).mean():.3f}; distance outside the bounds "
        f"{(~in_bounds & known).mean():.3f}; no overlapping candidate element of its gene "
        f"{(~any_tss & in_bounds & known).mean():.3f}; its gene's candidates at another TSS "
        f"{(~covered & any_tss & in_bounds & known).mean():.3f}"
    )
    sub = joined[covered & joined.evaluation.notna()]
    y = sub.label.to_numpy()
    print(f"  covered and evaluated: {len(sub):,} pairs, positive rate {y.mean():.3f}")
    print(
        f"  genome-wide AUPR on them {aupr(y, sub.genome_wide.to_numpy()):.4f}; evaluation test AUPR on them "
        f"{aupr(y, sub.evaluation.to_numpy()):.4f}"
    )
    if deployed is not None:
        same = aupr(y, sub.pair_id.map(deployed).to_numpy())
        gap = same - aupr(y, sub.genome_wide.to_numpy())
        print(f"  evaluation with the deployed params: test AUPR {same:.4f} on them; gap {gap:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--line", default="IMR90")
    parser.add_argument("--model", help="default: the config's first predict.models")
    parser.add_argument("--configfile", default="config/predict_hg19.yaml")
    parser.add_argument("--tss-tolerance", type=int, help="default: predict.candidates.promoter_flank")
    parser.add_argument("--deployed-params", action="store_true", help="rerun the evaluation with the deployed params")
    args = parser.parse_args()
    run = args.workdir
    config = rundata.load_config(run / args.configfile)
    cfg = config["predict"]["candidates"]
    args.model = args.model or config["predict"]["models"][0]
    tolerance = cfg["promoter_flank"] if args.tss_tolerance is None else args.tss_tolerance
    pairs = pd.read_csv(run / f"results/pairs/{args.line}.tsv.gz", sep="\t", dtype={"chrom": str, "gene": str})
    pairs["symbol"] = pairs.gene.str.split(".").str[0].map(symbol_of_ensembl(run / cfg["annotation"]))
    predictions = read_predictions(run / f"results/predict/{args.line}/{args.model}/predictions.tsv.gz")
    evaluated = pd.read_csv(
        run / f"results/predictions/{args.line}/{args.model}.tsv.gz", sep="\t", dtype={"pair_id": str}
    )
    test = evaluated[evaluated.split == "test"].set_index("pair_id").score
    print(f"{args.line}: {len(pairs):,} benchmark pairs ({int(pairs.label.sum()):,} positive), model {args.model}")
    y = pairs.label.to_numpy()
    print(f"  evaluation test AUPR on all its pairs {aupr(y, pairs.pair_id.map(test).to_numpy()):.4f}")
    deployed = None
    if args.deployed_params:
        params = dict(config["model_params"].get(args.model, {}))
        params["exclude_columns"] = list(params.get("exclude_columns") or []) + config["predict"]["exclude_columns"]
        train_lines, data = rundata.heldout_data(run, config, args.line)
        protocol = config["protocol"]
        scores, _ = run_heldout(data, args.line, train_lines, protocol["chrom_folds"], args.model, params, 0)
        deployed = scores[scores.split == "test"].set_index("pair_id").score
        every = aupr(y, pairs.pair_id.map(deployed).to_numpy())
        print(f"  evaluation with the deployed params {params}: test AUPR {every:.4f} on all its pairs")
    any_tss = join_genome_wide(pairs, predictions, None).genome_wide.notna()
    for name, tss in (
        (f"same element, TSS within {tolerance} bp", tolerance),
        ("same element, any TSS of the gene", None),
    ):
        joined = join_genome_wide(pairs, predictions, tss).assign(evaluation=lambda t: t.pair_id.map(test))
        report(name, joined, any_tss, cfg, deployed)


if __name__ == "__main__":
    main()
