"""Entry point of rule train_heldout: one model for one held-out cell line, every chromosome fold and validation
line."""

import json
import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from epiflow import runlog  # noqa: E402

runlog.start(snakemake.log[0])  # noqa: F821

from epiflow.gpu import device_slot, limit_threads  # noqa: E402
from epiflow.train import load_heldout_data, run_heldout  # noqa: E402

sm = snakemake  # noqa: F821
limit_threads(sm.threads)
lines = sm.params.heldout_lines
heldout, train_lines = lines[0], lines[1:]
data = load_heldout_data(
    heldout,
    train_lines,
    pairs=dict(zip(lines, sm.input.pairs, strict=False)),
    features=dict(zip(lines, sm.input.features, strict=False)),
    tads=dict(zip(sm.params.tad_lines, sm.input.tads, strict=False)),
    chrom_map=sm.params.chrom_map,
)
with device_slot(".snakemake/gpu-slots", n_devices=None if sm.resources.gpu else 0) as device:
    scores, info = run_heldout(
        data,
        heldout,
        train_lines,
        sm.params.chrom_folds,
        sm.wildcards.model,
        sm.params.model_params,
        sm.params.seed,
        checkpoint_dir=sm.params.checkpoints,
        device=device,
        spurious_columns=[c for c in data[heldout].columns if c.split("_")[0] in sm.params.spurious_marks],
        validation=sm.params.validation,
        validation_folds=sm.params.validation_folds,
    )
scores.to_csv(sm.output.scores, sep="\t", index=False, float_format="%.6g")
with open(sm.output.diagnostics, "w") as handle:
    json.dump(info.pop("diagnostics"), handle, indent=1)
info["device"] = device
info["feature_columns"] = data[heldout].columns
with open(sm.output.info, "w") as handle:
    json.dump(info, handle, indent=1)
