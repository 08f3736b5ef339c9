"""epiflow.liftover: every drop reason on a hand-written chain, and real hg19 <-> hg38 lifts against coordinates
that the ENCODE CRISPRi files state in both builds."""

import numpy as np
import pandas as pd
import pytest

from epiflow import liftover
from epiflow.errors import InputError

# liftOver chain format: "chain score tName tSize tStrand tStart tEnd qName qSize qStrand qStart qEnd id", then
# "size dt dq" per block (dt/dq: gap after it on source/target) and the last block's size.
CHAIN = """\
chain 1000 chrA 100000 + 0 50000 chrA 100000 + 0 54000 1
10000 0 5000
10000 1000 0
29000

chain 900 chrA 100000 + 60000 70000 chrB 10000 + 0 10000 2
10000

chain 800 chrA 100000 + 70000 80000 chrA 100000 - 0 10000 3
10000

chain 700 chrA 100000 + 30000 31000 chrA 100000 + 90000 91000 4
1000
"""


@pytest.fixture(scope="module")
def toy_chain(tmp_path_factory):
    path = tmp_path_factory.mktemp("chain") / "toy.over.chain"
    path.write_text(CHAIN)
    return liftover.load_chain(path)


def intervals(rows):
    return pd.DataFrame(rows, columns=["chrom", "start", "end", "tag"], index=np.arange(len(rows)) * 10)


def test_each_drop_reason_is_counted_and_kept_rows_move(toy_chain):
    frame = intervals(
        [
            ("chrA", 100, 200, "same place"),
            ("chrA", 12000, 12500, "after a 5 kb target insertion"),
            ("chrA", 9000, 16000, "spans the insertion: +5 kb"),
            ("chrA", 20500, 20600, "in a source-only gap"),
            ("chrZ", 10, 20, "chromosome not in the chain"),
            ("chrA", 30500, 30600, "two chains"),
            ("chrA", 65000, 65100, "onto chrB"),
            ("chrA", 69000, 71000, "ends on two chromosomes"),
            ("chrA", 49000, 75000, "ends on opposite strands"),
            ("chrA", 72000, 72100, "minus-strand chain"),
        ]
    )
    lifted, counts = liftover.lift_intervals(frame, toy_chain)
    assert counts == {
        "unmapped": 2,
        "multiple": 1,
        "other_chrom": 2,
        "inverted": 1,
        "length_change": 1,
        "lifted": 3,
    }
    assert list(lifted.index) == [0, 10, 90]  # original index kept
    assert lifted[["start", "end"]].values.tolist() == [[100, 200], [17000, 17500], [97900, 98000]]
    assert list(lifted.tag) == ["same place", "after a 5 kb target insertion", "minus-strand chain"]


def test_length_bounds_are_parameters(toy_chain):
    frame = intervals([("chrA", 9000, 16000, "spans the insertion")])
    _, strict = liftover.lift_intervals(frame, toy_chain)
    lifted, loose = liftover.lift_intervals(frame, toy_chain, max_length_change=10_000, max_length_ratio=3)
    assert strict["length_change"] == 1 and loose["lifted"] == 1
    assert lifted[["start", "end"]].values.tolist() == [[9000, 21000]]


def test_points_lift_and_missing_sentinel_is_kept(toy_chain):
    frame = pd.DataFrame({"chrom": ["chrA", "chrA", "chrA", "chrA"], "tss": [15000, 20500, -1, 65000]})
    lifted, counts = liftover.lift_points(frame, toy_chain, missing=-1)
    assert lifted.tss.tolist() == [20000, -1]
    assert list(lifted.index) == [0, 2]
    assert counts["unmapped"] == 1 and counts["other_chrom"] == 1 and counts["lifted"] == 1


def test_empty_frame_and_bad_chain(tmp_path, toy_chain):
    lifted, counts = liftover.lift_intervals(intervals([]), toy_chain)
    assert lifted.empty and counts["lifted"] == 0
    with pytest.raises(InputError, match="not found"):
        liftover.load_chain(tmp_path / "missing.chain.gz")


