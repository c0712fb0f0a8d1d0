#!/usr/bin/env bash
# The preemption drill: run a study from an empty cache, SIGKILL it KILLS
# times at random moments MIN..MAX seconds apart (a fixed seed), then let it
# finish, and say how much of the study the last sitting still had to
# compute. With saved training state a kill loses at most --snapshot-every
# seconds of each running training.
#
#   scripts/kill_drill.sh STUDY.exp [KILLS=10] [MIN=8] [MAX=30] [SEED=1]
#
# Extra flags for `tandem run` go in TANDEM_RUN_FLAGS (e.g. "--snapshot-every 60").
set -euo pipefail
study=${1:?usage: scripts/kill_drill.sh STUDY.exp [KILLS] [MIN] [MAX] [SEED]}
kills=${2:-10}; min=${3:-8}; max=${4:-30}; RANDOM=${5:-1}
tandem=${TANDEM:-target/release/tandem}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
args=(--cache "$work/cache" run "$study" --results "$work/results")
for i in $(seq 1 "$kills"); do
    wait_s=$(( min + RANDOM % (max - min + 1) ))
    # tandem itself in the background (not a subshell), so the kill reaches it.
    # shellcheck disable=SC2086
    "$tandem" "${args[@]}" ${TANDEM_RUN_FLAGS:-} >"$work/sitting.$i.log" 2>&1 &
    pid=$!
    sleep "$wait_s"
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid"; wait "$pid" 2>/dev/null || true
        echo "sitting $i: SIGKILL after ${wait_s}s; $(ls "$work/cache/objects" | wc -l) entries, saved state of $(ls "$work/cache/resume" 2>/dev/null | wc -l) node(s)"
    else
        wait "$pid" || true
        echo "sitting $i: finished by itself within ${wait_s}s"
        break
    fi
done
# shellcheck disable=SC2086
"$tandem" "${args[@]}" ${TANDEM_RUN_FLAGS:-} >"$work/final.log" 2>&1
grep -E "^(computed|cached|failed|resumed) " "$work/final.log"
"$tandem" --cache "$work/cache" verify | tail -1
