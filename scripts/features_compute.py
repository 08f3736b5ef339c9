"""Entry point of rule features_compute: E/P/W features, context profiles and sequence of one cell line's pairs."""

import sys

import pandas as pd

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from epiflow import runlog  # noqa: E402
from epiflow.features import compute_features, save_features, sequence_codes  # noqa: E402
from epiflow.io import read_chrom_sizes  # noqa: E402

runlog.start(snakemake.log[0])  # noqa: F821
sm = snakemake  # noqa: F821
opts = sm.params.features
pairs = pd.read_csv(sm.input.pairs, sep="\t", dtype={"chrom": str, "gene": str, "pair_id": str})
table, profile = compute_features(
    pairs,
    dict(zip(sm.params.marks, sm.input.tracks, strict=False)),
    read_chrom_sizes(sm.input.chrom_sizes),
    resolution=opts["resolution"],
    n_bins=opts["profile_bins"],
    flank_fraction=opts["flank_fraction"],
    normalization=opts["normalization"],
)
seq = sequence_codes(sm.input.fasta, pairs, opts["sequence_length"]) if sm.input.fasta else None
save_features(sm.output[0], pairs.pair_id, table, profile, sm.params.marks, seq)
