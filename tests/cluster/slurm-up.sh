#!/usr/bin/env bash
# Bring up a real single-node SLURM cluster on this machine, for tests/cluster/ (pytest -m cluster).
#
# Usage (as root, on Debian/Ubuntu, with or without systemd):
#   bash tests/cluster/slurm-up.sh     # installs slurm-wlm + munge if missing, starts munged/slurmctld/slurmd
#   .venv/bin/python -m pytest -m cluster tests/cluster
#   bash tests/cluster/slurm-down.sh   # stops exactly the daemons this script started
# Idempotent: if `sinfo` already shows the node up, it exits 0 at once.
# State, logs and PIDs live in $EPIFLOW_SLURM_STATE (default /tmp/epiflow-slurm); the config must live in
# /etc/slurm (the slurm executor's jobstep clears SLURM_* variables, so SLURM_CONF cannot point elsewhere).
#
# Quirks met on the way (and what this script does about them):
# - No systemd (containers, this VM): the daemons are started by hand; munged runs as user munge, the
#   owner of its key and socket dir, as the Debian service would run it (runuser).
# - No slurmdbd: `sacct` has no data, so the executor must poll with `squeue` (profiles set
#   slurm-status-command: squeue) and finished jobs must stay visible to squeue long enough: MinJobAge=600.
# - cgroup v1 controllers may be mounted (hybrid layout) but read-only or absent in a container:
#   proctrack/cgroup is used only when a probe cgroup can be created, else proctrack/linuxproc.
# - Jobs reportedly get killed below ~512 MB (the jobstep runs a Python Snakemake): profiles ask >= 2000.
# - Daemons killed -9 (e.g. CI ending the session) leave stale pidfiles and zombies: pidfiles are removed
#   before a start and a zombie PID counts as dead; `-c` starts the controller with a clean job state.
# - The host name need not resolve: controller and node addresses are pinned to 127.0.0.1.
# - A GPU GRES makes gpu=1 jobs schedulable on a machine without a GPU, so the slurm-gpu profile can be
#   exercised here too. slurmd ignores a file-less GPU ("Count=1" alone leaves the node INVAL with
#   "gres/gpu count reported lower than configured (0 < 1)"), so gres.conf points File= at a stand-in
#   device node in the state dir: a copy of /dev/null (char 1,3) named gpu0, so slurmd counts it and sets
#   CUDA_VISIBLE_DEVICES=0. A regular file also schedules but slurmd logs "not a valid character or
#   block device" and sets no CUDA_VISIBLE_DEVICES; it is the fallback where mknod is not allowed.
set -euo pipefail

STATE=${EPIFLOW_SLURM_STATE:-/tmp/epiflow-slurm}
CONF_DIR=/etc/slurm
NODE=$(hostname -s)

log() { echo "slurm-up: $*" >&2; }

node_ready() {
    # one idle/mixed/allocated node answering means the cluster works
    sinfo -h -N -o '%t' 2>/dev/null | grep -Eq '^(idle|mix|alloc)'
}

if command -v sinfo >/dev/null && node_ready; then
    log "already up"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    log "must run as root (it installs packages and starts daemons)"
    exit 1
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    log "installing slurm-wlm and munge"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge
fi

mkdir -p "$STATE"/{spool,state,log} "$CONF_DIR"

