"""Reference preparation: any FASTA (plain, gzip, bgzip) becomes bgzipped FASTA with .fai/.gzi."""

import gzip

import pysam
import pytest

from epiflow.errors import InputError
from epiflow.reference import bgzip_fasta, chrom_sizes_from_fai, is_bgzf

SEQS = {"chr1": "ACGT" * 50 + "NNNN", "chr2": "GGCCAATT" * 20}


def write_fasta(path, opener=open):
    with opener(path, "wt") as out:
        for name, seq in SEQS.items():
            out.write(f">{name}\n" + "\n".join(seq[i : i + 60] for i in range(0, len(seq), 60)) + "\n")


# the name does not tell the compression: a gzip FASTA named .fa, a plain one named .fa.gz (content decides)
NAMES = {
    "plain": "g.fa",
    "gzip": "g.fa.gz",
    "bgzip": "g.bgz.fa.gz",
    "gzip_named_fa": "g.fa",
    "plain_named_gz": "g.fa.gz",
}


@pytest.mark.parametrize("kind", list(NAMES))
def test_bgzip_fasta_indexes_any_input(tmp_path, kind):
    src = tmp_path / NAMES[kind]
    if kind == "bgzip":
        write_fasta(tmp_path / "tmp.fa")
        pysam.tabix_compress(str(tmp_path / "tmp.fa"), str(src))
    else:
        write_fasta(src, gzip.open if kind.startswith("gzip") else open)
    dest = tmp_path / "out" / "genome.fa.gz"
    dest.parent.mkdir()
    bgzip_fasta(src, dest)
    assert (
        is_bgzf(dest) and (tmp_path / "out/genome.fa.gz.fai").exists() and (tmp_path / "out/genome.fa.gz.gzi").exists()
    )
    assert chrom_sizes_from_fai(str(dest) + ".fai") == {k: len(v) for k, v in SEQS.items()}
    with pysam.FastaFile(str(dest)) as fasta:
        assert fasta.fetch("chr2", 8, 16) == SEQS["chr2"][8:16]


def test_bgzip_fasta_rejects_truncated_gzip(tmp_path):
    src = tmp_path / "g.fa.gz"
    write_fasta(src, gzip.open)
    src.write_bytes(src.read_bytes()[:-20])
    with pytest.raises(InputError, match="g.fa.gz: cannot read FASTA"):
        bgzip_fasta(src, tmp_path / "genome.fa.gz")
    assert not (tmp_path / "genome.fa.gz").exists()
