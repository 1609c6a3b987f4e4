"""What every endpoint module shares: an IPv4 address and port, the family of data-path errors, and
where the tools are.

Addresses end up inside nftables commands and ``ip`` argument lists, so they are parsed and
checked here once, never passed on as free text.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
from dataclasses import dataclass

# Searched after $PATH: Debian puts nft and conntrack in /usr/sbin, which a normal user's PATH lacks.
# (engines.installed.find_binary does the same for the engines; this package may not import engines,
# its sibling layer.)
_SYSTEM_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
PACKAGES = {"nft": "nftables", "conntrack": "conntrack", "ip": "iproute2"}


class DataPathError(Exception):
    """A kernel or tool refused an endpoint operation; the message says what and why."""


def tool(name: str) -> str:
    """The absolute path of the program ``name`` ($PATH, then the system directories); a
    ``DataPathError`` naming its Debian package when it is not installed."""
    path = os.pathsep.join([*os.environ.get("PATH", "").split(os.pathsep), *_SYSTEM_DIRS])
    found = shutil.which(name, path=path)
    if found is None:
        raise DataPathError(f"{name} not found (Debian package {PACKAGES.get(name, name)})")
    return os.path.abspath(found)


@dataclass(frozen=True, order=True)
class Address:
    """An IPv4 address (dotted quad, as the kernel prints it) and a TCP port."""

    host: str
    port: int

    def __post_init__(self) -> None:
        try:
            parsed = ipaddress.IPv4Address(self.host)
        except ValueError as exc:
            raise ValueError(f"not an IPv4 address: {self.host!r}") from exc
        if str(parsed) != self.host:
            raise ValueError(f"not a canonical IPv4 address: {self.host!r} (write {parsed})")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            raise ValueError(f"not a TCP port: {self.port!r}")

    @classmethod
    def parse(cls, text: str) -> Address:
        """``"10.0.0.5:6379"`` -> ``Address("10.0.0.5", 6379)``."""
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"expected HOST:PORT, got {text!r}")
        return cls(host, int(port))

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"
