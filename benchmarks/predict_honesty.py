"""Honesty check: a labelled line predicted genome-wide (its final model never saw it), joined onto its benchmark
pairs, against the evaluation protocol's test AUPR for the same model on the same line.

Run from the repository root on a finished run of config/predict_hg19.yaml (which also evaluates IMR90 held out):
    .venv/bin/python benchmarks/predict_honesty.py --workdir RUN [--line IMR90] [--model MODEL]

Two joins. The gene-only join (the check as run before 2026-12-01): a benchmark pair is covered when a candidate of
the same gene has an element overlapping the pair's enhancer (BENGI names genes by Ensembl id, the candidates by
symbol: CollapsedGeneBounds maps them). The TSS join adds that the candidate's TSS lies within `--tss-tolerance` bp
(default `predict.candidates.promoter_flank`; several values, one join each) of the pair's: the same element and the
same promoter. The candidates have one TSS per gene; BENGI lists an element-gene pair once per transcript TSS of the
gene, every row with the pair's label (label_units prints how often). The TSS join was added after a diagnostic
that read IMR90's labels (docs/findings/crispri.md G4). A pair's genome-wide score is the max over its covering
candidates. Prints the benchmark's element-gene structure, then per join the coverage and why the rest is not
covered (gene not in the gene set, distance outside the candidate bounds, no overlapping element, another TSS of
the gene; they add up to 1 - coverage), the genome-wide AUPR on the covered pairs and the evaluation's test AUPR on
all pairs and on the covered ones. With --deployed-params it also reruns the evaluation
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
from epiflow.predict import deployed_params  # noqa: E402
from epiflow.predict_outputs import read_predictions  # noqa: E402
from epiflow.predict_report import best_matches, matched_values, overlap_matches  # noqa: E402
from epiflow.train import run_heldout  # noqa: E402

UNIT = ["chrom", "enhancer_start", "enhancer_end", "gene"]  # an element-gene pair of the benchmark


def gene_matches(pairs: pd.DataFrame, predictions: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(pair row, prediction row) of every candidate of a pair's gene (`symbol`) whose element overlaps its enhancer."""
    return overlap_matches(pairs.reset_index(drop=True).assign(gene=pairs.symbol.fillna("").to_numpy()), predictions)


def join_genome_wide(
    pairs: pd.DataFrame, predictions: pd.DataFrame, tss_tolerance: int | None, matches=None
) -> pd.DataFrame:
    """Each pair's max genome-wide score over candidates of its gene whose element overlaps its enhancer and, unless
    `tss_tolerance` is None, whose TSS is within that many bp of the pair's; `matches`: gene_matches(pairs,
    predictions) when already computed."""
    pairs = pairs.reset_index(drop=True)
    owner, hit = gene_matches(pairs, predictions) if matches is None else matches
    if tss_tolerance is not None:
        near = np.abs(predictions.TargetGeneTSS.to_numpy()[hit] - pairs.tss.to_numpy()[owner]) <= tss_tolerance
        owner, hit = owner[near], hit[near]
    scores = predictions.score.to_numpy()
    return pairs.assign(genome_wide=matched_values(scores, best_matches(owner, hit, scores, len(pairs))))


def not_covered(joined: pd.DataFrame, any_tss: pd.Series, cfg: dict) -> dict[str, float]:
    """Why a pair is not covered, as fractions of all pairs that add up to 1 - coverage: its gene is not in the gene
    set; else its distance is outside the candidate bounds; else no candidate element of its gene overlaps it; else
    its gene's overlapping candidates are at another TSS (`any_tss`: the gene-only join's coverage)."""
    left = joined.genome_wide.isna()
    known = joined.symbol.notna()
    in_bounds = joined.distance.between(cfg["min_distance"], cfg["max_distance"])
    return {
        "gene not in the gene set": float((left & ~known).mean()),
        "distance outside the bounds": float((left & known & ~in_bounds).mean()),
        "no overlapping candidate element of its gene": float((left & known & in_bounds & ~any_tss).mean()),
        "its gene's candidates at another TSS": float((left & known & in_bounds & any_tss).mean()),
    }


