#!/usr/bin/env bash
# Sets up whatever is missing, then runs every check CI runs: lint, types, import contracts, tests.
# Arguments go to pytest (e.g. ./test.sh tests/unit -k cli).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/lint-imports
# Two workers, one test file each at a time (module fixtures stay whole): the integration tests mostly
# wait on engines, so the suite used about a fifth of 2 cores run alone. `-n 0` after it runs serially.
exec .venv/bin/pytest -q -n 2 --dist loadfile "$@"
