#!/usr/bin/env bash
# The project's test command: set up the environment, lint, then run the default (fast) test suite.
#   bash scripts/test.sh                      the linter and the fast suite (CI)
#   bash scripts/test.sh -m slow              the slow end-to-end tests only (pytest arguments pass through)
#   bash scripts/test.sh -m "slow or not slow"   everything
# One OpenMP thread unless OMP_NUM_THREADS says otherwise: the tests' models are tiny, and where another
# process holds a core, threads waiting at barriers make them many times slower (the suite took 13.5 min
# with 2 threads and 4.5 min with 1 beside a training job on a 2-core machine); it passes with either.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
source scripts/setup_env.sh
"$PY" -m ruff check .
exec "$PY" -m pytest -q "$@"
