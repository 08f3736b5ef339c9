"""Entry point of rule reference_chrom_sizes: chromosome sizes from the FASTA index or a chrom sizes source."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from epiflow import runlog  # noqa: E402

runlog.start(snakemake.log[0])  # noqa: F821
from epiflow.io import read_chrom_sizes  # noqa: E402
from epiflow.reference import write_chrom_sizes  # noqa: E402

write_chrom_sizes(read_chrom_sizes(snakemake.input[0]), snakemake.output[0])  # noqa: F821
