"""Coordinate lifting between genome builds with UCSC chain files, through pyliftover.

Intervals are 0-based half-open. An interval is lifted by its first base (`start`) and its last base (`end - 1`);
the lifted interval runs from the lower to the higher lifted base (+1 for the half-open end). A row is dropped,
and counted under one reason, when:

- ``unmapped``: an end (or the point) falls in a gap of the chain, or its chromosome is not in the chain file;
- ``multiple``: an end maps to more than one place (a duplicated segment; the ambiguity is not resolved);
- ``other_chrom``: the ends land on two chromosomes, or on a chromosome with another name than the source's
  (e.g. an alt or random contig);
- ``inverted``: the two ends land on opposite strands (a rearrangement inside the interval);
- ``length_change``: the lifted length differs from the original by more than ``max_length_change`` bases
  (default 1 kb) or by more than a factor ``max_length_ratio`` (default 2) either way. CRISPRi elements are
  0.2-4 kb: a 1 kb or 2x change means the interval spans an indel between the builds, and the lifted element is
  no longer the tested one.

Reasons are checked in that order; the returned counts hold every reason (0 when none) and ``lifted``.
"""

from __future__ import annotations

import logging
import os
import re
import zlib

import numpy as np
import pandas as pd
from pyliftover import LiftOver

from epiflow.errors import InputError
from epiflow.io_text import MITO_CHROMS, fail, is_gzip, open_by_content

log = logging.getLogger(__name__)

REASONS = ("unmapped", "multiple", "other_chrom", "inverted", "length_change")
MAX_LENGTH_CHANGE = 1000  # bases
MAX_LENGTH_RATIO = 2.0


def load_chain(path: str | os.PathLike, from_sizes=None, to_sizes=None) -> LiftOver:
    """A pyliftover LiftOver of a UCSC chain file, plain or gzip told by content as check_chain reads it (pyliftover
    alone goes by the name: a gzip chain not named .gz loaded as an empty chain that maps nothing); a missing or
    unreadable file is an InputError, and so is a malformed or cut chain (check_chain). `from_sizes` / `to_sizes`:
    chrom sizes of the build lifted from / to, when known (the reference's); a chromosome the chain gives another
    length (tSize / qSize) is an InputError: the chain of the other direction, or of another build, would move every
    row to wrong coordinates without a drop."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"{path}: chain file not found (expected a UCSC .over.chain[.gz] file)")
    sides = check_chain(path)
    for side, sizes in zip(sides, (from_sizes, to_sizes), strict=True):
        _check_chain_sizes(path, side, sizes)
    try:
        return LiftOver(path, use_gzip=is_gzip(path))
    except Exception as err:  # pyliftover raises bare Exception on a malformed chain; gzip/OS errors too
        raise InputError(f"{path}: cannot read as a UCSC chain file ({err})") from err


_DIGITS = re.compile(r"[0-9]+")  # str.isdigit would take "²", which int() refuses
_CHAIN_HEADER = "`chain score tName tSize tStrand tStart tEnd qName qSize qStrand qStart qEnd [id]`"
_CHAIN_BLOCK = "`size dt dq`, or `size` alone for a chain's last block"


def _check_chain_sizes(path, side: dict, sizes) -> None:
    """Every chromosome of `sizes` (mitochondria aside) that the chain's `side` names has the length there."""
    if not sizes:
        return
    for chrom, (length, line, field) in side.items():
        if chrom in sizes and chrom not in MITO_CHROMS and length != int(sizes[chrom]):
            build = "from" if field == "tSize" else "to"
            fail(
                path,
                line,
                f"{chrom} is {length} bp here ({field}) but {int(sizes[chrom])} bp in the reference's chrom sizes "
                f"(expected a chain {build} the reference build: is it the chain of the other direction, or of "
                "another build?)",
            )


