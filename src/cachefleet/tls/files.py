"""The installation's TLS files: the CA at ``DIR/ca.pem``, its key in ``DIR/tls/``, leaf PEM files.

``DIR/ca.pem`` is what clients verify against (``redis-cli --tls --cacert``, redis-py's
``ssl_ca_certs``), so it is readable by everyone (0644). The CA key lives in ``DIR/tls/`` (0700),
mode 0600. Every file is written atomically (a temporary file in the same directory, then a
rename): a reader, Redis reloading its certificate included, sees the old file or the new one,
never a mix.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cachefleet.tls.certs import Authority, Identity, issue, load_authority, new_authority, renewal_due

CA_FILE = "ca.pem"
TLS_DIR = "tls"
CA_KEY_FILE = "ca.key"
CA_NAME = "cachefleet installation CA"


@dataclass(frozen=True)
class Validity:
    """How long certificates live. Tests shorten ``leaf`` (renewal then happens within seconds)."""

    leaf: dt.timedelta = dt.timedelta(days=365)
    authority: dt.timedelta = dt.timedelta(days=3650)

    def __post_init__(self) -> None:
        if self.leaf <= dt.timedelta(0) or self.authority <= dt.timedelta(0):
            raise ValueError("validity must be positive")


def ca_path(data_dir: Path) -> Path:
    return data_dir / CA_FILE


def ca_key_path(data_dir: Path) -> Path:
    return data_dir / TLS_DIR / CA_KEY_FILE


def ensure_authority(data_dir: Path, now: dt.datetime, validity: Validity) -> Authority:
    """The installation's CA, created on first use (key first, then the certificate clients see).

    A CA whose certificate is missing or does not match its key is an installation problem that
    must not be papered over by a new CA (every certificate issued so far would stop verifying),
    so that raises ``ValueError``; only a directory with neither file gets a new CA.
    """
    cert_path, key_path = ca_path(data_dir), ca_key_path(data_dir)
    if cert_path.exists() or key_path.exists():
        return read_authority(data_dir)
    key_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(key_path.parent, 0o700)
    authority = new_authority(CA_NAME, now, validity.authority)
    write_atomic(key_path, authority.key_pem(), 0o600)
    write_atomic(cert_path, authority.certificate_pem(), 0o644)
    return authority


def read_authority(data_dir: Path) -> Authority:
    """The existing CA; raises ``FileNotFoundError`` or ``ValueError`` (a broken pair)."""
    return load_authority(ca_path(data_dir).read_bytes(), ca_key_path(data_dir).read_bytes())


def renew(path: Path, identity: Identity, authority: Authority, now: dt.datetime, validity: Validity) -> str | None:
    """Replace the leaf PEM at ``path`` (mode 0600) when ``renewal_due`` says so; returns the reason,
    or None when the file was left alone. The caller then makes the process reload it."""
    try:
        current: bytes | None = path.read_bytes()
    except FileNotFoundError:
        current = None
    reason = renewal_due(current, identity, authority, now)
    if reason is not None:
        write_atomic(path, issue(authority, identity, now, validity.leaf), 0o600)
    return reason


CONTROL_PLANE_FILE = "control-plane.pem"


def control_plane_path(data_dir: Path) -> Path:
    """The control plane's own key and certificate (``DIR/tls/``): what it shows host agents."""
    return data_dir / TLS_DIR / CONTROL_PLANE_FILE


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename, with ``mode`` from the start."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), mode)
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
