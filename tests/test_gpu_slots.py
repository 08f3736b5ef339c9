"""GPU slots with fake devices: jobs started together never share a slot; one more than there are slots waits."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO
from epiflow.gpu import device_slot

# one "training job": take a slot, record when it was held, hold it `hold` seconds
JOB = """
import json, sys, time
sys.path.insert(0, {scripts!r})
from epiflow.gpu import device_slot
with device_slot({locks!r}, n_devices=2, poll=0.02, timeout=30) as device:
    start = time.time()
    time.sleep({hold})
    end = time.time()
print(json.dumps({{"device": device, "start": start, "end": end}}))
"""


@pytest.fixture(autouse=True)
def no_scheduler(monkeypatch):
    """Outside a SLURM job: the allocator, not the scheduler, picks the device."""
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)


def start_job(locks: Path, hold: float) -> subprocess.Popen:
    code = JOB.format(scripts=str(REPO / "scripts"), locks=str(locks), hold=hold)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def result(proc: subprocess.Popen) -> dict:
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    return json.loads(out.strip().splitlines()[-1])


def test_two_jobs_started_together_take_different_slots(tmp_path):
    jobs = [start_job(tmp_path, hold=1.0) for _ in range(2)]
    first, second = (result(j) for j in jobs)
    assert {first["device"], second["device"]} == {"cuda:0", "cuda:1"}
    assert first["start"] < second["end"] and second["start"] < first["end"]  # they did hold them together


def test_third_job_waits_until_a_slot_frees(tmp_path):
    holders = [start_job(tmp_path, hold=1.5) for _ in range(2)]
    time.sleep(0.5)  # both slots taken (interpreter start-up is well under this)
    waiter = start_job(tmp_path, hold=0.0)
    held = [result(j) for j in holders]
    third = result(waiter)
    assert {h["device"] for h in held} == {"cuda:0", "cuda:1"}
    freed = min(h["end"] for h in held)
    assert third["start"] >= freed, "the third job took a slot while both were held"
    # it took the slot that freed first (allowing for the other ending in the same polling interval)
    first_free = min(held, key=lambda h: h["end"])
    assert third["device"] == first_free["device"] or max(h["end"] for h in held) <= third["start"]


def test_no_fake_devices_means_cpu(tmp_path):
    with device_slot(tmp_path, n_devices=0) as device:
        assert device == "cpu"
    assert not list(tmp_path.iterdir())


def test_slot_is_released_after_an_error(tmp_path):
    with pytest.raises(RuntimeError), device_slot(tmp_path, n_devices=1, poll=0.01, timeout=1):
        raise RuntimeError("training failed")
    with device_slot(tmp_path, n_devices=1, poll=0.01, timeout=1) as device:
        assert device == "cuda:0"


def test_waiting_too_long_times_out(tmp_path):
    with device_slot(tmp_path, n_devices=1, poll=0.01) as held:
        assert held == "cuda:0"
        with pytest.raises(TimeoutError, match="no free GPU slot"), device_slot(tmp_path, 1, poll=0.01, timeout=0.2):
            pass
