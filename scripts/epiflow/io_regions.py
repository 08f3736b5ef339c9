"""Readers for interval files: peaks / bedGraph / BED, BEDPE loops (incl. Rao 2014 HiCCUPS), TAD lists (incl.
Arrowhead) and TSS annotations (GTF, GENCODE TSS gff, TSS BED). All return 0-based half-open coordinates and
`chr`-prefixed chromosomes."""

import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from epiflow.errors import InputError
from epiflow.io_text import (
    as_int,
    as_signal,
    check_start_end,
    check_within_chroms,
    fail,
    first_bad,
    harmonize_chroms,
    read_table,
)

log = logging.getLogger(__name__)

ChromMap = str | Mapping[str, str] | None
# format -> (exact column count or None, minimum column count, 0-based column of the signal or None)
PEAK_FORMATS = {
    "narrowpeak": (10, 10, 6),
    "broadpeak": (9, 9, 6),
    "bedgraph": (4, 4, 3),
    "bed": (None, 3, None),
}


def _intervals(table: pd.DataFrame, path, known_chroms, chrom_map, cols=(0, 1, 2), prefix="") -> pd.DataFrame:
    """Chromosome, start, end from three columns of a line-indexed table, harmonized and validated. With chrom sizes
    for `known_chroms` (a mapping), an interval that starts at or past its chromosome's end is an InputError: it
    comes from another genome build (an end past it is kept: peak callers let a peak overhang the end)."""
    chrom = harmonize_chroms(table[cols[0]].str.strip(), known_chroms, chrom_map, path)
    start = as_int(table[cols[1]], path, f"{prefix}start")
    end = as_int(table[cols[2]], path, f"{prefix}end")
    check_start_end(start, end, path, prefix)
    if isinstance(known_chroms, Mapping):
        check_within_chroms(start >= chrom.map(known_chroms), start, chrom, known_chroms, path, f"{prefix}start")
    return pd.DataFrame({"chrom": chrom, "start": start, "end": end}, index=table.index)


def read_peaks(
    path: str | os.PathLike,
    fmt: str,
    known_chroms: Iterable[str] | None = None,
    chrom_map: ChromMap = None,
    summits: bool = False,
) -> pd.DataFrame:
    """Read narrowPeak / broadPeak (signal = signalValue, column 7), bedGraph (column 4) or BED (column 5 score
    when every score is numeric, else 1.0), plain or gzip. Returns DataFrame[chrom, start, end, signal], with
    `summits` also `summit`: the peak's summit in bp (narrowPeak column 10, an offset from start; -1 = none), else
    its midpoint floor((start + end) / 2)."""
    fmt = fmt.lower()
    if fmt not in PEAK_FORMATS:
        raise InputError(f"{path}: unknown peak format {fmt!r} (expected one of {', '.join(PEAK_FORMATS)})")
    ncols, min_cols, signal_col = PEAK_FORMATS[fmt]
    table = read_table(path, ncols=ncols, min_cols=min_cols)
    frame = _intervals(table, path, known_chroms, chrom_map)
    if signal_col is None and table.shape[1] >= 5:
        scores = pd.to_numeric(table[4], errors="coerce")
        signal_col = 4 if np.isfinite(scores).all() else None
    if signal_col is None:
        frame["signal"] = 1.0
    else:
        frame["signal"] = as_signal(table[signal_col], path)
    if summits:
        frame["summit"] = _summits(table, frame, fmt, path)
    return frame.reset_index(drop=True)


