"""Reading CRISPRi screens (EPCrisprBenchmark TSV) and enhancer-gene predictions (ABC / ENCODE-rE2G columns), with
the checks that name the file and line of the first bad row. numpy and pandas only, so the pair-sheet reader
(`crispr` format) and the predict report read screens without the benchmark's dependencies (epiflow.crispr scores
them).

``distance`` is the file's ``distanceToTSS`` (EPCrisprBenchmark's own, to the TSS of its gene universe) where
given, else |element midpoint - startTSS|. A pair with an unknown TSS (``startTSS == endTSS == 0``) gets
``gene_tss = MISSING_TSS``; it is dropped only when no distanceToTSS is given either.
"""

from __future__ import annotations

import csv
import logging
import os
import re

import numpy as np
import pandas as pd

from epiflow.errors import InputError
from epiflow.io_text import (
    as_int,
    check_field_counts,
    check_start_end,
    fail,
    first_bad,
    harmonize_chroms,
    is_gzip,
    read_table,
)

log = logging.getLogger(__name__)

SCREEN_COLUMNS = (
    "chrom",
    "chromStart",
    "chromEnd",
    "measuredGeneSymbol",
    "startTSS",
    "endTSS",
    "Regulated",
    "ValidConnection",
    "CellType",
)
MISSING_TSS = -1
_VERSION = re.compile(r"^(ENS[A-Z]*G\d+)\.\d+$")


# ---- reading ----------------------------------------------------------------------------------------------------
def _as_bool(values: pd.Series, path, what: str) -> pd.Series:
    upper = values.str.strip().str.upper()
    line = first_bad(~upper.isin(["TRUE", "FALSE"]))
    if line is not None:
        fail(path, line, f"{what} {values[line]!r} (expected TRUE or FALSE)")
    return upper == "TRUE"


def _valid_connection(values: pd.Series, path) -> pd.Series:
    """ValidConnection TRUE (any case) keeps a row; anything else drops it: FALSE, or the reason CRISPR_comparison's
    filters write there instead (e.g. `underpowered`, `overlaps potential promoter`). The reasons are logged."""
    valid = values.str.strip().str.upper() == "TRUE"
    if not valid.all():
        reasons = values[~valid].str.strip().value_counts()
        log.info("%s: ValidConnection other than TRUE (rows dropped): %s", path, reasons.to_dict())
    return valid


def _as_number(values: pd.Series, path, what: str, missing_ok: bool = False) -> pd.Series:
    """Finite numbers; 'NA' or empty is NaN when missing_ok, else an InputError naming the line."""
    missing = values.str.strip().isin(["", "NA", "NaN", "nan"])
    numbers = pd.to_numeric(values.where(~missing), errors="coerce")
    line = first_bad((~missing | (not missing_ok)) & ~np.isfinite(numbers))
    if line is not None:
        fail(path, line, f"{what} {values[line]!r} is not a finite number")
    return numbers.astype(np.float64)


def strip_version(genes: pd.Series) -> pd.Series:
    """Ensembl gene ids without their version (ENSG00000116198.12 -> ENSG00000116198); other names unchanged."""
    return genes.astype(str).str.replace(_VERSION, r"\1", regex=True)


def read_crispr(
    path: str | os.PathLike,
    cell_line: str | None = None,
    power_column: str | None = None,
    min_power=None,
    chrom_map=None,
) -> tuple[pd.DataFrame, dict]:
    """Read an EPCrisprBenchmark TSV (header row; columns SCREEN_COLUMNS at least).

    Keeps ValidConnection == TRUE rows (any other value, FALSE or the reason a filter wrote there, drops the row);
    with `power_column` and `min_power` drops negatives (Regulated FALSE) whose power is below `min_power`, and
    negatives whose power is missing (NA: a negative of unknown power is not trusted). Rows whose CellType differs
    from `cell_line`, a Regulated other than TRUE/FALSE (any case), bad
    numbers, a TSS on another chromosome and duplicated element-gene pairs are InputErrors naming the line, and so
    is a bare chromosome name (`1`) unless `chrom_map` (reference.chrom_map) maps it; no pair left after the
    filters is an InputError with the counts.
    Returns (DataFrame[chrom, start, end, gene, gene_id, gene_tss, label, distance, name, dataset, line(, power)],
    stats: rows, invalid_connection, power_missing, power_filtered, missing_tss, missing_tss_dropped, pairs,
    positives)."""
    if min_power is not None and not power_column:
        raise InputError(f"{path}: min_power {min_power} given without a power column")
    table = _read_screen(path, cell_line, power_column)
    valid = _valid_connection(table["ValidConnection"], path)
    label = _as_bool(table["Regulated"], path, "Regulated")
    stats = {"rows": len(table), "invalid_connection": int((~valid).sum())}
    table, label = table[valid], label[valid]
    if table.empty:
        raise InputError(f"{path}: no row with ValidConnection TRUE (expected at least one)")
    frame, unknown_tss = _screen_pairs(table, label, path, chrom_map)
    stats["missing_tss"] = int(unknown_tss.sum())
    stats["missing_tss_dropped"] = int(frame["distance"].isna().sum())
    frame = frame[frame["distance"].notna()]
    frame = _power_filter(frame, table, path, power_column, min_power, stats)
    if frame.empty:
        raise InputError(f"{path}: no pair left after the filters ({stats}; expected at least one)")
    _refuse_duplicates(frame, path, "element-gene pair")
    stats.update(pairs=len(frame), positives=int(frame["label"].sum()))
    log.info("%s: %d pairs (%d regulated); dropped %s", path, len(frame), stats["positives"], stats)
    return frame.reset_index(drop=True), stats


