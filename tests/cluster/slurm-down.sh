#!/usr/bin/env bash
# Stop the daemons tests/cluster/slurm-up.sh started, and only those: the PIDs it recorded in the state
# dir ($NAME.pid), or for slurmctld/slurmd the pidfile their slurm.conf points into that same dir.
# Usage: bash tests/cluster/slurm-down.sh   (safe to run when nothing is up)
set -uo pipefail

STATE=${EPIFLOW_SLURM_STATE:-/tmp/epiflow-slurm}

stop() { # name pid
    local name=$1 pid=$2
    kill -0 "$pid" 2>/dev/null || return 0
    echo "slurm-down: stopping $name ($pid)" >&2
    kill "$pid"
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        # a zombie is already gone, only not reaped by its parent yet
        grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null && return 0
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
}

# slurmd first so no job step outlives its controller; munged last, the others need it to shut down
for name in slurmd slurmctld munged; do
    for pidfile in "$STATE/$name.pid" "$STATE/$name.pidfile"; do
        [ -s "$pidfile" ] && stop "$name" "$(cat "$pidfile")"
        rm -f "$pidfile"
    done
done
exit 0
