#!/usr/bin/env bash
# Sets up whatever is missing, then runs the control plane in the foreground (arguments go to it).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
"$root/scripts/setup.sh"
# No cd: relative paths such as --data-dir stay relative to where the user stands.
exec "$root/.venv/bin/cachefleet" server "$@"
