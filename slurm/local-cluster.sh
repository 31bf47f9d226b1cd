#!/usr/bin/env bash
# EDIT: nothing; it configures Slurm for this host's name, CPUs and memory (SLURM_CONF moves slurm.conf).
# One-node Slurm on this machine, to try the batch path (sbatch templates, hpcflow submit) on a workstation.
# Needs root and Debian/Ubuntu's packages (slurmctld slurmd slurm-client munge, installed when missing);
# on a machine where another Slurm already answers it changes nothing. Run again on its own cluster, `start` writes
# slurm.conf anew and applies a change to the running daemons (scontrol reconfigure): no restart.
#   sudo slurm/local-cluster.sh start     # install if missing (apt-get), write slurm.conf, start munged/slurmctld/slurmd
#   slurm/local-cluster.sh status         # sinfo of the local node
#   sudo slurm/local-cluster.sh stop      # stop the daemons it started (munged only where it started it)
set -euo pipefail

CONF=${SLURM_CONF:-/etc/slurm/slurm.conf}
MARK="# written by hpcflow slurm/local-cluster.sh"
PACKAGES=(slurmctld slurmd slurm-client munge)
MUNGED_STARTED=/run/hpcflow-local-cluster-munged.pid   # the munged that `start` started (`stop` stops that one only)

say() { echo "local-cluster: $*"; }
die() { echo "local-cluster: error: $*" >&2; exit 2; }

answers() { command -v sinfo >/dev/null && timeout 10 sinfo -h >/dev/null 2>&1; }
ours() { [[ -f $CONF ]] && grep -qF "$MARK" "$CONF"; }

install_packages() {
    local missing=()
    for cmd in slurmctld slurmd sinfo munged; do command -v "$cmd" >/dev/null || missing+=("$cmd"); done
    ((${#missing[@]} == 0)) && return 0
    if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
        die "missing ${missing[*]}; as root on Debian/Ubuntu run: apt-get install ${PACKAGES[*]} (then rerun '$0 start')"
    fi
    say "installing ${PACKAGES[*]} (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >/dev/null \
        || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
             --no-install-recommends "${PACKAGES[@]}" >/dev/null; } \
        || die "apt-get install ${PACKAGES[*]} failed; install them by hand and rerun '$0 start'"
}

write_conf() {  # (re)writes $CONF; status 0 if that changed it, 1 if it was already so
    local host cpus mem
    host=$(hostname -s)
    cpus=$(nproc --all)
    mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)  # MiB, 10% left to the system
    mkdir -p "$(dirname "$CONF")" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
    cat > "$CONF.new" <<EOF || die "cannot write $CONF.new"
$MARK
ClusterName=hpcflow-local
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
# a submitted job is scheduled at the controller's next pass (about a second), not up to 3 s later (Slurm's default)
SchedulerParameters=batch_sched_delay=0
# seconds from the SIGTERM that ends a job's tasks to the SIGKILL (Slurm's default 30); a checkpoint on SIGTERM takes ~1 s here
KillWait=5
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    if [[ -f $CONF ]] && cmp -s "$CONF.new" "$CONF"; then rm "$CONF.new"; return 1; fi
    mv "$CONF.new" "$CONF" || die "cannot replace $CONF"
    say "wrote $CONF ($host: $cpus CPUs, $mem MiB)"
}

start_munge() {
    pgrep -x munged >/dev/null && return 0
    if [[ ! -s /etc/munge/munge.key ]]; then
        if command -v mungekey >/dev/null; then mungekey --create --keyfile=/etc/munge/munge.key
        else dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none; fi
    fi
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    if id munge >/dev/null 2>&1; then
        chown munge:munge /etc/munge/munge.key /run/munge /var/lib/munge /var/log/munge
        chmod 0400 /etc/munge/munge.key
        runuser -u munge -- munged
    else
        munged --force
    fi
    # munged has forked into the background; its pid file says which process it is
    local pid
    pid=$(cat /run/munge/munged.pid 2>/dev/null || pgrep -xo munged || true)
    if [[ -n $pid ]]; then echo "$pid" > "$MUNGED_STARTED"; fi
}

start() {
    if answers && ! ours; then say "Slurm already answers here (sinfo); nothing to do"; sinfo; return 0; fi
    [[ $(id -u) == 0 ]] || die "start needs root (it writes $CONF and starts daemons); rerun with sudo"
    install_packages
    if [[ -f $CONF ]] && ! ours; then die "$CONF exists and is not ours; use that cluster or move it away"; fi
    if write_conf && pgrep -x slurmctld >/dev/null; then  # a changed slurm.conf of the running cluster
        scontrol reconfigure || die "scontrol reconfigure failed; see /var/log/slurm/slurmctld.log"
        say "applied $CONF to the running daemons (scontrol reconfigure)"
    fi
    start_munge
    pgrep -x slurmctld >/dev/null || slurmctld
    pgrep -x slurmd >/dev/null || slurmd
    for _ in $(seq 1 30); do
        if timeout 5 sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
            say "running"; sinfo; return 0
        fi
        scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true
        sleep 1
    done
    die "the node did not become idle in 30 s; see /var/log/slurm/slurmctld.log and slurmd.log"
}

stop() {
    ours || { say "no cluster of ours to stop ($CONF not written by this script)"; return 0; }
    for d in slurmd slurmctld; do
        pid=$(cat "/run/$d.pid" 2>/dev/null || true)
        if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then kill "$pid"; say "stopped $d ($pid)"; fi
    done
    # munged too where `start` started it (one that was running already, e.g. the system's service, is left)
    pid=$(cat "$MUNGED_STARTED" 2>/dev/null || true)
    if [[ -n $pid ]] && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == munged ]]; then
        kill "$pid"; say "stopped munged ($pid)"
    fi
    rm -f "$MUNGED_STARTED"
}

status() {
    if answers; then sinfo; else say "no Slurm answers here (start one with: sudo $0 start)"; return 3; fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
