"""Readers for labelled enhancer-promoter pair files (BENGI, TargetFinder, epiflow's own TSV) into the standard
pair table (PAIR_COLUMNS, defined here)."""

import logging
import os
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from epiflow.errors import InputError
from epiflow.io_crispr import read_crispr
from epiflow.io_regions import ChromMap
from epiflow.io_text import (
    as_int,
    as_label,
    check_start_end,
    check_within_chroms,
    fail,
    first_bad,
    harmonize_chroms,
    read_table,
)

log = logging.getLogger(__name__)

# the columns of every epiflow pair table (0-based half-open coordinates, one chromosome per pair)
PAIR_COLUMNS = [
    "pair_id",
    "cell_line",
    "chrom",
    "enhancer_start",
    "enhancer_end",
    "promoter_start",
    "promoter_end",
    "tss",
    "gene",
    "label",
    "distance",
    "fold",
]

PAIR_FORMATS = ("bengi", "targetfinder", "pairs", "crispr")
CRISPR_PROMOTER_FLANK = 1000  # promoter of a CRISPRi pair: its gene TSS +- this (as pairs_from_loops)
BENGI_COLUMNS = [
    "label",
    "distance",
    "e_chr",
    "e_start",
    "e_end",
    "e_name",
    "p_chr",
    "p_start",
    "p_end",
    "p_name",
]
TARGETFINDER_FULL = [
    "enhancer_chrom",
    "enhancer_start",
    "enhancer_end",
    "promoter_chrom",
    "promoter_start",
]
# `K562|chr1:6454864-6455189`: the cell-line prefix `K562|` is optional
_CELL_PREFIX = r"[^|]*"
_REGION_NAME = rf"^(?:{_CELL_PREFIX}\|)?([^|:]+):(\d+)-(\d+)$"
_SIDES = ("enhancer", "promoter")


def _same_chrom(chrom_e: pd.Series, chrom_p: pd.Series, path) -> pd.Series:
    line = first_bad(chrom_e != chrom_p)
    if line is not None:
        fail(
            path,
            line,
            f"enhancer on {chrom_e[line]} but promoter on {chrom_p[line]} (expected the same chromosome)",
        )
    return chrom_e


def _region(table, chrom, start, end, path, known_chroms, chrom_map, what) -> tuple:
    """Harmonized chromosome and validated coordinates of the enhancer or promoter columns."""
    chrom = harmonize_chroms(table[chrom].str.strip(), known_chroms, chrom_map, path)
    start = as_int(table[start], path, f"{what} start")
    end = as_int(table[end], path, f"{what} end")
    check_start_end(start, end, path, f"{what} ")
    if isinstance(known_chroms, Mapping):  # chrom sizes: an end past the chromosome means another genome build
        check_within_chroms(end > chrom.map(known_chroms), end, chrom, known_chroms, path, f"{what} end")
    return chrom, start, end


def _bengi(path, known_chroms, chrom_map) -> pd.DataFrame:
    """BENGI: TSS = start of `chrN:A-B` at the head of p_name, gene = its third `|` field (the ENSG id)."""
    table = read_table(path, ncols=10)
    table.columns = BENGI_COLUMNS
    chrom, e_start, e_end = _region(table, "e_chr", "e_start", "e_end", path, known_chroms, chrom_map, "enhancer")
    p_chrom, p_start, p_end = _region(table, "p_chr", "p_start", "p_end", path, known_chroms, chrom_map, "promoter")
    parts = table["p_name"].str.extract(r"^[^|:]+:(\d+)-\d+\|[^|]*\|([^|]+)")
    line = first_bad(parts[0].isna())
    if line is not None:
        fail(
            path,
            line,
            f"p_name {table['p_name'][line]!r} (expected 'chrN:A-B|cell|gene|...')",
        )
    return pd.DataFrame(
        {
            "chrom": _same_chrom(chrom, p_chrom, path),
            "enhancer_start": e_start,
            "enhancer_end": e_end,
            "promoter_start": p_start,
            "promoter_end": p_end,
            "tss": parts[0].astype(np.int64),
            "gene": parts[1],
            "label": as_label(table["label"], path),
        }
    )


def _split_names(table: pd.DataFrame, path) -> pd.DataFrame:
    """Expand TargetFinder `enhancer_name`/`promoter_name` (`CELL|chr:start-end`) into coordinate columns."""
    out = {}
    for side in _SIDES:
        names = table[f"{side}_name"].str.strip()
        parts = names.str.extract(_REGION_NAME)
        line = first_bad(parts[0].isna())
        if line is not None:
            fail(
                path,
                line,
                f"{side}_name {names[line]!r} (expected 'CELL|chrN:start-end')",
            )
        out.update(
            {
                f"{side}_chrom": parts[0],
                f"{side}_start": parts[1],
                f"{side}_end": parts[2],
            }
        )
    return pd.DataFrame(out, index=table.index)


