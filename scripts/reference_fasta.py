"""Entry point of rule reference_fasta: the genome as bgzipped FASTA with .fai and .gzi."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from epiflow import runlog  # noqa: E402

runlog.start(snakemake.log[0])  # noqa: F821
from epiflow.reference import bgzip_fasta  # noqa: E402

bgzip_fasta(snakemake.input[0], snakemake.output.fasta)  # noqa: F821
