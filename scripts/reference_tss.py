"""Entry point of rule reference_tss: one TSS table (chrom, tss, strand, gene) from the annotation."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from epiflow import runlog  # noqa: E402

runlog.start(snakemake.log[0])  # noqa: F821
from epiflow.io import read_chrom_sizes, read_tss  # noqa: E402

sm = snakemake  # noqa: F821
sizes = read_chrom_sizes(sm.input.chrom_sizes)
tss = read_tss(sm.input.annotation, known_chroms=sizes, chrom_map=sm.params.chrom_map)
tss = tss[tss.chrom.isin(set(sizes))].sort_values(["chrom", "tss"])
tss.to_csv(sm.output[0], sep="\t", index=False)
