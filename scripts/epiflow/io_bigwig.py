"""Writing tracks as bigWig: from intervals (peaks, bedGraph), from BAM read counts, or by validating and
re-headering an existing bigWig. Every output is written to a temporary file and moved into place atomically."""

import itertools
import logging
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyBigWig
import pysam

from epiflow.errors import InputError
from epiflow.io_regions import PEAK_FORMATS, ChromMap, read_peaks
from epiflow.io_text import MITO_CHROMS, atomic_path, chrom_mapping, naming_hint

log = logging.getLogger(__name__)

TRACK_FORMATS = ("bigwig", "bam", *PEAK_FORMATS)
# Reads that are unmapped (0x4), secondary (0x100), QC-failed (0x200), duplicates (0x400) or supplementary (0x800).
_SKIP_FLAGS = 0x4 | 0x100 | 0x200 | 0x400 | 0x800

Entries = tuple[np.ndarray, np.ndarray, np.ndarray]


def max_over_overlaps(starts: np.ndarray, ends: np.ndarray, signal: np.ndarray) -> Entries:
    """Cut intervals of one chromosome at every boundary and give each piece the maximum signal of the intervals
    covering it; adjacent pieces with equal values are merged. Returns sorted, non-overlapping (starts, ends,
    values). Work is proportional to the pieces each interval spans (small for peak files)."""
    keep = ends > starts
    starts, ends, signal = starts[keep], ends[keep], signal[keep].astype(np.float64)
    if len(starts) == 0:
        return starts, ends, signal
    bounds = np.unique(np.concatenate([starts, ends]))
    first, last = np.searchsorted(bounds, starts), np.searchsorted(bounds, ends)
    counts = last - first
    owner = np.repeat(np.arange(len(starts)), counts)
    offset = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    best = np.full(len(bounds) - 1, -np.inf)
    np.maximum.at(best, first[owner] + offset, signal[owner])
    covered = np.isfinite(best)
    piece_start, piece_end, value = (
        bounds[:-1][covered],
        bounds[1:][covered],
        best[covered],
    )
    # A run of pieces continues while they touch and carry the same value.
    new_run = np.ones(len(value), dtype=bool)
    new_run[1:] = (piece_start[1:] != piece_end[:-1]) | (value[1:] != value[:-1])
    run_last = np.append(np.flatnonzero(new_run)[1:] - 1, len(value) - 1)
    return piece_start[new_run], piece_end[run_last], value[new_run]


def _clip(chrom: str, size: int, entries: Entries) -> Entries:
    """Clip entries to [0, size); those starting past the end are dropped (with a warning)."""
    starts, ends, values = entries
    outside = ends > size
    if outside.any():
        log.warning(
            "%s: %d intervals run past the chromosome end %d; clipped",
            chrom,
            outside.sum(),
            size,
        )
    keep = starts < size
    return starts[keep], np.minimum(ends[keep], size), values[keep]


def _write_bigwig(chrom_sizes: Mapping[str, int], out_path, per_chrom: Iterator[tuple[str, Entries]]) -> Path:
    """Write (chrom, entries) pairs, given in chrom_sizes order, as a bigWig whose header is chrom_sizes."""
    written = 0
    with atomic_path(out_path) as tmp:
        bw = pyBigWig.open(str(tmp), "w")
        try:
            bw.addHeader([(chrom, int(size)) for chrom, size in chrom_sizes.items()])
            for chrom, entries in per_chrom:
                starts, ends, values = _clip(chrom, chrom_sizes[chrom], entries)
                if len(starts):
                    bw.addEntries([chrom] * len(starts), starts, ends=ends, values=values)
                    written += len(starts)
        finally:
            bw.close()
    if written == 0:
        log.warning("%s: no intervals written (empty track)", out_path)
    return Path(out_path)


def intervals_to_bigwig(
    df: pd.DataFrame,
    chrom_sizes: Mapping[str, int],
    out_path,
    drop_unknown: bool = False,
) -> Path:
    """Write DataFrame[chrom, start, end, signal] as a bigWig with header `chrom_sizes` (in its order); where
    intervals overlap the maximum signal wins. Chromosomes not in chrom_sizes are an InputError, or are dropped
    with a warning when `drop_unknown`."""
    unknown = sorted(set(df["chrom"]) - set(chrom_sizes))
    if unknown and not drop_unknown:
        raise InputError(f"{out_path}: chromosome {unknown[0]!r} of the intervals is not in the chrom sizes")
    if unknown:
        log.warning(
            "%s: dropped intervals on %d chromosomes not in the chrom sizes: %s",
            out_path,
            len(unknown),
            unknown,
        )
    groups = {chrom: frame for chrom, frame in df.groupby("chrom", sort=False)}

    def per_chrom():
        for chrom in chrom_sizes:
            if chrom in groups:
                frame = groups[chrom]
                yield (
                    chrom,
                    max_over_overlaps(
                        frame["start"].to_numpy(np.int64),
                        frame["end"].to_numpy(np.int64),
                        frame["signal"].to_numpy(),
                    ),
                )

    return _write_bigwig(chrom_sizes, out_path, per_chrom())


