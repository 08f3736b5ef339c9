#!/usr/bin/env python3
"""Submit one Snakemake jobscript with sbatch; print the SLURM job id (cluster-generic submit command).

In: argv[1] = the jobscript, whose `# properties = {json}` line holds rule, threads and resources.
Out: the job id on stdout (the cluster-generic executor reads its first line).
Only the standard library: it runs with whatever python3 the submit host has.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

LOG_DIR = Path(".snakemake") / "cluster_generic_logs"


def read_properties(jobscript):
    """The job's properties dict from its `# properties = ...` line."""
    for line in Path(jobscript).read_text().splitlines():
        match = re.match(r"# properties = (.*)", line)
        if match:
            return json.loads(match.group(1))
    raise SystemExit(f"{jobscript}: no '# properties = ' line (expected a Snakemake jobscript)")


def sbatch_args(properties):
    """sbatch options for the job's threads and resources."""
    resources = properties.get("resources", {})
    name = properties.get("rule") or properties.get("groupid") or "snakejob"
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    args = [
        "--parsable",
        f"--job-name=smk-{name}",
        f"--output={LOG_DIR / name}-%j.log",
        f"--cpus-per-task={properties.get('threads', 1)}",
    ]
    if resources.get("mem_mb"):
        args.append(f"--mem={resources['mem_mb']}")
    if resources.get("runtime"):
        args.append(f"--time={resources['runtime']}")
    if resources.get("slurm_partition"):
        args.append(f"--partition={resources['slurm_partition']}")
    if resources.get("slurm_account"):
        args.append(f"--account={resources['slurm_account']}")
    if resources.get("gpu"):
        args.append(f"--gpus={resources['gpu']}")
    return args


def main():
    jobscript = sys.argv[-1]
    command = ["sbatch", *sbatch_args(read_properties(jobscript)), jobscript]
    # SLURM_* variables of an enclosing allocation would leak into the new job: drop them
    env = {key: value for key, value in os.environ.items() if not key.startswith("SLURM_")}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.stderr.write(f"{' '.join(command)} failed:\n{result.stderr}")
        return result.returncode
    # --parsable prints "jobid" or "jobid;cluster"
    print(result.stdout.strip().split(";")[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
