#!/usr/bin/env bash
# Each test group's time from a `cargo test` log (target/test.log), slowest
# first, with the total: what `make test` prints last, so a group that grew
# is seen in the run that grew it. A group is one test binary (a file in
# tests/, or a crate's unit tests).
set -euo pipefail
log="${1:-target/test.log}"
awk '
  /^ *Running / {
    # "Running tests/cli.rs (target/release/deps/cli-...)": the group is the
    # source path; unit tests are named by their crate (the deps file name).
    group = $2
    if (group == "unittests") {
      group = $3; dep = $NF; sub(/.*\//, "", dep); sub(/-[0-9a-f]+\)$/, "", dep)
      group = group " (" dep ")"
    }
    next
  }
  /^ *Doc-tests / { group = "doc-tests " $2; next }
  /^test result: / && group != "" {
    t = $NF; sub(/s$/, "", t)
    passed = $4
    printf "%10.2f s  %5d passed  %s\n", t, passed, group
    total += t; group = ""
  }
  # The first build of the log: `make test` builds everything before lint
  # and the run (whose own "Finished" comes after nothing left to build).
  /^ *Finished .* in / && build == "" { build = $0; sub(/.* in /, "", build) }
  END {
    printf "TOTAL %10.2f s  in all test groups; the build before them (tandem and the tests) took %s\n", total, build
  }
' "$log" | sort -rn | awk '/^TOTAL/ { last = substr($0, 7); next } { print } END { print last }'

