"""Real engine processes for engine-level tests: started through ``LocalHost``, stopped by PID.

``engine_host`` yields a host that records the PID of everything it starts; on exit every node is
stopped through the host, then anything left (HAProxy's workers included) gets SIGKILL by PID.
Processes are never looked up or killed by name.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path

from cachefleet.engines import acl
from cachefleet.engines import redis as redis_engine
from cachefleet.engines.installed import require_binaries
from cachefleet.engines.redis import NodeTls, RedisNodeConfig
from cachefleet.engines.resp import ClientTls
from cachefleet.hosts.base import NodeKey, ProcessSpec
from cachefleet.hosts.local import LocalHost
from cachefleet.model.credentials import Credentials
from cachefleet.model.transit import TransitMode
from cachefleet.tls import certs, files
from tests.support.server import is_alive

BIND = "127.0.0.1"
PORT_RANGE = (30000, 40000)
# A missing binary fails the tests that import this (naming its Debian package), never skips them.
BINARIES = require_binaries("redis-server", "redis-sentinel", "haproxy", "redis-cli")
REDIS_BINARY = BINARIES["redis-server"]
SENTINEL_BINARY = BINARIES["redis-sentinel"]
HAPROXY_BINARY = BINARIES["haproxy"]
REDIS_CLI = BINARIES["redis-cli"]


class RecordingHost(LocalHost):
    def __init__(self, root: Path) -> None:
        super().__init__(root, PORT_RANGE, BIND)
        self.started: list[int] = []

    def start(self, key: NodeKey, spec: ProcessSpec) -> int:
        pid = super().start(key, spec)
        self.started.append(pid)
        return pid


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@contextlib.contextmanager
def engine_host(root: Path) -> Iterator[RecordingHost]:
    host = RecordingHost(root)
    try:
        yield host
    finally:
        # HAProxy's workers are children of its master; note them before anything is stopped.
        kids = [child for pid in host.started for child in children(pid)]
        for key in host.nodes():
            with contextlib.suppress(Exception):
                host.stop(key, timeout=2.0)
        for pid in host.started + kids:
            if is_alive(pid):
                os.kill(pid, signal.SIGKILL)
        for pid in host.started:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


# -- TLS nodes ------------------------------------------------------------------------------------


class Pki:
    """A CA in ``root`` (``ca.pem``, key in ``tls/``) and leaf PEMs for loopback processes."""

    def __init__(self, root: Path, validity: dt.timedelta = dt.timedelta(days=1)) -> None:
        self.root = root
        self.validity = files.Validity(leaf=validity)
        self.authority = files.ensure_authority(root, dt.datetime.now(dt.UTC), self.validity)
        self.ca = files.ca_path(root)

    def identity(self, name: str, role: certs.Role = certs.Role.NODE) -> certs.Identity:
        return certs.Identity(name, role, ips=(BIND,), dns_names=("localhost",))

    def leaf(self, name: str, role: certs.Role = certs.Role.NODE) -> str:
        pem = certs.issue(self.authority, self.identity(name, role), dt.datetime.now(dt.UTC), self.validity.leaf)
        return pem.decode()

    def client_tls(self) -> ClientTls:
        return ClientTls(ca_file=self.ca)


TLS_FILE = "tls.pem"


def redis_node(
    host: LocalHost,
    key: NodeKey,
    pki: Pki | None,
    *,
    admin: Credentials,
    internal: acl.InternalUsers | None = None,
    mode: TransitMode = TransitMode.REQUIRED,
    application: tuple[acl.AclUser, ...] | None = None,
    replicaof: tuple[str, int] | None = None,
) -> tuple[ProcessSpec, int, int]:
    """The spec of a Redis node and its (plain, TLS) ports: plain 0 with TLS required, TLS 0 without TLS.

    With TLS, the identity port (the one Sentinel and the endpoint know) is the TLS port, held in
    the host's default slot; a plain port in ``preferred`` mode takes the ``plain`` slot.
    """
    node_dir = host.node_dir(key)
    files_: dict[str, str] = {}
    node_tls = None
    if pki is None:
        plain, secure = host.allocate_port(key, ()), 0
    else:
        secure = host.allocate_port(key, ())
        plain = host.allocate_port(key, (), slot="plain") if mode is TransitMode.PREFERRED else 0
        node_tls = NodeTls(secure, mode, node_dir / TLS_FILE, pki.ca)
        files_[TLS_FILE] = pki.leaf(f"{key.cluster_id}-{key.node_id}")
    config = RedisNodeConfig(
        port=plain,
        bind=BIND,
        data_dir=node_dir,
        maxmemory_bytes=64 << 20,
        admin_user=admin.user,
        admin_password=admin.password,
        replicaof=replicaof,
        internal=internal,
        application=application,
        tls=node_tls,
    )
    files_[redis_engine.CONFIG_FILE] = redis_engine.render_config(config)
    argv = redis_engine.argv(REDIS_BINARY, node_dir / redis_engine.CONFIG_FILE)
    return ProcessSpec(argv=argv, files=files_), plain, secure


def secrets_in_files(root: Path, secrets: list[str]) -> list[str]:
    """``path: secret`` for every file under ``root`` holding one of ``secrets`` (as text or hex)."""
    found = []
    for path in root.rglob("*"):
        if not path.is_file() or path.is_socket():
            continue
        data = path.read_bytes()
        for secret in secrets:
            if secret.encode() in data or secret.encode().hex().encode() in data:
                found.append(f"{path}: {secret[:4]}...")
    return found


def internal_credentials() -> tuple[Credentials, acl.InternalUsers]:
    """Fresh secrets for the admin and the other internal users, as an installation makes them."""
    return Credentials(acl.ADMIN_USER, secrets.token_hex(16)), acl.InternalUsers(
        replication=Credentials(acl.REPLICATION_USER, secrets.token_hex(16)),
        sentinel=Credentials(acl.SENTINEL_USER, secrets.token_hex(16)),
        check=Credentials(acl.CHECK_USER, secrets.token_hex(16)),
    )
