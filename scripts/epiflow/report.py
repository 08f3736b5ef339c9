"""The reflection report: the run's numbers, figures and findings as one self-contained HTML file.

Reads only files the workflow wrote (summary, predictions, calibration notes); never recomputes a model.
"""

from __future__ import annotations

import logging
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd

from epiflow import plots

log = logging.getLogger(__name__)


def summary_table(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per held-out line x model: train/val/test AUPR and AUROC, the gap, lift, P/R/F1 and ECE on test."""
    wide = summary.pivot_table(index=["heldout", "model"], columns="split", values=["aupr", "auroc"], aggfunc="first")
    wide.columns = [f"{metric}_{split}" for metric, split in wide.columns]
    test = summary[summary.split == "test"].set_index(["heldout", "model"])
    out = wide.join(
        test[["pos_rate", "threshold", "precision", "recall", "f1", "ece_raw", "ece", "oracle_threshold", "oracle_f1"]]
    )
    out["gap"] = out["aupr_train"] - out["aupr_test"]
    out["lift"] = out["aupr_test"] / out["pos_rate"]
    best = out.groupby(level="heldout")["aupr_test"].transform("max")
    out["best"] = out["aupr_test"] == best
    return out.reset_index()


def prediction_figures(predictions: dict[tuple[str, str], pd.DataFrame], n_bins: int) -> list[dict]:
    """Per held-out line: PR curves (train vs test per model), reliability (raw vs calibrated) and F1-threshold."""
    figures = []
    for heldout in sorted({h for h, _ in predictions}):
        pr, rel, f1 = {}, {}, {}
        chosen = 0.5
        for (h, model), pred in sorted(predictions.items()):
            if h != heldout:
                continue
            test, train = pred[pred.split == "test"], pred[pred.split == "train"]
            pr[f"{model} train"] = (train.label.to_numpy(), train.prob.to_numpy())
            pr[f"{model} test"] = (test.label.to_numpy(), test.prob.to_numpy())
            rel[f"{model} raw"] = (test.label.to_numpy(), test.score.to_numpy())
            rel[f"{model} calibrated"] = (test.label.to_numpy(), test.prob.to_numpy())
            f1[f"{model} test"] = (test.label.to_numpy(), test.prob.to_numpy())
            chosen = float(np.mean(test.threshold))
        figures.append(
            {
                "heldout": heldout,
                "pr": plots.pr_curves(pr, f"{heldout}: precision-recall"),
                "reliability": plots.reliability(rel, f"{heldout}: reliability (test)", n_bins),
                "threshold": plots.threshold_f1(f1, chosen, f"{heldout}: F1 vs threshold (test)"),
            }
        )
    return figures


def render(template: str | Path, context: dict) -> str:
    """Render the Jinja2 template with autoescaping."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(template).parent)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template(Path(template).name).render(**context)


def build_report(
    summary_path, prediction_paths: dict, calibration_paths: dict, template, out_path, options: dict
) -> None:
    """Write the reflection report from the summary, predictions and calibration notes."""
    summary = pd.read_csv(summary_path, sep="\t")
    predictions = {
        key: pd.read_csv(p, sep="\t", dtype={"chrom": str, "pair_id": str}) for key, p in prediction_paths.items()
    }
    calibration = pd.concat(
        [pd.read_csv(p, sep="\t").assign(heldout=h, model=m) for (h, m), p in calibration_paths.items()],
        ignore_index=True,
    )
    table = summary_table(summary)
    gaps = {f"{r.heldout} / {r.model}": r.gap for r in table.itertuples()}
    context = {
        "title": "epiflow reflection report",
        "language": options.get("language", "en"),
        "table": table.to_dict("records"),
        "figures": prediction_figures(predictions, int(options.get("ece_bins", 10))),
        "gap_plot": plots.bars(gaps, "train - test AUPR (generalization gap)", "AUPR gap"),
        "calibration": calibration.to_dict("records"),
    }
    Path(out_path).write_text(render(template, context), encoding="utf-8")
    log.info("wrote %s", out_path)
