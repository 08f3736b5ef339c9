"""Line-numbered reading of tabular text files (plain or gzip), the checks every reader shares, and chromosome
naming. Frames returned here are indexed by the 1-based line number of each row in its file, so a check can
report where the first bad row is; readers reset the index before handing frames out."""

import codecs
import contextlib
import csv
import gzip
import io
import logging
import os
import re
import tempfile
import zlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from epiflow.errors import InputError

log = logging.getLogger(__name__)

HEADER_PREFIXES = ("track", "browser", "#")
# Chromosome names that are clearly "no chr prefix" spellings of the usual human/mouse chromosomes.
_BARE_CHROM = re.compile(r"^(\d+|X|Y|M|MT)$")
# the mitochondrion's spellings; its length differs between builds of one assembly (hg19's UCSC chrM is 16571 bp, the
# rCRS of other builds 16569 bp), so length checks exempt it
MITO_CHROMS = ("chrM", "chrMT", "MT", "M")
CHROM_MAP_HINT = "set `reference.chrom_map: auto` in the config (chrom_map='auto') or give a dict of names"


def read_text(path: str | os.PathLike) -> str:
    """Return the decoded text of a plain or gzip file, without a leading UTF-8 byte order mark; any read, gzip or
    decoding problem is an InputError."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = _gunzip(raw, path)
    except FileNotFoundError as err:
        raise InputError(f"{path}: file not found") from err
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err})") from err
    raw = raw.removeprefix(codecs.BOM_UTF8)  # Excel's "UTF-8" TSV/CSV: not part of the first column's name
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise InputError(f"{path} line {line}: not UTF-8 text ({err.reason})") from err


def _gunzip(raw: bytes, path) -> bytes:
    """Decompress (multi-member, e.g. bgzip) gzip bytes; a truncated or corrupt stream is an InputError saying
    after which line it breaks."""
    out = bytearray()
    while raw.strip(b"\0"):  # gzip allows zero padding after the last member
        member = zlib.decompressobj(wbits=31)
        try:
            out += member.decompress(raw)
            problem = None if member.eof else "stream ends before its end-of-stream marker"
        except zlib.error as err:
            problem = str(err)
        if problem:
            line = out.count(b"\n") + 1
            raise InputError(
                f"{path} line {line}: corrupt or truncated gzip file ({problem}); expected a "
                "complete gzip stream (fetch the file again)"
            )
        raw = member.unused_data
    return bytes(out)


def is_gzip(path: str | os.PathLike) -> bool:
    """Whether a file is gzip by its first two bytes, whatever its name says."""
    with open(path, "rb") as raw:
        return raw.read(2) == b"\x1f\x8b"


def open_by_content(path: str | os.PathLike, mode: str = "rb", **kwargs):
    """Open a plain or gzip file for reading (`mode` "rb" or "rt"), gzip told by content (is_gzip)."""
    return (gzip.open if is_gzip(path) else open)(path, mode, **kwargs)


def check_field_counts(path: str | os.PathLike, ncols: int, sep: str = "\t") -> None:
    """Every non-blank line of a plain or gzip file (by content) has `ncols` fields; the first that does not is an
    InputError naming its line. Streams the file, for tables read with `usecols` (which would take a row with
    fields to spare or short of its header silently)."""
    token = sep.encode()
    try:
        with open_by_content(path) as handle:
            for number, line in enumerate(handle, 1):
                if line.strip() and line.count(token) + 1 != ncols:
                    fail(
                        path,
                        number,
                        f"{line.count(token) + 1} columns (expected {ncols}, as the header line has; separated by "
                        f"{sep!r})",
                    )
    except (OSError, EOFError, zlib.error) as err:
        raise InputError(f"{path}: cannot read ({err})") from err


def read_gene_list(path: str | os.PathLike) -> list[str]:
    """Genes (symbols or Ensembl ids), one per line of a plain or gzip file; blank lines and lines starting with `#`
    are skipped, surrounding whitespace is stripped. A line of several fields (a table, e.g. `gene<TAB>TPM`, whose
    lines would be taken as gene names) and a list without any gene are InputErrors."""
    genes = []
    for number, line in enumerate(read_text(path).splitlines(), 1):
        gene = line.strip()
        if not gene or gene.startswith("#"):
            continue
        fields = len(gene.split())
        if fields > 1:
            fail(path, number, f"{gene[:40]!r} has {fields} fields (expected one gene name per line)")
        genes.append(gene)
    if not genes:
        raise InputError(f"{path}: no gene names (expected one gene name per line)")
    return genes


def fail(path, line: int, message: str) -> None:
    """Raise the standard InputError naming the file and 1-based line."""
    raise InputError(f"{path} line {line}: {message}")


def read_table(
    path: str | os.PathLike,
    *,
    ncols: int | None = None,
    min_cols: int | None = None,
    sep: str = "\t",
    header: bool | str = False,
    skip_prefixes: tuple[str, ...] = HEADER_PREFIXES,
) -> pd.DataFrame:
    """Read a delimited text file into a DataFrame of strings indexed by 1-based line number.

    Blank lines and lines starting with `skip_prefixes` are skipped. `header`: True = the first data line holds
    column names; "infer" = it does when its second field is not an integer (e.g. HiCCUPS `chr1 x1 x2 ...`);
    False = columns are numbered 0..n-1; a name twice in a header read with True is an InputError. Every data line
    must have `ncols` fields (or at least `min_cols`).
    The header's own 1-based line number is in `frame.attrs["header_line"]` (None without a header).
    """
    text = read_text(path).replace("\r\n", "\n")
    lines = text.split("\n")
    keep = [i for i, line in enumerate(lines) if line.strip() and not line.startswith(skip_prefixes)]
    if not keep:
        raise InputError(f"{path}: no data lines (empty file; expected at least one data line)")
    names = header_line = None
    if header is True or (header == "infer" and not _looks_like_data(lines[keep[0]], sep)):
        header_line = keep.pop(0)
        names = [name.strip() for name in lines[header_line].split(sep)]
        if header is True:  # columns read by name: a second one of a name would shadow or break the first
            _check_unique_names(names, path, header_line + 1)
        ncols = ncols or len(names)
        if not keep:
            raise InputError(f"{path} line {header_line + 1}: only a header line (expected data lines after it)")
    lines = [lines[i] for i in keep]
    counts = np.fromiter((line.count(sep) for line in lines), np.int64, len(lines)) + 1
    counts = pd.Series(counts, index=np.asarray(keep, dtype=np.int64) + 1)
    _check_field_counts(counts, path, sep, ncols, min_cols)
    frame = pd.read_csv(
        io.StringIO("\n".join(lines)),
        sep=sep,
        header=None,
        names=range(int(counts.max())),
        dtype=str,
        keep_default_na=False,
        skip_blank_lines=False,
        quoting=csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL,
    )
    frame.index = counts.index
    if names is not None:
        frame.columns = names
    frame.attrs["header_line"] = None if header_line is None else header_line + 1
    return frame


def _check_unique_names(names: list[str], path, line: int) -> None:
    seen: dict[str, int] = {}
    for column, name in enumerate(names, 1):
        if name in seen and name:
            fail(
                path,
                line,
                f"column {name!r} appears twice in the header (columns {seen[name]} and {column}; "
                "expected each column name once)",
            )
        seen.setdefault(name, column)


def _looks_like_data(line: str, sep: str) -> bool:
    fields = line.split(sep)
    return len(fields) > 1 and fields[1].strip().lstrip("-").isdigit()


def _check_field_counts(counts: pd.Series, path, sep: str, ncols: int | None, min_cols: int | None) -> None:
    if ncols is not None and (counts != ncols).any():
        line = counts.index[(counts != ncols).to_numpy()][0]
        fail(
            path,
            line,
            f"{counts[line]} columns (expected {ncols}, separated by {sep!r})",
        )
    if min_cols is not None and (counts < min_cols).any():
        line = counts.index[(counts < min_cols).to_numpy()][0]
        fail(
            path,
            line,
            f"{counts[line]} columns (expected at least {min_cols}, separated by {sep!r})",
        )


def first_bad(mask: pd.Series) -> int | None:
    """Line number (index label) of the first True in `mask`, or None."""
    hits = mask.to_numpy(dtype=bool)
    return int(mask.index[hits.argmax()]) if hits.any() else None


def as_int(values: pd.Series, path, what: str) -> pd.Series:
    """Parse a column of non-negative integers (e.g. coordinates); the first bad value is an InputError. An integral
    value in another numeric spelling (`1e+05`, as R's write.table can write a coordinate, or `100.0`) is read as
    that integer; a fractional one is refused."""
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna() | (numbers < 0) | (numbers % 1 != 0)
    line = first_bad(bad)
    if line is not None:
        fail(path, line, f"{what} {values[line]!r} is not a non-negative integer")
    return numbers.astype(np.int64)


def as_signal(values: pd.Series, path, what: str = "signal") -> pd.Series:
    """Parse a column of finite, non-negative numbers; non-numeric, NaN, inf or negative is an InputError."""
    numbers = pd.to_numeric(values, errors="coerce").astype(np.float64)
    bad = ~np.isfinite(numbers) | (numbers < 0)
    line = first_bad(bad)
    if line is not None:
        fail(path, line, f"{what} {values[line]!r} is not a finite number >= 0")
    return numbers


def as_label(values: pd.Series, path) -> pd.Series:
    """Parse a 0/1 label column."""
    numbers = pd.to_numeric(values, errors="coerce")
    line = first_bad(~numbers.isin([0, 1]))
    if line is not None:
        fail(path, line, f"label {values[line]!r} is not 0 or 1")
    return numbers.astype(np.int64)


def check_start_end(start: pd.Series, end: pd.Series, path, what: str = "", names=None) -> None:
    """Every start must be <= its end (0-based half-open intervals). The message calls them `{what}start` and
    `{what}end`, or the file's own column names `names` (e.g. ("chromStart", "chromEnd"))."""
    first, second = names or (f"{what}start", f"{what}end")
    line = first_bad(start > end)
    if line is not None:
        fail(path, line, f"{first} {start[line]} > {second} {end[line]} (expected start <= end)")


def check_within_chroms(beyond: pd.Series, values: pd.Series, chrom: pd.Series, sizes, path, label: str) -> None:
    """`beyond` marks the rows whose `values` (called `label`) lie past their chromosome's length in `sizes`, i.e.
    coordinates of another genome build; the first is an InputError naming its line."""
    line = first_bad(beyond)
    if line is not None:
        fail(
            path,
            line,
            f"{label} {values[line]} beyond {chrom[line]} length {sizes[chrom[line]]} (expected coordinates of the "
            "configured genome build)",
        )


def map_chrom_name(name: str, known: Iterable[str] | None) -> str:
    """The `chrom_map: auto` rule: add or remove the `chr` prefix (MT <-> chrM) so `name` matches `known`.

    With `known=None` the target is epiflow's convention, the `chr` prefix. Returns `name` unchanged when no
    spelling matches."""
    bare = name[3:] if name.startswith("chr") else name
    spellings = [name, f"chr{bare}", bare]
    if bare in ("M", "MT"):
        spellings += MITO_CHROMS
    if known is None:
        return name if name.startswith("chr") or not _BARE_CHROM.match(name) else spellings[1].replace("MT", "M")
    return next((s for s in spellings if s in known), name)


def chrom_mapping(names: Iterable[str], known: Iterable[str] | None, chrom_map, path) -> dict[str, str]:
    """Map each name by `chrom_map`: None = unchanged, "auto" = map_chrom_name, a dict = its entry (or unchanged)."""
    if chrom_map is None:
        return {name: name for name in names}
    if chrom_map == "auto":
        return {name: map_chrom_name(name, known) for name in names}
    if isinstance(chrom_map, Mapping):
        return {name: chrom_map.get(name, name) for name in names}
    raise InputError(f"{path}: chrom_map must be 'auto', a mapping or null, not {chrom_map!r}")


def naming_hint(name: str, known: Iterable[str] | None, chrom_map) -> str | None:
    """When `name` is only a differently spelled known chromosome and no chrom_map is set, say how to map it."""
    guess = map_chrom_name(name, known)
    if chrom_map is None and guess != name and (known is None or guess in known):
        return (
            f"chromosome {name!r} looks like a different naming convention than the reference ({guess!r}); "
            f"to map names {CHROM_MAP_HINT}"
        )
    return None


def harmonize_chroms(
    chroms: pd.Series,
    known_chroms: Iterable[str] | None,
    chrom_map: str | Mapping[str, str] | None,
    path,
) -> pd.Series:
    """Rename chromosomes by `chrom_map` ("auto", a dict, or None) and check them against `known_chroms`.

    `chroms` is indexed by line number. Names outside `known_chroms` raise an InputError naming the first line;
    when the names only differ by naming convention (1 vs chr1) and `chrom_map` is None the error says how to
    enable mapping. With `known_chroms=None`, bare names like `1`/`X` are refused unless mapped (epiflow uses
    the `chr` prefix)."""
    known = None if known_chroms is None else set(known_chroms)
    renamed = chroms.map(chrom_mapping(pd.unique(chroms), known, chrom_map, path))
    bad = renamed.str.match(_BARE_CHROM.pattern) if known is None else ~renamed.isin(known)
    line = first_bad(bad)
    if line is not None:
        _unknown_chrom(path, line, renamed[line], known, chrom_map)
    return renamed


def _unknown_chrom(path, line: int, name: str, known: set | None, chrom_map) -> None:
    hint = naming_hint(name, known, chrom_map)
    if hint:
        fail(path, line, hint)
    examples = ", ".join(sorted(known)[:5]) if known else ""
    fail(
        path,
        line,
        f"unknown chromosome {name!r} (expected one of the reference's, e.g. {examples})",
    )


def read_chrom_sizes(path: str | os.PathLike) -> dict[str, int]:
    """Read `chrom<TAB>length` lines (a .fai works too: extra columns are ignored) into an ordered dict."""
    table = read_table(path, min_cols=2)
    lengths = as_int(table[1], path, "length")
    line = first_bad(table[0].duplicated())
    if line is not None:
        fail(path, line, f"chromosome {table[0][line]!r} listed twice")
    return dict(zip(table[0], lengths.tolist(), strict=False))


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `dest`; on success it replaces `dest` atomically, on error it is removed."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
