"""Redis Sentinel: the config of one sentinel, the probes that observe it, and its reconfig script.

A cluster-mode-disabled group runs three sentinels (one per AZ, quorum 2) that watch the primary and
promote a replica when it fails. ``render_config`` is pure, as for Redis nodes; unlike a node, a
sentinel rewrites its own file (known replicas and peers, epochs, the current primary), so the file
must be writable and a re-rendered file should name the current primary. A fixed ``sentinel myid``
lets a restarted sentinel keep its identity, so its peers do not accumulate ghosts.

The probes use one short-lived connection each, without redis-py's retries.

``reconfig_script`` is the program every sentinel runs when the primary changes: it flips the group's
HAProxy primary endpoint (``engines.haproxy``) to the promoted node through the admin socket.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry as RedisRetry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from cachefleet.engines import resp
from cachefleet.engines.haproxy import PRIMARY_BACKEND
from cachefleet.engines.redis import process_lines, quote
from cachefleet.model.errors import Retry

CONFIG_FILE = "sentinel.conf"
RECONFIG_SCRIPT = "reconfig.py"
_CONNECT_TIMEOUT = 0.5
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_MY_ID = re.compile(r"[0-9a-f]{40}")
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")


@dataclass(frozen=True)
class SentinelConfig:
    port: int
    bind: str
    data_dir: Path
    master_name: str
    primary: tuple[str, int]  # an IP address: hostnames are not resolved
    quorum: int
    admin_user: str  # the nodes' internal admin ACL user
    admin_password: str
    my_id: str  # 40 lowercase hex characters, fixed for the sentinel's life (see ``my_id``)
    down_after_ms: int = 1000
    failover_timeout_ms: int = 10000
    reconfig_script: Path | None = None


def my_id(seed: str) -> str:
    """A stable sentinel id from a stable seed (e.g. the group and node ids)."""
    return hashlib.sha1(seed.encode()).hexdigest()


def render_config(cfg: SentinelConfig) -> str:
    """The complete ``sentinel.conf`` for one sentinel."""
    name = cfg.master_name
    if not _NAME.fullmatch(name):
        raise ValueError(f"invalid master name {name!r}")
    if not _MY_ID.fullmatch(cfg.my_id):
        raise ValueError(f"a sentinel id is 40 lowercase hex characters, not {cfg.my_id!r}")
    if not _NAME.fullmatch(cfg.admin_user) or cfg.admin_user == "default":
        raise ValueError(f"invalid admin user name {cfg.admin_user!r}")
    if not cfg.admin_password:
        raise ValueError("the admin user needs a password")
    host, port = cfg.primary
    if not (_IPV4.fullmatch(host) or ":" in host):
        raise ValueError(f"the primary must be an IP address (hostnames are not resolved): {host!r}")
    if cfg.quorum < 1:
        raise ValueError("the quorum is at least 1")
    lines = [
        "# Rendered by cachefleet. Sentinel rewrites this file as it learns; a restart renders it anew.",
        *process_lines(cfg.bind, cfg.port, cfg.data_dir),
        f"sentinel myid {cfg.my_id}",
        "sentinel resolve-hostnames no",
        "sentinel announce-hostnames no",
        f"sentinel monitor {name} {host} {port} {cfg.quorum}",
        f"sentinel auth-user {name} {cfg.admin_user}",
        f"sentinel auth-pass {name} {quote(cfg.admin_password)}",
        f"sentinel down-after-milliseconds {name} {cfg.down_after_ms}",
        f"sentinel failover-timeout {name} {cfg.failover_timeout_ms}",
        f"sentinel parallel-syncs {name} 1",
    ]
    if cfg.reconfig_script is not None:
        lines.append(f"sentinel client-reconfig-script {name} {quote(str(cfg.reconfig_script))}")
    # Nobody may point a sentinel at another script at run time (SENTINEL SET ... *-script).
    lines.append("sentinel deny-scripts-reconfig yes")
    return "\n".join(lines) + "\n"


def argv(binary: str, conf_path: Path) -> tuple[str, ...]:
    """``redis-sentinel <conf>``; for a ``redis-server`` binary, ``redis-server <conf> --sentinel``.

    Redis runs as a sentinel when the name it was started by contains ``redis-sentinel`` (Debian's
    is a symlink, so a resolved path would lose that) or when ``--sentinel`` is given; the flag is
    added unless the name already says so, so either binary works.
    """
    if "sentinel" in Path(binary).name:
        return (binary, str(conf_path))
    return (binary, str(conf_path), "--sentinel")


# -- observation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SentinelView:
    master_host: str
    master_port: int
    flags: frozenset[str]  # e.g. {'master'}, {'master', 's_down'}, {'master', 'failover_in_progress'}
    num_replicas: int
    num_other_sentinels: int
    quorum: int


async def probe(
    host: str,
    port: int,
    master_name: str,
    timeout: float = 1.0,  # noqa: ASYNC109 (also the socket timeout)
) -> SentinelView | None:
    """What the sentinel believes about ``master_name`` now; None when it cannot be reached or does
    not monitor that name."""
    try:
        (reply,) = await resp.exchange(host, port, [("SENTINEL", "MASTER", master_name)], timeout=timeout)
    except (OSError, TimeoutError, resp.ProtocolError):
        return None
    if not isinstance(reply, list):
        return None  # an error reply: this sentinel does not monitor the name (yet)
    return view_from_reply(reply_fields(reply))


def view_from_reply(fields: Mapping[str, Any]) -> SentinelView:
    """Pure: a view from the fields of ``SENTINEL MASTER``."""
    return SentinelView(
        master_host=str(fields["ip"]),
        master_port=int(fields["port"]),
        flags=frozenset(flag for flag in str(fields.get("flags", "")).split(",") if flag),
        num_replicas=int(fields.get("num-slaves", 0)),
        num_other_sentinels=int(fields.get("num-other-sentinels", 0)),
        quorum=int(fields.get("quorum", 0)),
    )


async def failover(
    host: str,
    port: int,
    master_name: str,
    timeout: float = 1.0,  # noqa: ASYNC109
) -> None:
    """Ask the sentinel for a failover now (without agreement from the others).

    Returns once the sentinel has started it. Raises ``Retry`` when no replica can be promoted
    (``NOGOODSLAVE``), one is already in progress (``INPROG``), or the sentinel cannot be reached.
    """
    client = _client(host, port, timeout)
    try:
        async with asyncio.timeout(timeout):
            await client.sentinel_failover(master_name)
    except ResponseError as exc:
        raise Retry(f"sentinel {host}:{port} refused a failover of {master_name}: {exc}") from exc
    except (RedisError, OSError, TimeoutError) as exc:
        raise Retry(f"sentinel {host}:{port} unreachable for a failover of {master_name}: {exc}") from exc
    finally:
        await client.aclose()


async def replicas(
    host: str,
    port: int,
    master_name: str,
    timeout: float = 1.0,  # noqa: ASYNC109
) -> list[dict[str, str]] | None:
    """``SENTINEL REPLICAS``: one dict of fields per replica the sentinel knows (``ip``, ``port``,
    ``flags``, ``master-link-status``, ``slave-repl-offset``...); None when unreachable."""
    client = _client(host, port, timeout)
    try:
        async with asyncio.timeout(timeout):
            entries = await client.sentinel_slaves(master_name)  # SENTINEL SLAVES = REPLICAS
    except (RedisError, OSError, TimeoutError):
        return None
    finally:
        await client.aclose()
    return [reply_fields(entry) for entry in entries]


def reply_fields(reply: Any) -> dict[str, str]:
    """Field name -> text, from a SENTINEL reply: redis-py parses SENTINEL MASTER into a dict (flags
    as a set under RESP3); other replies arrive as flat name/value lists."""
    if isinstance(reply, Mapping):
        if "flags" in reply and not isinstance(reply["flags"], str):  # redis-py's parsed form
            return {str(k): ",".join(sorted(v)) if k == "flags" else str(v) for k, v in reply.items()}
        return {str(k): str(v) for k, v in reply.items()}
    items = list(reply)
    return {str(items[i]): str(items[i + 1]) for i in range(0, len(items) - 1, 2)}


def _client(host: str, port: int, timeout: float) -> Redis:
    return Redis(
        host=host,
        port=port,
        socket_timeout=timeout,
        socket_connect_timeout=min(_CONNECT_TIMEOUT, timeout),
        retry=RedisRetry(NoBackoff(), 0),
        decode_responses=True,
        single_connection_client=True,
    )


# -- the client-reconfig-script ----------------------------------------------------------------

_SCRIPT = """#!{python} -I
# Rendered by cachefleet: Sentinel's client-reconfig-script for one replication group.
# Sentinel runs it (leader and observers alike) when the primary changes, with the arguments
#   <master-name> <role> <state> <from-ip> <from-port> <to-ip> <to-port>
# It leaves server n<to-port> the only one of {backend} out of maintenance in the group's HAProxy,
# and cuts the sessions of every other. Idempotent. It never exits 1, which would make Sentinel run it
# again much later, possibly after a newer failover; the control plane enforces the same state.
import os
import socket
import sys

