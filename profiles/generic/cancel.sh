#!/usr/bin/env bash
# Cancel SLURM jobs (cluster-generic cancel command): called with one or more job ids.
exec scancel "$@"
