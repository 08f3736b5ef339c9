#!/usr/bin/env bash
# Stop the daemons tests/cluster/slurm-up.sh started (and only those: it killed nothing else).
# Usage: bash tests/cluster/slurm-down.sh   (safe to run when nothing is up)
set -uo pipefail

STATE=${EPIFLOW_SLURM_STATE:-/tmp/epiflow-slurm}

# slurmd first so no job step outlives its controller; munged last, the others need it to shut down
for name in slurmd slurmctld munged; do
    pidfile="$STATE/$name.pid"
    [ -s "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        echo "slurm-down: stopping $name ($pid)" >&2
        kill "$pid"
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$pidfile"
done
exit 0
