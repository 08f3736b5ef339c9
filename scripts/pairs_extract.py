"""Entry point of rule pairs_extract: one labelled pair table per cell line, with chromosome folds."""

import sys

import pandas as pd

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from epiflow import runlog  # noqa: E402

runlog.start(snakemake.log[0])  # noqa: F821
from epiflow.io import read_bedpe, read_chrom_sizes, read_pairs, read_peaks  # noqa: E402
from epiflow.pairs import finalize_pairs, pairs_from_loops  # noqa: E402

sm = snakemake  # noqa: F821
cell = sm.wildcards.cell_line
sizes = read_chrom_sizes(sm.input.chrom_sizes)
chrom_map = sm.params.chrom_map
if sm.params.format == "bedpe":
    # chrom sizes (not just names): an anchor or peak starting past its chromosome's end is refused, naming its line
    loops = read_bedpe(sm.input.source, known_chroms=sizes, chrom_map=chrom_map)
    tss = pd.read_csv(sm.input.tss, sep="\t", dtype={"chrom": str, "gene": str})
    peaks = read_peaks(sm.input.peaks, sm.params.peak_format, known_chroms=sizes, chrom_map=chrom_map)
    sources = (sm.input.peaks, sm.input.tss)
    frame = pairs_from_loops(loops, tss, peaks, cell, sm.params.from_loops, sources)
else:
    # chrom sizes (not just names) let the reader report coordinates past a chromosome end with their file line
    frame = read_pairs(sm.input.source, sm.params.format, cell, known_chroms=sizes, chrom_map=chrom_map)
pairs = finalize_pairs(frame, cell, sm.params.chrom_folds, sizes, sm.input.source)
pairs.to_csv(sm.output[0], sep="\t", index=False)