def _summits(table: pd.DataFrame, frame: pd.DataFrame, fmt: str, path) -> np.ndarray:
    """Summit (bp) of each peak: start + narrowPeak's offset (column 10) when it is >= 0, else the midpoint."""
    mid = ((frame.start + frame.end) // 2).to_numpy(np.int64)
    if fmt != "narrowpeak":
        return mid
    offset = pd.to_numeric(table[9].loc[frame.index], errors="coerce")
    length = frame.end - frame.start
    bad = offset.isna() | (offset % 1 != 0) | (offset < -1) | ((offset >= 0) & (offset >= length))
    line = first_bad(bad)
    if line is not None:
        fail(path, line, f"summit offset {table[9][line]!r} is not -1 or an integer in [0, end - start)")
    offset = offset.to_numpy(np.int64)
    return np.where(offset >= 0, frame.start.to_numpy(np.int64) + offset, mid)


def read_bedpe(
    path: str | os.PathLike,
    known_chroms: Iterable[str] | None = None,
    chrom_map: ChromMap = None,
) -> pd.DataFrame:
    """Read BEDPE or a Rao 2014 HiCCUPS looplist (header `chr1 x1 x2 chr2 y1 y2 ...`, chromosomes without `chr`,
    which needs chrom_map="auto"). Returns DataFrame[chrom1, start1, end1, chrom2, start2, end2]."""
    table = read_table(path, min_cols=6, header="infer")
    table.columns = range(table.shape[1])
    first = _intervals(table, path, known_chroms, chrom_map, (0, 1, 2), "anchor 1 ")
    second = _intervals(table, path, known_chroms, chrom_map, (3, 4, 5), "anchor 2 ")
    first.columns = ["chrom1", "start1", "end1"]
    second.columns = ["chrom2", "start2", "end2"]
    return pd.concat([first, second], axis=1).reset_index(drop=True)


def read_tads(
    path: str | os.PathLike,
    known_chroms: Iterable[str] | None = None,
    chrom_map: ChromMap = None,
) -> pd.DataFrame:
    """Read TADs from BED (first three columns) or a Rao 2014 Arrowhead domain list (header `chr1 x1 x2 ...`;
    the domain is chr1:x1-x2). Returns DataFrame[chrom, start, end]."""
    table = read_table(path, min_cols=3, header="infer")
    table.columns = range(table.shape[1])
    return _intervals(table, path, known_chroms, chrom_map).reset_index(drop=True)


TSS_FORMATS = {".gtf": "gtf", ".gff": "gff", ".gff3": "gff", ".bed": "bed"}
# gene_id "X"; (GTF), gene_id X (GENCODE TSS gff), gene_id=X (GFF3)
_GENE_ATTRS = [
    r'gene_id[ =]"?([^";,\s]+)',
    r'gene_name[ =]"?([^";,\s]+)',
    r"ID=([^;\s]+)",
]


def read_tads_by_line(lines: list[str], paths: list, chrom_map: ChromMap = None) -> dict[str, pd.DataFrame]:
    """Line -> its TAD list, for lines and paths given in the same order (a rule's params and inputs)."""
    return {line: read_tads(path, chrom_map=chrom_map) for line, path in zip(lines, paths, strict=True)}


def _tss_format(path, fmt: str | None) -> str:
    if fmt is not None:
        fmt = fmt.lower()
        if fmt not in set(TSS_FORMATS.values()):
            raise InputError(f"{path}: unknown TSS format {fmt!r} (expected gtf, gff or bed)")
        return fmt
    suffixes = [s.lower() for s in Path(path).suffixes if s.lower() != ".gz"]
    if not suffixes or suffixes[-1] not in TSS_FORMATS:
        raise InputError(f"{path}: cannot tell the annotation format from the name (expected .gtf, .gff, .bed)")
    return TSS_FORMATS[suffixes[-1]]


def _strands(values: pd.Series, path) -> pd.Series:
    line = first_bad(~values.isin(["+", "-"]))
    if line is not None:
        fail(path, line, f"strand {values[line]!r} (expected + or -)")
    return values


def _tss_from_gff(table: pd.DataFrame, path) -> pd.DataFrame:
    """GTF/GFF (1-based inclusive): TSS = start - 1 on +, end - 1 on - (0-based). Uses `transcript` records
    when present, else `gene` records, else every record (the GENCODE TSS gff has one CapSite per TSS). A start
    below 1 (a 0-based coordinate in a 1-based file) is an InputError naming its line."""
    features = table[2]
    for feature in ("transcript", "gene"):
        if (features == feature).any():
            table = table[features == feature]
            break
    gene = pd.Series(np.nan, index=table.index, dtype=object)
    for pattern in _GENE_ATTRS:
        missing = gene.isna()
        if not missing.any():
            break
        gene[missing] = table.loc[missing, 8].str.extract(pattern, expand=False)
    line = first_bad(gene.isna())
    if line is not None:
        fail(path, line, "no gene_id / gene_name / ID attribute in column 9")
    start, end = as_int(table[3], path, "start"), as_int(table[4], path, "end")
    line = first_bad(start < 1)  # a 0-based start written into a GTF: its TSS would be base -1
    if line is not None:
        fail(path, line, f"start {start[line]} in column 4 (GTF/GFF is 1-based; expected a 1-based start >= 1)")
    check_start_end(start, end, path)
    strand = _strands(table[6], path)
    tss = np.where(strand == "+", start - 1, end - 1)
    return pd.DataFrame(
        {"chrom": table[0], "tss": tss, "strand": strand, "gene": gene},
        index=table.index,
    )


def _tss_from_bed(table: pd.DataFrame, path, gene_column: int | None = None) -> pd.DataFrame:
    """BED with strand in column 6; gene = column 7 when present (GENCODEv19-TSSs.bed) else the name column; an
    empty or `.` gene name is an InputError naming the line.
    An interval gives its 5' base; a zero-length `start == end` record (as in GENCODEv19-TSSs.bed.gz, which
    writes the 1-based TSS there) gives base start - 1."""
    start, end = as_int(table[1], path, "start"), as_int(table[2], path, "end")
    check_start_end(start, end, path)
    strand = _strands(table[5], path)
    tss = np.where(start == end, start - 1, np.where(strand == "+", start, end - 1))
    if gene_column is not None and gene_column > table.shape[1]:
        fail(path, int(table.index[0]), f"no column {gene_column} for the gene name (the file has {table.shape[1]})")
    column = gene_column - 1 if gene_column else 6 if table.shape[1] >= 7 else 3
    gene = table[column].fillna("").str.strip()
    # every unnamed TSS would otherwise become one gene, '' or '.', with a single TSS and its own candidate pairs
    line = first_bad(gene.isin(["", "."]))
    if line is not None:
        fail(path, line, f"gene name {gene[line]!r} in column {column + 1} (expected a gene name or id on every TSS)")
    return pd.DataFrame(
        {"chrom": table[0], "tss": tss, "strand": strand, "gene": gene},
        index=table.index,
    )


def read_tss(
    path: str | os.PathLike,
    fmt: str | None = None,
    known_chroms: Iterable[str] | None = None,
    chrom_map: ChromMap = None,
    gene_column: int | None = None,
) -> pd.DataFrame:
    """Read transcription start sites from GTF, GFF (incl. the GENCODE TSS gff) or BED (fmt from the extension
    when None). Returns DataFrame[chrom, tss (0-based), strand, gene], duplicates removed, in file order.
    BED: the gene is the 1-based `gene_column`, by default column 7 when present (GENCODEv19-TSSs.bed) else 4.
    With chrom sizes for `known_chroms` (a mapping), a TSS past its chromosome's end is an InputError naming its
    line, the chromosome and its length."""
    fmt = _tss_format(path, fmt)
    if fmt == "bed":
        frame = _tss_from_bed(read_table(path, min_cols=6), path, gene_column)
    else:
        frame = _tss_from_gff(read_table(path, ncols=9), path)
    frame["chrom"] = harmonize_chroms(frame["chrom"], known_chroms, chrom_map, path)
    frame["tss"] = frame["tss"].clip(lower=0).astype(np.int64)
    if isinstance(known_chroms, Mapping):  # chrom sizes: a TSS past its chromosome's end is of another genome build
        tss, chrom = frame["tss"], frame["chrom"]
        check_within_chroms(tss >= chrom.map(known_chroms), tss + 1, chrom, known_chroms, path, "1-based TSS")
    frame = frame.drop_duplicates(["chrom", "tss", "strand", "gene"])
    log.info("%s: %d TSSs of %d genes", path, len(frame), frame["gene"].nunique())
    return frame.reset_index(drop=True)
