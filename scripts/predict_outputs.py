"""Entry point of rule predict_outputs: the prediction table, its calls, BEDPE, interact bigBed and gene table."""

import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from epiflow import runlog  # noqa: E402

runlog.start(snakemake.log[0])  # noqa: F821
from epiflow.io import read_chrom_sizes, read_pair_table  # noqa: E402
from epiflow.predict_outputs import (  # noqa: E402
    gene_table,
    prediction_table,
    write_bedpe,
    write_interact,
    write_table,
)

sm = snakemake  # noqa: F821
candidates = read_pair_table(sm.input.candidates)
scores = pd.read_csv(sm.input.scores, sep="\t", dtype={"pair_id": str})
if not scores.pair_id.equals(candidates.pair_id):
    raise ValueError(f"{sm.input.scores}: pairs differ from {sm.input.candidates}; rerun predict_score")
notes = json.loads(Path(sm.input.calibration).read_text())
meta = json.loads(Path(sm.input.meta).read_text())
line = sm.wildcards.line
table = prediction_table(candidates, scores.score, scores.score_sd, scores.prob, notes["threshold"], line)
provenance = {  # a sidecar, so the tables stay plain ABC-style TSVs that ABC's and CRISPR_comparison's tools read
    "line": line,
    "model": meta["model"],
    "training_lines": meta["training_lines"],
    "feature_columns": meta["feature_columns"],
    "excluded_columns": meta["params"].get("exclude_columns") or [],
    "candidates": sm.params.candidates,  # the elements the features were read over (element_width, ...)
    "calibration": notes["method"],
    "label_shift_estimator": notes["label_shift_estimator"],
    "estimated_positive_rate": notes["test_prior_estimate"],
    "threshold": notes["threshold"],
    "threshold_rule": notes["threshold_rule"],
    "config_digest": meta["config_digest"],
    "versions": meta["versions"],
}
with open(sm.output.provenance, "w") as handle:
    json.dump(provenance, handle, indent=1, default=float)
write_table(table, sm.output.predictions)
calls = table[table.predicted].reset_index(drop=True)
write_table(calls, sm.output.calls)
write_bedpe(calls, sm.output.bedpe)
write_interact(calls, read_chrom_sizes(sm.input.chrom_sizes), sm.output.interact)
gene_table(table).to_csv(sm.output.genes, sep="\t", index=False, float_format="%.6g")
