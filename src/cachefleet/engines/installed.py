"""Which engine and tool binaries this machine has: ``EngineVersion`` may only name an engine found here.

Every binary is looked up by ``find_binary``: ``$PATH`` first, then the standard system directories.
Debian installs ``haproxy`` in ``/usr/sbin``, which a normal user's ``PATH`` lacks, so ``PATH`` alone
would miss an installed package. A missing binary is reported with the Debian package that ships it.

Discovery asks each engine binary for its version instead of trusting its name, because distributions
ship compatibility links (Debian's ``valkey-redis-compat`` installs a ``redis-server`` that is Valkey).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# (binary name, version flag); the engine is read from the answer, not from this table.
_CANDIDATES = (("redis-server", "--version"), ("valkey-server", "--version"), ("memcached", "-V"))
_VERSION_TIMEOUT = 5.0

# Searched after $PATH, in the order of Debian's default PATH for root.
SYSTEM_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")

# Binary -> the Debian package that installs it (what scripts/setup.sh installs).
DEBIAN_PACKAGES = {
    "redis-server": "redis-server",
    "redis-sentinel": "redis-sentinel",
    "redis-cli": "redis-tools",
    "redis-benchmark": "redis-tools",
    "redis-check-rdb": "redis-tools",
    "haproxy": "haproxy",
    "memcached": "memcached",
    "memcaslap": "libmemcached-tools",
    "saslpasswd2": "sasl2-bin",
    "valkey-server": "valkey-server",
}

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


class MissingBinary(Exception):
    """Binaries that are not installed; the message names their Debian packages and how to install them."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = tuple(names)
        super().__init__(missing_message(self.names))


def lookup_path(path: str | None = None, system_dirs: Sequence[str] = SYSTEM_DIRS) -> str:
    """``path`` (default ``$PATH``) followed by each of ``system_dirs`` that it does not list."""
    listed = [entry for entry in (os.environ.get("PATH", "") if path is None else path).split(os.pathsep) if entry]
    return os.pathsep.join(listed + [directory for directory in system_dirs if directory not in listed])


def find_binary(name: str, path: str | None = None, system_dirs: Sequence[str] = SYSTEM_DIRS) -> str | None:
    """The absolute path of ``name`` on ``path`` (default ``$PATH``) or in ``system_dirs``, else None."""
    found = shutil.which(name, path=lookup_path(path, system_dirs))
    return os.path.abspath(found) if found else None


def require_binaries(*names: str, path: str | None = None, system_dirs: Sequence[str] = SYSTEM_DIRS) -> dict[str, str]:
    """name -> absolute path for each of ``names``; ``MissingBinary`` names every one that is absent."""
    found = {name: find_binary(name, path, system_dirs) for name in names}
    missing = [name for name, where in found.items() if where is None]
    if missing:
        raise MissingBinary(missing)
    return {name: where for name, where in found.items() if where is not None}


def missing_message(names: Iterable[str]) -> str:
    """What to tell a user about absent binaries: where they were looked for, and what to install."""
    names = tuple(names)
    packages = sorted({DEBIAN_PACKAGES.get(name, name) for name in names})
    what = ", ".join(f"{name} (Debian package {DEBIAN_PACKAGES.get(name, name)})" for name in names)
    return (
        f"{what} not found on PATH or in {' '.join(SYSTEM_DIRS)}; "
        f"install with: sudo apt-get install {' '.join(packages)} (or run scripts/setup.sh)"
    )


def discover(search_path: str | None = None, system_dirs: Sequence[str] = SYSTEM_DIRS) -> list[EngineBinary]:
    """Every engine binary ``find_binary`` sees, each real file reported once."""
    found: list[EngineBinary] = []
    seen: set[str] = set()
    for name, flag in _CANDIDATES:
        path = find_binary(name, search_path, system_dirs)
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
