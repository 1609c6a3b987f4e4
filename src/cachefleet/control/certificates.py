"""The installation's CA (``tls``) as the reconciler uses it: ``model.certificates.Certificates``."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cachefleet.tls import certs
from cachefleet.tls import files as tls_files

_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"


@dataclass(frozen=True)
class InstallationCA:
    """Leaf certificates of ``DIR/ca.pem``'s CA for Memcached nodes and configuration endpoints.

    A leaf is issued at every start of a process (a restart renews it); both server and client
    usages, as the node role carries them (the endpoint is a client of the nodes too).
    """

    data_dir: Path
    validity: tls_files.Validity
    clock: Callable[[], datetime]

    @property
    def ca_file(self) -> Path:
        return tls_files.ca_path(self.data_dir)

    def leaf(self, names: Sequence[str]) -> tuple[str, str]:
        ips = tuple(n for n in names if _is_ip(n))
        dns_names = tuple(n for n in names if not _is_ip(n))
        identity = certs.Identity(common_name=names[0], role=certs.Role.NODE, ips=ips, dns_names=dns_names)
        pem = certs.issue(tls_files.read_authority(self.data_dir), identity, self.clock(), self.validity.leaf)
        start = pem.index(_CERTIFICATE)  # issue() writes the key first, then the certificate
        return pem[start:].decode(), pem[:start].decode()


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