def check_chain(path: str | os.PathLike) -> tuple[dict, dict]:
    """Check a UCSC chain file's structure (https://genome.ucsc.edu/goldenPath/help/chain.html): `chain` header
    lines with integer sizes and positions, each followed by block lines `size dt dq` and a last `size`, whose sizes
    and gaps add up to the header's tEnd - tStart and qEnd - qStart. A file cut inside a chain (a download stopped
    early, a partial copy) fails the last check. The first problem is an InputError naming the line. A file cut
    exactly between two chains cannot be told from a shorter one: a checksum can. A file without any chain (only
    comments or blank lines, which pyliftover would read as an empty chain) is an InputError too. Returns the
    chromosome lengths the headers state, {name: (length, first header line, field)} for the chain's source side
    (`tSize`) and its target side (`qSize`)."""
    chain, number = None, 0  # chain: [header line, target span, query span, target sum, query sum, closed]
    sides: tuple[dict, dict] = ({}, {})
    try:
        with open_by_content(path, "rt", encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, 1):
                fields = line.split()
                if not fields or fields[0].startswith("#"):
                    continue
                if fields[0] == "chain":
                    _check_chain_closed(path, chain, number - 1)
                    chain = _chain_header(path, number, fields)
                    sides[0].setdefault(fields[2], (int(fields[3]), number, "tSize"))
                    sides[1].setdefault(fields[7], (int(fields[8]), number, "qSize"))
                elif chain is None or chain[5]:
                    where = "before any chain header" if chain is None else "after the last block of a chain"
                    fail(path, number, f"{line.strip()[:40]!r} {where} (expected a header line {_CHAIN_HEADER})")
                else:
                    _chain_block(path, number, fields, chain)
    except (OSError, EOFError, zlib.error) as err:
        raise InputError(f"{path}: cannot read as a UCSC chain file ({err})") from err
    if chain is None:
        raise InputError(f"{path}: no chain in it (expected a UCSC .over.chain[.gz] file of `chain ...` blocks)")
    _check_chain_closed(path, chain, number)
    return sides


def _chain_header(path, number: int, fields: list[str]) -> list:
    numbers = [fields[i] for i in (3, 5, 6, 8, 10, 11)] if len(fields) in (12, 13) else []
    if not numbers or not all(_DIGITS.fullmatch(n) for n in numbers) or {fields[4], fields[9]} - {"+", "-"}:
        fail(path, number, f"a chain header of {len(fields)} fields (expected {_CHAIN_HEADER}, integer positions)")
    t_start, t_end, q_start, q_end = (int(fields[i]) for i in (5, 6, 10, 11))
    return [number, t_end - t_start, q_end - q_start, 0, 0, False]


def _chain_block(path, number: int, fields: list[str], chain: list) -> None:
    if len(fields) not in (1, 3) or not all(_DIGITS.fullmatch(f) for f in fields):
        fail(path, number, f"{' '.join(fields)[:40]!r} (expected {_CHAIN_BLOCK})")
    size, dt, dq = ([int(f) for f in fields] + [0, 0])[:3]
    chain[3] += size + dt
    chain[4] += size + dq
    chain[5] = len(fields) == 1


def _check_chain_closed(path, chain: list | None, last_line: int) -> None:
    if chain is None:  # the first header: no chain before it
        return
    header, t_span, q_span, t_sum, q_sum, closed = chain
    if not closed or (t_sum, q_sum) != (t_span, q_span):
        fail(
            path,
            header,
            f"the chain starting here covers {t_sum} / {q_sum} bases in its blocks and gaps up to line {last_line} "
            f"(expected its header's tEnd - tStart = {t_span} and qEnd - qStart = {q_span}, closed by a last "
            "`size` line): the file is cut or corrupt (fetch it again)",
        )


def _lift_positions(chain: LiftOver, chroms: np.ndarray, positions: np.ndarray):
    """Lift 0-based positions; returns (chrom, position, strand, status) arrays, status 0 = ok, 1 = unmapped,
    2 = multiple. Each distinct (chrom, position) is queried once."""
    keys = pd.DataFrame({"chrom": chroms, "pos": positions})
    unique = keys.drop_duplicates()
    rows = []
    for chrom, pos in zip(unique["chrom"], unique["pos"], strict=True):
        hits = chain.convert_coordinate(chrom, int(pos))
        if not hits:  # None: chromosome unknown to the chain; []: a gap
            rows.append(("", -1, "", 1))
        elif len(hits) > 1:
            rows.append(("", -1, "", 2))
        else:
            rows.append((hits[0][0], hits[0][1], hits[0][2], 0))
    lifted = pd.DataFrame(rows, columns=["new_chrom", "new_pos", "strand", "status"], index=unique.index)
    merged = keys.merge(pd.concat([unique, lifted], axis=1), on=["chrom", "pos"], how="left")
    return (
        merged["new_chrom"].to_numpy(object),
        merged["new_pos"].to_numpy(np.int64),
        merged["strand"].to_numpy(object),
        merged["status"].to_numpy(np.int64),
    )


def _counts(reason: np.ndarray) -> dict[str, int]:
    counts = {name: int(np.sum(reason == name)) for name in REASONS}
    counts["lifted"] = int(np.sum(reason == ""))
    return counts


