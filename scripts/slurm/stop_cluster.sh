#!/usr/bin/env bash
# Stop the daemons that start_cluster.sh started, newest first, by the pids it recorded.
# Daemons that were already running before it (a system munge or MariaDB) are left alone.
set -uo pipefail
STATE="${SCALINGLAB_SLURM_STATE:-/tmp/scalinglab-slurm}"
[ -s "$STATE/started" ] || { echo "[slurm-cluster] nothing to stop"; exit 0; }

tac "$STATE/started" | while read -r name pidfile; do
    pid=$(cat "$pidfile" 2>/dev/null) || { echo "[slurm-cluster] $name: no pid file"; continue; }
    kill -0 "$pid" 2>/dev/null || { echo "[slurm-cluster] $name (pid $pid) already gone"; continue; }
    kill -TERM "$pid"
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; echo "[slurm-cluster] $name killed"
    else echo "[slurm-cluster] $name stopped (pid $pid)"; fi
done
rm -f "$STATE/started" "$STATE/mariadbd.pid"
