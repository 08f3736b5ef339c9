"""The bad-input matrix: each case breaks one input of a copy of the demo and checks that the run fails, that the
message names the file, the line/row and what was expected, and that no output of the failed job (or of anything
downstream) is left behind as if complete.

Sheet and config problems fail at parse time (`snakemake -n`, no data needed). Content problems need the simulated
demo: a module fixture simulates it and builds the reference once; each test works on its own copy and targets
`results/features/lineA.npz`, so the first affected job (pairs_extract / tracks_bigwig / download_source) runs
and features_compute must never start.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import shutil
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pyBigWig
import pytest

from conftest import copy_workflow, run_snakemake
from epiflow.models import PairData
from epiflow.train import run_heldout

SHEETS = Path("config/demo")
# every case runs snakemake at least once (~5-10 s each on 2 shared cores)
pytestmark = pytest.mark.slow
TARGET = "results/features/lineA.npz"
# what must not exist after a failed run: the target and everything that depends on the failed job
DOWNSTREAM = ["results/features", "results/scores", "results/predictions", "results/metrics"]


def failed_run(workdir: Path, *args: str) -> str:
    """Run snakemake expecting failure; returns console output plus every job log (where scripts write errors)."""
    proc = run_snakemake(workdir, *args, check=False, timeout=600)
    assert proc.returncode != 0, f"expected a failure:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    logs = [p.read_text(errors="replace") for p in sorted((workdir / "logs").rglob("*.log"))]
    return "\n".join([proc.stdout, proc.stderr, *logs])


def message(text: str, pattern: str) -> str:
    """The first output line matching `pattern` (a regex); fails the test when there is none."""
    for line in text.splitlines():
        if re.search(pattern, line):
            print(f"MESSAGE: {line.strip()}")  # collected for the report's matrix (pytest -rA)
            return line
    raise AssertionError(f"no line matches {pattern!r} in:\n{text[-5000:]}")


def assert_nothing_complete(workdir: Path, *outputs: str) -> None:
    """The failed job's outputs, the target and everything downstream are absent; no temporary file is left."""
    for path in [*outputs, TARGET, *DOWNSTREAM]:
        assert not (workdir / path).exists(), f"{path} left behind by a failed run"
    for folder in ("results", "resources"):
        leftovers = list((workdir / folder).rglob("*.part")) if (workdir / folder).exists() else []
        assert not leftovers, leftovers


def write_sheet(workdir: Path, name: str, header: list[str], rows: list[list[str]]) -> str:
    path = SHEETS / name
    lines = ["\t".join(header), *("\t".join(r) for r in rows)]
    (workdir / path).write_text("\n".join(lines) + "\n")
    return str(path)


def read_sheet(workdir: Path, name: str) -> tuple[list[str], list[list[str]]]:
    lines = (workdir / SHEETS / name).read_text().splitlines()
    return lines[0].split("\t"), [line.split("\t") for line in lines[1:]]


def pairs_sheet_with(workdir: Path, source: str, fmt: str) -> str:
    """The demo pairs sheet with lineA's row replaced by `source` (relative to the sheet) in `fmt`."""
    header, rows = read_sheet(workdir, "pairs.tsv")
    rows = [[r[0], source, fmt] if r[0] == "lineA" else r for r in rows]
    return "pairs=" + write_sheet(workdir, "bad_pairs.tsv", header, rows)


def tracks_sheet_with(workdir: Path, mark: str, source: str, fmt: str, sha256: str = "") -> str:
    """The demo tracks sheet (with a sha256 column) with lineA's `mark` replaced."""
    header, rows = read_sheet(workdir, "tracks.tsv")
    rows = [[*r, sha256] if r[:2] == ["lineA", mark] else [*r, ""] for r in rows]
    rows = [[r[0], r[1], source, fmt, r[4]] if r[:2] == ["lineA", mark] else r for r in rows]
    return "tracks=" + write_sheet(workdir, "bad_tracks.tsv", [*header, "sha256"], rows)


