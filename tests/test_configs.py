"""Every configuration the repository ships plans a workflow: schema, sheets and model names are accepted.

`snakemake -n` on a clean copy; nothing runs. A config that names an unknown model or key fails here, not in a
user's first hour."""

from __future__ import annotations

import re

import pytest

from conftest import REPO, copy_workflow, run_snakemake

CONFIGS = {
    "demo zoo": ["config/demo_zoo.yaml"],
    "demo zoo, cue absent in lineC": ["config/demo_zoo.yaml", "config/demo_cue/absent_in_lineC.yaml"],
    "demo zoo, cue reversed in lineC": ["config/demo_zoo.yaml", "config/demo_cue/reversed_in_lineC.yaml"],
    "demo zoo, cue reversed in lineD": ["config/demo_zoo.yaml", "config/demo_cue/reversed_in_lineD.yaml"],
}


def test_every_cue_overlay_is_planned_here():
    shipped = {str(p.relative_to(REPO)) for p in (REPO / "config/demo_cue").glob("*.yaml")}
    assert shipped == {files[-1] for files in CONFIGS.values() if files[-1].startswith("config/demo_cue/")}


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("configs"))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_shipped_config_plans(workflow, name):
    proc = run_snakemake(workflow, "-n", "--configfile", *CONFIGS[name], timeout=300)
    planned = proc.stdout + proc.stderr
    assert "simulate_demo" in planned and "report" in planned
    for model in ("epinet_screen", "epinet_screen_gbm", "gbm_screen", "epinet_cdann", "epinet_cip"):
        assert f"model={model}" in planned, model


@pytest.fixture(scope="module")
def real_workflow(tmp_path_factory, shared_data):
    """A copy of the workflow with ../shared beside it, as in the repository (the real configs read it by path)."""
    root = tmp_path_factory.mktemp("real_configs")
    (root / "shared").symlink_to(shared_data.parent)
    return copy_workflow(root / "wf")


@pytest.mark.parametrize("name", ["bengi_hg19", "targetfinder_hg19"])
def test_real_study_config_plans(real_workflow, name):
    """Every shipped config of a genome of its own passes the parse-time checks (the demo keys among them)."""
    proc = run_snakemake(
        real_workflow, "-n", "--configfile", f"config/{name}.yaml", "--config", "mirror=../shared/data"
    )
    planned = proc.stdout + proc.stderr
    assert "train_heldout" in planned and "report_reflection" in planned and "simulate_demo" not in planned


def test_predict_hg19_plans(real_workflow):
    proc = run_snakemake(
        real_workflow, "-n", "--configfile", "config/predict_hg19.yaml", "--config", "mirror=../shared/data"
    )
    planned = proc.stdout + proc.stderr
    # one final model per predicted labelled line (left out of its own) and one for HUVEC (all four lines)
    for key in ("GM12878+HeLa-S3+IMR90", "GM12878+HeLa-S3+K562", "HeLa-S3+IMR90+K562", "GM12878+HeLa-S3+IMR90+K562"):
        assert f"train_key={key}" in planned, key
    assert "train_key=GM12878+IMR90+K562" not in planned, "HeLa-S3 is not predicted"
    for line in ("K562", "GM12878", "IMR90", "HUVEC"):
        assert f"line={line}, model=gbm_balanced" in planned, line
    assert "name=K562_odd_chroms" in planned and "name=GM12878_heldout" in planned


def test_user_template_plans(real_workflow):
    overlay = real_workflow / "config/my_line.yaml"
    overlay.write_text("predict:\n  lines: [HUVEC]\n")
    proc = run_snakemake(
        real_workflow, "-n", "--configfile", "config/template.yaml", str(overlay), "--config", "mirror=../shared/data"
    )
    planned = proc.stdout + proc.stderr
    assert "line=HUVEC, model=gbm_balanced" in planned and "train_key=GM12878+HeLa-S3+IMR90+K562" in planned


def test_a_genome_of_its_own_must_set_the_demo_keys(workflow):
    """config/config.yaml is always loaded first: a config on another genome that leaves out a demo key (the
    simulated chromosomes' folds, lineE, the planted cue, 1 Mb) stops before any job naming each one it left out."""
    (workflow / "own.yaml").write_text(
        "reference: {build: hg38, annotation: genes.bed, fasta: null}\n"
        "marks: [H3K27ac]\ntads: null\npredict: {lines: [MINE]}\n"
    )
    proc = run_snakemake(workflow, "-n", "--configfile", "own.yaml", check=False, timeout=300)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "own.yaml: reference: build 'hg38' and annotation 'genes.bed' are not the demo's" in text, text[-2000:]
    listed = re.search(r"from config/config\.yaml, which name the simulated genome and its data: (.*) \(expected", text)
    keys = re.findall(r"([\w.]+) \(", listed.group(1))
    assert keys == [
        "pairs",
        "tracks",
        "protocol.chrom_folds",
        "report.spurious_marks",
        "crispr",
        "predict.candidates.max_distance",
    ]
    assert "protocol.chrom_folds ([['chr1', 'chr2'], ['chr3', 'chr4']])" in text
    # a --config key counts as set; with every key set, this check is passed (the next stops at the sheet)
    proc = run_snakemake(
        workflow,
        "-n",
        "--configfile",
        "own.yaml",
        "--config",
        "pairs=p.tsv",
        "tracks=t.tsv",
        "protocol={chrom_folds: [[chr1]]}",
        "report={spurious_marks: []}",
        "crispr=null",
        "predict={candidates: {max_distance: 2000000}}",
        check=False,
        timeout=300,
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "keep the demo's values" not in text
    assert "pairs: sheet p.tsv not found" in text, text[-2000:]


def test_the_demo_config_given_again_sets_no_demo_key(workflow):
    """config/config.yaml among the --configfile files holds the demo's values: listing it does not count as setting
    them; a FASTA of one's own (the demo's build and annotation kept) is another genome too."""
    (workflow / "own.yaml").write_text("reference: {fasta: own.fa.gz}\nmarks: [H3K27ac]\n")
    proc = run_snakemake(workflow, "-n", "--configfile", "config/config.yaml", "own.yaml", check=False, timeout=300)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "reference: fasta 'own.fa.gz' is not the demo's" in text, text[-2000:]
    listed = re.search(r"which name the simulated genome and its data: (.*) \(expected", text)
    assert re.findall(r"([\w.]+) \(", listed.group(1))[:3] == ["reference.build", "reference.annotation", "pairs"]


def test_the_demo_genome_with_other_keys_needs_no_demo_key(workflow):
    proc = run_snakemake(workflow, "-n", "--config", "reference={chrom_map: auto}", "marks=[H3K27ac]", timeout=300)
    assert "simulate_demo" in proc.stdout + proc.stderr
