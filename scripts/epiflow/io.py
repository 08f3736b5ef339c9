"""epiflow's readers and writers, one per format: the public entry point of the io stage.

Readers return 0-based half-open coordinates and `chr`-prefixed chromosomes and raise
`epiflow.errors.InputError` naming the file and 1-based line of the first bad row. The code lives in
io_text (shared line-numbered parsing, chromosome naming), io_regions (peaks, loops, TADs, TSSs),
io_pairs (labelled pairs) and io_bigwig (bigWig output)."""

from epiflow.io_bigwig import (
    TRACK_FORMATS,
    bam_to_bigwig,
    intervals_to_bigwig,
    max_over_overlaps,
    track_to_bigwig,
)
from epiflow.io_pairs import PAIR_COLUMNS, PAIR_FORMATS, read_pair_table, read_pairs
from epiflow.io_regions import PEAK_FORMATS, read_bedpe, read_peaks, read_tads, read_tss
from epiflow.io_text import (
    atomic_path,
    harmonize_chroms,
    map_chrom_name,
    read_chrom_sizes,
    read_table,
)

__all__ = [
    "PAIR_COLUMNS",
    "PAIR_FORMATS",
    "PEAK_FORMATS",
    "TRACK_FORMATS",
    "atomic_path",
    "bam_to_bigwig",
    "harmonize_chroms",
    "intervals_to_bigwig",
    "map_chrom_name",
    "max_over_overlaps",
    "read_bedpe",
    "read_chrom_sizes",
    "read_pair_table",
    "read_pairs",
    "read_peaks",
    "read_table",
    "read_tads",
    "read_tss",
    "track_to_bigwig",
]