# ---- fixtures
@pytest.fixture
def plain(tmp_path) -> Path:
    """A copy of the workflow without data: enough for parse-time checks."""
    return copy_workflow(tmp_path / "wf")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """The demo simulated and its reference built, once per module."""
    workdir = copy_workflow(tmp_path_factory.mktemp("bad_inputs_base"))
    run_snakemake(workdir, "results/reference/tss.tsv.gz", "results/reference/chrom_sizes.tsv")
    return workdir


@pytest.fixture
def demo(prepared, tmp_path) -> Path:
    """A private copy of the prepared demo (mtimes kept, so nothing upstream reruns)."""
    return Path(shutil.copytree(prepared, tmp_path / "wf", symlinks=True))


# ---- sheets and config (parse time: no job starts)
def test_sheet_missing_column(plain):
    header, rows = read_sheet(plain, "pairs.tsv")
    sheet = write_sheet(plain, "bad_pairs.tsv", header[:2], [r[:2] for r in rows])
    text = failed_run(plain, "-n", "--config", f"pairs={sheet}")
    message(text, r"config/demo/bad_pairs\.tsv line 1: missing column 'format' .*expected")


def test_sheet_lines_count_comments_and_blank_lines(plain):
    """Sheet messages name the file's own lines: comment and blank lines are counted (config/bengi/tracks.tsv
    opens with three comment lines)."""
    header, rows = read_sheet(plain, "pairs.tsv")
    rows[1][2] = "hic"
    lines = [
        "# a sheet of one's own",
        "# cell_line  source  format",
        "\t".join(header),
        rows[0],
        "",
        rows[1],
        *rows[2:],
    ]
    (plain / SHEETS / "commented.tsv").write_text("\n".join(r if isinstance(r, str) else "\t".join(r) for r in lines))
    text = failed_run(plain, "-n", "--config", f"pairs={SHEETS / 'commented.tsv'}")
    message(text, r"commented\.tsv line 6: column format: 'hic' is not one of")
    (plain / SHEETS / "commented.tsv").write_text("# two\n# comments\ncell_line\tsource\nlineA\tx.tsv\n")
    text = failed_run(plain, "-n", "--config", f"pairs={SHEETS / 'commented.tsv'}")
    message(text, r"commented\.tsv line 3: missing column 'format'")
    short = ["#", "\t".join(header), "\t".join(rows[0][:2])]  # a row short of the header's fields
    (plain / SHEETS / "commented.tsv").write_text("\n".join(short) + "\n")
    text = failed_run(plain, "-n", "--config", f"pairs={SHEETS / 'commented.tsv'}")
    message(text, r"commented\.tsv line 3: 2 columns \(expected 3, separated by")


def test_local_config_files_not_found(plain):
    """Config keys naming a local file (not a sheet row) stop before any job when it is missing, each with its key:
    crispr_options.expressed_genes (an input of crispr_benchmark), predict.candidates.genes, a crispr_predictors
    source."""
    text = failed_run(plain, "-n", "--config", "crispr_options={expressed_genes: nowhere.txt}")
    message(text, r"crispr_options\.expressed_genes: nowhere\.txt not found \(expected a file, one gene per line\)")
    text = failed_run(plain, "-n", "--config", "predict={candidates: {genes: no_genes.txt}}")
    message(text, r"predict\.candidates\.genes: no_genes\.txt not found \(expected a file\)")
    predictor = "{name: ABC, cell_line: lineE, source: no_abc.tsv.gz, build: sim, score_column: ABC.Score}"
    text = failed_run(plain, "-n", "--config", f"crispr_predictors=[{predictor}]")
    message(text, r"crispr_predictors\[0\] \(ABC\): source no_abc\.tsv\.gz not found \(expected an ABC")
    # with no screen of its line (`crispr=` is null on the command line; or a predictor of a line no screen is of),
    # no job reads it: the plan is made
    other = predictor.replace("lineE", "lineA")
    for config in ([f"crispr_predictors=[{predictor}]", "crispr="], [f"crispr_predictors=[{other}]"]):
        run_snakemake(plain, "-n", "--config", *config, timeout=600)


