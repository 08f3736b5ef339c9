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
import torch  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from epiflow.features import load_features  # noqa: E402
from epiflow.io import read_pair_table  # noqa: E402
from epiflow.io_regions import read_tads  # noqa: E402
from epiflow.models import PairData  # noqa: E402
from epiflow.predict import calibrate_candidates, check_columns, check_not_trained_on, load_final  # noqa: E402
from epiflow.train import add_topology  # noqa: E402

sm = snakemake  # noqa: F821
torch.set_num_threads(sm.threads)
threadpool_limits(sm.threads)
line = sm.wildcards.line
final = load_final(sm.input.model, sm.input.validation, sm.input.meta)
check_not_trained_on(line, final)
candidates = read_pair_table(sm.input.candidates)
tads = {c: read_tads(p, chrom_map=sm.params.chrom_map) for c, p in zip(sm.params.tad_lines, sm.input.tads, strict=True)}
score = np.full(len(candidates), np.nan)
spread = np.full(len(candidates), np.nan)
position = pd.Series(np.arange(len(candidates)), index=candidates.pair_id.to_numpy())
for path in sorted(glob.glob(os.path.join(sm.input.features, "*.npz"))):
    feats = load_features(path)
    rows = position.loc[feats["pair_id"]].to_numpy()
    profile = feats["profile"] if feats["profile"].shape[-1] else None
    frame = candidates.iloc[rows].reset_index(drop=True)
    data = {line: PairData(frame, feats["values"], list(feats["columns"]), profile, feats.get("seq"))}
    data = add_topology(data, tads, heldout=line)[line]  # the training lines' Hi-C only, never the line's own
    check_columns(line, final, data.columns, path)
    score[rows], spread[rows] = final.score(data)
if np.isnan(score).any():
    raise ValueError(f"{sm.input.features}: {int(np.isnan(score).sum())} candidates have no features")
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
