#!/usr/bin/env bash
# Installs Python packages into the project venv (.venv, made by
# scripts/bootstrap-venv.sh), pinned, at versions checked to work with torch
# 2.13.0 on CPU; torch itself is never changed: pip runs under a constraint
# that pins it, and it is checked after. One group, and only what it needs:
#
#   bash bench/setup.sh hf      # transformers and tokenizers: make real-text
#                               # (scripts/tiny_hf_models.py makes its models)
#   bash bench/setup.sh test    # hf and tensorboard: make test
#                               # (tests/pretrained.rs compares with transformers,
#                               # tests/tensorboard.rs reads event files back)
#   bash bench/setup.sh [bench] # test and TRL's stack: make bench
#                               # (bench/reference/trl_dpo_ipo.py)
#
# Idempotent: a no-op (well under a second) when all is in place.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$REPO_ROOT/.venv/bin/python"
TORCH_VERSION="2.13.0"

# Each group's own pins; a group installs its own and those above it.
HF=(
    transformers==5.24.0
    tokenizers==0.23.3
    huggingface_hub==2.4.0
    safetensors==0.8.0
)
TEST=(tensorboard==2.21.0)
BENCH=(
    trl==1.16.0
    datasets==5.2.0
    accelerate==1.15.0
)
GROUP="${1:-bench}"
case "$GROUP" in
    hf) PINNED=("${HF[@]}"); IMPORTS="transformers, tokenizers" ;;
    test) PINNED=("${HF[@]}" "${TEST[@]}"); IMPORTS="transformers, tokenizers, tensorboard" ;;
    bench) PINNED=("${HF[@]}" "${TEST[@]}" "${BENCH[@]}"); IMPORTS="trl, transformers, datasets, accelerate, tokenizers, tensorboard" ;;
    *) echo "bench/setup.sh: unknown group '$GROUP' (hf, test or bench)" >&2; exit 2 ;;
esac
# Their dependencies as resolved when the pins above were checked (pip
# constraints: used only if needed, never installed for their own sake).
LOCKED=(
    annotated-doc==0.0.7 annotated-types==0.8.0 anyio==4.16.0 click==8.5.1
    dill==0.4.1 h11==0.16.0 hf-xet==1.8.0 httpcore2==2.16.2 httpx2==2.16.2
    idna==3.20 markdown-it-py==4.3.0 mdurl==0.1.2 multiprocess==0.70.19
    packaging==26.4 pandas==3.1.1 psutil==7.2.2 pyarrow==26.0.1
    pydantic==2.14.4 pydantic_core==2.50.5 Pygments==2.21.0
    python-dateutil==4.0.0 PyYAML==6.0.4 regex==2026.11.19 rich==15.0.0
    shellingham==1.5.4 tqdm==4.70.1 truststore==0.10.5 typer==0.29.2
    typing-inspection==0.4.5 tzdata==2026.6 xxhash==4.1.0
    absl-py==2.5.1 grpcio==1.85.3 Markdown==3.11.3 MarkupSafe==3.0.4
    pillow==13.0.0 protobuf==7.36.2 tensorboard-data-server==0.7.2
    Werkzeug==3.1.9
)

die() { echo "bench/setup.sh: $*" >&2; exit 1; }

[ -x "$PY" ] || die "no $REPO_ROOT/.venv/bin/python: run 'bash scripts/bootstrap-venv.sh' (or 'make bootstrap') first"

torch_version() {
    "$PY" - <<'EOF'
from importlib.metadata import version, PackageNotFoundError
try:
    print(version("torch"))
except PackageNotFoundError:
    print("missing")
EOF
}

# Prints the pins that are not installed at exactly that version (none: all in place).
missing_pins() {
    "$PY" - "${PINNED[@]}" <<'EOF'
import sys
from importlib.metadata import version, PackageNotFoundError
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    try:
        have = version(name)
    except PackageNotFoundError:
        have = None
    if have != want:
        print(f"{pin} (installed: {have})")
EOF
}

before="$(torch_version)"
case "$before" in
    "$TORCH_VERSION"|"$TORCH_VERSION"+*) ;;
    *) die "the venv has torch $before, expected $TORCH_VERSION: run scripts/bootstrap-venv.sh" ;;
esac

todo="$(missing_pins)"
if [ -z "$todo" ]; then
    echo "bench/setup.sh: already installed (${PINNED[*]})" >&2
    exit 0
fi
echo "bench/setup.sh: installing:" >&2
echo "$todo" | sed 's/^/  /' >&2

constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
{
    echo "torch==$TORCH_VERSION"
    printf '%s\n' "${PINNED[@]}" "${LOCKED[@]}"
} >"$constraints"

"$PY" -m pip install --quiet --disable-pip-version-check -c "$constraints" "${PINNED[@]}"

after="$(torch_version)"
[ "$after" = "$before" ] || die "torch changed from $before to $after: the venv needs 'rm -rf' of it and scripts/bootstrap-venv.sh"
todo="$(missing_pins)"
[ -z "$todo" ] || die "still not at the pinned versions after install: $todo"
"$PY" -m pip check --disable-pip-version-check >&2 || die "pip check found broken requirements"
"$PY" -c "import $IMPORTS" || die "the installed packages do not import"
echo "bench/setup.sh: installed; torch is still $after" >&2
