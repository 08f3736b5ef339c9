"""Entry point of rule download_source: fetch one URL (or take it from the mirror), checksum-verified, atomically."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from epiflow import runlog  # noqa: E402

runlog.start(snakemake.log[0])  # noqa: F821
from epiflow.download import fetch  # noqa: E402

entry = snakemake.params.entry  # noqa: F821
mirror = snakemake.config.get("mirror")  # noqa: F821  (not a param: see rules/download.smk)
fetch(entry["url"], snakemake.output[0], sha256=entry["sha256"], mirror=mirror)  # noqa: F821