def test_a_cut_or_malformed_chain_file_is_refused_naming_the_line(tmp_path):
    def load(text, name="cut.over.chain"):
        path = tmp_path / name
        path.write_text(text)
        return liftover.load_chain(path)

    lines = CHAIN.splitlines(keepends=True)
    # cut after a `size dt dq` line: the first chain's blocks cover 21000 / 25000 of its 50000 / 54000 bases
    with pytest.raises(
        InputError,
        match=r"cut\.over\.chain line 1: the chain starting here covers 21000 / 25000 .*"
        r"up to line 3 \(expected .* tEnd - tStart = 50000 and qEnd - qStart = 54000",
    ):
        load("".join(lines[:3]))
    # the last block's size altered: the sums no longer match the header
    with pytest.raises(InputError, match=r"line 6: the chain starting here covers 9000 / 9000 .* up to line 8"):
        load(CHAIN.replace("chrB 10000 + 0 10000 2\n10000\n", "chrB 10000 + 0 10000 2\n9000\n"))
    # cut inside a line
    with pytest.raises(InputError, match=r"line 3: '10000 10' \(expected `size dt dq`, or `size` alone"):
        load("".join(lines[:2]) + "10000 10")
    with pytest.raises(InputError, match=r"line 6: a chain header of 8 fields \(expected `chain score tName"):
        load("".join(lines[:5]) + "chain 900 chrA 100000 + 60000 70000 chrB\n")
    with pytest.raises(InputError, match=r"line 1: a chain header of 13 fields \(expected"):  # not an ASCII digit
        load(CHAIN.replace("chrA 100000 + 0 50000", "chrA 100000 + 0 5000\u00b2", 1))
    with pytest.raises(InputError, match=r"line 5: '1' after the last block of a chain"):
        load("".join(lines[:4]) + "1\n")
    with pytest.raises(InputError, match=r"line 2: '<html><body>404 Not Found</body></html>' before any chain"):
        load("\n<html><body>404 Not Found</body></html>\n")
    # a gzip download cut short
    import gzip

    whole = gzip.compress(CHAIN.encode())
    cut = tmp_path / "cut.over.chain.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(InputError, match=r"cut\.over\.chain\.gz: cannot read as a UCSC chain file"):
        liftover.load_chain(cut)
    # the whole file, as gzip, loads
    (tmp_path / "whole.over.chain.gz").write_bytes(whole)
    assert liftover.load_chain(tmp_path / "whole.over.chain.gz").convert_coordinate("chrA", 60005) == [
        ("chrB", 5, "+", 900)
    ]
    # gzip or plain is told by content, as the check reads it, not by the name
    (tmp_path / "gzip.over.chain").write_bytes(whole)
    (tmp_path / "plain.over.chain.gz").write_text(CHAIN)
    for misnamed in ("gzip.over.chain", "plain.over.chain.gz"):
        assert liftover.load_chain(tmp_path / misnamed).convert_coordinate("chrA", 60005) == [("chrB", 5, "+", 900)]


# ---- real chains ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chains(shared_data):
    folder = shared_data / "liftover"
    return {
        "hg38ToHg19": liftover.load_chain(folder / "hg38ToHg19.over.chain.gz"),
        "hg19ToHg38": liftover.load_chain(folder / "hg19ToHg38.over.chain.gz"),
    }


