"""Readers on small slices of the real hg19 data and on hand-made bad files; bigWig writers round-tripped."""

import contextlib
import gzip
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pyBigWig
import pysam
import pytest

from epiflow import io
from epiflow.errors import InputError
from epiflow.io_text import read_gene_list

DATA = Path(__file__).parents[1].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is missing")
SIZES = {"chr1": 10_000, "chr2": 5_000}


def head(source: Path, dest: Path, n: int) -> Path:
    """Write the first n lines of a (gzip) data file to dest (gzip when dest ends with .gz)."""
    with gzip.open(source, "rt") as fh:
        lines = list(itertools.islice(fh, n))
    opener = gzip.open if dest.suffix == ".gz" else open
    with opener(dest, "wt") as out:
        out.writelines(lines)
    return dest


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@contextlib.contextmanager
def expect_error(path: Path, line: int | None, *words: str):
    """Expect an InputError whose message names the file, `line N:` (when given) and each of `words`."""
    with pytest.raises(InputError) as info:
        yield
    message = str(info.value)
    assert path.name in message, message
    assert line is None or f"line {line}:" in message, message
    for word in words:
        assert word in message, message


# --- real slices -------------------------------------------------------------------------------------------


@needs_data
def test_chrom_sizes_real():
    sizes = io.read_chrom_sizes(DATA / "hg19" / "chrom_sizes.tsv")
    assert list(sizes)[:3] == ["chr1", "chr2", "chr3"]
    assert sizes["chr1"] == 249_250_621 and len(sizes) == 25


def test_chrom_sizes_fai_and_duplicates(tmp_path):
    fai = write(tmp_path / "genome.fa.fai", "chr2\t5000\t6\t60\t61\nchr1\t10000\t5097\t60\t61\n")
    assert io.read_chrom_sizes(fai) == {"chr2": 5000, "chr1": 10000}
    twice = write(tmp_path / "sizes.tsv", "chr1\t10\nchr2\t20\nchr1\t10\n")
    with expect_error(twice, 3, "listed twice"):
        io.read_chrom_sizes(twice)


@needs_data
def test_narrowpeak_and_broadpeak_slices(tmp_path):
    narrow = head(
        DATA / "peaks/IMR90/E017-H3K27ac.narrowPeak.gz",
        tmp_path / "imr90.narrowPeak.gz",
        200,
    )
    peaks = io.read_peaks(
        narrow,
        "narrowpeak",
        known_chroms=io.read_chrom_sizes(DATA / "hg19/chrom_sizes.tsv"),
    )
    assert list(peaks.columns) == ["chrom", "start", "end", "signal"] and len(peaks) == 200
    with gzip.open(narrow, "rt") as handle:
        first = handle.readline().split("\t")
    assert (peaks.chrom[0], peaks.start[0], peaks.end[0]) == (
        first[0],
        int(first[1]),
        int(first[2]),
    )
    assert peaks.signal[0] == pytest.approx(float(first[6]))
    broad_src = DATA / "peaks/K562/wgEncodeBroadHistoneK562H3k27acStdPk.broadPeak.gz"
    broad = io.read_peaks(head(broad_src, tmp_path / "k562.broadPeak", 150), "broadpeak")
    assert len(broad) == 150 and (broad.end > broad.start).all() and broad.signal.dtype == np.float64
    with expect_error(tmp_path / "imr90.narrowPeak.gz", 1, "10 columns", "expected 9"):
        io.read_peaks(narrow, "broadpeak")


