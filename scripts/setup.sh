#!/usr/bin/env bash
# Sets up whatever is missing for cachefleet on Debian 12: the engine packages, a venv, the package.
# Idempotent and silent when nothing is missing, so run.sh and test.sh can call it every time.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

# postgresql: the database behind the demo and the client library's LISTEN/NOTIFY tests.
# nftables (libnftables), conntrack, iproute2: the kernel DNAT endpoints and the namespace tests.
# sasl2-bin: saslpasswd2, which builds the sasldb of a Memcached node with SASL authentication.
# libmemcached-tools: memcaslap, the load generator of bench/memcached.py.
debian_packages=(redis-server redis-sentinel redis-tools memcached sasl2-bin libmemcached-tools haproxy postgresql python3
  python3-venv python3-pip nftables conntrack iproute2)

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for pkg in "${debian_packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$pkg")
  done
else
  echo "setup: dpkg-query not found (not Debian?); install these yourself: ${debian_packages[*]}" >&2
fi

if ((${#missing[@]})); then
  sudo=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null 2>&1 || {
      echo "setup: run as root to install: ${missing[*]}" >&2
      exit 1
    }
    sudo=(sudo)
  fi
  echo "setup: installing ${missing[*]}" >&2
  # The packages may start their own system services; that is harmless, cachefleet uses other ports.
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The first interpreter on PATH that is 3.11 or newer (pyproject's requires-python).
pick_python() {
  local candidate
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  echo "setup: no python3.11 or python3 >= 3.11 on PATH" >&2
  return 1
}

# A venv whose interpreter vanished (e.g. a removed pyenv version) is rebuilt, not trusted.
if ! .venv/bin/python -c '' >/dev/null 2>&1; then
  python=$(pick_python)
  "$python" -m venv --clear .venv
fi

# Reinstall only when the dependencies may have changed; the stamp keeps repeat runs fast and quiet.
stamp=.venv/.installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp ]]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
  touch "$stamp"
fi
