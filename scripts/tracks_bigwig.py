"""Entry point of rule tracks_bigwig: any track format of the sheet -> one bigWig on the reference's chromosomes."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from epiflow import runlog  # noqa: E402

runlog.start(snakemake.log[0])  # noqa: F821
from epiflow.io import read_chrom_sizes, track_to_bigwig  # noqa: E402
from epiflow.io_bigwig import check_signal_on  # noqa: E402

sm = snakemake  # noqa: F821
sizes = read_chrom_sizes(sm.input.chrom_sizes)
track_to_bigwig(sm.input.source, sm.params.format, sizes, sm.output[0], chrom_map=sm.params.chrom_map)
# pairs on a fold chromosome would get all-zero features from a track without signal there: stop instead
fold_chroms = [c for fold in sm.config["protocol"].get("chrom_folds") or [] for c in fold if c in sizes]
check_signal_on(sm.output[0], fold_chroms, sm.input.source)
