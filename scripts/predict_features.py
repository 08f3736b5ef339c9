"""Entry point of rule predict_features: the candidates' features, one npz per chromosome (bounded memory)."""

import logging
import os
import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from epiflow import runlog  # noqa: E402

runlog.start(snakemake.log[0])  # noqa: F821
from epiflow.features import features_by_chromosome, save_features, sequence_codes  # noqa: E402
from epiflow.io import read_chrom_sizes, read_pair_table  # noqa: E402

sm = snakemake  # noqa: F821
opts = sm.params.features
pairs = read_pair_table(sm.input.candidates)
tracks = dict(zip(sm.params.marks, sm.input.tracks, strict=True))
os.makedirs(sm.output[0], exist_ok=True)
n_bins = opts["profile_bins"] if sm.params.profiles else 0
sizes = read_chrom_sizes(sm.input.chrom_sizes)
for chrom, rows, table, profile in features_by_chromosome(pairs, tracks, sizes, opts, n_bins=n_bins):
    # sequence only for the networks that read it (the input is given then), as the training features have it
    seq = sequence_codes(sm.input.fasta, pairs.iloc[rows], opts["sequence_length"]) if sm.input.fasta else None
    save_features(f"{sm.output[0]}/{chrom}.npz", pairs.pair_id.iloc[rows], table, profile, sm.params.marks, seq)
    logging.info("%s: %d pairs", chrom, len(rows))