def _read_screen(path, cell_line: str | None, power_column: str | None) -> pd.DataFrame:
    """The screen's rows as text, indexed by file line; a missing column, or a CellType other than `cell_line`
    (when given), is an InputError naming the line."""
    table = read_table(path, header=True)
    header_line = table.attrs["header_line"]  # after any comment lines; blank lines may follow it
    needed = list(SCREEN_COLUMNS) + ([power_column] if power_column else [])
    missing = [c for c in needed if c not in table.columns]
    if missing:
        fail(path, header_line, f"missing column(s) {missing} (expected the EPCrisprBenchmark header)")
    if cell_line is not None:
        line = first_bad(table["CellType"].str.strip() != cell_line)
        if line is not None:
            fail(path, line, f"CellType {table['CellType'][line]!r} (expected {cell_line!r}, the sheet's cell line)")
    return table


def _screen_pairs(table: pd.DataFrame, label: pd.Series, path, chrom_map) -> tuple[pd.DataFrame, pd.Series]:
    """The valid rows as DataFrame[chrom, start, end, gene, gene_id, gene_tss, label, name, dataset, line,
    distance], indexed by file line (distance NaN where neither it nor the TSS is known), and the mask of the rows
    whose TSS is unknown."""
    chroms = harmonize_chroms(table["chrom"].str.strip(), None, chrom_map, path)
    frame = pd.DataFrame({"chrom": chroms}, index=table.index)
    frame["start"] = as_int(table["chromStart"], path, "chromStart")
    frame["end"] = as_int(table["chromEnd"], path, "chromEnd")
    check_start_end(frame["start"], frame["end"], path, names=("chromStart", "chromEnd"))
    frame["gene"] = table["measuredGeneSymbol"].str.strip()
    ids = table["measuredGeneEnsemblId"] if "measuredGeneEnsemblId" in table else pd.Series("", index=table.index)
    frame["gene_id"] = strip_version(ids.str.strip().replace("NA", ""))
    frame["gene_tss"], unknown_tss = _gene_tss(table, path)
    frame["label"] = label.astype(np.int64)
    frame["name"] = table.get("name", "")
    frame["dataset"] = table.get("Dataset", "")
    frame["line"] = frame.index
    frame["distance"] = _distance(frame, table, path)
    return frame, unknown_tss


def _gene_tss(table: pd.DataFrame, path) -> tuple[pd.Series, pd.Series]:
    """startTSS, MISSING_TSS where the TSS is unknown (startTSS == endTSS == 0), and the mask of those rows; a known
    TSS on another chromosome than its element (chrTSS) is an InputError naming the line."""
    tss = as_int(table["startTSS"], path, "startTSS")
    unknown = (tss == 0) & (as_int(table["endTSS"], path, "endTSS") == 0)
    if "chrTSS" in table:
        line = first_bad((table["chrTSS"].str.strip() != table["chrom"].str.strip()) & ~unknown)
        if line is not None:
            fail(path, line, f"chrTSS {table['chrTSS'][line]!r} differs from chrom (expected a cis pair)")
    return tss.mask(unknown, MISSING_TSS), unknown


def _distance(frame: pd.DataFrame, table: pd.DataFrame, path) -> pd.Series:
    """The file's distanceToTSS where given, else |element midpoint - startTSS|; NaN when neither is known."""
    computed = np.abs((frame["start"] + frame["end"]) / 2 - frame["gene_tss"]).where(frame["gene_tss"] != MISSING_TSS)
    if "distanceToTSS" not in table:
        return computed
    given = _as_number(table.loc[frame.index, "distanceToTSS"], path, "distanceToTSS", missing_ok=True)
    line = first_bad(given < 0)
    if line is not None:
        fail(path, line, f"distanceToTSS {given[line]} (expected a distance >= 0)")
    return given.fillna(computed)


def _power_filter(frame, table, path, power_column, min_power, stats) -> pd.DataFrame:
    stats["power_missing"] = stats["power_filtered"] = 0
    if not power_column:
        return frame
    power = _as_number(table.loc[frame.index, power_column], path, power_column, missing_ok=True)
    line = first_bad((power < 0) | (power > 1))
    if line is not None:
        fail(path, line, f"{power_column} {power[line]} (expected a power in [0, 1])")
    frame = frame.assign(power=power)
    if min_power is None:
        return frame
    negative = frame["label"] == 0
    no_power = negative & power.isna()
    low = negative & (power < float(min_power))
    stats["power_missing"], stats["power_filtered"] = int(no_power.sum()), int(low.sum())
    return frame[~(no_power | low)]


