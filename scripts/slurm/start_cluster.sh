#!/usr/bin/env bash
# A SLURM cluster on localhost, for CI and for trying `hydra/launcher=slurm` on a laptop: one
# node by default, or N nodes (`--nodes N`: N slurmd daemons on this host, named n1..nN, each
# with its own port, spool, pid and log, and each the whole host), so multi-node jobs run for
# real. Needs root on Debian/Ubuntu (apt). Safe to run again: it installs only missing
# packages, rewrites the configs and starts only the daemons that are not already answering.
# Each daemon it starts is listed with its pid file in $STATE/started, and an /etc/hosts line it
# adds (so that n1..nN resolve: Lightning's MASTER_ADDR is the first node's name) is marked;
# stop_cluster.sh undoes exactly those.
#
#   sudo bash scripts/slurm/start_cluster.sh [--nodes N]   # then: sinfo; scalinglab-train -m ... hydra/launcher=slurm
#
# Accounting (slurmdbd + MariaDB) is on: submitit reads job states from `sacct`, and without it
# a job that SLURM kills before it writes its result leaves the launcher waiting forever.
set -euo pipefail

STATE="${SCALINGLAB_SLURM_STATE:-/tmp/scalinglab-slurm}"
PARTITION="${SCALINGLAB_SLURM_PARTITION:-debug}"
DB_PASSWORD="${SCALINGLAB_SLURM_DB_PASSWORD:-scalinglab}"
SPOOL=/var/spool/scalinglab-slurm   # our own: another cluster's state here would be refused
HOSTS_MARK="# scalinglab-slurm nodes"  # the /etc/hosts line this script adds ends with it
NODES=1
while [ $# -gt 0 ]; do
    case "$1" in
        --nodes) NODES=${2:-}; shift 2 ;;
        --nodes=*) NODES=${1#--nodes=}; shift ;;
        *) echo "usage: start_cluster.sh [--nodes N]" >&2; exit 2 ;;
    esac
done
[[ "$NODES" =~ ^[1-9][0-9]?$ ]] || { echo "[slurm-cluster] error: --nodes takes 1 to 99, got '$NODES'" >&2; exit 2; }
HOST="$(hostname -s)"
if [ "$NODES" = 1 ]; then NAMES=("$HOST"); else NAMES=($(seq -f "n%g" 1 "$NODES")); fi
t0=$SECONDS

say() { echo "[slurm-cluster] $*"; }
die() { echo "[slurm-cluster] error: $*" >&2; exit 1; }
trap 'echo "[slurm-cluster] error: line $LINENO failed: $BASH_COMMAND" >&2' ERR
running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
retry() {  # retry SECONDS CMD...: until CMD succeeds, polling 4 times a second
    local tries=$(($1 * 4)); shift
    while ! "$@" >/dev/null 2>&1; do
        tries=$((tries - 1)); [ "$tries" -gt 0 ] || return 1; sleep 0.25
    done
}
started() { echo "$1 $2" >> "$STATE/started"; say "$1 started (pid $(cat "$2"))"; }

[ "$(id -u)" = 0 ] || die "needs root (sudo): it installs packages and starts system daemons"
command -v apt-get >/dev/null || die "needs a Debian-based system (apt-get)"
mkdir -p "$STATE"; touch "$STATE/started"

packages="munge slurmctld slurmd slurm-client slurmdbd mariadb-server"
missing=$(for p in $packages; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done | xargs)
if [ -n "$missing" ]; then
    say "installing $missing"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# Changing the node count needs a fresh controller: slurmctld reads its nodes at start.
if [ -s "$STATE/nodes" ] && [ "$(cat "$STATE/nodes")" != "$NODES" ] \
        && running /run/slurm/slurmctld.pid; then
    die "the cluster runs $(cat "$STATE/nodes") node(s); stop it first (stop_cluster.sh)"
fi
echo "$NODES" > "$STATE/nodes"
mkdir -p /etc/slurm "$SPOOL/ctld" /var/log/slurm /run/slurm /run/munge
for name in "${NAMES[@]}"; do mkdir -p "$SPOOL/d/$name"; done
chown munge:munge /run/munge
[ -s /etc/munge/munge.key ] || mungekey --create --force --keyfile /etc/munge/munge.key
chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key

