"""Entry point of rule features_compute: E/P/W features, context profiles and sequence of one cell line's pairs."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from epiflow import runlog  # noqa: E402

runlog.start(snakemake.log[0])  # noqa: F821
from epiflow.features import compute_configured, save_features, sequence_codes  # noqa: E402
from epiflow.io import read_chrom_sizes, read_pair_table  # noqa: E402

sm = snakemake  # noqa: F821
opts = sm.params.features
pairs = read_pair_table(sm.input.pairs)
tracks = dict(zip(sm.params.marks, sm.input.tracks, strict=False))
table, profile = compute_configured(pairs, tracks, read_chrom_sizes(sm.input.chrom_sizes), opts)
seq = sequence_codes(sm.input.fasta, pairs, opts["sequence_length"]) if sm.input.fasta else None
save_features(sm.output[0], pairs.pair_id, table, profile, sm.params.marks, seq)
