#!/usr/bin/env bash
# Does `portable` compute the same bytes on another CPU vendor? Runs the
# built tandem under qemu-user emulating an AMD EPYC (AVX2 and FMA, no
# AVX-512) and compares with what this host committed:
#   1. `tandem env`'s fingerprint against tests/golden/fingerprint.txt;
#   2. the micro study's first trained model (the golden PM: every op of a
#      PM step and Adam's) against tests/golden/micro_study.digests.
# qemu is not a real AMD host (under `portable 2` its golden PM matched
# neither real host's: docs/numerics.md, "Measured across hosts"), but an
# operation whose result follows the processor shows up here. The golden
# PM takes about 16 minutes under emulation (under 2 s natively), so this
# is a make target (`make cross-vendor`), not part of `make test`.
#
# Usage: scripts/cross_vendor.sh [--fingerprint-only] [CPU]   (default
# EPYC-Rome; `qemu-x86_64 -cpu help` lists others). tests/cross_vendor.rs
# runs the fingerprint half (about 40 s) under `make test`. Needs
# target/release/tandem and qemu-user, which it installs with apt-get when
# run as root and missing.
set -euo pipefail
cd "$(dirname "$0")/.."
only_fingerprint=0
if [ "${1:-}" = "--fingerprint-only" ]; then only_fingerprint=1; shift; fi
cpu="${1:-EPYC-Rome}"
bin="${TANDEM_BIN:-target/release/tandem}"
if ! command -v qemu-x86_64 >/dev/null; then
  [ "$(id -u)" = 0 ] || { echo "needs qemu-x86_64 (Debian: apt-get install qemu-user), and root to install it" >&2; exit 2; }
  export DEBIAN_FRONTEND=noninteractive
  install() { apt-get install -y --no-install-recommends -o Dpkg::Use-Pty=0 qemu-user > /tmp/tandem-qemu-apt.log 2>&1; }
  install || { apt-get update -qq > /dev/null 2>&1 || true; install; } || { tail -n 20 /tmp/tandem-qemu-apt.log >&2; exit 2; }
  command -v qemu-x86_64 >/dev/null || { echo "qemu-x86_64 not found after installing qemu-user" >&2; exit 2; }
fi
[ -x "$bin" ] || { echo "build first: make build" >&2; exit 2; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
emulated() { qemu-x86_64 -cpu "$cpu" "$bin" "$@" 2> >(grep -v "TCG doesn't support requested feature" >&2); }

status=0
emulated env | grep '^fingerprint' > "$work/fingerprint.txt"
if diff -u tests/golden/fingerprint.txt "$work/fingerprint.txt"; then
  echo "fingerprint: the same under $cpu"
else
  echo "fingerprint: differs under $cpu (above)"; status=1
fi
[ "$only_fingerprint" = 1 ] && exit $status

echo "training the micro study's golden PM under $cpu (about 16 minutes)..."
emulated --cache "$work/cache" run tests/data/micro_study.exp --only golden_pm --threads 1 \
  --results "$work/results" > "$work/run.log" 2>&1 || { tail -20 "$work/run.log"; exit 1; }
want="$(awk -F'\t' '$1 == "golden_pm" && $2 == "model.safetensors" { print $3 }' tests/golden/micro_study.digests)"
got="$(grep -h -A2 '"name": "model.safetensors"' "$work"/cache/objects/*/manifest.json | sed -n 's/.*"blake3": "\([0-9a-f]*\)".*/\1/p' | head -1)"
if [ "$got" = "$want" ]; then
  echo "golden PM: the same under $cpu ($got)"
else
  echo "golden PM: differs under $cpu: $got, committed $want"; status=1
fi
exit $status
