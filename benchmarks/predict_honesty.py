"""Honesty check: a labelled line predicted genome-wide (its final model never saw it), joined onto its benchmark
pairs, against the evaluation protocol's test AUPR for the same model on the same line.

Run from the repository root on a finished run of config/predict_hg19.yaml (which also evaluates IMR90 held out):
    .venv/bin/python benchmarks/predict_honesty.py --workdir RUN [--line IMR90] [--model MODEL]

A benchmark pair is covered when a candidate of the same gene has an element overlapping the pair's enhancer
(BENGI names genes by Ensembl id; the candidates by symbol: CollapsedGeneBounds maps them); its genome-wide score is
the max over such candidates. Prints the coverage and why the rest is not covered (no overlapping element, gene not
in the gene set, distance outside the candidate bounds), the genome-wide AUPR on the covered pairs, and the
evaluation's test AUPR on all pairs and on the covered ones. With --deployed-params it also reruns the evaluation
protocol (epiflow.train.run_heldout: the same folds, training lines and validation) with the deployed model's params
(its model_params plus predict.exclude_columns), so both sides are the same model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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


def join_genome_wide(pairs: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """Each pair's max genome-wide score over candidates of its gene whose element overlaps its enhancer."""
    pairs = pairs.reset_index(drop=True)
    owner, hit = overlap_matches(pairs.assign(gene=pairs.symbol.fillna("")), predictions)
    best = pd.Series(predictions.score.to_numpy()[hit]).groupby(owner).max()
    return pairs.assign(genome_wide=best.reindex(range(len(pairs))).to_numpy())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--line", default="IMR90")
    parser.add_argument("--model", help="default: the config's first predict.models")
    parser.add_argument("--configfile", default="config/predict_hg19.yaml")
    parser.add_argument("--deployed-params", action="store_true", help="rerun the evaluation with the deployed params")
    args = parser.parse_args()
    run = args.workdir
    config = rundata.load_config(run / args.configfile)
    cfg = config["predict"]["candidates"]
    args.model = args.model or config["predict"]["models"][0]
    pairs = pd.read_csv(run / f"results/pairs/{args.line}.tsv.gz", sep="\t", dtype={"chrom": str, "gene": str})
    pairs["symbol"] = pairs.gene.str.split(".").str[0].map(symbol_of_ensembl(run / cfg["annotation"]))
    predictions = read_predictions(run / f"results/predict/{args.line}/{args.model}/predictions.tsv.gz")
    joined = join_genome_wide(pairs, predictions)
    covered = joined.genome_wide.notna()
    in_bounds = joined.distance.between(cfg["min_distance"], cfg["max_distance"])
    print(f"{args.line}: {len(joined):,} benchmark pairs ({int(joined.label.sum()):,} positive)")
    print(f"  covered by a genome-wide candidate: {covered.mean():.3f} ({covered.sum():,})")
    print(
        f"  not covered: gene not in the gene set {joined.symbol.isna().mean():.3f}; distance outside the bounds "
        f"{(~in_bounds & joined.symbol.notna()).mean():.3f}; no overlapping candidate element "
        f"{(~covered & in_bounds & joined.symbol.notna()).mean():.3f}"
    )
    evaluated = pd.read_csv(
        run / f"results/predictions/{args.line}/{args.model}.tsv.gz", sep="\t", dtype={"pair_id": str}
    )
    test = evaluated[evaluated.split == "test"].set_index("pair_id").score
    joined["evaluation"] = joined.pair_id.map(test)
    sub = joined[covered & joined.evaluation.notna()]
    y = sub.label.to_numpy()
    print(f"  covered and evaluated: {len(sub):,} pairs, positive rate {y.mean():.3f}")
    print(
        f"  genome-wide AUPR on them {aupr(y, sub.genome_wide.to_numpy()):.4f}; evaluation test AUPR on them "
        f"{aupr(y, sub.evaluation.to_numpy()):.3f}"
    )
    every = joined[joined.evaluation.notna()]
    print(f"  evaluation test AUPR on all its pairs {aupr(every.label.to_numpy(), every.evaluation.to_numpy()):.3f}")
    if args.deployed_params:
        params = dict(config["model_params"].get(args.model, {}))
        params["exclude_columns"] = list(params.get("exclude_columns") or []) + config["predict"]["exclude_columns"]
        train_lines, data = rundata.heldout_data(run, config, args.line)
        protocol = config["protocol"]
        scores, _ = run_heldout(data, args.line, train_lines, protocol["chrom_folds"], args.model, params, 0)
        deployed = scores[scores.split == "test"].set_index("pair_id").score
        sub = sub.assign(deployed=sub.pair_id.map(deployed))
        every = joined.assign(deployed=joined.pair_id.map(deployed)).dropna(subset=["deployed"])
        covered_aupr = aupr(y, sub.deployed.to_numpy())
        all_aupr = aupr(every.label.to_numpy(), every.deployed.to_numpy())
        print(f"  evaluation with the deployed params {params}: test AUPR {covered_aupr:.4f} on the covered pairs")
        print(f"  (on all its pairs {all_aupr:.3f})")


if __name__ == "__main__":
    main()