def _check_name_cell_line(table: pd.DataFrame, cell_line: str, path) -> None:
    """The cell-line prefix of TargetFinder's `enhancer_name` / `promoter_name` (`K562|chr1:...`; a name without
    one is not checked) must be `cell_line`, the sheet row's: the first name of another line is an InputError (a
    file of another cell line would be trained or scored under this line's name and tracks)."""
    pattern = rf"^\s*({_CELL_PREFIX})\|"
    prefixes = {side: table[f"{side}_name"].str.extract(pattern, expand=False).str.strip() for side in _SIDES}
    other = pd.DataFrame({side: prefix.notna() & (prefix != cell_line) for side, prefix in prefixes.items()})
    line = first_bad(other.any(axis=1))
    if line is not None:
        side = next(side for side in _SIDES if other[side][line])
        found = sorted(set(pd.concat(prefixes.values()).dropna()) - {cell_line})
        fail(
            path,
            line,
            f"cell line {prefixes[side][line]!r} in {side}_name {table[f'{side}_name'][line].strip()!r} (expected "
            f"{cell_line!r}, the sheet's cell line; cell lines in the file: {', '.join(map(repr, found[:5]))})",
        )


def _targetfinder(path, cell_line, known_chroms, chrom_map) -> pd.DataFrame:
    """TargetFinder `enhancer_name,promoter_name,label` or its full pairs.csv; TSS = promoter midpoint, gene =
    the promoter name without its cell-line prefix (so one promoter is one gene across cell lines). A name's
    cell-line prefix other than `cell_line` is an InputError naming its line."""
    table = read_table(path, sep=",", header=True)
    has_names = {"enhancer_name", "promoter_name"} <= set(table.columns)
    if not set(TARGETFINDER_FULL + ["promoter_end", "label"]) <= set(table.columns):
        if not has_names or "label" not in table.columns:
            raise InputError(
                f"{path} line {table.attrs['header_line']}: TargetFinder header needs enhancer_name,promoter_name,"
                f"label or {','.join(TARGETFINDER_FULL)},promoter_end,label; found {','.join(table.columns)}"
            )
        table = table.join(_split_names(table, path))
    if has_names:
        _check_name_cell_line(table, cell_line, path)
    ends = ("enhancer_start", "enhancer_end")
    chrom, e_start, e_end = _region(table, "enhancer_chrom", *ends, path, known_chroms, chrom_map, "enhancer")
    ends = ("promoter_start", "promoter_end")
    p_chrom, p_start, p_end = _region(table, "promoter_chrom", *ends, path, known_chroms, chrom_map, "promoter")
    if has_names:
        gene = table["promoter_name"].str.strip().str.replace(rf"^{_CELL_PREFIX}\|", "", regex=True)
    else:
        gene = p_chrom + ":" + p_start.astype(str) + "-" + p_end.astype(str)
    return pd.DataFrame(
        {
            "chrom": _same_chrom(chrom, p_chrom, path),
            "enhancer_start": e_start,
            "enhancer_end": e_end,
            "promoter_start": p_start,
            "promoter_end": p_end,
            "tss": (p_start + p_end) // 2,
            "gene": gene,
            "label": as_label(table["label"], path),
        }
    )


def _epiflow_pairs(path, cell_line, known_chroms, chrom_map) -> pd.DataFrame:
    """epiflow's TSV: the standard columns; tss, gene, cell_line, pair_id and fold are optional. Rows of other
    cell lines (when a cell_line column is present) are dropped."""
    table = read_table(path, header=True)
    needed = [
        "chrom",
        "enhancer_start",
        "enhancer_end",
        "promoter_start",
        "promoter_end",
        "label",
    ]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise InputError(
            f"{path} line {table.attrs['header_line']}: missing columns {', '.join(missing)} (expected "
            f"{', '.join(PAIR_COLUMNS)})"
        )
    if "cell_line" in table.columns:
        table = table[table["cell_line"] == cell_line]
        if table.empty:
            raise InputError(f"{path}: no rows with cell_line {cell_line!r}")
    ends = ("enhancer_start", "enhancer_end")
    chrom, e_start, e_end = _region(table, "chrom", *ends, path, known_chroms, chrom_map, "enhancer")
    p_start = as_int(table["promoter_start"], path, "promoter start")
    p_end = as_int(table["promoter_end"], path, "promoter end")
    check_start_end(p_start, p_end, path, "promoter ")
    frame = pd.DataFrame(
        {
            "chrom": chrom,
            "enhancer_start": e_start,
            "enhancer_end": e_end,
            "promoter_start": p_start,
            "promoter_end": p_end,
            "tss": as_int(table["tss"], path, "tss") if "tss" in table else (p_start + p_end) // 2,
            "gene": table["gene"] if "gene" in table else chrom + ":" + p_start.astype(str) + "-" + p_end.astype(str),
            "label": as_label(table["label"], path),
        }
    )
    if "pair_id" in table:
        frame["pair_id"] = table["pair_id"]
    if "fold" in table:
        fold = pd.to_numeric(table["fold"], errors="coerce")
        line = first_bad(fold.isna() | (fold % 1 != 0) | (fold < -1))
        if line is not None:
            fail(path, line, f"fold {table['fold'][line]!r} is not an integer >= -1")
        frame["fold"] = fold.astype(np.int64)
    return frame


