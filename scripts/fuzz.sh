#!/usr/bin/env bash
# The long fuzz run (docs/reliability.md, "Hostile input"): the tests of tests/fuzz with the `long`
# hypothesis profile (random seeds, CACHEFLEET_FUZZ_EXAMPLES examples per test, 5000 by default)
# instead of ./test.sh's fixed budget, then the figures: requests tried, answers >= 500, the slowest
# request. Any failure (a 5xx, an answer botocore cannot parse, a crash) fails the run and prints
# hypothesis's smallest example. Arguments go to pytest (e.g. -k query).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
report=$(mktemp)
trap 'rm -f "$report"' EXIT
started=$(date +%s)
status=0
# No per-test timeout: a long run of one test takes minutes; a hang shows as the slowest request.
CACHEFLEET_FUZZ_PROFILE=long CACHEFLEET_FUZZ_REPORT="$report" \
  .venv/bin/pytest -q -p no:cacheprovider --timeout=0 tests/fuzz "$@" || status=$?
echo "fuzz: $(( $(date +%s) - started )) s, exit $status"
cat "$report"
exit "$status"
