"""Killed runs resume and lose nothing: a training job SIGKILLed mid-epoch resumes from its checkpoints and ends
with the same scores as an uninterrupted run; a killed download leaves no file at its destination."""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import REPO, copy_workflow, run_snakemake
from epiflow.download import fetch, sha256sum

SCORES = "results/scores/lineA/epinet_small.tsv.gz"
CHECKPOINTS = "results/checkpoints/lineA/epinet_small"


def wait_for(condition, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process ended (rc {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group (snakemake and the job it started), as a scheduler or OOM killer would."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


# ---- training
@pytest.mark.slow
def test_killed_training_resumes_to_identical_scores(tmp_path):
    """Train lineA's epinet_small once (the reference), then again from scratch, SIGKILL the snakemake process group
    once a second fit has checkpointed an epoch, rerun: the scores equal the uninterrupted run's byte for byte."""
    workdir = copy_workflow(tmp_path / "wf")
    run_snakemake(workdir, SCORES)
    reference = gzip.decompress((workdir / SCORES).read_bytes())
    checkpoints = workdir / CHECKPOINTS
    shutil.rmtree(checkpoints)
    with open(tmp_path / "killed.out", "w") as out:
        cmd = [sys.executable, "-m", "snakemake", "--cores", "2", SCORES, "--forcerun", "train_heldout"]
        proc = subprocess.Popen(cmd, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for(lambda: len(list(checkpoints.glob("*.pt"))) >= 2, 900, "a second fit's checkpoint", proc)
        finally:
            if proc.poll() is None:
                kill_group(proc)
    assert not (workdir / SCORES).exists(), "a killed training job left its scores"
    kept = sorted(p.name for p in checkpoints.glob("*.pt"))
    assert len(kept) >= 2, kept

    run_snakemake(workdir, "--unlock")
    run_snakemake(workdir, SCORES)
    resumed_at = resumed_epochs(workdir)
    assert set(kept) <= set(resumed_at), f"the rerun did not resume every checkpoint of the killed run: {resumed_at}"
    assert gzip.decompress((workdir / SCORES).read_bytes()) == reference

    # a forced rerun finds every fit's checkpoint finished: it must reuse them all and give the same scores again
    run_snakemake(workdir, SCORES, "--forcerun", "train_heldout")
    finished_at = resumed_epochs(workdir)
    assert len(finished_at) == len(list(checkpoints.glob("*.pt"))), finished_at
    assert any(resumed_at[name] < finished_at[name] for name in kept), "no fit was resumed part-way"
    assert gzip.decompress((workdir / SCORES).read_bytes()) == reference


def resumed_epochs(workdir: Path) -> dict[str, int]:
    """checkpoint file name -> the epoch the last train job resumed it at (from its log)."""
    log = (workdir / "logs/train/lineA/epinet_small.log").read_text()
    return {m[1]: int(m[2]) for m in re.finditer(r"resumed \S*/([^/\s]+\.pt) at epoch (\d+)", log)}


# ---- downloads
BODY = os.urandom(64 * 1024)
DIGEST = hashlib.sha256(BODY).hexdigest()


class SlowHandler(BaseHTTPRequestHandler):
    """The first request trickles the body out (1 KiB every 50 ms); later requests get it at once."""

    def do_GET(self):
        self.server.hits[self.path] += 1
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        step = 1024 if self.server.hits[self.path] == 1 else len(BODY)
        try:
            for start in range(0, len(BODY), step):
                self.wfile.write(BODY[start : start + step])
                self.wfile.flush()
                self.server.sent += step
                if step < len(BODY):
                    time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client was killed

    def log_message(self, *args):
        pass


@pytest.fixture
def slow_server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), SlowHandler)
    httpd.hits, httpd.sent = Counter(), 0
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_killed_download_leaves_no_file(slow_server, tmp_path):
    url, dest = f"{slow_server.url}/track.bw", tmp_path / "cache" / "track.bw"
    code = (
        f"import sys; sys.path.insert(0, {str(REPO / 'scripts')!r}); from epiflow.download import fetch; "
        f"fetch({url!r}, {str(dest)!r}, sha256={DIGEST!r})"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        # mid-body: a temporary file exists and the server has sent a quarter of the body
        midway = lambda: slow_server.sent >= len(BODY) // 4 and any(dest.parent.glob(".track.bw.*.part"))  # noqa: E731
        wait_for(midway, 30, "the download to be under way", proc)
    finally:
        if proc.poll() is None:
            kill_group(proc)
    assert proc.returncode == -signal.SIGKILL
    assert not dest.exists(), "a killed download left a file at its destination"
    assert not dest.with_name("track.bw.sha256").exists()

    fetch(url, dest, sha256=DIGEST, backoff=0, timeout=10)
    assert dest.read_bytes() == BODY and sha256sum(dest) == DIGEST
    left = sorted(p.name for p in dest.parent.iterdir())
    assert left == ["track.bw", "track.bw.sha256"], left  # the killed fetch's partial file is gone too
