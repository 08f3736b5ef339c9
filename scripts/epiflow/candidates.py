"""Candidate enhancer–gene pairs of a cell line to predict genome-wide (no labels, no Hi-C).

Elements: the line's peaks of `enhancer_mark` (or DNase/ATAC), optionally re-sized around their summits first
(`resize_peaks`: `element_width`, `element_resize`), merged, without those that overlap a promoter (any TSS of the
annotation +- `promoter_flank`), as the loop path does (epiflow.pairs.candidate_enhancers). Genes: one TSS
per gene (`one_tss_per_gene`), optionally restricted to a gene list. A pair is kept when
``min_distance <= |element midpoint - TSS| <= max_distance`` (both bounds inclusive; midpoint = floor((start + end)
/ 2)). Promoters are TSS +- promoter_flank clipped to the chromosome. The table has the columns of every epiflow
pair table (epiflow.io_pairs.PAIR_COLUMNS) with label -1 (unknown) and fold 0; pair_id names element and gene.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from epiflow.errors import InputError
from epiflow.io_pairs import PAIR_COLUMNS
from epiflow.io_regions import read_peaks
from epiflow.pairs import candidate_enhancers, candidate_pairs

log = logging.getLogger(__name__)

UNLABELLED = -1  # the label of a candidate pair: not known
RESIZE_MODES = ("fixed", "at_least")


def resize_peaks(peaks: pd.DataFrame, width: int, mode: str, chrom_sizes: dict) -> pd.DataFrame:
    """Peaks replaced by the `width`-bp window around their centre (`summit` when the frame has it, else the midpoint
    floor((start + end) / 2)): [centre - floor(width / 2), centre - floor(width / 2) + width), shifted to lie inside
    the chromosome (the whole chromosome when it is shorter): every peak (`fixed`, ABC's candidate regions) or only
    those shorter than `width` (`at_least`; a peak of `width` or longer stays as called). A shorter peak's window is
    centred on its summit, so it need not cover all of the peak."""
    if mode not in RESIZE_MODES:
        raise ValueError(f"element_resize {mode!r}: expected one of {', '.join(RESIZE_MODES)}")
    unknown = sorted(set(peaks.chrom) - set(chrom_sizes))
    if unknown:
        raise ValueError(f"peaks on chromosome(s) {unknown[:3]} not in the genome's chrom sizes")
    start, end = peaks.start.to_numpy(np.int64), peaks.end.to_numpy(np.int64)
    centre = peaks.summit.to_numpy(np.int64) if "summit" in peaks else (start + end) // 2
    size = peaks.chrom.map(chrom_sizes).to_numpy(np.int64)
    new_start = np.clip(centre - width // 2, 0, np.maximum(size - width, 0))
    new_end = np.minimum(new_start + width, size)
    change = np.ones(len(peaks), bool) if mode == "fixed" else (end - start) < width
    out = peaks.copy()
    out["start"], out["end"] = np.where(change, new_start, start), np.where(change, new_end, end)
    return out


def one_tss_per_gene(tss: pd.DataFrame, genes: list[str] | None = None, source: str = "annotation") -> pd.DataFrame:
    """The 5'-most TSS of each gene (lowest on +, highest on -), on the chromosome of its first record, restricted
    to `genes` when given (an unknown gene name is an InputError naming it). Columns chrom, tss, strand, gene."""
    if genes is not None:
        unknown = sorted(set(genes) - set(tss.gene))
        if unknown:
            raise InputError(
                f"{source}: {len(unknown)} gene(s) of the gene list not in the annotation, e.g. {unknown[:3]} "
                "(expected gene names as the annotation writes them)"
            )
        tss = tss[tss.gene.isin(set(genes))]
    first_chrom = tss.groupby("gene", sort=False).chrom.transform("first")
    tss = tss[tss.chrom == first_chrom]
    five_prime = np.where(tss.strand.to_numpy() == "-", -tss.tss.to_numpy(), tss.tss.to_numpy())
    order = np.lexsort((five_prime, tss.gene.to_numpy()))
    picked = tss.iloc[order].drop_duplicates("gene")
    return picked[["chrom", "tss", "strand", "gene"]].sort_values(["chrom", "tss"]).reset_index(drop=True)


def read_candidate_peaks(path, fmt: str, opts: dict, chrom_sizes: dict, chrom_map=None) -> pd.DataFrame:
    """The enhancer-mark peaks of a line as the candidate elements start from: read (epiflow.io.read_peaks: a peak
    starting past its chromosome's end is an InputError naming the line), clipped to the chromosome and, when
    `opts["element_width"]` is set, re-sized around their summits (`resize_peaks`, mode `opts["element_resize"]`)."""
    width = opts.get("element_width")
    peaks = read_peaks(path, fmt, known_chroms=chrom_sizes, chrom_map=chrom_map, summits=bool(width))
    # a peak overhanging its chromosome's end is clipped there, as in the mark's bigWig (io_bigwig)
    peaks["end"] = np.minimum(peaks["end"], peaks["chrom"].map(chrom_sizes)).astype(np.int64)
    return resize_peaks(peaks, width, opts.get("element_resize", "at_least"), chrom_sizes) if width else peaks


def predict_candidates(
    peaks: pd.DataFrame,
    tss: pd.DataFrame,
    gene_tss: pd.DataFrame,
    chrom_sizes: dict,
    cell_line: str,
    promoter_flank: int = 1000,
    min_distance: int = 5000,
    max_distance: int = 2_000_000,
    source: str = "peaks",
) -> pd.DataFrame:
    """Every candidate element–gene pair of one cell line (see the module docstring).

    peaks: chrom, start, end of the enhancer-mark peaks; tss: every TSS of the annotation (promoter exclusion);
    gene_tss: one TSS per gene (the pair's target). Raises InputError when nothing is left."""
    if peaks.empty:
        raise InputError(f"{source}: no peaks (expected the {cell_line} enhancer-mark peaks)")
    unknown = sorted(set(peaks.chrom) - set(chrom_sizes))
    if unknown:
        raise InputError(f"{source}: chromosome(s) {unknown[:3]} not in the genome's chrom sizes")
    elements = candidate_enhancers(peaks, tss, promoter_flank)
    pairs = candidate_pairs(elements, gene_tss, min_distance, max_distance)
    if pairs.empty:
        raise InputError(
            f"{source}: no element–gene pairs for {cell_line} within {min_distance}-{max_distance} bp (expected peaks "
            "and genes on the same chromosomes: check chromosome names of the tracks and the annotation)"
        )
    size = pairs.chrom.map(chrom_sizes).to_numpy()
    pairs["promoter_start"] = np.maximum(pairs.tss - promoter_flank, 0)
    pairs["promoter_end"] = np.minimum(pairs.tss + promoter_flank, size)
    pairs["pair_id"] = (
        pairs.chrom + ":" + pairs.enhancer_start.astype(str) + "-" + pairs.enhancer_end.astype(str) + "|" + pairs.gene
    )
    pairs["cell_line"], pairs["label"], pairs["fold"] = cell_line, UNLABELLED, 0
    pairs["distance"] = pairs.distance.astype(np.int64)
    log.info("%s: %d candidate pairs of %d elements and %d genes", cell_line, len(pairs), len(elements), len(gene_tss))
    return pairs[PAIR_COLUMNS].sort_values(["chrom", "enhancer_start", "tss"], kind="stable").reset_index(drop=True)
