"""Shared pytest set-up: the epiflow library on sys.path, the shared real data, and a demo run reused by tests."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
SHARED_DATA = REPO.parent / "shared" / "data"
WORKFLOW_PARTS = ["Snakefile", "rules", "scripts", "config", "envs", "profiles", "pyproject.toml"]


def copy_workflow(dest: Path) -> Path:
    """Copy the workflow (no results, caches or venv) into dest, so a test runs it in a clean directory."""
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in WORKFLOW_PARTS:
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=ignore)
        elif src.exists():
            shutil.copy2(src, dest / part)
    shutil.copytree(REPO / "resources" / "report", dest / "resources" / "report")
    return dest


def run_snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 1200) -> subprocess.CompletedProcess:
    """Run `python -m snakemake` in workdir with this interpreter; returns the completed process."""
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def heldout_lines(workdir: Path, cfg: dict) -> list[str]:
    """The held-out lines of a config: protocol.test, or (null) every line of its pairs sheet (rules/common.smk)."""
    if cfg["protocol"].get("test"):
        return list(cfg["protocol"]["test"])
    return list(pd.read_csv(workdir / cfg["pairs"], sep="\t", comment="#").cell_line)


def rule_directives(rule_file: Path) -> list[tuple[str, dict[str, str | None]]]:
    """(rule name, {directive: its first string literal or None}) for each rule of a .smk file, for the directives
    conda, script, log and benchmark."""
    text = rule_file.read_text()
    starts = list(re.finditer(r"^\s*rule\s+(\w+)\s*:", text, flags=re.MULTILINE))
    rules = []
    for start, end in zip(starts, starts[1:] + [None], strict=False):
        body = text[start.end() : end.start() if end else len(text)]
        found = {}
        for directive in ("conda", "script", "log", "benchmark"):
            match = re.search(rf"^\s*{directive}:\s*\n?\s*[\"']([^\"']+)[\"']", body, flags=re.MULTILINE)
            found[directive] = match.group(1) if match else None
        rules.append((start.group(1), found))
    return rules


def pytest_report_header(config) -> str | None:
    """Say when every Snakemake call of the suite will wait on a SLURM controller that does not answer.

    snakemake-executor-plugin-slurm runs `scontrol show config` when Snakemake loads its plugins, if `sinfo` is on the
    PATH. With SLURM's client installed and no controller running, scontrol retries for about 10 s on each of the
    suite's few hundred Snakemake calls: measured on the 2-core machine, a demo dry run took 16 s instead of 8 s, and
    the suite 39 min instead of about 20. tests/cluster/slurm-up.sh brings a controller up (CI runs it first).
    """
    if shutil.which("scontrol") is None:
        return None
    try:
        subprocess.run(["scontrol", "ping"], capture_output=True, timeout=3, check=True)
    except (subprocess.TimeoutExpired, subprocess.CalledProcessError):
        return (
            "SLURM's client is installed but no controller answers: each Snakemake call waits about 10 s on the slurm "
            "plugin's scontrol (run tests/cluster/slurm-up.sh first; see tests/conftest.py)"
        )
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared real data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """The whole demo run once with --cores 2 in a fresh directory; tests read its outputs (never write them)."""
    workdir = copy_workflow(tmp_path_factory.mktemp("demo"))
    start = time.monotonic()
    run_snakemake(workdir)
    (workdir / "wall_seconds.txt").write_text(f"{time.monotonic() - start:.1f}\n")
    return workdir