@needs_data
def test_peak_summits_from_narrowpeak_or_midpoint(tmp_path):
    narrow = head(DATA / "peaks/IMR90/E017-H3K27ac.narrowPeak.gz", tmp_path / "imr90.narrowPeak.gz", 50)
    peaks = io.read_peaks(narrow, "narrowpeak", summits=True)
    with gzip.open(narrow, "rt") as handle:
        rows = [line.split("\t") for line in handle]
    assert list(peaks.summit) == [int(r[1]) + int(r[9]) for r in rows]
    assert peaks.summit.between(peaks.start, peaks.end - 1).all()
    broad_src = DATA / "peaks/K562/wgEncodeBroadHistoneK562H3k27acStdPk.broadPeak.gz"
    broad = io.read_peaks(head(broad_src, tmp_path / "k562.broadPeak", 20), "broadpeak", summits=True)
    assert (broad.summit == (broad.start + broad.end) // 2).all()
    fields = "\t".join
    text = [
        fields(["chr1", "100", "300", ".", "0", ".", "5", "-1", "-1", "-1"]),
        fields(["chr1", "500", "600", ".", "0", ".", "5", "-1", "-1", "40"]),
    ]
    none_called = write(tmp_path / "p.narrowPeak", "\n".join(text) + "\n")
    assert list(io.read_peaks(none_called, "narrowpeak", summits=True).summit) == [200, 540]
    outside = write(tmp_path / "bad.narrowPeak", text[0] + "\n" + text[1].replace("\t40", "\t100") + "\n")
    with expect_error(outside, 2, "summit offset '100'"):
        io.read_peaks(outside, "narrowpeak", summits=True)
    half = write(tmp_path / "half.narrowPeak", text[1].replace("\t40", "\t12.5") + "\n")
    with expect_error(half, 1, "summit offset '12.5'"):
        io.read_peaks(half, "narrowpeak", summits=True)
    empty = write(tmp_path / "empty.narrowPeak", text[1].replace("\t600\t", "\t500\t").replace("\t40", "\t0") + "\n")
    with expect_error(empty, 1, "summit offset '0'"):
        io.read_peaks(empty, "narrowpeak", summits=True)


@needs_data
def test_bengi_slice(tmp_path):
    path = head(
        DATA / "bengi/IMR90.HiC-Benchmark.v3.tsv.gz",
        tmp_path / "imr90.bengi.tsv.gz",
        200,
    )
    pairs = io.read_pairs(path, "bengi", "IMR90", known_chroms={f"chr{i}" for i in range(1, 23)})
    assert list(pairs.columns) == io.PAIR_COLUMNS
    row = pairs.iloc[0]  # chr16 676807 676886 ... chr16 638577 640577 chr16:640076-640077|IMR90|ENSG00000197562.5
    assert row.pair_id == "chr16:676807-676886|638577-640577"
    assert (row.tss, row.gene, row.label, row.fold) == (
        640076,
        "ENSG00000197562.5",
        1,
        -1,
    )
    assert row.distance == abs((676807 + 676886) // 2 - 640076)
    assert pairs.pair_id.is_unique and set(pairs.label) <= {0, 1} and (pairs.cell_line == "IMR90").all()


@needs_data
def test_targetfinder_slice(tmp_path):
    path = head(
        DATA / "targetfinder/K562.targetfinder-ep.pairs.csv.gz",
        tmp_path / "k562.csv",
        100,
    )
    pairs = io.read_pairs(path, "targetfinder", "K562")
    row = pairs.iloc[0]  # K562|chr1:6454864-6455189,K562|chr1:6613082-6615021,1
    assert (row.chrom, row.enhancer_start, row.enhancer_end) == (
        "chr1",
        6454864,
        6455189,
    )
    assert (row.promoter_start, row.promoter_end, row.tss) == (
        6613082,
        6615021,
        (6613082 + 6615021) // 2,
    )
    assert row.gene == "chr1:6613082-6615021" and row.label == 1 and len(pairs) == 99


def test_targetfinder_full_pairs_csv(tmp_path):
    path = write(
        tmp_path / "pairs.csv",
        "bin,enhancer_chrom,enhancer_start,enhancer_end,promoter_chrom,promoter_start,promoter_end,label\n"
        "0,chr1,100,200,chr1,5000,5400,1\n1,chr1,100,200,chr2,5000,5400,0\n",
    )
    with expect_error(path, 3, "enhancer on chr1 but promoter on chr2"):
        io.read_pairs(path, "targetfinder", "K562")
    path.write_text(path.read_text().splitlines(keepends=True)[0] + "0,chr1,100,200,chr1,5000,5400,1\n")
    pairs = io.read_pairs(path, "targetfinder", "K562")
    assert pairs.loc[0, "gene"] == "chr1:5000-5400" and pairs.loc[0, "distance"] == 5200 - 150


def test_targetfinder_file_of_another_cell_line_is_refused(tmp_path):
    """TargetFinder names carry their cell line (`K562|chr1:...`): a file of another line than its sheet row's (here
    K562's read as GM12878) was read as that row's pairs. Refused at the first name of another line, enhancer or
    promoter, saying what it found and what the sheet says; names without a prefix are not checked."""
    path = write(
        tmp_path / "tf.csv",
        "enhancer_name,promoter_name,label\nK562|chr1:100-200,K562|chr1:5000-5400,1\n"
        "chr1:300-400,chr1:6000-6400,0\nK562|chr1:500-600,K562|chr1:7000-7400,0\n",
    )
    assert len(io.read_pairs(path, "targetfinder", "K562")) == 3
    with expect_error(path, 2, "cell line 'K562' in enhancer_name 'K562|chr1:100-200' (expected 'GM12878', the sheet"):
        io.read_pairs(path, "targetfinder", "GM12878")
    write(path, path.read_text().replace("1\nchr1:300-400,chr1:6000-6400", "1\nchr1:300-400,HeLa-S3|chr1:6000-6400"))
    with expect_error(
        path, 3, "cell line 'HeLa-S3' in promoter_name", "expected 'K562'", "cell lines in the file: 'HeLa-S3'"
    ):
        io.read_pairs(path, "targetfinder", "K562")
    # the full pairs.csv (coordinate columns) carries the same names
    full = write(
        tmp_path / "pairs.csv",
        "enhancer_chrom,enhancer_start,enhancer_end,enhancer_name,promoter_chrom,promoter_start,promoter_end,"
        "promoter_name,label\nchr1,100,200,IMR90|chr1:100-200,chr1,5000,5400,IMR90|chr1:5000-5400,1\n",
    )
    with expect_error(full, 2, "cell line 'IMR90' in enhancer_name", "expected 'HUVEC'"):
        io.read_pairs(full, "targetfinder", "HUVEC")


@needs_data
def test_hiccups_and_arrowhead_slices(tmp_path):
    loops_src = DATA / "hic/GSE63525_IMR90_HiCCUPS_looplist.txt.gz"
    loops_path = head(loops_src, tmp_path / "GSE63525_IMR90_HiCCUPS_looplist.txt.gz", 50)
    with expect_error(loops_path, 2, "naming convention", "chrom_map: auto"):
        io.read_bedpe(loops_path, known_chroms=hg19_sizes())
    loops = io.read_bedpe(loops_path, known_chroms=hg19_sizes(), chrom_map="auto")
    assert len(loops) == 49 and list(loops.columns) == [
        "chrom1",
        "start1",
        "end1",
        "chrom2",
        "start2",
        "end2",
    ]
    assert tuple(loops.iloc[0]) == (
        "chr10",
        100000000,
        100010000,
        "chr10",
        100060000,
        100070000,
    )
    tads_src = DATA / "hic/GSE63525_IMR90_Arrowhead_domainlist.txt.gz"
    tads = io.read_tads(head(tads_src, tmp_path / "arrowhead.txt.gz", 30), chrom_map="auto")
    assert len(tads) == 29 and tuple(tads.iloc[0]) == ("chr1", 120740000, 121360000)


def hg19_sizes() -> dict[str, int]:
    return io.read_chrom_sizes(DATA / "hg19/chrom_sizes.tsv")


@needs_data
def test_tss_gff_and_bed_agree_with_bengi(tmp_path):
    gff = tmp_path / "tss.gff.gz"
    bed = tmp_path / "tss.bed.gz"
    with gzip.open(DATA / "hg19/gencode.v19.TSS.notlow.gff.gz", "rt") as fh:
        gff_lines = [line for line in fh if "ENST00000538492" in line or "ENST00000251588" in line]
    with gzip.open(DATA / "hg19/GENCODEv19-TSSs.bed.gz", "rt") as fh:
        bed_lines = [line for line in fh if "ENST00000538492" in line or "ENST00000251588" in line]
    with gzip.open(gff, "wt") as out:
        out.writelines(gff_lines)
    with gzip.open(bed, "wt") as out:
        out.writelines(bed_lines)
    # BENGI writes these TSSs as chr16:640076-640077 (+) and chr16:791001-791002 (-): 0-based 640076, 791001.
    for frame in (io.read_tss(gff), io.read_tss(bed)):
        assert frame.set_index("gene").tss.to_dict() == {
            "ENSG00000197562.5": 640076,
            "ENSG00000103245.9": 791001,
        }
        assert list(frame.strand) == ["+", "-"]


def test_tss_gtf_transcripts_and_strands(tmp_path):
    attrs = 'gene_id "G{0}"; gene_name "N{0}";'
    path = write(
        tmp_path / "genes.gtf",
        "#!genome-build test\n"
        f"chr1\tx\tgene\t101\t500\t.\t+\t.\t{attrs.format(1)}\n"
        f"chr1\tx\ttranscript\t101\t500\t.\t+\t.\t{attrs.format(1)}\n"
        f"chr1\tx\ttranscript\t601\t900\t.\t-\t.\t{attrs.format(2)}\n",
    )
    tss = io.read_tss(path)
    assert tss.values.tolist() == [["chr1", 100, "+", "G1"], ["chr1", 899, "-", "G2"]]
    with expect_error(path, 4, "strand '.'"):
        io.read_tss(write(path, path.read_text().replace("\t-\t", "\t.\t")))


def test_tss_gtf_start_zero_is_refused(tmp_path):
    """GTF/GFF is 1-based: a start of 0 (a 0-based coordinate written into a GTF) gave TSS base -1, which read_tss
    clipped to 0 silently. Refused, naming the file and line."""
    attrs = 'gene_id "G1"; gene_name "N1";'
    path = write(
        tmp_path / "genes.gtf",
        f"chr1\tx\ttranscript\t101\t500\t.\t+\t.\t{attrs}\nchr1\tx\ttranscript\t0\t400\t.\t+\t.\t{attrs}\n",
    )
    with expect_error(path, 2, "start 0 in column 4", "expected a 1-based start >= 1"):
        io.read_tss(path)
    gff = write(tmp_path / "tss.gff", "chr1\tx\tCapSite\t0\t0\t.\t-\t.\tgene_id G2\n")
    with expect_error(gff, 1, "start 0", "expected a 1-based start >= 1"):
        io.read_tss(gff)


def test_tss_past_the_chromosome_end_is_refused(tmp_path):
    """With chrom sizes, an annotation TSS past its chromosome's length (an annotation of another genome build) is
    an InputError naming the file, line, chromosome and its length; the last base of a chromosome is kept."""
    attrs = 'gene_id "G{0}";'
    gtf = write(
        tmp_path / "genes.gtf",
        f"chr1\tx\ttranscript\t9001\t10000\t.\t-\t.\t{attrs.format(1)}\n"
        f"chr2\tx\ttranscript\t5001\t5400\t.\t+\t.\t{attrs.format(2)}\n",
    )
    with expect_error(gtf, 2, "1-based TSS 5001 beyond chr2 length 5000", "expected coordinates of the configured"):
        io.read_tss(gtf, known_chroms=SIZES)
    assert len(io.read_tss(gtf)) == 2  # chromosome names alone cannot tell
    # BED (and `chrom_map: auto`): an interval's 5' base, a zero-length record's 1-based TSS; chr1's last base is kept
    bed = write(tmp_path / "tss.bed", "chr2\t4999\t5000\tT1\t0\t+\tG1\n1\t10000\t10000\tT2\t0\t-\tG2\n")
    assert io.read_tss(bed, known_chroms=SIZES, chrom_map="auto").tss.tolist() == [4999, 9999]
    write(bed, bed.read_text().replace("\t10000\t10000\t", "\t10001\t10001\t"))
    with expect_error(bed, 2, "1-based TSS 10001 beyond chr1 length 10000"):
        io.read_tss(bed, known_chroms=SIZES, chrom_map="auto")


def test_tss_bed_without_a_gene_name_is_refused(tmp_path):
    """A TSS BED whose name column is `.` (BED's "no name") or whose gene column is empty on a row would pool every
    unnamed TSS into one gene ('.' or ''), with one TSS and candidate pairs of its own: refused, naming the line."""
    path = write(tmp_path / "tss.bed", "chr1\t100\t101\tGATA1\t0\t+\nchr1\t900\t901\t.\t0\t-\n")
    with expect_error(path, 2, "gene name '.' in column 4 (expected a gene name or id on every TSS)"):
        io.read_tss(path)
    # a row short of the 7th column others have (files pasted together): its gene is empty
    write(path, "chr1\t100\t101\tT1\t0\t+\tG1\nchr1\t900\t901\tT2\t0\t-\n")
    with expect_error(path, 2, "gene name '' in column 7"):
        io.read_tss(path)
    assert io.read_tss(path, gene_column=4).gene.tolist() == ["T1", "T2"]


def test_bed_peaks_score_or_one(tmp_path):
    scored = io.read_peaks(write(tmp_path / "a.bed", "chr1\t0\t10\tp\t7\t+\nchr2\t5\t9\tq\t3\t-\n"), "bed")
    assert scored.signal.tolist() == [7.0, 3.0]
    plain = io.read_peaks(write(tmp_path / "b.bed", "track name=x\nchr1\t0\t10\n"), "bed")
    assert plain.signal.tolist() == [1.0]


# --- bad files ---------------------------------------------------------------------------------------------

GOOD = "chr1\t100\t200\t1.5\n"


@pytest.mark.parametrize(
    "text,line,words",
    [
        (
            "track type=bedGraph\n" + GOOD + "chr1\t300\t400\n",
            3,
            ["3 columns", "expected 4"],
        ),
        (GOOD + "chr1\t1x0\t200\t1\n", 2, ["start '1x0'", "non-negative integer"]),
        ("\n" + GOOD * 2 + "chr1\t500\t400\t1\n", 4, ["start 500 > end 400"]),
        (GOOD + "chr1\t100\t200\tabc\n", 2, ["signal 'abc'", "finite number"]),
        (GOOD + "chr1\t100\t200\t-3\n", 2, ["signal '-3'"]),
        (GOOD + "chr1\t100\t200\tNaN\n", 2, ["signal 'NaN'"]),
        (GOOD + "chr9\t100\t200\t1\n", 2, ["unknown chromosome 'chr9'"]),
        ("1\t100\t200\t1\n", 1, ["naming convention", "chrom_map: auto"]),
    ],
)
def test_bedgraph_errors_name_file_and_line(tmp_path, text, line, words):
    path = write(tmp_path / "bad.bedGraph", text)
    with expect_error(path, line, *words):
        io.read_peaks(path, "bedgraph", known_chroms=SIZES)


def test_naming_convention_mapping(tmp_path):
    path = write(tmp_path / "ensembl.bedGraph", "1\t100\t200\t1\nMT\t0\t5\t2\n")
    known = {"chr1", "chrM"}
    assert io.read_peaks(path, "bedgraph", known, chrom_map="auto").chrom.tolist() == [
        "chr1",
        "chrM",
    ]
    assert io.read_peaks(path, "bedgraph", known, {"1": "chr1", "MT": "chrM"}).chrom.tolist() == ["chr1", "chrM"]
    assert io.read_peaks(path, "bedgraph", None, "auto").chrom.tolist() == [
        "chr1",
        "chrM",
    ]
    with expect_error(path, 1, "naming convention"):
        io.read_peaks(path, "bedgraph")  # no reference: epiflow's own chr convention applies
    prefixed = write(tmp_path / "ucsc.bedGraph", "chr1\t100\t200\t1\n")
    assert io.read_peaks(prefixed, "bedgraph", {"1"}, "auto").chrom.tolist() == ["1"]


def test_empty_and_truncated_gzip(tmp_path):
    empty = write(tmp_path / "empty.narrowPeak", "")
    with expect_error(empty, None, "empty"):
        io.read_peaks(empty, "narrowpeak")
    full = gzip.compress(("chr1\t0\t10\tp\t0\t.\t1\t-1\t-1\t5\n" * 2000).encode())
    truncated = tmp_path / "cut.narrowPeak.gz"
    truncated.write_bytes(full[: len(full) // 2])
    with expect_error(truncated, None, "truncated gzip"):
        io.read_peaks(truncated, "narrowpeak")
    with expect_error(tmp_path / "missing.bed", None, "not found"):
        io.read_peaks(tmp_path / "missing.bed", "bed")


def test_pairs_errors_and_duplicates(tmp_path, caplog):
    row = "1\t5000\tchr1\t100\t200\te1\tchr1\t5000\t7000\tchr1:6000-6001|X|ENSG1|ENST1|+\n"
    path = write(
        tmp_path / "x.bengi.tsv",
        row + row + row.replace("\tchr1\t5000", "\tchr2\t5000"),
    )
    with expect_error(path, 3, "enhancer on chr1 but promoter on chr2"):
        io.read_pairs(path, "bengi", "X")
    path.write_text(row + row.replace("1\t5000", "0\t5000", 1))
    pairs = io.read_pairs(path, "bengi", "X")
    assert len(pairs) == 1 and pairs.label[0] == 1
    assert "1 repeated pair_ids dropped" in caplog.text and "1 with conflicting labels" in caplog.text
    path.write_text(row.replace("chr1:6000-6001|", "nowhere|"))
    with expect_error(path, 1, "p_name"):
        io.read_pairs(path, "bengi", "X")
    path.write_text(row.replace("1\t5000", "2\t5000", 1))
    with expect_error(path, 1, "label '2'"):
        io.read_pairs(path, "bengi", "X")


def test_utf8_byte_order_mark_is_not_part_of_the_first_field(tmp_path):
    """A sheet, pair file or gene list saved as "UTF-8" by Excel starts with a byte order mark: the first column's
    name (or the first gene) is read without it, not as a missing column or an unknown gene."""
    bom = "\ufeff"
    csv = write(
        tmp_path / "tf.csv", bom + "enhancer_name,promoter_name,label\nK562|chr1:100-200,K562|chr1:5000-5400,1\n"
    )
    assert io.read_pairs(csv, "targetfinder", "K562").loc[0, "enhancer_start"] == 100
    tsv = "chrom\tenhancer_start\tenhancer_end\tpromoter_start\tpromoter_end\tlabel\nchr1\t100\t200\t1000\t1200\t1\n"
    assert io.read_pairs(write(tmp_path / "p.tsv", bom + tsv), "pairs", "A").loc[0, "chrom"] == "chr1"
    sheet = io.read_table(write(tmp_path / "sheet.tsv", bom + "cell_line\tsource\nA\tx\n"), header=True)
    assert list(sheet.columns) == ["cell_line", "source"]
    assert read_gene_list(write(tmp_path / "genes.txt", bom + "GATA1\nTAL1\n")) == ["GATA1", "TAL1"]


def test_a_column_name_twice_in_a_header_is_refused(tmp_path):
    """Columns read by name (sheets, pair TSVs, CRISPRi screens) cannot be two: a screen joined with an annotation
    table that repeats `Regulated` raised a raw AttributeError ('DataFrame' object has no attribute 'str'), and a
    sheet's second `format` silently won over the first."""
    path = write(tmp_path / "sheet.tsv", "# tracks\ncell_line\tformat\tsource\tformat\nA\tbigwig\tx.bw\tbam\n")
    with expect_error(path, 2, "column 'format' appears twice in the header (columns 2 and 4"):
        io.read_table(path, header=True)
    assert io.read_table(path, header="infer").shape == (1, 4)  # positional (HiCCUPS, Arrowhead): names unused


def test_gene_list_of_one_name_per_line(tmp_path):
    """A gene list is one name per line: an expression table given instead (`gene<TAB>TPM`) would make every line
    an unknown gene, and an empty list would restrict candidates to no gene or score the expressed-TSS baseline 0
    everywhere; both stop, naming the file (and the line)."""
    genes = write(tmp_path / "genes.txt", "# expressed\n\n GATA1 \nTAL1\n")
    assert read_gene_list(genes) == ["GATA1", "TAL1"]
    table = write(tmp_path / "tpm.tsv", "# from RSEM\ngene\tTPM\nGATA1\t52.1\n")
    with expect_error(table, 2, "'gene\\tTPM' has 2 fields (expected one gene name per line)"):
        read_gene_list(table)
    for text in ("", "# no genes yet\n\n"):
        empty = write(tmp_path / "empty.txt", text)
        with expect_error(empty, None, "no gene names (expected one gene name per line)"):
            read_gene_list(empty)


def test_epiflow_pairs_roundtrip(tmp_path):
    pairs = pd.DataFrame(
        {
            "chrom": ["chr1", "chr2"],
            "enhancer_start": [100, 300],
            "enhancer_end": [200, 400],
            "promoter_start": [1000, 2000],
            "promoter_end": [1200, 2200],
            "label": [1, 0],
            "cell_line": ["A", "B"],
            "fold": [2, -1],
        }
    )
    path = tmp_path / "pairs.tsv"
    pairs.to_csv(path, sep="\t", index=False)
    read = io.read_pairs(path, "pairs", "A")
    assert len(read) == 1 and read.loc[0, "tss"] == 1100 and read.loc[0, "fold"] == 2
    assert read.loc[0, "pair_id"] == "chr1:100-200|1000-1200" and read.loc[0, "distance"] == 950
    pairs.drop(columns="label").to_csv(path, sep="\t", index=False)
    with expect_error(path, 1, "missing columns label"):
        io.read_pairs(path, "pairs", "A")
    path.write_text("# made by hand\n" + path.read_text())  # the header's own line is named
    with expect_error(path, 2, "missing columns label"):
        io.read_pairs(path, "pairs", "A")
    csv = write(tmp_path / "tf.csv", "# TargetFinder\nenhancer,promoter_name,label\nK562|chr1:1-2,K562|chr1:5-9,1\n")
    with expect_error(csv, 2, "TargetFinder header needs"):
        io.read_pairs(csv, "targetfinder", "K562")


# --- bigWig writers ----------------------------------------------------------------------------------------


def test_intervals_to_bigwig_resolves_overlaps_by_max(tmp_path):
    df = pd.DataFrame(
        {
            "chrom": ["chr2", "chr1", "chr1", "chr1", "chr1"],
            "start": [0, 100, 150, 120, 9_990],
            "end": [
                50,
                200,
                300,
                130,
                10_050,
            ],  # last one runs past chr1's end: clipped
            "signal": [4.0, 1.0, 2.0, 5.0, 3.0],
        }
    )
    out = io.intervals_to_bigwig(df, SIZES, tmp_path / "x.bw")
    bw = pyBigWig.open(str(out))
    assert list(bw.chroms().items()) == list(SIZES.items())
    assert bw.intervals("chr1") == (
        (100, 120, 1.0),
        (120, 130, 5.0),
        (130, 150, 1.0),
        (150, 300, 2.0),
        (9990, 10000, 3.0),
    )
    assert bw.intervals("chr2") == ((0, 50, 4.0),)
    expected = np.full(400, np.nan)
    for start, end, value in [(100, 200, 1.0), (150, 300, 2.0), (120, 130, 5.0)]:
        expected[start:end] = np.fmax(expected[start:end], value)
    np.testing.assert_array_equal(bw.values("chr1", 0, 400, numpy=True), expected)
    with pytest.raises(InputError, match="'chr7'"):
        io.intervals_to_bigwig(df.assign(chrom="chr7"), SIZES, tmp_path / "y.bw")
    assert not (tmp_path / "y.bw").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["x.bw"]


def test_max_over_overlaps_random_matches_brute_force():
    rng = np.random.default_rng(0)
    starts = rng.integers(0, 900, 300)
    ends = starts + rng.integers(0, 100, 300)
    signal = rng.integers(0, 5, 300).astype(float)
    expected = np.full(1000, -np.inf)
    for s, e, v in zip(starts, ends, signal, strict=False):
        expected[s:e] = np.maximum(expected[s:e], v)
    got = np.full(1000, -np.inf)
    for s, e, v in zip(*io.max_over_overlaps(starts, ends, signal), strict=False):
        got[s:e] = v
    np.testing.assert_array_equal(got, expected)


def make_bam(path: Path, reads: list[tuple[str, int, int]]) -> Path:
    """Write (chrom, 0-based start, flag) reads of 20 bp into a coordinate-sorted, indexed BAM."""
    header = {
        "HD": {"VN": "1.6"},
        "SQ": [{"SN": "chr1", "LN": 10_000}, {"SN": "chrUn", "LN": 500}],
    }
    unsorted = path.with_suffix(".unsorted.bam")
    with pysam.AlignmentFile(str(unsorted), "wb", header=header) as bam:
        for k, (chrom, start, flag) in enumerate(reads):
            read = pysam.AlignedSegment(bam.header)
            read.query_name, read.flag, read.reference_name = f"r{k}", flag, chrom
            read.reference_start, read.mapping_quality, read.cigarstring = (
                start,
                60,
                "20M",
            )
            read.query_sequence, read.query_qualities = (
                "A" * 20,
                pysam.qualitystring_to_array("I" * 20),
            )
            bam.write(read)
    pysam.sort("-o", str(path), str(unsorted))
    pysam.index(str(path))
    return path


def test_bam_to_bigwig(tmp_path):
    # (chrom, start, flag): flag 16 = reverse strand (counted), 1024 = duplicate and 256 = secondary (skipped);
    # chrUn is not in the chrom sizes (skipped).
    reads = [("chr1", 0, 0), ("chr1", 10, 16), ("chr1", 40, 0), ("chr1", 120, 0)]
    reads += [("chr1", 120, 1024), ("chr1", 300, 256), ("chr1", 9_990, 0)]
    reads += [("chrUn", 5, 0)]
    bam = make_bam(tmp_path / "reads.bam", reads)
    out = io.bam_to_bigwig(bam, SIZES, tmp_path / "reads.bw", bin_size=50)
    bw = pyBigWig.open(str(out))
    # midpoints 10, 20, 50, 130 (10000 is past chr1's end): bins 0 (2 reads), 50 (1), 100 (1), merged when equal
    assert bw.intervals("chr1") == ((0, 50, 2.0), (50, 150, 1.0))
    assert bw.stats("chr1", 0, 10_000, type="sum", exact=True) == [2 * 50 + 100]
    small_chunks = io.bam_to_bigwig(bam, SIZES, tmp_path / "chunked.bw", bin_size=50, chunk=2)
    assert pyBigWig.open(str(small_chunks)).intervals("chr1") == bw.intervals("chr1")
    assert bw.intervals("chr2") is None and list(bw.chroms()) == ["chr1", "chr2"]
    with pytest.raises(InputError, match="no chromosome"):
        io.track_to_bigwig(bam, "bam", {"chrZ": 100}, tmp_path / "z.bw")
    # aligned to another assembly (chr1 of another length): its reads would land at the wrong places
    with expect_error(bam, None, "'chr1' is 10000 bp in the BAM header but chr1 is 12000 bp", "different assembly"):
        io.track_to_bigwig(bam, "bam", {**SIZES, "chr1": 12_000}, tmp_path / "other.bw")
    assert not (tmp_path / "other.bw").exists()


def test_track_to_bigwig_from_peaks(tmp_path):
    peaks = write(tmp_path / "p.narrowPeak", "1\t10\t20\tp\t0\t.\t3.5\t-1\t-1\t5\n")
    out = io.track_to_bigwig(peaks, "narrowpeak", SIZES, tmp_path / "out" / "p.bw", chrom_map="auto")
    assert pyBigWig.open(str(out)).intervals("chr1") == ((10, 20, 3.5),)
    with pytest.raises(InputError, match="unknown track format"):
        io.track_to_bigwig(peaks, "wig", SIZES, tmp_path / "q.bw")


@needs_data
def test_track_to_bigwig_real_fixture(tmp_path):
    source = DATA / "fixtures" / "test.bw"
    original = pyBigWig.open(str(source))
    header = original.chroms()  # {'1': ..., '10': ...}
    copied = io.track_to_bigwig(source, "bigwig", header, tmp_path / "copy.bw")
    assert copied.read_bytes() == source.read_bytes()
    prefixed = {f"chr{name}": size for name, size in header.items()}
    with pytest.raises(InputError, match="chrom_map: auto"):
        io.track_to_bigwig(source, "bigwig", prefixed, tmp_path / "renamed.bw")
    renamed = pyBigWig.open(str(io.track_to_bigwig(source, "bigwig", prefixed, tmp_path / "renamed.bw", "auto")))
    assert renamed.chroms() == prefixed
    for name in header:
        assert renamed.intervals(f"chr{name}") == original.intervals(name)
    wrong = {**prefixed, "chr1": prefixed["chr1"] + 1}
    with pytest.raises(InputError, match="different assembly"):
        io.track_to_bigwig(source, "bigwig", wrong, tmp_path / "wrong.bw", "auto")
    assert not (tmp_path / "wrong.bw").exists()


@pytest.mark.parametrize("kept", [0.9, 0.99])
def test_truncated_bigwig_is_an_input_error(tmp_path, kept):
    """A bigWig cut short (a download stopped early) whose header still reads: libBigWig's RuntimeError on the
    missing blocks becomes an InputError naming the file, and no output is written (copy or rewrite alike)."""
    sizes = {"chr1": 300_000, "chr2": 200_000}
    whole = tmp_path / "whole.bw"
    bw = pyBigWig.open(str(whole), "w")
    bw.addHeader(list(sizes.items()))
    rng = np.random.default_rng(0)
    for chrom, size in sizes.items():
        bw.addEntries(chrom, 0, values=rng.random(size // 50).tolist(), span=50, step=50)
    bw.close()
    cut = tmp_path / "cut.bw"
    data = whole.read_bytes()
    cut.write_bytes(data[: int(len(data) * kept)])
    for reference in (sizes, dict(reversed(sizes.items()))):  # same header (copied) or another order (rewritten)
        with expect_error(cut, None, "corrupt or truncated bigWig", "fetch the file again"):
            io.track_to_bigwig(cut, "bigwig", reference, tmp_path / "out.bw")
        assert not (tmp_path / "out.bw").exists()
        assert not list(tmp_path.glob("*.part"))