@pytest.fixture(scope="module")
def elements(shared_data):
    """ENCODE K562 elements in GRCh38 with the hg19 coordinates their `name` states (Nasser 2021 and Gasperini
    2019 rows: their names carry the original hg19 element; Schraivogel's names do not)."""
    screen = pd.read_csv(shared_data / "crispr" / "EPCrisprBenchmark_K562_odd_chroms.GRCh38.tsv.gz", sep="\t")
    screen = screen[screen.Dataset.isin(["Nasser2021", "Gasperini2019"])].iloc[::10]
    hg19 = screen["name"].str.extract(r"\|(chr\w+):(\d+)-(\d+)")
    return pd.DataFrame(
        {
            "chrom": screen.chrom,
            "start": screen.chromStart,
            "end": screen.chromEnd,
            "chrom19": hg19[0],
            "start19": hg19[1].astype(int),
            "end19": hg19[2].astype(int),
        }
    )


def test_hg38_to_hg19_gives_the_stated_hg19_coordinates_and_back(chains, elements):
    lifted, counts = liftover.lift_intervals(elements, chains["hg38ToHg19"])
    assert counts["lifted"] == len(elements) > 400
    assert (lifted.chrom == lifted.chrom19).all()
    assert (lifted.start == lifted.start19).all() and (lifted.end == lifted.end19).all()
    back, counts = liftover.lift_intervals(lifted, chains["hg19ToHg38"])
    assert counts["lifted"] == len(elements)
    assert back[["chrom", "start", "end"]].equals(elements[["chrom", "start", "end"]])


def test_a_chain_of_the_other_direction_is_refused(shared_data, tmp_path):
    """liftover.hg38ToHg19 given the hg19ToHg38 file lifts every GRCh38 screen element as if it were hg19: they all
    'lift', ~170 kb off on chr1. The chain's header lengths name its builds: checked against the reference's chrom
    sizes (the build lifted to for screens, from for predict.also_build), the swap is an InputError naming the line."""
    hg19 = dict(line.split("\t") for line in (shared_data / "hg19" / "chrom_sizes.tsv").read_text().split("\n") if line)
    folder = shared_data / "liftover"
    liftover.load_chain(folder / "hg38ToHg19.over.chain.gz", to_sizes=hg19)  # the right chains load
    liftover.load_chain(folder / "hg19ToHg38.over.chain.gz", from_sizes=hg19)
    with pytest.raises(
        InputError,
        match=r"hg19ToHg38\.over\.chain\.gz line \d+: chr\w+ is \d+ bp here \(qSize\) but \d+ bp in the reference's "
        r"chrom sizes \(expected a chain to the reference build: is it the chain of the other direction",
    ):
        liftover.load_chain(folder / "hg19ToHg38.over.chain.gz", to_sizes=hg19)
    with pytest.raises(InputError, match=r"hg38ToHg19\.over\.chain\.gz line \d+: chr\w+ is \d+ bp here \(tSize\)"):
        liftover.load_chain(folder / "hg38ToHg19.over.chain.gz", from_sizes=hg19)
    # mitochondria differ between hg19 (UCSC chrM) and the rCRS and are not compared; nor are absent chromosomes
    (tmp_path / "toy.over.chain").write_text(CHAIN)
    liftover.load_chain(tmp_path / "toy.over.chain", from_sizes={"chrA": 100000, "chrM": 1}, to_sizes={"chrZ": 5})
    with pytest.raises(InputError, match=r"toy\.over\.chain line 6: chrB is 10000 bp here \(qSize\) but 9999 bp"):
        liftover.load_chain(tmp_path / "toy.over.chain", to_sizes={"chrB": 9999})


def test_known_gaps_are_unmapped(chains):
    # hg38 chr1:0-10000 is the telomere's N run; chr1:125 Mb lies in the centromere
    frame = pd.DataFrame({"chrom": ["chr1", "chr1", "chr1"], "start": [1000, 125_000_000, 1_000_000]})
    frame["end"] = frame.start + 500
    lifted, counts = liftover.lift_intervals(frame, chains["hg38ToHg19"])
    assert counts["unmapped"] == 2 and list(lifted.index) == [2]
    points, counts = liftover.lift_points(frame.rename(columns={"start": "tss"}), chains["hg38ToHg19"])
    assert counts["unmapped"] == 2 and len(points) == 1
