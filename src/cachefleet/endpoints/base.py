"""What every endpoint module shares: an IPv4 address and port, and the family of data-path errors.

Addresses end up inside nftables commands and ``ip`` argument lists, so they are parsed and
checked here once, never passed on as free text.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


class DataPathError(Exception):
    """A kernel or tool refused an endpoint operation; the message says what and why."""


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
