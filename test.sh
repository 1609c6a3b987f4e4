#!/usr/bin/env bash
# Sets up whatever is missing, then runs every check CI runs: lint, types, import contracts, tests.
# Arguments go to pytest (e.g. ./test.sh tests/unit -k cli).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/lint-imports
exec .venv/bin/pytest -q "$@"
