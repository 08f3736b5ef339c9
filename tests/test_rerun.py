"""Rerunning parts of a finished demo run: what Snakemake would run again (dry runs on the `demo_run` directory)."""

from __future__ import annotations

import re

import pytest
import yaml

from conftest import heldout_lines, run_snakemake

pytestmark = pytest.mark.slow


def planned_jobs(workdir, *args) -> dict[str, int]:
    """Rule -> number of jobs a dry run (-n) would execute in workdir."""
    proc = run_snakemake(workdir, "-n", *args)
    stats = proc.stdout.split("Job stats:")[-1] if "Job stats:" in proc.stdout else ""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M) if m.group(1) != "total"}


def test_finished_run_has_nothing_to_do(demo_run):
    assert planned_jobs(demo_run) == {}


def test_one_heldout_line_one_model_by_target_path(demo_run):
    jobs = planned_jobs(demo_run, "results/predictions/lineD/gbm.tsv.gz", "--forcerun", "train_heldout")
    assert jobs == {"train_heldout": 1, "calibrate_heldout": 1}


def test_forcerun_train_until_train(demo_run):
    jobs = planned_jobs(demo_run, "--forcerun", "train_heldout", "--until", "train_heldout")
    cfg = yaml.safe_load((demo_run / "config/config.yaml").read_text())
    assert jobs == {"train_heldout": len(heldout_lines(demo_run, cfg)) * len(cfg["models"])}


def test_changed_hyper_parameter_reruns_only_that_model(demo_run, tmp_path):
    cfg = yaml.safe_load((demo_run / "config/config.yaml").read_text())
    params = cfg["model_params"]
    params["gbm"] = params["gbm"] | {"max_iter": params["gbm"]["max_iter"] + 1}
    override = tmp_path / "gbm.yaml"
    override.write_text(yaml.safe_dump({"model_params": params}))
    jobs = planned_jobs(demo_run, "--configfile", str(demo_run / "config/config.yaml"), str(override))
    n_lines = len(heldout_lines(demo_run, cfg))
    assert jobs["train_heldout"] == n_lines and jobs["calibrate_heldout"] == n_lines
    proc = run_snakemake(demo_run, "-n", "--configfile", str(demo_run / "config/config.yaml"), str(override))
    trained = set(re.findall(r"results/scores/\w+/(\w+)\.tsv\.gz", proc.stdout))
    assert trained == {"gbm"}


def test_chromosome_validation_reaches_the_training_rule(demo_run, tmp_path):
    """`protocol.validation: chromosome` retrains (params changed) and validates on chromosome groups, every
    training line in each fit; run on a copy so the shared demo run stays as it is."""
    import json
    import shutil

    import pandas as pd

    workdir = tmp_path / "run"
    shutil.copytree(demo_run, workdir, symlinks=True, ignore=shutil.ignore_patterns("report"))
    target = "results/scores/lineD/distance.tsv.gz"
    run_snakemake(workdir, target, "--config", "protocol={validation: chromosome}")
    info = json.loads((workdir / "results/models/lineD/distance.json").read_text())
    assert info["validation"] == "chromosome"
    assert [fit["validation_set"] for fit in info["fits"]] == ["chr3", "chr4", "chr1", "chr2"]
    scores = pd.read_csv(workdir / target, sep="\t")
    val = scores[scores.split == "val"]
    assert set(val.cell_line) == {"lineA", "lineB", "lineC"}
    for fold, test_chroms in enumerate([["chr1", "chr2"], ["chr3", "chr4"]]):
        assert not val[val.fold == fold].chrom.isin(test_chroms).any()


def test_mirror_on_or_off_downloads_nothing_again(tmp_path):
    """`mirror` says where a URL's bytes come from, not what they are (the sha256 does): a source fetched from the
    server is not fetched again when a mirror is set, nor the mirrored one when it is unset."""
    import hashlib
    import threading
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from conftest import copy_workflow

    workdir = copy_workflow(tmp_path / "wf")
    served, mirror = tmp_path / "served", tmp_path / "mirror"
    served.mkdir(), mirror.mkdir()
    body = b"\n".join(b"chr1\t%d\t%d\tp\t0\t.\t5\t-1\t-1\t50" % (i * 1000, i * 1000 + 500) for i in range(20)) + b"\n"
    (served / "peaks.narrowPeak").write_bytes(body)
    (mirror / "peaks.narrowPeak").write_bytes(body)
    handler = partial(SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/peaks.narrowPeak"
    sheet = workdir / "config/demo/tracks.tsv"
    rows = sheet.read_text().splitlines()
    rows = [rows[0] + "\tsha256"] + [
        "\t".join([*r.split("\t")[:2], url, "narrowpeak", hashlib.sha256(body).hexdigest()])
        if r.startswith("lineA\tH3K27ac\t")
        else r + "\t"
        for r in rows[1:]
    ]
    sheet.write_text("\n".join(rows) + "\n")
    try:
        plan = run_snakemake(workdir, "-n").stdout
        target = re.search(r"resources/cache/\S+/peaks\.narrowPeak", plan).group(0)
        run_snakemake(workdir, target)  # from the server
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert (workdir / target).read_bytes() == body
    assert planned_jobs(workdir, target, "--config", f"mirror={mirror}") == {}
    (workdir / target).unlink()
    run_snakemake(workdir, target, "--config", f"mirror={mirror}")  # the server is gone: from the mirror
    assert (workdir / target).read_bytes() == body
    assert planned_jobs(workdir, target) == {}
    assert planned_jobs(workdir, target, "--forcerun", "download_source") == {"download_source": 1}


def test_library_edit_reruns_only_the_rules_that_import_it(demo_run, tmp_path):
    """An edit to a library module reruns the rules whose scripts import it (params: library) and what follows
    them, nothing upstream: narrative_checks is the report's alone, crispr the CRISPRi benchmark's."""
    import shutil

    workdir = tmp_path / "run"
    shutil.copytree(demo_run, workdir, symlinks=True)
    assert planned_jobs(workdir) == {}
    library = workdir / "scripts" / "epiflow"
    with open(library / "narrative_checks.py", "a") as module:
        module.write("\n# edited\n")
    assert set(planned_jobs(workdir)) - {"all"} == {"report_reflection", "report_predict"}
    with open(library / "crispr.py", "a") as module:
        module.write("\n# edited\n")
    assert set(planned_jobs(workdir)) - {"all"} == {"report_reflection", "report_predict", "crispr_benchmark"}
