#!/usr/bin/env python3
"""Print running, success or failed for one SLURM job id (cluster-generic status command).

In: argv[1] = the job id. Out: one word on stdout. Asks squeue first (enough when MinJobAge keeps
finished jobs listed, as on tests/cluster/slurm-up.sh's cluster), then sacct (clusters with slurmdbd).
"""

import subprocess
import sys

RUNNING = {
    "PENDING",
    "CONFIGURING",
    "RUNNING",
    "COMPLETING",
    "SUSPENDED",
    "REQUEUED",
    "RESIZING",
}
RUNNING |= {
    "STAGE_OUT",
    "SIGNALING",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "RESV_DEL_HOLD",
    "STOPPED",
}
SUCCESS = {"COMPLETED"}


def squeue_state(job_id):
    """The job's state from squeue, or None when squeue no longer knows it."""
    result = subprocess.run(
        ["squeue", "--noheader", "--states=all", "--format=%T", f"--jobs={job_id}"],
        capture_output=True,
        text=True,
    )
    states = result.stdout.split()
    return states[0] if result.returncode == 0 and states else None


def sacct_state(job_id):
    """The job's state from sacct (first word: 'CANCELLED by 0' -> CANCELLED), or None."""
    result = subprocess.run(
        [
            "sacct",
            "-X",
            "--noheader",
            "--parsable2",
            "--format=State",
            f"--jobs={job_id}",
        ],
        capture_output=True,
        text=True,
    )
    lines = [line for line in result.stdout.splitlines() if line and "disabled" not in line]
    return lines[0].split()[0] if result.returncode == 0 and lines else None


def main():
    job_id = sys.argv[1]
    state = squeue_state(job_id) or sacct_state(job_id)
    if state is None:
        # neither knows the job (finished long ago, or never ran): report it failed, retries resubmit it
        sys.stderr.write(f"status.py: SLURM does not know job {job_id}\n")
        print("failed")
    elif state in RUNNING:
        print("running")
    elif state in SUCCESS:
        print("success")
    else:
        print("failed")


if __name__ == "__main__":
    main()
