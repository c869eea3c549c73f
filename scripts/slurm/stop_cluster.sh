#!/usr/bin/env bash
# Stop the daemons that start_cluster.sh started, newest first, by the pids it recorded, and
# remove the /etc/hosts line it added for the node names. Daemons that were already running
# before it (a system munge or MariaDB) and hosts lines it did not write are left alone.
set -uo pipefail
STATE="${SCALINGLAB_SLURM_STATE:-/tmp/scalinglab-slurm}"
HOSTS_MARK="# scalinglab-slurm nodes"
if grep -qF "$HOSTS_MARK" /etc/hosts 2>/dev/null; then
    # rewritten in place: /etc/hosts is often a mount point that cannot be renamed over
    kept=$(grep -vF "$HOSTS_MARK" /etc/hosts); printf '%s\n' "$kept" > /etc/hosts
    echo "[slurm-cluster] /etc/hosts: its node names removed"
fi
rm -f "$STATE/nodes"
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