def test_sheet_duplicate_cell_line_and_mark(plain):
    header, rows = read_sheet(plain, "tracks.tsv")
    sheet = write_sheet(plain, "bad_tracks.tsv", header, [*rows, rows[2]])
    text = failed_run(plain, "-n", "--config", f"tracks={sheet}")
    line = len(rows) + 2  # the appended copy of the third row
    message(text, rf"bad_tracks\.tsv line {line}: duplicate cell_line x mark \('lineA', 'CTCF'\), already on line 4")


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        (2, "hic", r"column format: 'hic' is not one of \['bengi', 'targetfinder'"),
        # `+` joins training lines in results/final/ paths, so a line name may not contain it
        (0, "lineB+X", r"column cell_line: 'lineB\+X' does not match"),
    ],
)
def test_sheet_bad_value(plain, column, value, expected):
    header, rows = read_sheet(plain, "pairs.tsv")
    rows[1][column] = value
    sheet = write_sheet(plain, "bad_pairs.tsv", header, rows)
    text = failed_run(plain, "-n", "--config", f"pairs={sheet}")
    message(text, r"bad_pairs\.tsv line 3: " + expected)


def test_source_not_found(plain):
    header, rows = read_sheet(plain, "pairs.tsv")
    rows[1][1] = "../../data/lineB_loops.bedpe"
    sheet = write_sheet(plain, "bad_pairs.tsv", header, rows)
    text = failed_run(plain, "-n", "--config", f"pairs={sheet}")
    message(text, r"bad_pairs\.tsv line 3: source '\.\./\.\./data/lineB_loops\.bedpe' not found \(resolved to data/")


def test_checksum_mismatch_local_source(plain):
    (plain / SHEETS / "lineA_CTCF.bedgraph").write_text("chr1\t0\t1000\t1.0\n")
    wrong = hashlib.sha256(b"another file").hexdigest()
    tracks = tracks_sheet_with(plain, "CTCF", "lineA_CTCF.bedgraph", "bedgraph", sha256=wrong)
    text = failed_run(plain, "-n", "--config", tracks)
    message(text, rf"bad_tracks\.tsv line 4: checksum mismatch for .*lineA_CTCF\.bedgraph: .*expected {wrong}")


def test_test_line_listed_in_train(plain):
    protocol = "protocol={train: [lineA, lineB, lineC], test: [lineA], chrom_folds: [[chr1, chr2], [chr3, chr4]]}"
    text = failed_run(plain, "-n", "--config", protocol)
    message(text, r"config/config\.yaml: protocol: test cell line\(s\) \['lineA'\] also listed in train")


def test_threshold_reweighted_to_the_heldout_estimate_without_label_shift_apply(plain):
    text = failed_run(plain, "-n", "--config", "calibration={threshold_reweight: always}")
    message(text, r"config/config\.yaml: calibration\.threshold_reweight: always re-weights .* held-out rows' own")


@pytest.mark.parametrize("key", ["calibration", "predict"])
def test_recall_rule_without_a_target(plain, key):
    (plain / "config/no_target.yaml").write_text(f"{key}: {{threshold: {{rule: recall, target: null}}}}\n")
    text = failed_run(plain, "-n", "--configfile", "config/config.yaml", "config/no_target.yaml")
    message(
        text,
        rf"no_target\.yaml: {key}\.threshold: threshold rule .recall.: target None \(expected a number in \(0, 1\]\)",
    )


def test_marks_missing_for_one_cell_line(plain):
    header, rows = read_sheet(plain, "tracks.tsv")
    rows = [r for r in rows if r[:2] != ["lineB", "H2AZ"]]
    sheet = write_sheet(plain, "bad_tracks.tsv", header, rows)
    text = failed_run(plain, "-n", "--config", f"tracks={sheet}")
    message(text, r"marks: mark\(s\) \['H2AZ'\] missing for cell line 'lineB' in config/demo/bad_tracks\.tsv")


