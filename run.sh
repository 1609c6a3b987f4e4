#!/usr/bin/env bash
# Sets up whatever is missing, starts the control plane, runs the demo once against it (a Multi-AZ
# group, a two-instance web app on a real database, a scripted workload with a failover halfway, a
# report), then keeps serving in the foreground until Ctrl-C (the caches keep running after it).
#   ./run.sh --no-demo    serve only
#   other arguments go to `cachefleet server` (./run.sh --help lists them)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
"$root/scripts/setup.sh"
cachefleet="$root/.venv/bin/cachefleet"

demo=1
args=()
data_dir=${CACHEFLEET_HOME:-$HOME/.cachefleet}
previous=""
for arg in "$@"; do
  case $arg in
    --no-demo) demo=0 ;;
    --help | -h) demo=0; args+=("$arg") ;;
    --data-dir=*) data_dir=${arg#--data-dir=}; args+=("$arg") ;;
    *) [[ $previous == --data-dir ]] && data_dir=$arg; args+=("$arg") ;;
  esac
  previous=$arg
done
# No cd: relative paths such as --data-dir stay relative to where the user stands.
if ((!demo)); then
  exec "$cachefleet" server "${args[@]}"
fi

mkdir -p -m 700 "$data_dir"
echo "run.sh: starting the server (its log: $data_dir/server.log)" >&2
"$cachefleet" server "${args[@]}" 2>>"$data_dir/server.log" &
server=$!
trap 'kill -TERM "$server" 2>/dev/null || true' INT TERM
# The server rewrites server.json when it listens; an old one from a previous run may name a dead port.
for _ in $(seq 100); do
  "$cachefleet" --data-dir "$data_dir" rg list >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || exit 1
  sleep 0.2
done
"$cachefleet" --data-dir "$data_dir" demo || echo "run.sh: the demo failed; the server keeps running" >&2
echo "cachefleet is serving (data in $data_dir); Ctrl-C stops the control plane, the caches keep running." >&2
wait "$server"
