#!/usr/bin/env bash
# Brings up a single-host Slurm cluster (munged + slurmctld + slurmd) on this
# machine, for testing tandem's Slurm executor. Idempotent: if everything is
# already up it only checks the node is usable.
#
# Needs root. Works without systemd (daemons are started directly, pid files
# under $TANDEM_SLURM_DIR/run) and without cgroups (proctrack/linuxproc,
# task/none, no memory enforcement).
#
# Environment:
#   TANDEM_SLURM_DIR   state/spool/log/config root (default /var/lib/tandem-slurm)
#   TANDEM_SLURM_WAIT  seconds to wait for the node to become idle (default 60)
#   TANDEM_SLURM_CPUS  CPUs to declare for the node (default: nproc)
#   TANDEM_SLURM_EXTRA_CONF  extra slurm.conf lines appended verbatim (e.g.
#                      "DependencyParameters=kill_invalid_depend"); a config
#                      change restarts slurmctld/slurmd
#
# On success prints SLURM_CONF=<path> on stdout (last line). /etc/slurm/slurm.conf
# is made a symlink to it when that file does not exist yet (or is already our
# link), so plain sbatch/squeue/... work without SLURM_CONF.
set -euo pipefail

DIR="${TANDEM_SLURM_DIR:-/var/lib/tandem-slurm}"
WAIT="${TANDEM_SLURM_WAIT:-60}"
ETC="$DIR/etc"
CONF="$ETC/slurm.conf"
STATE="$DIR/state"
SPOOL="$DIR/spool"
LOG="$DIR/log"
RUN="$DIR/run"
NODE="$(hostname -s)"
export SLURM_CONF="$CONF"

say() { echo "slurm-up: $*" >&2; }
die() { echo "slurm-up: ERROR: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root"

# Serialize concurrent up.sh/down.sh runs (e.g. tests started in parallel).
# Daemons are started with 9>&- so they do not inherit (and hold) the lock.
mkdir -p "$DIR"
exec 9>"$DIR/.lock"
flock -w 180 9 || { echo "slurm-up: ERROR: timed out waiting for $DIR/.lock" >&2; exit 1; }

# ---------------------------------------------------------------- packages
PKGS=(slurmctld slurmd slurm-client munge)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt_install() {
        apt-get install -y --no-install-recommends -o Dpkg::Use-Pty=0 "${missing[@]}" >"$1" 2>&1
    }
    mkdir -p /tmp
    aptlog="$(mktemp /tmp/tandem-slurm-apt.XXXXXX)"
    # Only refresh the package lists when a package has no install candidate
    # (empty/stale lists) or the first install attempt fails (e.g. 404s).
    need_update=0
    for p in "${missing[@]}"; do
        cand="$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ {print $2}')"
        if [ -z "$cand" ] || [ "$cand" = "(none)" ]; then need_update=1; fi
    done
    [ "$need_update" -eq 1 ] && { say "apt-get update"; apt-get update -qq >"$aptlog" 2>&1 || true; }
    if ! apt_install "$aptlog"; then
        say "install failed, running apt-get update and retrying"
        apt-get update -qq >>"$aptlog" 2>&1 || true
        apt_install "$aptlog" || { tail -n 30 "$aptlog" >&2; die "apt-get install ${missing[*]} failed"; }
    fi
    rm -f "$aptlog"
fi
for b in munged munge unmunge slurmctld slurmd sinfo scontrol; do
    command -v "$b" >/dev/null || die "$b not found after install"
done

mkdir -p "$ETC" "$STATE" "$SPOOL/slurmd" "$LOG" "$RUN"
chmod 755 "$DIR" "$ETC" "$LOG" "$RUN"
chmod 700 "$STATE"

# ---------------------------------------------------------------- munge
MUNGE_KEY=/etc/munge/munge.key
getent passwd munge >/dev/null || die "user munge missing (munge package broken?)"
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge
install -d -o munge -g munge -m 0700 /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s "$MUNGE_KEY" ]; then
    say "creating $MUNGE_KEY"
    if command -v mungekey >/dev/null; then
        mungekey --create --keyfile="$MUNGE_KEY" --force
    else
        dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
    fi
