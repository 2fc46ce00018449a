#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment and install what is missing.
#   source scripts/setup_env.sh      -> sets $PY to the venv's python
# VENV=path overrides the location (default .venv in the repo root). Idempotent: a second call
# with everything installed takes about a second.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$REPO/.venv}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.14.1}"   # the release this project is tested with

# System tools: g++ compiles generated programs (code experiments); apt only when missing.
if ! command -v g++ >/dev/null 2>&1; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ >/dev/null
    else
        echo "[setup_env] warning: g++ not found (needed by the code experiments); install it with apt" >&2
    fi
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "[setup_env] creating virtual environment $VENV"
    python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
    echo "[setup_env] installing $TORCH_SPEC (a few minutes the first time)"
    "$PY" -m pip install -q "$TORCH_SPEC"
fi
if ! "$PY" -c "import composed_ft, numpy, PIL, sentencepiece, transformers, tqdm, matplotlib, regex, scipy, pytest, ruff" \
        >/dev/null 2>&1; then
    echo "[setup_env] installing the composed_ft package and its dependencies"
    "$PY" -m pip install -q -e "$REPO[test]"
fi
export PY