# The node as slurmd sees it: declaring more CPUs or memory than it detects drains the node.
eval "$(slurmd -C | head -1 | tr ' ' '\n' | grep -E '^(CPUs|SocketsPerBoard|CoresPerSocket|ThreadsPerCore|RealMemory)=')"
cat > /etc/slurm/slurm.conf.tmp <<CONF
# written by scalinglab scripts/slurm/start_cluster.sh
ClusterName=scalinglab
SlurmctldHost=${HOST}(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$SPOOL/ctld
# per node (%n): several slurmd daemons share this host
SlurmdSpoolDir=$SPOOL/d/%n
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd-%n.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd-%n.log
# plain process tracking: no cgroups in containers
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/linux
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
SchedulerType=sched/backfill
# schedule at once, and retry often, so jobs and requeued jobs start within seconds
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,bf_interval=1,sched_interval=2
# a requeued job waits until its credential expires (120 s by default)
AuthInfo=cred_expire=10
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
KillWait=5
MinJobAge=300
Waittime=0
# reject at submission a job the partition can never run, rather than leave it pending forever
EnforcePartLimits=ALL
InactiveLimit=0
$(for i in "${!NAMES[@]}"; do
    echo "NodeName=${NAMES[$i]} NodeHostname=${HOST} NodeAddr=127.0.0.1 Port=$((17001 + i)) CPUs=${CPUs} SocketsPerBoard=${SocketsPerBoard} CoresPerSocket=${CoresPerSocket} ThreadsPerCore=${ThreadsPerCore} RealMemory=$((RealMemory * 9 / 10)) State=UNKNOWN"
done)
PartitionName=${PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
mv /etc/slurm/slurm.conf.tmp /etc/slurm/slurm.conf
(umask 077; cat > /etc/slurm/slurmdbd.conf <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=/run/slurm/slurmdbd.pid
LogFile=/var/log/slurm/slurmdbd.log
StorageType=accounting_storage/mysql
StorageUser=slurm
StoragePass=${DB_PASSWORD}
StorageLoc=slurm_acct_db
CONF
)

if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then say "munged already running"; else
    runuser -u munge -- /usr/sbin/munged
    retry 10 sh -c 'munge -n | unmunge' || die "munged did not start"
    started munged /run/munge/munged.pid
fi

if mariadb -e 'select 1' >/dev/null 2>&1; then say "mariadb already running"; else
    mkdir -p /run/mysqld; chown mysql: /run/mysqld
    nohup /usr/sbin/mariadbd --user=mysql --bind-address=127.0.0.1 \
        >> /var/log/slurm/mariadb.log 2>&1 &
    echo $! > "$STATE/mariadbd.pid"
    retry 60 mariadb -e 'select 1' || die "mariadb did not start: /var/log/slurm/mariadb.log"
    started mariadbd "$STATE/mariadbd.pid"
fi
mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '${DB_PASSWORD}';
            ALTER USER 'slurm'@'localhost' IDENTIFIED BY '${DB_PASSWORD}';
            GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"

if running /run/slurm/slurmdbd.pid; then say "slurmdbd already running"; else
    /usr/sbin/slurmdbd
    retry 60 sacctmgr -n show cluster || die "slurmdbd did not start: /var/log/slurm/slurmdbd.log"
    started slurmdbd /run/slurm/slurmdbd.pid
fi

if running /run/slurm/slurmctld.pid; then
    say "slurmctld already running: re-reading the config"; scontrol reconfigure
else
    /usr/sbin/slurmctld
    retry 30 scontrol ping || die "slurmctld did not start: /var/log/slurm/slurmctld.log"
    started slurmctld /run/slurm/slurmctld.pid
fi

# The node names resolve (Lightning takes MASTER_ADDR from the first one in SLURM_NODELIST).
if [ "$NODES" != 1 ] && ! getent hosts "${NAMES[@]}" >/dev/null; then
    echo "127.0.0.1 ${NAMES[*]} $HOSTS_MARK" >> /etc/hosts
    say "/etc/hosts: ${NAMES[*]} -> 127.0.0.1"
fi

for name in "${NAMES[@]}"; do
    pid=/run/slurm/slurmd-$name.pid
    if running "$pid"; then say "slurmd $name already running"; continue; fi
    /usr/sbin/slurmd -N "$name"
    retry 10 test -s "$pid" || die "slurmd $name did not start: /var/log/slurm/slurmd-$name.log"
    started "slurmd-$name" "$pid"
done

node_up() {  # every node idle (or busy): none down or draining
    local states
    states=$(sinfo -h -N -o %T)
    [ "$(echo "$states" | wc -w)" = "$NODES" ] || return 1
    if echo "$states" | grep -qE '^(drain|down)'; then
        scontrol update nodename="$(IFS=,; echo "${NAMES[*]}")" state=resume
        return 1
    fi
    ! echo "$states" | grep -qvE '^(idle|mixed|allocated)$'
}
retry 60 node_up || die "the nodes are not up: $(sinfo -h -N -o '%N %T' | xargs); logs in /var/log/slurm"
say "ready in $((SECONDS - t0)) s: partition $PARTITION, $NODES node(s) ${NAMES[*]} ($CPUs CPUs each)"
