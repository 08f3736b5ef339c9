"""Does calibration travel to a line it never saw? The validation-only evidence, from one finished run.

    .venv/bin/python benchmarks/calibration_lolo.py --workdir RUN [--model gbm --model gbm_balanced]

RUN is a finished evaluation (`snakemake --until calibrate_summary`), e.g. docs/findings/calibration.md's. Only the
`val` rows of `results/predictions/{heldout}/{model}.tsv.gz` are read: per held-out line and chromosome fold, each
validation line L is left out in turn, a temperature calibrator is fitted on the other validation lines, and L is
treated as a new line (its labels only score the result). Printed per model, by left-out line and overall:

* `ece`, `gap`: L's ECE (10 equal-mass bins) and mean probability minus positive rate (pcc's error on L);
  `ece_lines`, `gap_lines`: the same with the temperature fitted on the other lines weighing the same in total
  (round 5's `fit_balance: lines`);
* `regret_validation`, `regret_balanced`, `regret_expected`: L's best F1 minus its F1 at the threshold the F1 rule
  picks on the other lines' labelled rows (each row weighing 1, or each line the same total weight: round 4's
  `threshold_balance: lines`), or where the F1 expected under L's own probabilities is best (`expected_threshold`,
  a study only: the contract has thresholds chosen on validation data); `regret_line_mean`: at the threshold with
  the highest mean of the other lines' own F1s (round 5's R5b, not adopted);
* `recall_error_validation`, `recall_error_balanced`, `recall_error_expected`: |recall - 0.7| on L for the recall
  rule, the same three ways, and `recall_error_line_mean` where the other lines' mean recall reaches 0.7.

These are the numbers the calibration choices of docs/findings/calibration.md were made on; no test row is read.

With --round3-test it also prints the test F1 of round 3's variant (not adopted): each fold's threshold from
expected_threshold on that fold's test `prob`, F1 pooled with each row's own fold threshold as in summary.tsv.
With --line-fits it also prints each validation line's own calibration map (`line_fits`, val rows only).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from scipy.special import logit  # noqa: E402

from epiflow.calibrate import line_out_fits, split_metrics  # noqa: E402
from epiflow.calibrators import SCORE_EPS, fit_calibrator  # noqa: E402
from epiflow.errors import InputError  # noqa: E402
from epiflow.metrics import (  # noqa: E402
    check_labels_scores,
    choose_threshold,
    ece,
    line_weights,
    precision_recall_f1,
)

COLUMNS = ["pair_id", "cell_line", "chrom", "label", "fold", "split", "score"]


def expected_threshold(p, rule: str = "f1", target: float | None = None) -> float:
    """choose_threshold's rule applied to the metric *expected* under unlabelled probabilities p: each row counts as
    a positive with weight p and as a negative with weight 1 - p, so the expected true positives at t are the sum of
    p over rows >= t and the expected positives the sum of p. Labels are never read; with calibrated p the F1
    optimum lies near F1*/2 (Lipton et al. 2014)."""
    p = np.asarray(p, dtype=np.float64)
    if p.size == 0 or not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1 or p.sum() <= 0:
        raise InputError("expected_threshold: probabilities must be finite, in [0, 1] and not all 0")
    y = np.r_[np.ones(p.size), np.zeros(p.size)]
    return choose_threshold(y, np.r_[p, p], rule, target, sample_weight=np.r_[p, 1.0 - p])


def choose_threshold_line_mean(y, p, cell_lines, rule: str = "f1", target: float | None = None) -> float:
    """Round 5's variant R5b (not adopted): the threshold rule applied to the mean over cell lines of each line's own
    metric at t; f1: the t with the highest mean per-line F1 (ties to the highest t), recall: the highest t whose mean
    per-line recall >= target. Candidates are every observed score; a line without positives is left out of the mean;
    precision is 0 for a line with no row at or above t, as in precision_recall_f1."""
    y, p = check_labels_scores(y, p)
    lines = np.asarray(cell_lines)
    if rule not in ("f1", "recall") or (rule == "recall" and target is None) or lines.shape != y.shape or not y.any():
        raise InputError(f"line-mean threshold: rule {rule!r} (expected f1 or recall), a line per row, positives")
    thresholds = np.unique(p)  # ascending; the lowest has every row at or above it
    f1s, recalls = [], []
    for line in np.unique(lines):
        mine = lines == line
        if not y[mine].any():
            continue
        at = np.searchsorted(thresholds, p[mine])  # a row counts at every threshold <= its score
        tp = np.cumsum(np.bincount(at[y[mine] == 1], minlength=thresholds.size)[::-1])[::-1]
        called = np.cumsum(np.bincount(at, minlength=thresholds.size)[::-1])[::-1]
        precision, recall = np.divide(tp, called, out=np.zeros(tp.size), where=called > 0), tp / y[mine].sum()
        f1s.append(np.divide(2 * precision * recall, precision + recall, out=np.zeros(tp.size), where=tp > 0))
        recalls.append(recall)
    if rule == "f1":
        f1 = np.mean(f1s, axis=0)
        return float(thresholds[np.flatnonzero(f1 == f1.max())[-1]])
    return float(thresholds[np.flatnonzero(np.mean(recalls, axis=0) >= target - 1e-12)[-1]])


def validation_folds(workdir: Path, model: str):
    """(held-out line, fold, that fold's `val` rows) of every finished held-out line of `model` in the run."""
    for path in sorted((workdir / "results" / "predictions").glob(f"*/{model}.tsv.gz")):
        val = pd.read_csv(path, sep="\t", usecols=COLUMNS).query("split == 'val'")
        for fold, part in val.groupby("fold"):
            yield path.parent.name, fold, part


def left_out_rows(workdir: Path, model: str) -> pd.DataFrame:
    """One row per (held-out line, fold, left-out validation line) of the run's `val` rows."""
    rows = []
    for heldout, fold, part in validation_folds(workdir, model):
        pairs_fits = line_out_fits(part, "temperature", heldout, [], balance="pairs")
        lines_fits = line_out_fits(part, "temperature", heldout, [], balance="lines")  # round 5's fit_balance
        for (fit, held, cal), (_, _, cal_lines) in zip(pairs_fits, lines_fits, strict=True):
            fit_y, fit_p = fit.label.to_numpy(), cal.transform(fit.score.to_numpy())
            balanced = line_weights(fit.cell_line)  # round 4's threshold_balance: lines
            y, p = held.label.to_numpy(), cal.transform(held.score.to_numpy())
            p_lines = cal_lines.transform(held.score.to_numpy())
            fit_lines = fit.cell_line.to_numpy()
            best = precision_recall_f1(y, p, choose_threshold(y, p))[2]
            recall = lambda t: abs(precision_recall_f1(y, p, t)[1] - 0.7)  # noqa: B023, E731
            rows.append(
                {
                    "heldout": heldout,
                    "fold": fold,
                    "left_out": held.cell_line.iloc[0],
                    "ece": ece(y, p, 10),
                    "gap": p.mean() - y.mean(),
                    "ece_lines": ece(y, p_lines, 10),
                    "gap_lines": p_lines.mean() - y.mean(),
                    "regret_validation": best - precision_recall_f1(y, p, choose_threshold(fit_y, fit_p))[2],
                    "regret_balanced": best
                    - precision_recall_f1(y, p, choose_threshold(fit_y, fit_p, sample_weight=balanced))[2],
                    "regret_expected": best - precision_recall_f1(y, p, expected_threshold(p))[2],
                    "regret_line_mean": best
                    - precision_recall_f1(y, p, choose_threshold_line_mean(fit_y, fit_p, fit_lines))[2],
                    "recall_error_validation": recall(choose_threshold(fit_y, fit_p, "recall", 0.7)),
                    "recall_error_balanced": recall(
                        choose_threshold(fit_y, fit_p, "recall", 0.7, sample_weight=balanced)
                    ),
                    "recall_error_expected": recall(expected_threshold(p, "recall", 0.7)),
                    "recall_error_line_mean": recall(
                        choose_threshold_line_mean(fit_y, fit_p, fit_lines, "recall", 0.7)
                    ),
                }
            )
    if not rows:
        raise SystemExit(f"{workdir}/results/predictions/*/{model}.tsv.gz: no finished held-out line of {model}")
    return pd.DataFrame(rows)


def line_fits(workdir: Path, model: str) -> pd.DataFrame:
    """Per (held-out line, fold, validation line L): L's positive rate, the temperature fitted on the other validation
    lines, and temperature and Platt (slope a, intercept b on the logit) fitted on L's own labelled rows, with two
    label-free views of L's scores (mean score, s.d. of the logit). Shows how far a line's own calibration map is from
    the one its neighbours give it; `val` rows only."""
    rows = []
    for heldout, fold, part in validation_folds(workdir, model):
        for _, held, others in line_out_fits(part, "temperature", heldout, [], balance="pairs"):
            if held.label.nunique() < 2:
                continue
            platt = fit_calibrator("platt", held.score, held.label).params
            z = logit(np.clip(held.score.to_numpy(), SCORE_EPS, 1 - SCORE_EPS))
            rows.append(
                {
                    "heldout": heldout,
                    "fold": fold,
                    "line": held.cell_line.iloc[0],
                    "rate": held.label.mean(),
                    "temperature_others": others.params["temperature"],
                    "temperature_own": fit_calibrator("temperature", held.score, held.label).params["temperature"],
                    "platt_a_own": platt["a"],
                    "platt_b_own": platt["b"],
                    "mean_score": held.score.mean(),
                    "sd_logit": z.std(),
                }
            )
    return pd.DataFrame(rows)


def round3_test_f1(workdir: Path, model: str) -> pd.Series:
    """Test F1 per held-out line with each fold's threshold from expected_threshold on its test probabilities."""
    f1 = {}
    for path in sorted((workdir / "results" / "predictions").glob(f"*/{model}.tsv.gz")):
        test = pd.read_csv(path, sep="\t").query("split == 'test'")
        test = test.assign(threshold=test.groupby("fold").prob.transform(expected_threshold))
        f1[path.parent.name] = split_metrics(test, 10).f1.iloc[0]  # summary.tsv's F1: each row at its fold's threshold
    return pd.Series(f1, name=f"{model} test F1, round 3 thresholds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--model", action="append", help="model(s) to read (default gbm)")
    parser.add_argument("--round3-test", action="store_true", help="also the test F1 of round 3's variant")
    parser.add_argument("--line-fits", action="store_true", help="also each validation line's own calibration map")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    pd.set_option("display.width", 200)
    for model in args.model or ["gbm"]:
        table = left_out_rows(args.workdir, model)
        metrics = [c for c in table.columns if c not in ("heldout", "fold", "left_out")]
        by_line = table.groupby("left_out")[metrics].mean()
        print(f"## {model}: {len(table)} left-out cases; mean by left-out validation line")
        print(by_line.round(4).to_string())
        print("overall mean", table[metrics].mean().round(4).to_dict())
        print("worst line (max of the per-line means)", by_line.max().round(4).to_dict())
        if args.round3_test:
            print(round3_test_f1(args.workdir, model).round(4).to_string())
        if args.line_fits:
            fits = line_fits(args.workdir, model)
            print(f"## {model}: each validation line's own calibration map, mean over held-out line x fold")
            print(fits.drop(columns=["heldout", "fold"]).groupby("line").mean().round(3).to_string())


if __name__ == "__main__":
    main()
