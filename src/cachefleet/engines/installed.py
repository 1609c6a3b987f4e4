"""Which engine binaries this machine has: ``EngineVersion`` may only name one of these.

Discovery asks each binary for its version instead of trusting its name, because distributions ship
compatibility links (Debian's ``valkey-redis-compat`` installs a ``redis-server`` that is Valkey).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass

# (binary name, version flag); the engine is read from the answer, not from this table.
_CANDIDATES = (("redis-server", "--version"), ("valkey-server", "--version"), ("memcached", "-V"))
_VERSION_TIMEOUT = 5.0

# "Redis server v=7.0.15 sha=...", "Valkey server v=8.0.2 sha=...", "memcached 1.6.18"
_SERVER_VERSION = re.compile(r"^(Redis|Valkey) server v=(\d+\.\d+\.\d+)", re.IGNORECASE)
_MEMCACHED_VERSION = re.compile(r"^memcached (\d+\.\d+\.\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class EngineBinary:
    engine: str  # 'redis' | 'valkey' | 'memcached'
    version: str  # full, e.g. '7.0.15'
    path: str


def parse_version(output: str) -> tuple[str, str] | None:
    """``(engine, version)`` from a binary's version output, or None when it is not one we know."""
    text = output.strip()
    if match := _SERVER_VERSION.match(text):
        return match.group(1).lower(), match.group(2)
    if match := _MEMCACHED_VERSION.match(text):
        return "memcached", match.group(1)
    return None


def major_minor(version: str) -> str:
    """``'7.0.15'`` -> ``'7.0'`` (ElastiCache names Redis 6+ versions by major.minor)."""
    return ".".join(version.split(".")[:2])


def discover(search_path: str | None = None) -> list[EngineBinary]:
    """Every engine binary on ``search_path`` (default ``$PATH``), each real file reported once."""
    found: list[EngineBinary] = []
    seen: set[str] = set()
    for name, flag in _CANDIDATES:
        path = shutil.which(name, path=search_path)
        if path is None or os.path.realpath(path) in seen:
            continue
        seen.add(os.path.realpath(path))
        parsed = parse_version(_version_output(path, flag))
        if parsed is not None:
            found.append(EngineBinary(engine=parsed[0], version=parsed[1], path=path))
    return found


def _version_output(path: str, flag: str) -> str:
    try:
        done = subprocess.run(
            [path, flag],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_VERSION_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return (done.stdout or done.stderr).decode(errors="replace")
