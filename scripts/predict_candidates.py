"""Entry point of rule predict_candidates: every candidate element–gene pair of one cell line to predict."""

import sys

import pandas as pd

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from epiflow import runlog  # noqa: E402

runlog.start(snakemake.log[0])  # noqa: F821
from epiflow.candidates import one_tss_per_gene, predict_candidates, read_candidate_peaks  # noqa: E402
from epiflow.io import read_chrom_sizes, read_tss  # noqa: E402
from epiflow.io_text import read_gene_list  # noqa: E402

sm = snakemake  # noqa: F821
opts = sm.params.candidates
sizes = read_chrom_sizes(sm.input.chrom_sizes)
chrom_map = sm.params.chrom_map
tss = pd.read_csv(sm.input.tss, sep="\t", dtype={"chrom": str, "gene": str})
genes_source = sm.input.annotation or sm.input.tss
if sm.input.annotation:
    annotated = read_tss(sm.input.annotation, known_chroms=sizes, chrom_map=chrom_map, gene_column=opts["gene_column"])
    tss = pd.concat([tss, annotated], ignore_index=True)  # every known TSS marks a promoter
else:
    annotated = tss
gene_list = read_gene_list(sm.input.genes) if sm.input.genes else None
gene_tss = one_tss_per_gene(annotated, gene_list, source=str(genes_source))
# re-sized around their summits when predict.candidates.element_width is set (docs/findings/elements-prereg.md)
peaks = read_candidate_peaks(sm.input.peaks, sm.params.peak_format, opts, sizes, chrom_map)
pairs = predict_candidates(
    peaks,
    tss,
    gene_tss,
    sizes,
    sm.wildcards.line,
    promoter_flank=opts["promoter_flank"],
    min_distance=opts["min_distance"],
    max_distance=opts["max_distance"],
    source=str(sm.input.peaks),
)
pairs.to_csv(sm.output[0], sep="\t", index=False)
