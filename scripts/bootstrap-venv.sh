#!/usr/bin/env bash
# Creates (once per machine) a Python virtual environment holding the PyTorch
# build that tch 0.26 links against, and links it into the repository as .venv.
#
# Why a shared venv: torch with its CUDA libraries is ~4.7 GB and takes minutes
# to install. Keying the venv by torch version under ~/.cache means every clone
# on this machine (CI clones afresh each time) reuses one copy, while a fresh
# machine still gets it from `make`.
set -euo pipefail

TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHARED_VENV="${TANDEM_VENV_HOME:-$HOME/.cache/tandem}/venv-torch-${TORCH_VERSION}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$SHARED_VENV/bin/python" ] || [ ! -f "$SHARED_VENV/.complete" ]; then
    echo "bootstrap: creating $SHARED_VENV (torch==$TORCH_VERSION, a few minutes the first time)" >&2
    rm -rf "$SHARED_VENV"
    mkdir -p "$(dirname "$SHARED_VENV")"
    "$PYTHON" -m venv "$SHARED_VENV"
    "$SHARED_VENV/bin/python" -m pip install --quiet --upgrade pip
    "$SHARED_VENV/bin/python" -m pip install --quiet "torch==${TORCH_VERSION}" numpy
    # Marker written last: an interrupted install is redone, never half-used.
    touch "$SHARED_VENV/.complete"
fi

# .venv in the repository is a link to the shared venv (or a real venv the user made).
if [ ! -e "$REPO_ROOT/.venv" ]; then
    ln -sfn "$SHARED_VENV" "$REPO_ROOT/.venv"
fi
"$REPO_ROOT/.venv/bin/python" -c "import torch; assert torch.__version__.startswith('$TORCH_VERSION'), torch.__version__"
