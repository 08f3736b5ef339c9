"""The cluster profiles run for real on SLURM (tests/cluster/slurm-up.sh) and change no result.

Skipped unless `sinfo` answers with a usable node. CI brings SLURM up before pytest:
    bash tests/cluster/slurm-up.sh && python -m pytest; bash tests/cluster/slurm-down.sh
"""

import logging
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WORKFLOW_PARTS = [
    "Snakefile",
    "rules",
    "scripts",
    "config",
    "resources",
    "envs",
    "profiles",
]
# A slice of the demo: one held-out line, a scikit-learn model and the torch one (whose rule asks for a GPU).
# Every rule still runs; the full demo twice over (local, then SLURM) would cost CI several times as long.
# the evaluation of one held-out line; the predict path and the CRISPRi benchmark are left out of the slice to keep
# the cluster test's many sbatch round trips within CI time (their rules run locally in tests/test_predict_workflow.py)
DEMO_SLICE = "protocol:\n  test: [lineA]\nmodels: [gbm, epinet_small]\npredict:\n  lines: []\ncrispr: null\n"
# status polling every few seconds instead of the profile's 20 s start: jobs here take seconds
FAST_POLL = ["--slurm-init-seconds-before-status-checks", "2"]
LOG = logging.getLogger(__name__)


def slurm_partitions():
    """Partitions with a node ready to run jobs, or an empty set when there is no usable SLURM."""
    if shutil.which("sinfo") is None:
        return set()
    try:
        result = subprocess.run(["sinfo", "-h", "-o", "%P %t"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return set()
    ready = set()
    for line in result.stdout.splitlines():
        partition, state = line.split()
        if state.rstrip("*~#") in {"idle", "mix", "alloc"}:
            ready.add(partition.rstrip("*"))
    return ready if result.returncode == 0 else set()


PARTITIONS = slurm_partitions()
pytestmark = [
    pytest.mark.cluster,
    pytest.mark.slow,
    pytest.mark.skipif(not PARTITIONS, reason="no SLURM (run tests/cluster/slurm-up.sh)"),
]


def snakemake(workdir, *args, timeout=3000):
    """Run Snakemake in workdir; return (seconds, completed process). Fails the test on non-zero exit."""
    command = [sys.executable, "-m", "snakemake", *args]
    start = time.monotonic()
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=timeout)
    seconds = time.monotonic() - start
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stderr[-6000:]}"
    return seconds, result


# generated inputs (git-ignored): left out so the copy starts where a fresh clone does, at simulate_demo
NOT_COPIED = {REPO / "resources" / "demo", REPO / "resources" / "cache"}


def copy_workflow(destination):
    """Copy the repo's workflow (not its results, generated inputs, caches or .venv) to destination."""

    def ignore(folder, names):
        return [
            name for name in names if name == "__pycache__" or name.endswith(".pyc") or Path(folder, name) in NOT_COPIED
        ]

    destination.mkdir(parents=True)
    for part in WORKFLOW_PARTS:
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, destination / part, ignore=ignore)
        elif source.is_file():
            shutil.copy2(source, destination / part)
    return destination


def reset_outputs(workdir):
    """Remove everything a run wrote (the simulated demo inputs too), so the next run starts from scratch."""
    for name in ["results", "logs", ".snakemake", "resources/demo"]:
        shutil.rmtree(workdir / name, ignore_errors=True)


# a tiny workflow using the real rule names, so the profiles' set-resources apply to it
TOY_SNAKEFILE = """
rule all:
    input: "results/report.txt"

rule simulate_demo:
    output: "results/sim/{cell}.txt"
    shell: "echo {wildcards.cell} > {output}"

# pairs_extract gets mem_mb = 2000 * attempt from the profile: attempt 1 fails, the retry passes
rule pairs_extract:
    input: "results/sim/{cell}.txt"
    output: "results/pairs/{cell}.txt"
    shell: "test {resources.mem_mb} -ge 4000 && cat {input} > {output} && echo p=$SLURM_JOB_PARTITION >> {output}"

rule train_heldout:
    input: expand("results/pairs/{cell}.txt", cell=["A", "B"])
    output: "results/model.txt"
    resources: gpu=1
    shell: "cat {input} > {output}; echo gpu=${{CUDA_VISIBLE_DEVICES:-none}} p=$SLURM_JOB_PARTITION >> {output}"

rule report_reflection:
    input: "results/model.txt"
    output: "results/report.txt"
    shell: "cp {input} {output}"
"""