def test_fold_with_unknown_chromosome_local_chrom_sizes(plain):
    (plain / SHEETS / "sizes.tsv").write_text("".join(f"chr{i}\t3000000\n" for i in range(1, 5)))
    (plain / "config/local_sizes.yaml").write_text(
        "reference: {fasta: null, annotation: resources/demo/annotation.gtf.gz, chrom_sizes: config/demo/sizes.tsv}\n"
        "protocol: {test: [lineA], chrom_folds: [[chr1, chr2], [chr3, chr9]]}\n"
    )
    text = failed_run(plain, "-n", "--configfile", "config/local_sizes.yaml")
    message(text, r"protocol\.chrom_folds: fold 2 names chromosome\(s\) \['chr9'\] not in config/demo/sizes\.tsv")


@pytest.mark.parametrize(("name", "compress"), [("sizes.tsv", True), ("sizes.tsv.gz", False)])
def test_local_chrom_sizes_gzip_or_plain_whatever_the_name(plain, name, compress):
    """Parse time reads a local reference.chrom_sizes by content, as reference_chrom_sizes does: a gzip file not
    named .gz (and a plain one named .gz) gave a raw UnicodeDecodeError (BadGzipFile) traceback before any check."""
    text = "".join(f"chr{i}\t3000000\n" for i in range(1, 5)).encode()
    (plain / SHEETS / name).write_bytes(gzip.compress(text) if compress else text)
    (plain / "config/local_sizes.yaml").write_text(
        f"reference: {{fasta: null, annotation: resources/demo/annotation.gtf.gz, chrom_sizes: config/demo/{name}}}\n"
        "protocol: {test: [lineA], chrom_folds: [[chr1, chr2], [chr3, chr9]]}\n"
    )
    text = failed_run(plain, "-n", "--configfile", "config/local_sizes.yaml")
    message(
        text, rf"protocol\.chrom_folds: fold 2 names chromosome\(s\) \['chr9'\] not in config/demo/{re.escape(name)}"
    )
    (plain / SHEETS / name).write_text("chr1 3000000\n")  # spaces, not a tab: the reader's own message
    text = failed_run(plain, "-n", "--configfile", "config/local_sizes.yaml")
    message(text, rf"reference\.chrom_sizes: config/demo/{re.escape(name)} line 1: 1 columns \(expected at least 2")


# ---- file contents (a job runs and must fail)


def test_fold_with_unknown_chromosome(demo):
    text = failed_run(demo, TARGET, "--config", "protocol={test: [lineA], chrom_folds: [[chr1, chr2], [chr3, chr9]]}")
    message(text, r"protocol\.chrom_folds fold 2: chromosome\(s\) \['chr9'\] not in the genome's chrom sizes")
    assert_nothing_complete(demo, "results/pairs/lineA.tsv.gz")


