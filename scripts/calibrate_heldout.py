"""Entry point of rule calibrate_heldout: calibrated predictions, per-fold calibration notes and split metrics."""

import json
import sys

import pandas as pd

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from epiflow import runlog  # noqa: E402

runlog.start(snakemake.log[0])  # noqa: F821
from epiflow.calibrate import calibrate_scores, reliability_table, split_metrics  # noqa: E402

sm = snakemake  # noqa: F821
cfg = sm.params.calibration
scores = pd.read_csv(sm.input.scores, sep="\t", dtype={"chrom": str, "pair_id": str})
pred, notes, methods = calibrate_scores(scores, sm.params.heldout, sm.params.chrom_folds, cfg, compare=True)
pred.to_csv(sm.output.predictions, sep="\t", index=False, float_format="%.6g")
notes = pd.DataFrame(notes).assign(
    params=lambda d: d.params.map(json.dumps), val_logloss=lambda d: d.val_logloss.map(json.dumps)
)
notes.to_csv(sm.output.calibration, sep="\t", index=False, float_format="%.6g")
methods.to_csv(sm.output.methods, sep="\t", index=False, float_format="%.6g")
reliability_table(pred, cfg["ece_bins"]).to_csv(sm.output.reliability, sep="\t", index=False, float_format="%.6g")
metrics = split_metrics(pred, cfg["ece_bins"])
metrics.insert(0, "model", sm.wildcards.model)
metrics.insert(0, "heldout", sm.params.heldout)
metrics.to_csv(sm.output.metrics, sep="\t", index=False, float_format="%.6g")