SOCKET = {socket!r}
BACKEND = {backend!r}
TIMEOUT = 1.0


def ask(command):
    # Relative to the socket's directory: its absolute path may exceed AF_UNIX's 108 bytes.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.connect(os.path.basename(SOCKET))
        sock.sendall(command.encode() + b"\\n")
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def main(argv):
    if len(argv) != 8 or not argv[7].isdigit():
        print("reconfig: unexpected arguments %r" % (argv[1:],), file=sys.stderr)
        return 2
    primary = "n" + argv[7]
    try:
        os.chdir(os.path.dirname(SOCKET))
        names = []
        for line in ask("show servers state " + BACKEND).splitlines():
            fields = line.split()
            if len(fields) > 3 and not line.startswith("#") and fields[1] == BACKEND:
                names.append(fields[3])
        if primary not in names:
            print("reconfig: %s has no server %s" % (BACKEND, primary), file=sys.stderr)
            return 2
        commands = []
        for name in sorted(names):
            if name != primary:
                commands.append("set server %s/%s state maint" % (BACKEND, name))
                commands.append("shutdown sessions server %s/%s" % (BACKEND, name))
        commands.append("set server %s/%s state ready" % (BACKEND, primary))
        answer = ask("; ".join(commands))
    except OSError as exc:
        print("reconfig: haproxy admin socket: %s" % (exc,), file=sys.stderr)
        return 2
    if answer.strip():
        print("reconfig: haproxy said %r" % (answer.strip(),), file=sys.stderr)
        return 2
    print("reconfig: %s/%s is the primary" % (BACKEND, primary), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
"""


def reconfig_script(python: str, admin_socket: Path) -> str:
    """The text of the client-reconfig-script that points ``admin_socket``'s HAProxy at the new
    primary (stdlib only; ``python`` is its interpreter, an absolute path, run isolated with ``-I``
    so that PYTHON* variables Sentinel inherited from the control plane do not reach it)."""
    if not python.startswith("/") or any(c.isspace() for c in python):
        raise ValueError(f"the interpreter must be an absolute path without spaces: {python!r}")
    if not admin_socket.is_absolute():
        raise ValueError(f"the admin socket path must be absolute: {admin_socket}")
    return _SCRIPT.format(python=python, socket=str(admin_socket), backend=PRIMARY_BACKEND)
