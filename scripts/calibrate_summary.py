"""Entry point of rule calibrate_summary: one row per held-out cell line x model x split."""

import sys

import pandas as pd

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from epiflow import runlog  # noqa: E402

runlog.start(snakemake.log[0])  # noqa: F821

sm = snakemake  # noqa: F821
summary = pd.concat([pd.read_csv(p, sep="\t") for p in sm.input], ignore_index=True)
summary.to_csv(sm.output[0], sep="\t", index=False, float_format="%.6g")