def read_predictions(path: str | os.PathLike, score_column: str, chroms=None, chrom_map=None) -> pd.DataFrame:
    """Read predictions with ABC / ENCODE-rE2G columns (chrom or chr, start, end, TargetGene, optional
    TargetGeneTSS, the score column), plain or gzip (told by content), header row; a row with another field count
    than the header is an InputError, blank lines are skipped (line numbers stay the file's). Chromosome names are
    harmonized first (a bare `1` is an InputError unless `chrom_map` maps it); rows on chromosomes outside
    `chroms` are skipped, and none left is an InputError, as is an element-gene pair listed twice or a fractional
    TargetGeneTSS. Returns DataFrame[chrom, start, end, gene, gene_tss, score] (gene_tss MISSING_TSS when
    absent)."""
    table, chrom = _read_prediction_rows(path, score_column)
    table[chrom] = harmonize_chroms(table[chrom].str.strip(), None, chrom_map, path)
    if chroms is not None:
        table = table[table[chrom].isin(set(chroms))]
        if table.empty:
            raise InputError(
                f"{path}: no prediction on the screen's chromosomes {sorted(chroms)[:5]} (expected some; check the "
                "chromosome names)"
            )
    frame = pd.DataFrame({"chrom": table[chrom]}, index=table.index)
    frame["start"] = as_int(table["start"], path, "start")
    frame["end"] = as_int(table["end"], path, "end")
    check_start_end(frame["start"], frame["end"], path)
    frame["gene"] = strip_version(table["TargetGene"])
    frame["gene_tss"] = _target_gene_tss(table, path)
    frame["score"] = _as_number(table[score_column], path, score_column)
    _refuse_duplicates(frame, path, "element-gene prediction")  # `aggregate: sum` would count it twice
    return frame.reset_index(drop=True)


def _prediction_header(path) -> tuple[str | None, pd.Index]:
    """(the compression told by content, the header's column names); an unreadable file is an InputError."""
    try:
        compression = "gzip" if is_gzip(path) else None  # by content, whatever the name says
        header = pd.read_csv(path, sep="\t", nrows=0, compression=compression, quoting=csv.QUOTE_NONE).columns
    except (OSError, ValueError, EOFError) as err:
        raise InputError(f"{path}: cannot read predictions ({err})") from err
    return compression, header


def _read_prediction_rows(path, score_column: str) -> tuple[pd.DataFrame, str]:
    """The prediction rows as text (the columns read_predictions needs), indexed by file line, blank lines dropped,
    and the name of the chromosome column (chrom or chr). A missing column, a row with another field count than the
    header and a file with no row are InputErrors."""
    compression, header = _prediction_header(path)
    chrom = "chrom" if "chrom" in header else "chr"
    needed = [chrom, "start", "end", "TargetGene", score_column]
    missing = [c for c in needed if c not in header]
    if missing:
        raise InputError(f"{path} line 1: missing column(s) {missing} (expected ABC / ENCODE-rE2G columns)")
    check_field_counts(path, len(header))
    usecols = needed + (["TargetGeneTSS"] if "TargetGeneTSS" in header else [])
    table = pd.read_csv(
        path,
        sep="\t",
        usecols=usecols,
        dtype=str,
        keep_default_na=False,
        skip_blank_lines=False,
        compression=compression,
        quoting=csv.QUOTE_NONE,  # a quote is text, as check_field_counts counts the fields
    )
    table.index = np.arange(len(table)) + 2  # 1-based file lines after the header
    table = table[(table.apply(lambda column: column.str.strip()) != "").any(axis=1)]  # blank lines
    if table.empty:
        raise InputError(f"{path}: only a header line (expected prediction rows after it)")
    return table, chrom


def _target_gene_tss(table: pd.DataFrame, path) -> pd.Series:
    """TargetGeneTSS as int64, MISSING_TSS where the column is absent or a cell is NA or empty; a fractional or
    non-numeric TSS is an InputError naming the line."""
    tss = table.get("TargetGeneTSS", pd.Series(str(MISSING_TSS), index=table.index)).replace(["NA", ""], "-1")
    numbers = pd.to_numeric(tss, errors="coerce")
    line = first_bad(numbers.isna() | (numbers % 1 != 0))
    if line is not None:
        fail(path, line, f"TargetGeneTSS {tss[line]!r} is not an integer")
    return numbers.astype(np.int64)


def _refuse_duplicates(frame: pd.DataFrame, path, what: str) -> None:
    """An element-gene pair on a second line is an InputError naming both lines."""
    keys = ["chrom", "start", "end", "gene"]
    line = first_bad(frame.duplicated(keys))
    if line is not None:
        same = (frame[keys] == frame.loc[line, keys]).all(axis=1)
        fail(
            path,
            line,
            f"{what} {frame.loc[line, 'gene']} at this element listed twice, first on line {same.idxmax()} "
            "(expected once)",
        )
