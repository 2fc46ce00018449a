#!/usr/bin/env bash
# The paper preset on a machine with one CUDA GPU: check the device, run every paper-preset stage for a
# bounded number of updates, and write the measured throughput per stage and the projected wall time of each
# paper table (imggen, SansType and SPoC main) to results/GPU.md. About 6 minutes on one H200-class GPU, 8 at
# most (scripts/gpu_check.py: what it runs and how it projects). Without CUDA it says so in one line and
# exits 0.
#
#   bash scripts/gpu_check.sh                      # -> results/GPU.md
#   bash scripts/gpu_check.sh --out /tmp/GPU.md --work /tmp/gpu_check
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${PY:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' >/dev/null 2>&1; then
    echo "gpu_check: no CUDA device visible to $PY (torch.cuda.is_available() is false); nothing measured"
    exit 0
fi
exec "$PY" scripts/gpu_check.py "$@"