def _known_contigs(names: list[str], chrom_sizes: Mapping[str, int], chrom_map: ChromMap, path) -> dict[str, str]:
    """Source contig -> reference chromosome for the contigs that are in chrom_sizes; others (chrUn_*, chrEBV, ...)
    are dropped with a warning. An InputError when none match, saying how to map names if that would help."""
    mapping = chrom_mapping(names, chrom_sizes, chrom_map, path)
    known = {name: target for name, target in mapping.items() if target in chrom_sizes}
    if not known:
        hint = next(
            (h for h in (naming_hint(n, chrom_sizes, chrom_map) for n in names) if h),
            None,
        )
        raise InputError(f"{path}: {hint or 'no chromosome is in the chrom sizes'} (file has {names[:5]})")
    dropped = [name for name in names if name not in known]
    if dropped:
        log.warning(
            "%s: %d contigs not in the chrom sizes are skipped, e.g. %s",
            path,
            len(dropped),
            dropped[:5],
        )
    return known


def _binned_read_counts(bam, bin_size: int, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """One pass over a BAM (no index needed): keys `reference_id << 32 | bin` of occupied bins and their read
    counts. Reads are taken `chunk` at a time so memory follows the occupied bins, not the read count."""
    keys = (
        (read.reference_id << 32) | ((read.reference_start + read.reference_end) // 2 // bin_size)
        for read in bam.fetch(until_eof=True)
        if not read.flag & _SKIP_FLAGS and read.reference_end is not None
    )
    found, counts = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
    while len(block := np.fromiter(itertools.islice(keys, chunk), dtype=np.int64)):
        block_keys, block_counts = np.unique(block, return_counts=True)
        found.append(block_keys)
        counts.append(block_counts)
    keys, where = np.unique(np.concatenate(found), return_inverse=True)
    return keys, np.bincount(where, weights=np.concatenate(counts), minlength=len(keys))


def bam_to_bigwig(
    bam_path,
    chrom_sizes: Mapping[str, int],
    out_path,
    bin_size: int = 50,
    chrom_map: ChromMap = None,
    chunk: int = 1 << 22,
) -> Path:
    """Count reads per `bin_size` bin (each read at its alignment midpoint; unmapped, secondary, supplementary,
    QC-failed and duplicate reads skipped) and write the non-zero bins as a bigWig with header chrom_sizes.
    Contigs not in chrom_sizes are skipped; one of another length there (the reads of another assembly) is an
    InputError. The BAM needs no index."""
    try:
        bam = pysam.AlignmentFile(str(bam_path), "rb")
    except (OSError, ValueError) as err:
        raise InputError(f"{bam_path}: not a readable BAM file ({err})") from err
    with bam:
        references = list(bam.references)
        contigs = _known_contigs(references, chrom_sizes, chrom_map, bam_path)
        # reads aligned to another assembly would be counted at the wrong places (and clipped at the ends)
        _check_lengths(dict(zip(references, bam.lengths, strict=True)), contigs, chrom_sizes, bam_path, "BAM")
        keys, counts = _binned_read_counts(bam, bin_size, chunk)
    chrom = np.array([contigs.get(name, "") for name in references], dtype=object)
    ref_ids = keys >> 32
    start = (keys & 0xFFFFFFFF) * bin_size
    frame = pd.DataFrame(
        {
            "chrom": chrom[ref_ids],
            "start": start,
            "end": start + bin_size,
            "signal": counts,
        }
    )
    log.info("%s: %d reads counted in %d bp bins", bam_path, int(counts.sum()), bin_size)
    return intervals_to_bigwig(frame[frame["chrom"] != ""], chrom_sizes, out_path)


def _bigwig_entries(bw, source: str) -> Entries:
    intervals = bw.intervals(source) or ()
    table = np.array(intervals, dtype=np.float64).reshape(-1, 3)
    finite = np.isfinite(table[:, 2])
    return (
        table[finite, 0].astype(np.int64),
        table[finite, 1].astype(np.int64),
        table[finite, 2],
    )


def _check_lengths(header: dict, contigs: dict, chrom_sizes: Mapping[str, int], path, what: str = "bigWig") -> None:
    for name, chrom in contigs.items():
        if header[name] != chrom_sizes[chrom] and chrom not in MITO_CHROMS:
            raise InputError(
                f"{path}: chromosome {name!r} is {header[name]} bp in the {what} header but {chrom} is "
                f"{chrom_sizes[chrom]} bp in the chrom sizes (a different assembly?)"
            )


def _check_non_negative(bw, contigs: dict, path) -> None:
    """Signal must be >= 0 (features assume read-depth-like tracks); the zoom-level minimum makes this cheap."""
    for name in contigs:
        low = bw.stats(name, type="min")[0]
        if low is not None and not low >= 0:
            raise InputError(f"{path}: chromosome {name!r} has signal {low:g} (expected finite values >= 0)")


def check_signal_on(bigwig_path, chroms: list[str], source) -> None:
    """Raise an InputError naming `source` when the bigWig has no positive signal on one of `chroms` (chromosomes
    that pairs use: their features would silently be all zeros)."""
    bw = pyBigWig.open(str(bigwig_path))
    try:
        present = bw.chroms()
        for chrom in chroms:
            top = bw.stats(chrom, type="max")[0] if chrom in present else None
            if top is None or top <= 0:
                raise InputError(
                    f"{source}: no signal on {chrom}, a chromosome of protocol.chrom_folds "
                    f"(expected intervals with signal > 0 on every fold chromosome; drop {chrom} from the folds "
                    "or give a track that covers it)"
                )
    finally:
        bw.close()


def bigwig_to_bigwig(source_path, chrom_sizes: Mapping[str, int], out_path, chrom_map: ChromMap = None) -> Path:
    """Check a bigWig's header against chrom_sizes (names mapped by chrom_map, same lengths) and copy it, or
    rewrite it with header chrom_sizes when names or order differ. Contigs not in chrom_sizes are dropped. A file
    libBigWig cannot read to the end (cut short, damaged) is an InputError."""
    try:
        bw = pyBigWig.open(str(source_path))
    except RuntimeError as err:
        raise InputError(f"{source_path}: not a readable bigWig file") from err
    if bw is None or not bw.isBigWig():
        raise InputError(f"{source_path}: not a bigWig file")
    try:
        header = bw.chroms()
        contigs = _known_contigs(list(header), chrom_sizes, chrom_map, source_path)
        _check_lengths(header, contigs, chrom_sizes, source_path)
        _check_non_negative(bw, contigs, source_path)
        if list(header.items()) == list(chrom_sizes.items()):
            with atomic_path(out_path) as tmp:
                shutil.copyfile(source_path, tmp)
            return Path(out_path)
        sources = {chrom: name for name, chrom in contigs.items()}
        per_chrom = ((chrom, _bigwig_entries(bw, sources[chrom])) for chrom in chrom_sizes if chrom in sources)
        return _write_bigwig(chrom_sizes, out_path, per_chrom)
    except RuntimeError as err:  # libBigWig cannot read a block its header points to: the file is cut or damaged
        raise InputError(
            f"{source_path}: corrupt or truncated bigWig file ({err}); expected a complete bigWig (fetch the file "
            "again)"
        ) from err
    finally:
        bw.close()


def track_to_bigwig(
    source_path: str | os.PathLike,
    fmt: str,
    chrom_sizes: Mapping[str, int],
    out_path: str | os.PathLike,
    chrom_map: ChromMap = None,
) -> Path:
    """Turn a track in `fmt` (bigwig | bedgraph | narrowpeak | broadpeak | bed | bam) into a bigWig at out_path
    whose header is chrom_sizes. Returns out_path."""
    fmt = fmt.lower()
    if fmt == "bigwig":
        return bigwig_to_bigwig(source_path, chrom_sizes, out_path, chrom_map)
    if fmt == "bam":
        return bam_to_bigwig(source_path, chrom_sizes, out_path, chrom_map=chrom_map)
    if fmt in PEAK_FORMATS:
        peaks = read_peaks(source_path, fmt, known_chroms=chrom_sizes, chrom_map=chrom_map)
        return intervals_to_bigwig(peaks, chrom_sizes, out_path)
    raise InputError(f"{source_path}: unknown track format {fmt!r} (expected one of {', '.join(TRACK_FORMATS)})")
