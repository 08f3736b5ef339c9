"""Entry point of rule calibrate_model: calibrated predictions, per-fold calibration notes and split metrics."""

import sys

import pandas as pd

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from epiflow import runlog  # noqa: E402
from epiflow.evaluate import calibrate_scores, split_metrics  # noqa: E402

runlog.start(snakemake.log[0])  # noqa: F821
sm = snakemake  # noqa: F821
cfg = sm.params.calibration
scores = pd.read_csv(sm.input.scores, sep="\t", dtype={"chrom": str, "pair_id": str})
pred, notes = calibrate_scores(scores, sm.params.heldout, sm.params.chrom_folds, cfg)
pred.to_csv(sm.output.predictions, sep="\t", index=False, float_format="%.6g")
pd.DataFrame(notes).assign(params=lambda d: d.params.astype(str)).to_csv(sm.output.calibration, sep="\t", index=False)
metrics = split_metrics(pred, cfg["ece_bins"])
metrics.insert(0, "model", sm.wildcards.model)
metrics.insert(0, "heldout", sm.params.heldout)
metrics.to_csv(sm.output.metrics, sep="\t", index=False, float_format="%.6g")
