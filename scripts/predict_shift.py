"""Entry point of rule predict_shift: how far a predicted line sits from its final model's training lines."""

import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from epiflow import runlog  # noqa: E402

runlog.start(snakemake.log[0])  # noqa: F821
from epiflow.features import compute_configured  # noqa: E402
from epiflow.io import read_chrom_sizes, read_pair_table  # noqa: E402
from epiflow.shift import reference_coordinates, shift_summary  # noqa: E402

sm = snakemake  # noqa: F821
line, *train_lines = sm.params.lines
marks = sm.params.marks
sizes = read_chrom_sizes(sm.input.chrom_sizes)
reference = reference_coordinates([read_pair_table(p) for p in sm.input.pairs], seed=sm.params.seed)
tracks = iter(sm.input.tracks)
values, columns = {}, None
for cell in sm.params.lines:  # the input lists each line's marks in order (expand: line-major)
    paths = {m: next(tracks) for m in marks}
    table, _ = compute_configured(reference, paths, sizes, sm.params.features | {"profile_bins": 0})
    table = table.drop(columns="log_distance")  # identical coordinates: the same in every line
    values[cell], columns = table.to_numpy(), list(table.columns)
record, per_feature = shift_summary(values, line, train_lines, columns, seed=sm.params.seed)
notes = json.loads(Path(sm.input.calibration).read_text())
record["positive_rate"] = {
    "estimator": notes["label_shift_estimator"],
    "estimate": notes["test_prior_estimate"],
    "validation_rate": notes["val_prior"],
    "genome_wide_mean_prob": notes["genome_wide_rate"],
    **{k: v for k, v in notes.items() if k.startswith("test_prior_") and k != "test_prior_estimate"},
}
with open(sm.output.shift, "w") as handle:
    json.dump(record, handle, indent=1, default=float)
pd.DataFrame(per_feature).to_csv(sm.output.table, sep="\t", index=False, float_format="%.6g")
