"""Entry point of rule predict_score: score every candidate pair of a line with its final model (mean and spread
over the leave-one-line-out fits), then calibrate on the final model's validation rows."""

import glob
import json
import os
import sys

import numpy as np
import pandas as pd

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from epiflow import runlog  # noqa: E402

runlog.start(snakemake.log[0])  # noqa: F821

from epiflow.gpu import limit_threads  # noqa: E402
from epiflow.io import read_pair_table  # noqa: E402
from epiflow.io_regions import read_tads_by_line  # noqa: E402
from epiflow.predict import calibrate_candidates, check_not_trained_on, load_final, score_candidates  # noqa: E402

sm = snakemake  # noqa: F821
limit_threads(sm.threads)
line = sm.wildcards.line
final = load_final(sm.input.model, sm.input.validation, sm.input.meta)
check_not_trained_on(line, final)
candidates = read_pair_table(sm.input.candidates)
tads = read_tads_by_line(sm.params.tad_lines, sm.input.tads, sm.params.chrom_map)
files = sorted(glob.glob(os.path.join(sm.input.features, "*.npz")))
score, spread = score_candidates(final, line, candidates, files, tads)
prob, notes = calibrate_candidates(final, line, score, sm.params.calibration)
notes |= {"line": line, "model": final.name, "training_lines": final.meta["training_lines"], "n_candidates": len(score)}
notes["genome_wide_rate"] = float(np.mean(prob))
rule = sm.params.calibration["threshold"]
notes["threshold_rule"] = f"{rule['rule']}" + (f" {rule['target']}" if rule.get("target") is not None else "")
pd.DataFrame({"pair_id": candidates.pair_id, "score": score, "score_sd": spread, "prob": prob}).to_csv(
    sm.output.scores, sep="\t", index=False, float_format="%.6g"
)
with open(sm.output.calibration, "w") as handle:
    json.dump(notes, handle, indent=1, default=float)
