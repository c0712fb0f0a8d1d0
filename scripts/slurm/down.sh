#!/usr/bin/env bash
# Stops what scripts/slurm/up.sh started: cancels remaining jobs, then stops
# slurmd, slurmctld and (only if up.sh started it) munged, via their pid files.
# Idempotent. Job state, logs and config under $TANDEM_SLURM_DIR are kept
# (set TANDEM_SLURM_PURGE=1 to delete that directory as well).
set -uo pipefail

DIR="${TANDEM_SLURM_DIR:-/var/lib/tandem-slurm}"
RUN="$DIR/run"
CONF="$DIR/etc/slurm.conf"
export SLURM_CONF="$CONF"

say() { echo "slurm-down: $*" >&2; }
[ "$(id -u)" -eq 0 ] || { say "ERROR: must run as root"; exit 1; }

# Serialize concurrent up.sh/down.sh runs (e.g. tests started in parallel).
mkdir -p "$DIR"
exec 9>"$DIR/.lock"
flock -w 180 9 || { echo "slurm-down: ERROR: timed out waiting for $DIR/.lock" >&2; exit 1; }

pid_of() {   # pid_of NAME PIDFILE -> prints pid if it is a live process called NAME
    local pid
    [ -s "$2" ] || return 1
    pid="$(cat "$2")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] || return 1
    echo "$pid"
}

stop() {     # stop NAME PIDFILE
    local pid
    if pid="$(pid_of "$1" "$2")"; then
        say "stopping $1 (pid $pid)"
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            say "$1 did not exit after 10s, killing"
            kill -KILL "$pid" 2>/dev/null
        fi
    fi
    rm -f "$2"
}

# Cancel every job still queued or running so no job processes (slurmstepd
# and its children) outlive slurmd. Bounded wait.
if pid_of slurmctld "$RUN/slurmctld.pid" >/dev/null && command -v squeue >/dev/null; then
    jobs="$(timeout 10 squeue -h -o %i 2>/dev/null | tr '\n' ' ')"
    if [ -n "${jobs// /}" ]; then
        say "cancelling jobs: $jobs"
        # shellcheck disable=SC2086
        timeout 10 scancel $jobs 2>/dev/null
        for _ in $(seq 1 30); do
            [ -z "$(timeout 5 squeue -h -o %i 2>/dev/null)" ] && break
            sleep 0.5
        done
    fi
fi

stop slurmd "$RUN/slurmd.pid"
stop slurmctld "$RUN/slurmctld.pid"

# munged: only if up.sh started it (it copies munged's pid file into $RUN).
if pid_of munged "$RUN/munged.pid" >/dev/null; then
    stop munged "$RUN/munged.pid"
    rm -f /run/munge/munged.pid
else
    rm -f "$RUN/munged.pid"
fi

if [ "${TANDEM_SLURM_PURGE:-0}" = 1 ]; then
    say "removing $DIR"
    [ "$(readlink -f /etc/slurm/slurm.conf 2>/dev/null)" = "$(readlink -f "$CONF")" ] && rm -f /etc/slurm/slurm.conf
    rm -rf "$DIR"
fi
say "down"
exit 0