def report(name: str, joined: pd.DataFrame, any_tss: pd.Series, cfg: dict, deployed: pd.Series | None) -> None:
    """Coverage, why the rest is not covered, and the AUPRs of one join (see the module docstring)."""
    covered = joined.genome_wide.notna()
    print(f"{name}: covered by a genome-wide candidate {covered.mean():.3f} ({covered.sum():,})")
    reasons = "; ".join(f"{why} {share:.3f}" for why, share in not_covered(joined, any_tss, cfg).items())
    print(f"  not covered: {reasons}")
    sub = joined[covered & joined.evaluation.notna()]
    y = sub.label.to_numpy()
    genome_wide = aupr(y, sub.genome_wide.to_numpy())
    print(f"  covered and evaluated: {len(sub):,} pairs, positive rate {y.mean():.3f}")
    print(f"  genome-wide AUPR on them {genome_wide:.4f}; evaluation test AUPR on them {aupr(y, sub.evaluation):.4f}")
    if deployed is not None:
        same = aupr(y, sub.pair_id.map(deployed).to_numpy())
        print(f"  evaluation with the deployed params: test AUPR {same:.4f} on them; gap {same - genome_wide:.5f}")
        # post hoc (2026-12-01, after G4's diagnostic): the unit the labels are on, each side's max over its rows
        units = sub.assign(deployed=sub.pair_id.map(deployed)).groupby(UNIT, sort=False)
        unit = units.agg(label=("label", "max"), genome_wide=("genome_wide", "max"), deployed=("deployed", "max"))
        per_unit = [aupr(unit.label.to_numpy(), unit[c].to_numpy()) for c in ("genome_wide", "deployed")]
        print(
            f"  per element-gene pair ({len(unit):,}, each side's max over its rows): genome-wide {per_unit[0]:.4f}, "
            f"evaluation with the deployed params {per_unit[1]:.4f}; gap {per_unit[1] - per_unit[0]:.5f}"
        )


def label_units(pairs: pd.DataFrame) -> dict[str, float]:
    """How the benchmark's rows map onto element–gene pairs, the unit a genome-wide candidate scores: the number of
    element–gene pairs, rows per pair, the share of pairs with more than one row (BENGI lists a pair once per
    transcript TSS of the gene) and the share whose rows disagree on the label."""
    units = pairs.groupby(UNIT, sort=False)
    size = units.size()
    return {
        "element-gene pairs": float(len(size)),
        "rows per pair": float(size.mean()),
        "pairs with several rows": float((size > 1).mean()),
        "pairs with mixed labels": float((units.label.nunique() > 1).mean()),
    }


def evaluated_aupr(pairs: pd.DataFrame, scores: pd.Series) -> float:
    """AUPR of the pairs that have a test score."""
    scored = pairs.assign(score=pairs.pair_id.map(scores)).dropna(subset=["score"])
    return aupr(scored.label.to_numpy(), scored.score.to_numpy())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--line", default="IMR90")
    parser.add_argument("--model", help="default: the config's first predict.models")
    parser.add_argument("--configfile", default="config/predict_hg19.yaml")
    parser.add_argument(
        "--tss-tolerance", type=int, nargs="+", help="bp, one join each (default: predict.candidates.promoter_flank)"
    )
    parser.add_argument("--deployed-params", action="store_true", help="rerun the evaluation with the deployed params")
    args = parser.parse_args()
    run = args.workdir
    config = rundata.load_config(run / args.configfile)
    cfg = config["predict"]["candidates"]
    args.model = args.model or config["predict"]["models"][0]
    pairs = pd.read_csv(run / f"results/pairs/{args.line}.tsv.gz", sep="\t", dtype={"chrom": str, "gene": str})
    pairs["symbol"] = pairs.gene.str.split(".").str[0].map(rundata.symbol_of_ensembl(run / cfg["annotation"]))
    predictions = read_predictions(run / f"results/predict/{args.line}/{args.model}/predictions.tsv.gz")
    evaluated = pd.read_csv(
        run / f"results/predictions/{args.line}/{args.model}.tsv.gz", sep="\t", dtype={"pair_id": str}
    )
    test = evaluated[evaluated.split == "test"].set_index("pair_id").score
    print(f"{args.line}: {len(pairs):,} benchmark pairs ({int(pairs.label.sum()):,} positive), model {args.model}")
    units = label_units(pairs)
    print(
        f"  {units['element-gene pairs']:,.0f} element-gene pairs, {units['rows per pair']:.2f} rows each, "
        f"{units['pairs with several rows']:.3f} with several rows (one per TSS), "
        f"{units['pairs with mixed labels']:.4f} with mixed labels"
    )
    print(f"  evaluation test AUPR on all its pairs {evaluated_aupr(pairs, test):.4f}")
    deployed = None
    if args.deployed_params:
        params = deployed_params(config, args.model)
        train_lines, data = rundata.heldout_data(run, config, args.line)
        protocol = config["protocol"]
        scores, _ = run_heldout(data, args.line, train_lines, protocol["chrom_folds"], args.model, params, 0)
        deployed = scores[scores.split == "test"].set_index("pair_id").score
        print(f"  evaluation with the deployed params {params}: test AUPR {evaluated_aupr(pairs, deployed):.4f}")
    matches = gene_matches(pairs, predictions)  # the overlap search, once for every join
    any_tss = join_genome_wide(pairs, predictions, None, matches).genome_wide.notna()
    joins = [("same element, any TSS of the gene (the check as run before 2026-12-01)", None)]
    joins += [(f"same element, TSS within {t} bp", t) for t in args.tss_tolerance or [cfg["promoter_flank"]]]
    for name, tss in joins:
        joined = join_genome_wide(pairs, predictions, tss, matches).assign(evaluation=lambda t: t.pair_id.map(test))
        report(name, joined, any_tss, cfg, deployed)


if __name__ == "__main__":
    main()