def test_checksum_mismatch_url(demo):
    served = demo / "served"
    served.mkdir()
    shutil.copy(demo / "resources/demo/lineA/CTCF.bw", served / "CTCF.bw")
    handler = partial(SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/CTCF.bw"
        wrong = "0" * 64
        text = failed_run(demo, TARGET, "--config", tracks_sheet_with(demo, "CTCF", url, "bigwig", sha256=wrong))
    finally:
        httpd.shutdown()
        httpd.server_close()
    message(text, rf"{re.escape(url)}: checksum mismatch: expected sha256 {wrong}, got [0-9a-f]{{64}}")
    cached = list((demo / "resources/cache").rglob("CTCF.bw*"))
    assert not cached, cached
    assert_nothing_complete(demo, "results/tracks/lineA/CTCF.bw")


def test_truncated_gzip(demo):
    peaks = demo / "resources/demo/lineA/H3K27ac.narrowPeak.gz"
    data = peaks.read_bytes()
    peaks.write_bytes(data[: len(data) // 2])
    text = failed_run(demo, TARGET)
    message(text, r"lineA/H3K27ac\.narrowPeak\.gz line \d+: corrupt or truncated gzip file .*expected a complete gzip")
    assert_nothing_complete(demo, "results/tracks/lineA/H3K27ac.bw", "results/pairs/lineA.tsv.gz")


def test_bigwig_lacks_a_fold_chromosome(demo):
    """A track without chr2 (real tracks may lack chrY, but not a chromosome pairs are tested on)."""
    path = demo / "resources/demo/lineA/CTCF.bw"
    source = pyBigWig.open(str(path))
    chroms = {c: n for c, n in source.chroms().items() if c != "chr2"}
    entries = {c: source.intervals(c) for c in chroms}
    source.close()
    out = pyBigWig.open(str(path), "w")
    out.addHeader(list(chroms.items()))
    for chrom, iv in entries.items():
        out.addEntries([chrom] * len(iv), [i[0] for i in iv], ends=[i[1] for i in iv], values=[i[2] for i in iv])
    out.close()
    text = failed_run(demo, TARGET)
    message(text, r"lineA/CTCF\.bw: no signal on chr2, a chromosome of protocol\.chrom_folds \(expected")
    assert_nothing_complete(demo, "results/tracks/lineA/CTCF.bw")


def test_chromosome_naming_mismatch(demo):
    loops = demo / "resources/demo/lineA/loops.bedpe"
    loops.write_text(re.sub(r"(?m)(^|\t)chr(\w+)", r"\1\2", loops.read_text()))
    text = failed_run(demo, TARGET)
    message(text, r"lineA/loops\.bedpe line \d+: chromosome '1' looks like a different naming convention .*chrom_map")
    assert_nothing_complete(demo, "results/pairs/lineA.tsv.gz")


PAIRS_HEADER = "chrom\tenhancer_start\tenhancer_end\tpromoter_start\tpromoter_end\tlabel\n"


def test_pairs_start_after_end(demo):
    rows = ["chr1\t100000\t100500\t200000\t202000\t1", "chr3\t300000\t300500\t350000\t352000\t0"]
    rows.append("chr1\t500500\t500000\t600000\t602000\t0")  # line 4: enhancer start > end
    (demo / SHEETS / "lineA.pairs.tsv").write_text(PAIRS_HEADER + "\n".join(rows) + "\n")
    text = failed_run(demo, TARGET, "--config", pairs_sheet_with(demo, "lineA.pairs.tsv", "pairs"))
    message(text, r"lineA\.pairs\.tsv line 4: enhancer start 500500 > enhancer end 500000 \(expected start <= end\)")
    assert_nothing_complete(demo, "results/pairs/lineA.tsv.gz")


def bengi_row(label, e_chrom, e_start, p_chrom, p_start) -> str:
    name = f"{p_chrom}:{p_start + 1000}-{p_start + 1001}|lineA|ENSG{p_start}|GENE"
    return (
        f"{label}\t{abs(p_start - e_start)}\t{e_chrom}\t{e_start}\t{e_start + 500}\tenh\t"
        f"{p_chrom}\t{p_start}\t{p_start + 2000}\t{name}"
    )


def test_pairs_on_different_chromosomes(demo):
    rows = [bengi_row(1, "chr1", 100000, "chr1", 200000), bengi_row(0, "chr2", 100000, "chr3", 200000)]
    (demo / SHEETS / "lineA.bengi.tsv").write_text("\n".join(rows) + "\n")
    text = failed_run(demo, TARGET, "--config", pairs_sheet_with(demo, "lineA.bengi.tsv", "bengi"))
    message(text, r"lineA\.bengi\.tsv line 2: enhancer on chr2 but promoter on chr3 \(expected the same chromosome\)")
    assert_nothing_complete(demo, "results/pairs/lineA.tsv.gz")


def test_targetfinder_pairs_of_another_cell_line(demo):
    """A TargetFinder file of lineB given as lineA's pairs: its names' cell-line prefix gives it away."""
    rows = [
        "lineB|chr1:100000-100500,lineB|chr1:200000-202000,1",
        "lineB|chr3:300000-300500,lineB|chr3:350000-352000,0",
    ]
    (demo / SHEETS / "lineA.targetfinder.csv").write_text(
        "enhancer_name,promoter_name,label\n" + "\n".join(rows) + "\n"
    )
    text = failed_run(demo, TARGET, "--config", pairs_sheet_with(demo, "lineA.targetfinder.csv", "targetfinder"))
    message(
        text,
        r"lineA\.targetfinder\.csv line 2: cell line 'lineB' in enhancer_name 'lineB\|chr1:100000-100500' \(expected "
        r"'lineA', the sheet's cell line",
    )
    assert_nothing_complete(demo, "results/pairs/lineA.tsv.gz")


def test_genome_build_mismatch(demo):
    """hg38-like coordinates past the end of the (3 Mb) demo chromosome."""
    rows = [bengi_row(1, "chr1", 100000, "chr1", 200000), bengi_row(0, "chr1", 3500000, "chr1", 3600000)]
    (demo / SHEETS / "lineA.bengi.tsv").write_text("\n".join(rows) + "\n")
    text = failed_run(demo, TARGET, "--config", pairs_sheet_with(demo, "lineA.bengi.tsv", "bengi"))
    message(
        text,
        r"lineA\.bengi\.tsv (row|line) 2: (enhancer )?end \d+ beyond chr1 length 3000000 \(expected .*genome build",
    )
    assert_nothing_complete(demo, "results/pairs/lineA.tsv.gz")


def test_annotation_tss_past_the_chromosome_end(demo):
    """An annotation of another build: a TSS past the (3 Mb) demo chr1 stops reference_tss, naming file and line."""
    annotation = demo / "resources/demo/annotation.gtf.gz"
    with gzip.open(annotation, "rt") as handle:
        lines = handle.read().splitlines(keepends=True)
    lines.append('chr1\tsim\ttranscript\t3500001\t3501000\t.\t+\t.\tgene_id "GPAST"; gene_name "GPAST";\n')
    with gzip.open(annotation, "wt") as handle:
        handle.writelines(lines)
    text = failed_run(demo, TARGET)
    message(
        text,
        rf"annotation\.gtf\.gz line {len(lines)}: 1-based TSS 3500001 beyond chr1 length 3000000 \(expected .*build",
    )
    assert_nothing_complete(demo, "results/reference/tss.tsv.gz", "results/pairs/lineA.tsv.gz")


def test_empty_pairs_file(demo):
    (demo / SHEETS / "lineA.bengi.tsv").write_text("")
    text = failed_run(demo, TARGET, "--config", pairs_sheet_with(demo, "lineA.bengi.tsv", "bengi"))
    message(text, r"lineA\.bengi\.tsv: no data lines \(empty file; expected at least one data line\)")
    assert_nothing_complete(demo, "results/pairs/lineA.tsv.gz")


def test_cell_line_without_positives(demo):
    rows = ["chr1\t100000\t100500\t200000\t202000\t0", "chr3\t300000\t300500\t350000\t352000\t0"]
    (demo / SHEETS / "lineA.pairs.tsv").write_text(PAIRS_HEADER + "\n".join(rows) + "\n")
    text = failed_run(demo, TARGET, "--config", pairs_sheet_with(demo, "lineA.pairs.tsv", "pairs"))
    message(text, r"lineA\.pairs\.tsv: cell line lineA has no positive pairs \(expected at least one label 1\)")
    assert_nothing_complete(demo, "results/pairs/lineA.tsv.gz")


def bedgraph_with(demo: Path, bad_value: str) -> None:
    """lineA's DNase as a bedGraph covering every chromosome, line 3 carrying `bad_value`."""
    rows = [f"chr{c}\t{s}\t{s + 1000}\t{1.0 + c}" for c in range(1, 5) for s in (0, 50000, 1000000)]
    rows[2] = rows[2].rsplit("\t", 1)[0] + f"\t{bad_value}"
    with gzip.open(demo / SHEETS / "lineA_DNase.bedGraph.gz", "wt") as handle:
        handle.write("\n".join(rows) + "\n")


@pytest.mark.parametrize("bad_value", ["-2.5", "nan"])
def test_negative_or_nan_signal(demo, bad_value):
    bedgraph_with(demo, bad_value)
    text = failed_run(demo, TARGET, "--config", tracks_sheet_with(demo, "DNase", "lineA_DNase.bedGraph.gz", "bedgraph"))
    message(text, rf"lineA_DNase\.bedGraph\.gz line 3: signal '{bad_value}' is not a finite number >= 0")
    assert_nothing_complete(demo, "results/tracks/lineA/DNase.bw")


def test_negative_signal_in_bigwig(demo):
    path = demo / "resources/demo/lineA/H2AZ.bw"
    bw = pyBigWig.open(str(path))
    chroms, entries = bw.chroms(), {c: bw.intervals(c) for c in bw.chroms()}
    bw.close()
    out = pyBigWig.open(str(path), "w")
    out.addHeader(list(chroms.items()))
    for chrom, iv in entries.items():
        values = np.array([i[2] for i in iv])
        if chrom == "chr3":
            values[10] = -1.5
        out.addEntries([chrom] * len(iv), [i[0] for i in iv], ends=[i[1] for i in iv], values=values.tolist())
    out.close()
    text = failed_run(demo, TARGET)
    message(text, r"lineA/H2AZ\.bw: chromosome 'chr3' has signal -1\.5 \(expected finite values >= 0\)")
    assert_nothing_complete(demo, "results/tracks/lineA/H2AZ.bw")


# ---- leakage: a held-out line's pair injected into a training line's table
def test_injected_heldout_pair_fails_training(demo):
    """A lineA pair row copied into lineB's pair table after pairs_extract: training for held-out lineA stops."""
    run_snakemake(demo, *(f"results/pairs/line{c}.tsv.gz" for c in "ABCD"))
    line_a = pd.read_csv(demo / "results/pairs/lineA.tsv.gz", sep="\t", dtype=str)
    line_b_path = demo / "results/pairs/lineB.tsv.gz"
    line_b = pd.read_csv(line_b_path, sep="\t", dtype=str)
    pd.concat([line_b, line_a.iloc[[0]]]).to_csv(line_b_path, sep="\t", index=False)
    text = failed_run(demo, "results/scores/lineA/gbm.tsv.gz")
    message(text, rf"LeakageError: .*{re.escape(line_a.pair_id[0])}.*lineA")
    assert not (demo / "results/scores/lineA/gbm.tsv.gz").exists()
    assert not (demo / "results/predictions").exists()  # nothing downstream ran


def test_heldout_locus_relabelled_into_a_training_line_never_meets_its_test_fold():
    """The same locus under a training line's name is not a leak the guard must catch: the chromosome folds keep
    it out of every fitting table of the fold that tests it (here checked on the score table)."""
    rng = np.random.default_rng(1)
    folds = [["chr1", "chr2"], ["chr3", "chr4"]]

    def line(name, n=300):
        frame = pd.DataFrame(
            {
                "pair_id": [f"{name}-{i}" for i in range(n)],
                "cell_line": name,
                "chrom": rng.choice(["chr1", "chr2", "chr3", "chr4"], n),
                "label": (rng.random(n) < 0.2).astype(int),
                "distance": rng.integers(5_000, 500_000, n),
            }
        )
        return PairData(frame, rng.standard_normal((n, 2)).astype(np.float32), ["a", "b"])

    data = {c: line(c) for c in ("A", "B", "C")}
    stolen = data["A"].frame.iloc[:20].assign(cell_line="B")
    data["B"] = PairData(
        pd.concat([data["B"].frame, stolen], ignore_index=True),
        np.vstack([data["B"].table, data["A"].table[:20]]),
        ["a", "b"],
    )
    scores, _ = run_heldout(data, "A", ["B", "C"], folds, "distance", {}, seed=0)
    for f in range(len(folds)):
        fold = scores[scores.fold == f]
        tested = set(fold.pair_id[fold.split == "test"])
        assert tested and not tested & set(fold.pair_id[fold.split != "test"])