fi
chown munge:munge "$MUNGE_KEY"
chmod 0400 "$MUNGE_KEY"

munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
if munge_ok; then
    say "munged already running"
else
    # A stale socket/pid from a killed munged makes munged refuse to start.
    rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock /run/munge/munged.pid
    say "starting munged"
    runuser -u munge -- munged --pid-file=/run/munge/munged.pid \
        --log-file=/var/log/munge/munged.log 9>&- \
        || die "munged failed to start; see /var/log/munge/munged.log"
    for _ in $(seq 1 50); do munge_ok && break; sleep 0.1; done
    munge_ok || die "munged started but munge -n | unmunge fails; see /var/log/munge/munged.log"
    # Remember that we started it, so down.sh stops only what up.sh started.
    cp /run/munge/munged.pid "$RUN/munged.pid"
fi

# ---------------------------------------------------------------- slurm.conf
cpus="${TANDEM_SLURM_CPUS:-$(nproc)}"
mem_total_mb=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 ))
# Declare a bit less than the machine has: a node that reports less memory
# than RealMemory is drained by slurmctld ("Low RealMemory").
real_mem=$(( mem_total_mb * 9 / 10 ))
[ "$real_mem" -ge 1 ] || real_mem=1
def_mem_per_cpu=$(( real_mem / cpus / 2 ))
[ "$def_mem_per_cpu" -ge 1 ] || def_mem_per_cpu=1

newconf="$(mktemp "$ETC/.slurm.conf.XXXXXX")"
cat >"$newconf" <<EOF
# Generated by tandem scripts/slurm/up.sh -- single-host test cluster.
ClusterName=tandem
SlurmctldHost=${NODE}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=${STATE}
SlurmdSpoolDir=${SPOOL}/slurmd
SlurmctldPidFile=${RUN}/slurmctld.pid
SlurmdPidFile=${RUN}/slurmd.pid
SlurmctldLogFile=${LOG}/slurmctld.log
SlurmdLogFile=${LOG}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups here: plain process tracking, no task binding/enforcement.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
# Jobs without --mem get this much per CPU, so several jobs can share the node.
DefMemPerCPU=${def_mem_per_cpu}
# No slurmdbd: sacct does not work. Finished jobs are visible to
# 'scontrol show job' for MinJobAge seconds, and every finished job is
# appended (JobState=..., ExitCode=...) to the jobcomp file below.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=${LOG}/jobcomp.log
MinJobAge=3600
ReturnToService=2
SlurmctldTimeout=120
SlurmdTimeout=300
InactiveLimit=0
MailProg=/bin/true
# Reject at submit time what can never run (e.g. more CPUs than the node has)
# instead of leaving it PENDING (Reason=PartitionConfig) forever.
EnforcePartLimits=ALL
KillWait=10
Waittime=0
NodeName=${NODE} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${real_mem} State=UNKNOWN
PartitionName=main Nodes=${NODE} Default=YES MaxTime=INFINITE State=UP
${TANDEM_SLURM_EXTRA_CONF:-}
EOF
chmod 644 "$newconf"
conf_changed=0
if [ -f "$CONF" ] && cmp -s "$newconf" "$CONF"; then
    rm -f "$newconf"
else
    mv -f "$newconf" "$CONF"
    conf_changed=1
    say "wrote $CONF"
fi

mkdir -p /etc/slurm
if [ -L /etc/slurm/slurm.conf ] || [ ! -e /etc/slurm/slurm.conf ]; then
    ln -sfn "$CONF" /etc/slurm/slurm.conf
