#!/usr/bin/env bash
# Builds a tandem binary for another machine's PyTorch: a GPU machine that has
# its own PyTorch (libtorch) but no Rust toolchain, and to which only a small
# binary can be carried (libtorch itself is gigabytes).
#
#   scripts/build-device-binary.sh TORCH_VERSION TCH_VERSION [OUT_DIR]
#   scripts/build-device-binary.sh 2.11.0 0.24 dist/device
#
# tch's generated bindings name every ATen operator of one libtorch release,
# so a binary for another release needs the tch release made for it (tch 0.24
# for libtorch 2.11, 0.26 for 2.13); tandem's own code compiles with either.
# This downloads that PyTorch wheel (its headers and libraries to link
# against; nothing of it is carried), builds the committed tree with that tch
# in a scratch copy, and writes OUT_DIR/tandem, stripped, and OUT_DIR/LIBTORCH.
# On the machine, run it with the machine's libtorch first in the search path:
#
#   LD_LIBRARY_PATH=$(python3 -c 'import torch, os; print(os.path.dirname(torch.__file__))')/lib \
#     dist/device/tandem --numerics cuda env
#
# Under `--numerics portable` such a binary refuses to compute: that profile's
# bytes are defined on the libtorch of tch 0.26 (2.13). `cuda` and `native`
# results are keyed as that device's own. scripts/device_check.py is the check
# to run there.
set -euo pipefail

torch_version=${1:?usage: $0 TORCH_VERSION TCH_VERSION [OUT_DIR]}
tch_version=${2:?usage: $0 TORCH_VERSION TCH_VERSION [OUT_DIR]}
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${3:-$root/dist/device}" && cd "${3:-$root/dist/device}" && pwd)
python=${PYTHON:-$root/.venv/bin/python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== PyTorch $torch_version (headers and libraries to link against)"
"$python" -m pip download --quiet --no-deps --only-binary=:all: "torch==$torch_version" -d "$work/wheel"
"$python" - "$work/wheel" "$work/libtorch" <<'EOF'
import glob, sys, zipfile
wheel, dest = glob.glob(sys.argv[1] + "/torch-*.whl")[0], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    z.extractall(dest, [n for n in z.namelist()
                        if n.startswith(("torch/lib/", "torch/include/")) or n == "torch/version.py"])
EOF
for f in "$work"/libtorch/torch/lib/*.so*; do chmod +x "$f"; done

echo "== the committed tree, with tch $tch_version"
mkdir "$work/src"
git -C "$root" archive HEAD | tar -x -C "$work/src"
sed -i -E "s/^tch = \"[^\"]+\"/tch = \"$tch_version\"/; s/^torch-sys = \"[^\"]+\"/torch-sys = \"$tch_version\"/" "$work/src/Cargo.toml"
grep -qE "^tch = \"$tch_version\"" "$work/src/Cargo.toml" || { echo "could not set tch in Cargo.toml" >&2; exit 1; }

echo "== cargo build (torch-sys compiles its bindings: minutes)"
(
    cd "$work/src"
    env -u LIBTORCH_USE_PYTORCH LIBTORCH="$work/libtorch/torch" LIBTORCH_BYPASS_VERSION_CHECK=1 \
        CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target/device-$torch_version}" \
        cargo build --release --bin tandem
)
bin="${CARGO_TARGET_DIR:-$root/target/device-$torch_version}/release/tandem"
strip -o "$out/tandem" "$bin"
echo "$torch_version" > "$out/LIBTORCH"
echo "== $out/tandem ($(du -h "$out/tandem" | cut -f1)), for libtorch $torch_version"