@pytest.mark.parametrize("profile", ["slurm", "slurm-gpu", "generic"])
def test_profile_runs_toy_workflow_with_retry(tmp_path, profile):
    if profile == "slurm-gpu" and "gpu" not in PARTITIONS:
        pytest.skip("no partition named gpu (slurm-up.sh makes one)")
    shutil.copytree(REPO / "profiles", tmp_path / "profiles")
    (tmp_path / "Snakefile").write_text(TOY_SNAKEFILE)
    poll = FAST_POLL if profile != "generic" else ["--seconds-between-status-checks", "2"]
    _, result = snakemake(tmp_path, "--profile", f"profiles/{profile}", *poll, timeout=600)

    report = (tmp_path / "results" / "report.txt").read_text().splitlines()
    assert report[0::2][:2] == ["A", "B"]
    cpu_partitions, (gpu, train_partition) = {report[1], report[3]}, report[4].split()
    # slurm and generic override the rule's gpu=1 with gpu=0 and use the default partition; slurm-gpu gets the
    # GRES (gres.conf gives the stand-in device index 0, or none where slurm-up.sh could not mknod it), and its
    # partitions.yaml sends the GPU job to the gpu partition and the CPU jobs to the other
    if profile == "slurm-gpu":
        assert gpu in {"gpu=0", "gpu=none"}
        assert (cpu_partitions, train_partition) == ({"p=debug"}, "p=gpu"), report
    else:
        assert gpu == "gpu=none"
        assert (cpu_partitions, train_partition) == ({"p=debug"}, "p=debug"), report
    # each pairs_extract job failed once with 2000 MB and passed on the retry with 4000 MB
    log = result.stdout + result.stderr
    assert log.count("Trying to restart job") >= 2, log[-4000:]


def test_demo_on_slurm_matches_local_run(tmp_path):
    if not (REPO / "Snakefile").is_file():
        pytest.skip("no Snakefile yet")
    workdir = copy_workflow(tmp_path / "workflow")
    (tmp_path / "slice.yaml").write_text(DEMO_SLICE)
    # --configfile merges into config/config.yaml key by key (the Snakefile's configfile: comes first)
    config = ["--configfile", str(tmp_path / "slice.yaml")]
    summary = workdir / "results" / "metrics" / "summary.tsv"

    local_seconds, _ = snakemake(workdir, "--cores", "2", *config)
    local_summary = summary.read_bytes()
    assert b"lineA" in local_summary and b"epinet_small" in local_summary
    reset_outputs(workdir)

    slurm_seconds, slurm_run = snakemake(workdir, "--profile", "profiles/slurm", *config, *FAST_POLL)
    LOG.warning("demo wall time: local --cores 2 %.0f s, slurm %.0f s", local_seconds, slurm_seconds)
    print(f"\ndemo wall time: local --cores 2 {local_seconds:.0f} s, slurm {slurm_seconds:.0f} s")
    assert summary.read_bytes() == local_summary
    # the jobs really went through sbatch (successful jobs' sbatch logs are deleted, the run log stays)
    submitted = re.findall(
        r"submitted with SLURM jobid \d+ \(log: \S*/rule_(\w+)/", slurm_run.stdout + slurm_run.stderr
    )
    assert {"simulate_demo", "train_heldout", "features_compute", "calibrate_heldout"} <= set(submitted), sorted(
        set(submitted)
    )