elif [ "$(readlink -f /etc/slurm/slurm.conf)" != "$(readlink -f "$CONF")" ]; then
    say "WARNING: /etc/slurm/slurm.conf exists and is not ours; clients need SLURM_CONF=$CONF"
fi

# ---------------------------------------------------------------- daemons
# pid_alive NAME: the pid in $RUN/NAME.pid is a live process called NAME.
pid_alive() {
    local f="$RUN/$1.pid" pid
    [ -s "$f" ] || return 1
    pid="$(cat "$f")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ]
}
stop_daemon() {
    local name="$1" pid
    pid_alive "$name" || { rm -f "$RUN/$name.pid"; return 0; }
    pid="$(cat "$RUN/$name.pid")"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    rm -f "$RUN/$name.pid"
}

if [ "$conf_changed" -eq 1 ] && { pid_alive slurmctld || pid_alive slurmd; }; then
    say "config changed: restarting slurmd and slurmctld"
    stop_daemon slurmd
    stop_daemon slurmctld
fi

show_logs() {
    for f in "$LOG/slurmctld.log" "$LOG/slurmd.log"; do
        [ -f "$f" ] && { echo "---- tail $f" >&2; tail -n 15 "$f" >&2; }
    done
}

if pid_alive slurmctld; then
    say "slurmctld already running (pid $(cat "$RUN/slurmctld.pid"))"
else
    rm -f "$RUN/slurmctld.pid"
    say "starting slurmctld"
    # Daemonizes itself; keeps job state (and the job id counter) from
    # $STATE across restarts.
    slurmctld -f "$CONF" 9>&- || { show_logs; die "slurmctld failed to start"; }
fi
if pid_alive slurmd; then
    say "slurmd already running (pid $(cat "$RUN/slurmd.pid"))"
else
    rm -f "$RUN/slurmd.pid"
    say "starting slurmd"
    slurmd_started_at=$(date +%s)
    slurmd -f "$CONF" 9>&- || { show_logs; die "slurmd failed to start"; }
fi

# ---------------------------------------------------------------- wait for node
# slurmd_registered: slurmctld has heard from the slurmd we just started
# (after a restart slurmctld reports the node state it saved, before that).
slurmd_started_at="${slurmd_started_at:-0}"
slurmd_registered() {
    local t
    [ "$slurmd_started_at" -eq 0 ] && return 0
    t="$(scontrol -o show node "$NODE" 2>/dev/null | tr ' ' '\n' | sed -n 's/^SlurmdStartTime=//p')"
    [ -n "$t" ] && [ "$t" != None ] || return 1
    t="$(date -d "$t" +%s 2>/dev/null)" || return 1
    [ "$t" -ge $(( slurmd_started_at - 1 )) ]
}
deadline=$(( $(date +%s) + WAIT ))
state=""
resumed=0
while :; do
    state="$(sinfo -h -n "$NODE" -o %T 2>/dev/null | head -n1 || true)"
    case "$state" in
        idle|mixed|allocated|completing) slurmd_registered && break ;;
        drained|draining|down|fail|failing)
            # e.g. left DOWN by an earlier unclean stop: put it back once.
            if [ "$resumed" -eq 0 ]; then
                say "node $NODE is $state, resuming"
                scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true
                resumed=1
            fi ;;
    esac
    if [ "$(date +%s)" -ge "$deadline" ]; then
        echo "slurm-up: ERROR: node $NODE not idle after ${WAIT}s (state: '${state:-no answer}')" >&2
        scontrol show node "$NODE" 2>&1 | grep -E 'State=|Reason=' >&2 || true
        pid_alive slurmctld || echo "slurm-up: slurmctld is not running" >&2
        pid_alive slurmd || echo "slurm-up: slurmd is not running" >&2
        show_logs
        exit 1
    fi
    sleep 0.5
done

say "node $NODE is $state; config dir $ETC, logs $LOG"
echo "SLURM_CONF=$CONF"