def lift_intervals(
    frame: pd.DataFrame,
    chain: LiftOver,
    chrom: str = "chrom",
    start: str = "start",
    end: str = "end",
    max_length_change: int = MAX_LENGTH_CHANGE,
    max_length_ratio: float = MAX_LENGTH_RATIO,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Lift the 0-based half-open intervals in columns chrom/start/end of `frame` (other columns are kept).

    Returns (the rows that lifted, with new coordinates and their original index; counts per reason, see the
    module docstring). A zero-length interval (start == end) is lifted as the point `start`."""
    if frame.empty:
        return frame.copy(), _counts(np.array([], dtype=object))
    chroms = frame[chrom].to_numpy(object)
    first = frame[start].to_numpy(np.int64)
    last = np.maximum(frame[end].to_numpy(np.int64) - 1, first)
    c1, p1, s1, st1 = _lift_positions(chain, chroms, first)
    c2, p2, s2, st2 = _lift_positions(chain, chroms, last)
    new_start = np.minimum(p1, p2)
    new_end = np.maximum(p1, p2) + (frame[end].to_numpy(np.int64) > first)
    old_length = np.maximum(frame[end].to_numpy(np.int64) - first, 1)
    new_length = np.maximum(new_end - new_start, 1)
    change = np.abs(new_length - old_length)
    ratio = np.maximum(new_length / old_length, old_length / new_length)
    reason = np.select(
        [
            (st1 == 1) | (st2 == 1),
            (st1 == 2) | (st2 == 2),
            (c1 != c2) | (c1 != chroms),
            s1 != s2,
            (change > max_length_change) | (ratio > max_length_ratio),
        ],
        list(REASONS),
        default="",
    )
    keep = reason == ""
    lifted = frame.loc[keep].copy()
    lifted[start] = new_start[keep]
    lifted[end] = new_end[keep]
    counts = _counts(reason)
    log.info("lifted %d of %d intervals; dropped %s", counts["lifted"], len(frame), _dropped(counts))
    return lifted, counts


def lift_points(
    frame: pd.DataFrame,
    chain: LiftOver,
    chrom: str = "chrom",
    position: str = "tss",
    missing: int | None = None,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Lift 0-based positions (e.g. TSSs) in columns chrom/position of `frame` (other columns are kept).

    Reasons: unmapped, multiple, other_chrom (a position that lands on another chromosome); a lifted point keeps
    its place whichever strand it lands on. Rows whose position equals `missing` (a sentinel for "not known")
    are kept unchanged and not counted. Returns (lifted rows with their original index, counts)."""
    if frame.empty:
        return frame.copy(), _counts(np.array([], dtype=object))
    chroms = frame[chrom].to_numpy(object)
    positions = frame[position].to_numpy(np.int64)
    known = np.ones(len(frame), bool) if missing is None else positions != missing
    new_chrom, new_pos, _, status = _lift_positions(chain, chroms[known], positions[known])
    reason = np.full(len(frame), "", dtype=object)
    reason[known] = np.select(
        [status == 1, status == 2, new_chrom != chroms[known]], ["unmapped", "multiple", "other_chrom"], default=""
    )
    lifted_pos = positions.copy()
    lifted_pos[known] = new_pos
    keep = reason == ""
    lifted = frame.loc[keep].copy()
    lifted[position] = lifted_pos[keep]
    counts = _counts(reason[known])
    log.info("lifted %d of %d positions; dropped %s", counts["lifted"], int(known.sum()), _dropped(counts))
    return lifted, counts


def _dropped(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items() if k != "lifted" and v) or "none"


def lift_predictions(table: pd.DataFrame, chain: LiftOver) -> tuple[pd.DataFrame, dict]:
    """A predictions table (chrom, start, end, name, TargetGene, TargetGeneTSS, ..., distance) lifted to the chain's
    target build: elements by lift_intervals, TSSs by lift_points; a row whose element or TSS does not lift is
    dropped and counted; name and distance are recomputed in the new build."""
    elements, element_counts = lift_intervals(table, chain)
    lifted, tss_counts = lift_points(elements, chain, position="TargetGeneTSS")
    lifted = lifted.copy()
    lifted["name"] = lifted.chrom + ":" + lifted.start.astype(str) + "-" + lifted.end.astype(str)
    lifted["distance"] = ((lifted.start + lifted.end) // 2 - lifted.TargetGeneTSS).abs()
    return lifted.reset_index(drop=True), {"element": element_counts, "tss": tss_counts, "rows": len(table)}
