#!/usr/bin/env bash
# The project's test command: set up the environment, then run the default (fast) test suite.
#   bash scripts/test.sh            fast suite (CI)
#   bash scripts/test.sh -m slow    the slow end-to-end tests too (pytest arguments pass through)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
exec "$PY" -m pytest -q "$@"