# --- munge: the authentication daemon every SLURM command talks to ----------------------------------
mkdir -p /run/munge /var/lib/munge /var/log/munge /etc/munge
if [ ! -s /etc/munge/munge.key ]; then
    log "creating a munge key"
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /run/munge /var/lib/munge /var/log/munge /etc/munge /etc/munge/munge.key
chmod 0700 /etc/munge /var/lib/munge /var/log/munge
chmod 0755 /run/munge
chmod 0400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "starting munged"
    rm -f /run/munge/munged.pid
    runuser -u munge -- munged
    for _ in $(seq 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.1
    done
    cat /run/munge/munged.pid >"$STATE/munged.pid"
fi

# --- cgroup or not --------------------------------------------------------------------------------
probe=/sys/fs/cgroup/freezer/epiflow-probe-$$
if [ -d /sys/fs/cgroup/freezer ] && mkdir "$probe" 2>/dev/null; then
    rmdir "$probe"
    PROCTRACK=proctrack/cgroup
    TASK=task/cgroup,task/affinity
    # cgroup v1 (hybrid layout): constrain cores only; memory limits come from --mem, enforced by
    # the cgroup only when ConstrainRAMSpace is on, which a shared CI box does not need
    cat >"$CONF_DIR/cgroup.conf" <<EOF
# written by tests/cluster/slurm-up.sh
CgroupPlugin=autodetect
ConstrainCores=yes
ConstrainRAMSpace=no
EOF
else
    PROCTRACK=proctrack/linuxproc
    TASK=task/none
    rm -f "$CONF_DIR/cgroup.conf"
fi
log "process tracking: $PROCTRACK"

# --- slurm.conf: one node with this machine's CPUs and memory --------------------------------------
NODE_LINE=$(slurmd -C | head -1)
CPUS=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$NODE_LINE")
MEMORY=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$NODE_LINE")
mkdir -p "$CONF_DIR"
[ -e "$STATE/gpu0" ] || mknod "$STATE/gpu0" c 1 3 2>/dev/null || touch "$STATE/gpu0"
cat >"$CONF_DIR/gres.conf" <<EOF
# written by tests/cluster/slurm-up.sh: one pretend GPU (a stand-in device node), so gpu=1 jobs are
# schedulable for testing on a machine without a GPU
NodeName=$NODE Name=gpu File=$STATE/gpu0
EOF
cat >"$CONF_DIR/slurm.conf" <<EOF
# written by tests/cluster/slurm-up.sh: a single-node test cluster
ClusterName=epiflow
# addresses pinned to loopback: the host name need not resolve (containers, CI boxes)
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pidfile
SlurmdPidFile=$STATE/slurmd.pidfile
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=$PROCTRACK
TaskPlugin=$TASK
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# no slurmdbd: keep finished jobs visible to squeue for 10 minutes, the executor polls with squeue
MinJobAge=600
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=60
GresTypes=gpu
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEMORY Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
# the same node again as a "gpu" partition (profiles/slurm-gpu/partitions.yaml sends GPU jobs there)
PartitionName=gpu Nodes=$NODE Default=NO MaxTime=INFINITE State=UP
EOF

# --- daemons ---------------------------------------------------------------------------------------
alive() { # pid: running and not a zombie (a daemon killed -9 stays <defunct> until reaped)
    [ -n "$1" ] && kill -0 "$1" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null
}
start_daemon() { # name
    local name=$1 pidfile="$STATE/$1.pidfile"
    if [ -s "$pidfile" ] && alive "$(cat "$pidfile")"; then
        log "$name already running"
        cp "$pidfile" "$STATE/$name.pid"
        return
    fi
    log "starting $name"
    # a stale pidfile from a killed run would be taken for the new daemon's
    rm -f "$pidfile"
    # -c: clear saved state from an earlier run (a fresh cluster each time)
    "$name" -c
    for _ in $(seq 100); do
        [ -s "$pidfile" ] && alive "$(cat "$pidfile")" && break
        sleep 0.1
    done
    cp "$pidfile" "$STATE/$name.pid"
}
start_daemon slurmctld
start_daemon slurmd

for _ in $(seq 60); do
    if node_ready; then
        sinfo
        log "up"
        exit 0
    fi
    # a node left DOWN by an earlier run comes back once told so
    scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true
    sleep 1
done
log "node did not become ready; logs in $STATE/log"
sinfo -N -l >&2 || true
tail -n 20 "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log" >&2 || true
exit 1
