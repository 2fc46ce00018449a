#!/usr/bin/env bash
# The project's test command: set up the environment, lint, then run the default (fast) test suite.
#   bash scripts/test.sh                      the linter and the fast suite (CI)
#   bash scripts/test.sh -m slow              the slow end-to-end tests only (pytest arguments pass through)
#   bash scripts/test.sh -m "slow or not slow"   everything
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
"$PY" -m ruff check .
exec "$PY" -m pytest -q "$@"