def _finish(frame: pd.DataFrame, cell_line: str, path) -> pd.DataFrame:
    """Add pair_id, cell_line, distance and fold; drop repeated pair_ids (first kept); standard column order."""
    if "pair_id" not in frame:
        frame["pair_id"] = (
            frame["chrom"]
            + ":"
            + frame["enhancer_start"].astype(str)
            + "-"
            + frame["enhancer_end"].astype(str)
            + "|"
            + frame["promoter_start"].astype(str)
            + "-"
            + frame["promoter_end"].astype(str)
        )
    if "fold" not in frame:
        frame["fold"] = -1
    frame["cell_line"] = cell_line
    midpoint = (frame["enhancer_start"] + frame["enhancer_end"]) // 2
    frame["distance"] = (midpoint - frame["tss"]).abs().astype(np.int64)
    repeated = frame["pair_id"].duplicated()
    if repeated.any():
        conflicting = frame.groupby("pair_id")["label"].nunique().gt(1).sum()
        log.warning(
            "%s: %d repeated pair_ids dropped (first kept; %d with conflicting labels)",
            path,
            repeated.sum(),
            conflicting,
        )
        frame = frame[~repeated]
    return frame[PAIR_COLUMNS].reset_index(drop=True)


def _crispr(path, cell_line, known_chroms, chrom_map) -> pd.DataFrame:
    """An EPCrisprBenchmark screen (the one reader, epiflow.io_crispr.read_crispr: ValidConnection TRUE rows, CellType
    checked) as labelled pairs in the reference build: element = enhancer, `Regulated` = label, the measured gene's
    TSS +- CRISPR_PROMOTER_FLANK = promoter; pairs without a known TSS are dropped (logged)."""
    screen, stats = read_crispr(path, cell_line)
    known_tss = screen.gene_tss >= 0
    if (~known_tss).any():
        log.info("%s: %d pairs without a TSS dropped", path, int((~known_tss).sum()))
    screen = screen[known_tss]
    tss = screen.gene_tss.astype(np.int64)
    return pd.DataFrame(
        {
            "chrom": harmonize_chroms(screen.chrom.astype(str), known_chroms, chrom_map, path),
            "enhancer_start": screen.start.astype(np.int64),
            "enhancer_end": screen.end.astype(np.int64),
            "promoter_start": np.maximum(tss - CRISPR_PROMOTER_FLANK, 0),
            "promoter_end": tss + CRISPR_PROMOTER_FLANK,
            "tss": tss,
            "gene": screen.gene.astype(str),
            "label": screen.label.astype(np.int64),
        }
    )


def read_pairs(
    path: str | os.PathLike,
    fmt: str,
    cell_line: str,
    known_chroms: Iterable[str] | None = None,
    chrom_map: ChromMap = None,
) -> pd.DataFrame:
    """Read labelled pairs in `fmt` (bengi | targetfinder | pairs | crispr) for `cell_line` into the standard pair table
    (PAIR_COLUMNS): pair_id = `chrom:enhancer_start-enhancer_end|promoter_start-promoter_end`, distance =
    |enhancer midpoint - tss|, fold = -1 unless the file has one. Enhancer and promoter on different chromosomes
    is an InputError naming the line."""
    fmt = fmt.lower()
    if fmt == "bengi":
        frame = _bengi(path, known_chroms, chrom_map)
    elif fmt == "targetfinder":
        frame = _targetfinder(path, cell_line, known_chroms, chrom_map)
    elif fmt == "pairs":
        frame = _epiflow_pairs(path, cell_line, known_chroms, chrom_map)
    elif fmt == "crispr":
        frame = _crispr(path, cell_line, known_chroms, chrom_map)
    else:
        raise InputError(f"{path}: unknown pair format {fmt!r} (expected one of {', '.join(PAIR_FORMATS)})")
    frame = _finish(frame, cell_line, path)
    log.info(
        "%s: %d pairs (%d positive) for %s",
        path,
        len(frame),
        frame["label"].sum(),
        cell_line,
    )
    return frame


def read_pair_table(path) -> pd.DataFrame:
    """A pair table the pairs stage wrote (results/pairs/{cell_line}.tsv.gz), identifiers kept as text."""
    return pd.read_csv(path, sep="\t", dtype={"chrom": str, "gene": str, "pair_id": str})
