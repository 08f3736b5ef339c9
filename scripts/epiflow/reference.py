"""Reference genome preparation: bgzipped, indexed FASTA; chromosome sizes; the TSS table."""

from __future__ import annotations

import gzip
import logging
import shutil
from pathlib import Path

import pandas as pd
import pysam

from epiflow.errors import InputError
from epiflow.io_text import is_gzip

log = logging.getLogger(__name__)


def is_bgzf(path: str | Path) -> bool:
    """True when the file is BGZF (gzip with the 'BC' extra subfield), the form faidx can index."""
    with open(path, "rb") as handle:
        head = handle.read(18)
    return len(head) == 18 and head[:2] == b"\x1f\x8b" and head[3] & 4 and head[12:14] == b"BC"


def bgzip_fasta(source: str | Path, dest: str | Path) -> None:
    """Write `source` (plain, gzip or bgzip FASTA, told by content whatever the name says) to `dest` as BGZF with
    .fai and .gzi indexes."""
    dest = Path(dest)
    if is_bgzf(source):
        shutil.copyfile(source, dest)
    else:
        plain = dest.with_suffix(".tmp.fa")
        opener = gzip.open if is_gzip(source) else open  # by content: a gzip FASTA named .fa is not plain text
        try:
            with opener(source, "rb") as src, open(plain, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
        except (OSError, EOFError) as err:
            plain.unlink(missing_ok=True)
            raise InputError(f"{source}: cannot read FASTA ({err}); expected plain or gzip-compressed FASTA") from err
        pysam.tabix_compress(str(plain), str(dest), force=True)
        plain.unlink()
    try:
        pysam.faidx(str(dest))
    except pysam.utils.SamtoolsError as err:
        raise InputError(f"{source}: not a valid FASTA ({err})") from err


def chrom_sizes_from_fai(fai: str | Path) -> dict[str, int]:
    """Chromosome -> length from a .fai index."""
    table = pd.read_csv(fai, sep="\t", header=None, usecols=[0, 1], names=["chrom", "size"], dtype={"chrom": str})
    return dict(zip(table.chrom, table["size"].astype(int), strict=False))


def write_chrom_sizes(sizes: dict[str, int], path: str | Path) -> None:
    """Two-column chrom sizes file in the given order."""
    pd.DataFrame({"chrom": list(sizes), "size": list(sizes.values())}).to_csv(path, sep="\t", header=False, index=False)
