"""Redis (and Valkey) nodes: the config we render for a node, and the probes that observe one.

``render_config`` and ``seed_rdb`` are pure: the reconciler renders the whole file from the desired
spec on every start, so a node never runs on a config that Redis itself rewrote. Every call here
uses one short-lived connection without retries, since a probe must report what it sees now, not
after seconds of backoff: ``probe`` and ``set_replicaof``, which run on every pass, speak RESP
directly (``engines.resp``); the rarer steps (switchover, snapshots, shutdown) use redis-py.

Users: the control plane authenticates as an internal admin ACL user; applications get ``default``,
which has every command except those ElastiCache keeps to itself.
"""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry as RedisRetry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from cachefleet.engines import acl, resp
from cachefleet.engines.resp import ClientTls
from cachefleet.model import parameters
from cachefleet.model.acl import RESTRICTED_COMMANDS, CommandCatalog
from cachefleet.model.auth_token import NO_TOKEN
from cachefleet.model.credentials import Credentials
from cachefleet.model.errors import Fatal, Retry
from cachefleet.model.transit import TransitMode

__all__ = ["RESTRICTED_COMMANDS", "ClientTls"]  # re-exported: callers and tests know them from here

CONFIG_FILE = "redis.conf"
_CONNECT_TIMEOUT = 0.5
_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class NodeTls:
    """TLS on a node. ``cert_file`` is one PEM holding the node's key and certificate (``tls.files``),
    so a renewal replaces both with one rename; ``reload_tls`` makes a live node read it again."""

    port: int  # the TLS port; in ``required`` mode the node's only one
    mode: TransitMode
    cert_file: Path
    ca_file: Path


@dataclass(frozen=True)
class RedisNodeConfig:
    port: int  # the plain-text port; 0 (none) with TLS in required mode
    bind: str
    data_dir: Path
    maxmemory_bytes: int
    admin_user: str
    admin_password: str
    replicaof: tuple[str, int] | None = None  # the primary's address as replicas reach it (its TLS port with TLS)
    appendonly: bool = False
    # Directives from the node's parameter group (``parameter_directives``); they win over the
    # built-in values of appendonly, appendfsync, maxmemory and maxmemory-policy.
    parameters: tuple[tuple[str, str], ...] = ()
    # The replication, Sentinel and health-check users (``engines.acl``). Without them, replicas
    # authenticate to their primary as the admin user.
    internal: acl.InternalUsers | None = None
    # The application users (``acl.application_users``); None: ``default`` without a password.
    application: tuple[acl.AclUser, ...] | None = None
    tls: NodeTls | None = None


def process_lines(bind: str, port: int, data_dir: Path) -> list[str]:
    """The lines every redis-server and redis-sentinel of ours starts with."""
    return [
        # Foreground, logging to stdout: the host driver owns the process and appends it to node.log.
        "daemonize no",
        'logfile ""',
        f"bind {bind}",
        f"port {port}",
        # Binding is our access control; ACLs decide what each user may do.
        "protected-mode no",
        # Keep the config path in the process title: the host driver matches /proc/<pid>/cmdline
        # against the node dir so that a reused PID is never taken for this node.
        'proc-title-template "{title} {listen-addr} {server-mode} {config-file}"',
        f"dir {quote(str(data_dir))}",
    ]


def render_config(cfg: RedisNodeConfig) -> str:
    """The complete ``redis.conf`` for one node."""
    if not _USER_NAME.fullmatch(cfg.admin_user) or cfg.admin_user == "default":
        raise ValueError(f"invalid admin user name {cfg.admin_user!r}")
    if not cfg.admin_password:
        raise ValueError("the admin user needs a password")
    _check_ports(cfg)
    admin = Credentials(cfg.admin_user, cfg.admin_password)
    replication = cfg.internal.replication if cfg.internal is not None else admin
    application = cfg.application if cfg.application is not None else (acl.token_default_user(NO_TOKEN),)
    if not any(user.name == "default" for user in application):
        raise ValueError("the application users must include default")
    lines = [
        "# Rendered by cachefleet; rewritten on every start, so edits here do not last.",
        *process_lines(cfg.bind, cfg.port, cfg.data_dir),
        *tls_lines(cfg.tls),
        "dbfilename dump.rdb",
        # No automatic RDB snapshots: ElastiCache backs up only when asked (BGSAVE by the admin user).
        'save ""',
        *_directive_lines(cfg),
        "replica-read-only yes",
        # Redis 7 otherwise waits 5 s before every initial full sync, and "available" waits for it.
        "repl-diskless-sync-delay 0",
        # With "no", DEBUG is refused before ACLs are checked, so applications would get a generic
        # error instead of NOPERM; "local" lets only the admin user use it, from loopback.
        "enable-debug-command local",
        # Replicas authenticate to their primary as the replication user (the admin user without one).
        f"masteruser {replication.user}",
        f"masterauth {quote(replication.password)}",
        # Passwords as hashes only (masterauth above needs its secret in clear: it is the product's own).
        *user_lines([*acl.internal_users(admin, cfg.internal), *application]),
        # Which set of application users this node has (``acl.marker``): the control plane reads it.
        " ".join(["user", acl.marker(application), *acl.MARKER_RULES]),
    ]
    if cfg.replicaof is not None:
        host, port = cfg.replicaof
        lines.append(f"replicaof {host} {port}")
    return "\n".join(lines) + "\n"


def _check_ports(cfg: RedisNodeConfig) -> None:
    if cfg.tls is None:
        if cfg.port <= 0:
            raise ValueError("a node without TLS needs a plain-text port")
        return
    if cfg.tls.port <= 0 or cfg.tls.port == cfg.port:
        raise ValueError("the TLS port must be a port of its own")
    if (cfg.tls.mode is TransitMode.REQUIRED) != (cfg.port == 0):
        raise ValueError("a node has no plain-text port (port 0) exactly when TLS is required")


def tls_lines(tls: NodeTls | None) -> list[str]:
    """The TLS directives of a node or a Sentinel (none without TLS)."""
    if tls is None:
        return []
    return [
        f"tls-port {tls.port}",
        # One file holds the key and the certificate: OpenSSL reads each block it needs from it.
        f"tls-cert-file {quote(str(tls.cert_file))}",
        f"tls-key-file {quote(str(tls.cert_file))}",
        f"tls-ca-cert-file {quote(str(tls.ca_file))}",
        # Clients verify the server; a client certificate is welcome (replicas, Sentinels send theirs)
        # but not asked of applications, as on ElastiCache.
        "tls-auth-clients optional",
        # Replicas reach their primary over TLS, and announce their TLS port (which Sentinel then uses).
        "tls-replication yes",
    ]


def transport_values(plain_port: int, tls: NodeTls | None, current: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """Pure: the ``CONFIG SET`` pairs that move a running node to ``plain_port`` (0: none) and ``tls``
    (None: no TLS) from what it reports now (``current``: CONFIG GET of ``TRANSPORT_DIRECTIVES``).

    Redis 7 changes both ports live and keeps every connection already made (measured: a session on
    the old plain-text port goes on after the port became TLS). When a port changes role, the
    directive that releases it comes first in the one command, so the other can bind it.
    """
    if tls is not None and tls.port == plain_port:
        raise ValueError("the TLS port must be a port of its own")
    values: list[tuple[str, str]] = []
    if tls is not None:
        values += [
            ("tls-cert-file", str(tls.cert_file)),
            ("tls-key-file", str(tls.cert_file)),
            ("tls-ca-cert-file", str(tls.ca_file)),
            ("tls-auth-clients", "optional"),
            ("tls-replication", "yes"),
        ]
    else:
        values.append(("tls-replication", "no"))
    tls_port = tls.port if tls is not None else 0
    ports = [("port", str(plain_port)), ("tls-port", str(tls_port))]
    if current.get("port") == str(tls_port) and tls_port:
        pass  # the plain port becomes the TLS one: release it first (port, then tls-port)
    elif current.get("tls-port") == str(plain_port) and plain_port:
        ports.reverse()  # the TLS port becomes the plain one: release it first
    return tuple(values + [p for p in ports if current.get(p[0]) != p[1]])


def user_lines(users: Sequence[acl.AclUser]) -> list[str]:
    """One ``user`` line per ACL user; a selector holds spaces, so such a word is quoted."""
    return [" ".join(["user", user.name, *(_user_word(w) for w in user.acl_rules())]) for user in users]


def _user_word(word: str) -> str:
    return word if _PLAIN_WORD.fullmatch(word) else quote(word)


_PLAIN_WORD = re.compile(r"[!#-&(-\[\]-~]+")  # printable, no space, quote, apostrophe or backslash


def _directive_lines(cfg: RedisNodeConfig) -> list[str]:
    directives = {
        "appendonly": "yes" if cfg.appendonly else "no",
        "appendfsync": "everysec",
        "maxmemory": str(cfg.maxmemory_bytes),
        "maxmemory-policy": "volatile-lru",  # ElastiCache's default
    }
    directives.update(dict(cfg.parameters))
    return [f"{name} {_token(value)}" for name, value in directives.items()]


def _token(value: str) -> str:
    return value if _PLAIN.fullmatch(value) else quote(value)


_PLAIN = re.compile(r"[A-Za-z0-9._-]+")


# -- parameters ----------------------------------------------------------------------------------

# Catalogue parameters that are no redis.conf directive of their own: derived into another one
# (reserved-memory-percent into maxmemory, client-output-buffer-limit-* into client-output-buffer-limit),
# ElastiCache-only, or left at Redis's own value (they are not modifiable).
_NOT_DIRECTIVES = frozenset(
    {
        "maxmemory",
        "reserved-memory-percent",
        "reserved-memory",
        "cluster-enabled",
        "cluster-preferred-endpoint-type",
        "close-on-replica-write",
        "rename-commands",
        "replica-allow-chaining",
        "replica-ignore-maxmemory",
        "replica-lazy-flush",
        "repl-timeout",
        "lua-time-limit",
        "activerehashing",
        "activedefrag",
    }
)
_OUTPUT_BUFFER = "client-output-buffer-limit"
_OUTPUT_CLASSES = {"normal": "normal", "pubsub": "pubsub"}  # the replica class is not modifiable
# Directives Redis reads only at start: a change to one waits for a reboot.
STARTUP_DIRECTIVES = frozenset({"databases", "maxclients"})


def parameter_directives(values: Mapping[str, str], node_memory: int) -> dict[str, str]:
    """Pure: the redis.conf directives that a node's effective parameters stand for."""
    directives: dict[str, str] = {}
    percent = int(values.get("reserved-memory-percent", "0"))
    directives["maxmemory"] = str(node_memory * (100 - percent) // 100)
    for name, value in values.items():
        if name in _NOT_DIRECTIVES or name.startswith(_OUTPUT_BUFFER):
            continue
        directives[name] = value
    limits = []
    for prefix, redis_class in _OUTPUT_CLASSES.items():
        keys = [f"{_OUTPUT_BUFFER}-{prefix}-{part}" for part in ("hard-limit", "soft-limit", "soft-seconds")]
        if all(k in values for k in keys):
            limits.append(" ".join([redis_class, *(values[k] for k in keys)]))
    if limits:
        directives[_OUTPUT_BUFFER] = " ".join(limits)
    return directives


def live_directives(directives: Mapping[str, str]) -> dict[str, str]:
    """The directives ``CONFIG SET`` changes on a running node (all but the start-up ones)."""
    return {k: v for k, v in directives.items() if k not in STARTUP_DIRECTIVES}


# The names the probe asks CONFIG GET for: every directive a parameter group can change live.
LIVE_DIRECTIVES: tuple[str, ...] = tuple(
    sorted(live_directives(parameter_directives(parameters.defaults("redis7"), 0)))
)
# Where a node listens now; Redis 7 changes both live (``transport_values``), and the probe reads them.
TRANSPORT_DIRECTIVES = ("port", "tls-port")


def config_differences(wanted: Mapping[str, str], actual: Mapping[str, str]) -> dict[str, str]:
    """Pure: the wanted directives whose value the node does not report (as Redis normalises it)."""
    return {
        name: value for name, value in wanted.items() if _normalised(name, value) != _normalised(name, actual.get(name))
    }


def _normalised(name: str, value: str | None) -> object:
    if value is None:
        return None
    if name == "notify-keyspace-events":
        flags = set(value.replace("A", "g$lshzxetd"))
        return frozenset(flags)
    if name == _OUTPUT_BUFFER:
        words = value.split()
        classes = {words[i]: tuple(words[i + 1 : i + 4]) for i in range(0, len(words) - 3, 4)}
        return {c: v for c, v in classes.items() if c in _OUTPUT_CLASSES}
    return value


def argv(binary: str, conf_path: Path) -> tuple[str, ...]:
    return (binary, str(conf_path))


def quote(value: str) -> str:
    """A double-quoted token as redis.conf's parser (sdssplitargs) reads it back unchanged."""
    out = ['"']
    for byte in value.encode():
        char = chr(byte)
        if char in '"\\':
            out.append("\\" + char)
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\x{byte:02x}")
    out.append('"')
    return "".join(out)


# -- observation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RedisObservation:
    role: str  # 'master' | 'slave', as INFO says
    master_host: str | None
    master_port: int | None
    master_link_up: bool  # replicas only: master_link_status:up; False on a master
    connected_replicas: int
    loading: bool
    used_memory: int
    repl_offset: int  # master_repl_offset on a master, slave_repl_offset on a replica
    # CONFIG GET of LIVE_DIRECTIVES and TRANSPORT_DIRECTIVES; None when the node would not say (the
    # parameters are then left alone this pass rather than set blindly).
    config: Mapping[str, str] | None = None
    # ACL USERS: every user the node has (its marker says which application users, ``acl.marker_of``);
    # None when not asked or not answered.
    acl_users: tuple[str, ...] | None = None


async def probe(
    host: str,
    port: int,
    *,
    user: str,
    password: str,
    # Also the socket timeout of the one connection, hence a parameter and not only asyncio.timeout.
    timeout: float = 1.0,  # noqa: ASYNC109
    tls: ClientTls | None = None,
) -> RedisObservation | None:
    """What the node says about itself now, or None when it cannot be reached or does not answer.

    INFO is served while a node loads its dataset, so a loading node is an observation with
    ``loading=True``, not None.
    """
    try:
        return await observe(host, port, user=user, password=password, timeout=timeout, tls=tls)
    except (OSError, TimeoutError, resp.ProtocolError):
        return None


async def observe(
    host: str,
    port: int,
    *,
    user: str,
    password: str,
    timeout: float = 1.0,  # noqa: ASYNC109 (also the socket timeout)
    tls: ClientTls | None = None,
) -> RedisObservation | None:
    """``probe`` that raises when the node cannot be reached (``OSError``, ``TimeoutError``,
    ``resp.ProtocolError``), so a caller can tell a wrong transport from an answer; None when the
    node answered but refused us."""
    commands = [
        ("AUTH", user, password),
        ("INFO", "replication", "persistence", "memory"),
        ("CONFIG", "GET", *LIVE_DIRECTIVES, *TRANSPORT_DIRECTIVES),
        ("ACL", "USERS"),
    ]
    auth, info, config, users = await resp.exchange(host, port, commands, timeout=timeout, tls=tls)
    if isinstance(auth, resp.ReplyError) or not isinstance(info, str):
        return None
    # Not a list: e.g. a user without CONFIG. The roles are still observed; parameters are left alone.
    settings = _pairs(config) if isinstance(config, list) else None
    observed = observation_from_info(info_fields(info), settings)
    if isinstance(users, list):
        observed = replace(observed, acl_users=tuple(str(u) for u in users))
    return observed


def info_fields(text: str) -> dict[str, str]:
    """Pure: the ``field:value`` lines of an INFO reply (section headers and blank lines skipped)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, sep, value = line.partition(":")
            if sep:
                fields[name] = value
    return fields


def _pairs(items: list[resp.Reply]) -> dict[str, str]:
    """A flat ``[name, value, name, value, ...]`` reply (CONFIG GET in RESP2) as a dict."""
    return {str(items[i]): str(items[i + 1]) for i in range(0, len(items) - 1, 2)}


def observation_from_info(info: Mapping[str, Any], config: Mapping[str, str] | None = None) -> RedisObservation:
    """Pure: an observation from INFO fields, as ``info_fields`` or redis-py parse them."""
    role = str(info.get("role", ""))
    replica = role == "slave"
    master_port = info.get("master_port") if replica else None
    offset_field = "slave_repl_offset" if replica and "slave_repl_offset" in info else "master_repl_offset"
    return RedisObservation(
        role=role,
        master_host=str(info["master_host"]) if replica and "master_host" in info else None,
        master_port=int(master_port) if master_port is not None else None,
        master_link_up=replica and info.get("master_link_status") == "up",
        connected_replicas=int(info.get("connected_slaves", 0)),
        loading=bool(int(info.get("loading", 0))),
        used_memory=int(info.get("used_memory", 0)),
        repl_offset=int(info.get(offset_field, 0)),
        config=config,
    )


async def config_set(
    host: str,
    port: int,
    *,
    user: str,
    password: str,
    values: Sequence[tuple[str, str]],
    timeout: float = 2.0,  # noqa: ASYNC109 (also the socket timeout, as in probe)
    tls: ClientTls | None = None,
) -> None:
    """``CONFIG SET`` every pair at once (Redis applies them all or none); raises ``Retry`` on failure."""
    (name, value), *rest = values
    more = [item for pair in rest for item in pair]
    client = _client(host, port, user=user, password=password, timeout=timeout, tls=tls)
    try:
        async with asyncio.timeout(timeout):
            await client.config_set(name, value, *more)
    except (RedisError, OSError, TimeoutError) as exc:
        raise Retry(f"CONFIG SET {' '.join(n for n, _ in values)} on {host}:{port} failed: {exc}") from exc
    finally:
        await client.aclose()


async def shutdown_save(
    host: str,
    port: int,
    *,
    user: str,
    password: str,
    timeout: float = 60.0,  # noqa: ASYNC109 (also the socket timeout: SAVE of a big dataset takes a while)
    tls: ClientTls | None = None,
) -> None:
    """``SHUTDOWN SAVE``: write the RDB (even with ``save ""``) and exit; returns once the node hung up.

    Raises ``Retry`` when Redis refuses (it will not exit while it writes its first AOF, for one):
    the node then keeps running, with its data.
    """
    client = _client(host, port, user=user, password=password, timeout=timeout, tls=tls)
    try:
        async with asyncio.timeout(timeout):
            # redis-py returns once the node hung up (the RDB is written by then) and raises if
            # the node answered instead, which means it refused to exit.
            await client.shutdown(save=True)
    except (RedisError, OSError, TimeoutError) as exc:
        raise Retry(f"SHUTDOWN SAVE on {host}:{port} failed: {exc}") from exc
    finally:
        await client.aclose()


async def set_replicaof(
    host: str,
    port: int,
    *,
    user: str,
    password: str,
    primary: tuple[str, int] | None,
    timeout: float = 2.0,  # noqa: ASYNC109 (also the socket timeout, as in probe)
    tls: ClientTls | None = None,
) -> None:
    """Point the node at ``primary`` (REPLICAOF NO ONE when None); raises ``Retry`` if it fails."""
    args = ("NO", "ONE") if primary is None else (primary[0], str(primary[1]))
    try:
        replies = await resp.exchange(
            host, port, [("AUTH", user, password), ("REPLICAOF", *args)], timeout=timeout, tls=tls
        )
    except (OSError, TimeoutError, resp.ProtocolError) as exc:
        raise Retry(f"REPLICAOF {' '.join(args)} on {host}:{port} failed: {exc}") from exc
    failed = next((r for r in replies if isinstance(r, resp.ReplyError)), None)
    if failed is not None:
        raise Retry(f"REPLICAOF {' '.join(args)} on {host}:{port} failed: {failed}")


async def _admin_exchange(
    host: str,
    port: int,
    *,
    user: str,
    password: str,
    commands: Sequence[Sequence[str]],
    what: str,
    timeout: float,  # noqa: ASYNC109 (also the socket timeout, as in probe)
    tls: ClientTls | None,
) -> list[resp.Reply]:
    """AUTH then ``commands`` in one exchange; the replies after AUTH. Raises ``Retry`` when the
    exchange fails or any command is refused (the message names the commands, never their arguments)."""
    try:
        auth, *replies = await resp.exchange(
            host, port, [("AUTH", user, password), *commands], timeout=timeout, tls=tls
        )
    except (OSError, TimeoutError, resp.ProtocolError) as exc:
        raise Retry(f"{what} on {host}:{port} failed: {exc or type(exc).__name__}") from exc
    failed = next((r for r in (auth, *replies) if isinstance(r, resp.ReplyError)), None)
    if failed is not None:
        raise Retry(f"{what} on {host}:{port} failed: {failed}")
    return replies


async def publish(
    host: str,
    port: int,
    *,
    user: str,
    password: str,
    channel: str,
    messages: Sequence[str],
    timeout: float = 1.0,  # noqa: ASYNC109
    tls: ClientTls | None = None,
) -> None:
    """``PUBLISH channel message`` for each message, in one exchange; raises ``Retry`` if it fails."""
    commands = [("PUBLISH", channel, m) for m in messages]
    what = f"PUBLISH {channel}"
    await _admin_exchange(
        host, port, user=user, password=password, commands=commands, what=what, timeout=timeout, tls=tls
    )


async def acl_users(
    host: str,
    port: int,
    *,
    user: str,
    password: str,
    timeout: float = 2.0,  # noqa: ASYNC109 (also the socket timeout, as in probe)
    tls: ClientTls | None = None,
) -> list[str]:
    """``ACL USERS``: the names of every ACL user the node has now; raises ``Retry``."""
    (names,) = await _admin_exchange(
        host,
        port,
        user=user,
        password=password,
        commands=[("ACL", "USERS")],
        what="ACL USERS",
        timeout=timeout,
        tls=tls,
    )
    if not isinstance(names, list):
        raise Retry(f"ACL USERS on {host}:{port} gave an unexpected answer")
    return [str(n) for n in names]


async def apply_acl(
    host: str,
    port: int,
    *,
    user: str,
    password: str,
    commands: Sequence[Sequence[str]],
    timeout: float = 2.0,  # noqa: ASYNC109 (also the socket timeout, as in probe)
    tls: ClientTls | None = None,
) -> None:
    """Run ``acl.sync_commands`` on a live node (no restart; authenticated clients stay connected).

    Raises ``Retry`` when the node cannot be reached or refuses one of them; a refused command
    changes nothing (Redis applies each ``ACL SETUSER`` whole or not at all), and the next pass
    sends them all again.
    """
    if commands:
        await _admin_exchange(
            host,
            port,
            user=user,
            password=password,
            commands=commands,
            what="ACL SETUSER/DELUSER",
            timeout=timeout,
            tls=tls,
        )


async def reload_tls(
    host: str,
    port: int,
    *,
    user: str,
    password: str,
    node_tls: NodeTls,
    timeout: float = 2.0,  # noqa: ASYNC109 (also the socket timeout, as in probe)
    tls: ClientTls | None = None,
) -> None:
    """Make a live node read its certificate, key and CA files again (after ``tls.files.renew``
    replaced them): Redis 7 reloads its TLS material on ``CONFIG SET tls-*``, even to the same path.
    Connections already established keep their session; new ones get the new certificate.
    Raises ``Retry``."""
    values = (
        ("tls-cert-file", str(node_tls.cert_file)),
        ("tls-key-file", str(node_tls.cert_file)),
        ("tls-ca-cert-file", str(node_tls.ca_file)),
    )
    await _admin_exchange(
        host,
        port,
        user=user,
        password=password,
        commands=[("CONFIG", "SET", *(item for pair in values for item in pair))],
        what="CONFIG SET tls-*",
        timeout=timeout,
        tls=tls,
    )


def _client(host: str, port: int, *, user: str, password: str, timeout: float, tls: ClientTls | None = None) -> Redis:
    secure: dict[str, Any] = {}
    if tls is not None:
        secure = {"ssl": True, "ssl_ca_certs": str(tls.ca_file), "ssl_check_hostname": True}
        if tls.cert_file is not None:
            secure.update(ssl_certfile=str(tls.cert_file), ssl_keyfile=str(tls.cert_file))
    return Redis(
        host=host,
        port=port,
        username=user,
        password=password,
        socket_timeout=timeout,
        socket_connect_timeout=min(_CONNECT_TIMEOUT, timeout),
        retry=RedisRetry(NoBackoff(), 0),
        decode_responses=True,
        single_connection_client=True,
        **secure,
    )


async def switchover(
    old: tuple[str, int],
    new: tuple[str, int],
    *,
    user: str,
    password: str,
    catch_up_timeout: float = 5.0,
    tls: ClientTls | None = None,
) -> None:
    """A planned change of primary that loses no acknowledged write.

    Writes on the old primary are paused, the new one is promoted only once it has every byte the old
    one acknowledged, then the old primary follows the new one. Raises ``Retry`` on any failure; the
    pause lapses on its own, so a crash here never leaves writes blocked for long.
    """
    pause_ms = int((catch_up_timeout + 2.0) * 1000)
    before = _client(*old, user=user, password=password, timeout=2.0, tls=tls)
    after = _client(*new, user=user, password=password, timeout=2.0, tls=tls)
    try:
        async with asyncio.timeout(catch_up_timeout + 4.0):
            await before.client_pause(pause_ms, all=False)  # all=False: pause writes only
            target = int((await before.info("replication"))["master_repl_offset"])
            # Polling is the only way to see a replica's offset move; nothing announces it.
            while int((await after.info("replication")).get("slave_repl_offset", -1)) < target:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            await after.replicaof("NO", "ONE")
            await before.replicaof(new[0], str(new[1]))
            await before.client_unpause()
    except (RedisError, OSError, TimeoutError) as exc:
        raise Retry(f"switchover from {old[0]}:{old[1]} to {new[0]}:{new[1]} failed: {exc}") from exc
    finally:
        await before.aclose()
        await after.aclose()


# -- snapshots ---------------------------------------------------------------------------------

RDB_FILE = "dump.rdb"  # the dbfilename of every node, in its data dir
AOF_DIR = "appendonlydir"  # Redis 7's default appenddirname, in the data dir


def seed_rdb(replication_id: str) -> bytes:
    """Pure: an RDB with no keys whose replication info names ``replication_id`` at offset 0.

    A primary started on it keeps that id as its previous one (Redis 7 restores the replication id
    and offset it finds in an RDB), and a replica started on it asks for a partial resync from that
    id. So the members of a new group, each started on this same seed, join their primary at once:
    the primary forks no child and sends no RDB. The checksum is left zero, which Redis reads as
    "saved without a checksum". RDB version 9 (Redis 5 and later) keeps it loadable by every engine
    version we run.
    """
    if len(replication_id) != 40 or any(c not in "0123456789abcdef" for c in replication_id):
        raise ValueError("a replication id is 40 lowercase hex digits")
    aux = [("repl-stream-db", "0"), ("repl-id", replication_id), ("repl-offset", "0")]
    body = b"".join(_RDB_AUX + _rdb_string(k) + _rdb_string(v) for k, v in aux)
    return b"REDIS0009" + body + _RDB_EOF + bytes(8)


_RDB_AUX = b"\xfa"
_RDB_EOF = b"\xff"


def _rdb_string(value: str) -> bytes:
    data = value.encode()
    if len(data) >= 64:  # the one-byte length encoding holds 6 bits; ours are all short
        raise ValueError("RDB string too long for this encoder")
    return bytes([len(data)]) + data


async def bgsave(
    host: str,
    port: int,
    *,
    user: str,
    password: str,
    timeout: float = 600.0,  # noqa: ASYNC109 (the whole save; each command has a short socket timeout)
    poll: float = 0.01,
    tls: ClientTls | None = None,
) -> None:
    """``BGSAVE`` and wait until that save (not an earlier one) has finished and succeeded.

    ``LASTSAVE`` has a resolution of one second, so progress is read from ``INFO persistence``.
    A save already running (another client's, or a replica's sync) started too early to hold every
    write acknowledged before our request, so we wait for it to end and then start ours; Redis counts
    a save in ``rdb_saves`` when it forks, and refuses a second one while one runs, so once ours has
    started (``rdb_saves`` past its earlier value), ``rdb_bgsave_in_progress:0`` means ours ended,
    and ``rdb_last_bgsave_status`` says how. Raises ``Retry`` when the node cannot be reached or the
    save takes longer than ``timeout``, ``Fatal`` when Redis reports that the save failed.
    """
    client = _client(host, port, user=user, password=password, timeout=5.0, tls=tls)
    try:
        async with asyncio.timeout(timeout):
            while True:
                info = await client.info("persistence")
                saves = int(info.get("rdb_saves", 0))
                if not int(info.get("rdb_bgsave_in_progress", 0)):
                    try:
                        # SCHEDULE: behind an AOF rewrite in progress, ours starts when it ends.
                        await client.bgsave(schedule=True)
                        break
                    except RedisError as exc:
                        if "in progress" not in str(exc):
                            raise
                await asyncio.sleep(poll)  # another save runs: ours starts once it is over
            while True:
                info = await client.info("persistence")
                if int(info.get("rdb_saves", 0)) > saves and not int(info.get("rdb_bgsave_in_progress", 0)):
                    break
                await asyncio.sleep(poll)
    except (RedisError, OSError, TimeoutError) as exc:
        raise Retry(f"BGSAVE on {host}:{port} did not complete: {exc or type(exc).__name__}") from exc
    finally:
        await client.aclose()
    status = info.get("rdb_last_bgsave_status")
    if status != "ok":
        raise Fatal(f"BGSAVE on {host}:{port} failed (rdb_last_bgsave_status:{status})")


def check_rdb(checker: str, path: Path, timeout: float = 600.0) -> str | None:
    """Run ``redis-check-rdb`` on ``path``: None when the file loads, else what is wrong with it."""
    try:
        result = subprocess.run(
            [checker, str(path)], capture_output=True, text=True, timeout=timeout, check=False, errors="replace"
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"redis-check-rdb could not run: {exc}"
    if result.returncode == 0:
        return None
    lines = [line for line in (result.stdout + result.stderr).splitlines() if "error" in line.lower()]
    return (lines[-1] if lines else "the file does not load").strip("[] ")


# Long enough for Sentinel to promote a replica and the endpoint to move (about a second here); the
# old primary then answers READONLY or has its sessions cut, so no paused write is ever acknowledged.
FAILOVER_PAUSE_MS = 5000


async def pause_and_drain(
    primary: tuple[str, int],
    *,
    user: str,
    password: str,
    pause_ms: int = FAILOVER_PAUSE_MS,
    catch_up: float = 3.0,
    tls: ClientTls | None = None,
) -> None:
    """Pause writes on ``primary`` and wait until every replica has acknowledged all it accepted.

    Raises ``Retry`` (with the pause lifted) if the replicas do not catch up within ``catch_up`` seconds.
    """
    client = _client(*primary, user=user, password=password, timeout=2.0, tls=tls)
    try:
        await client.client_pause(pause_ms, all=False)  # all=False: pause writes only
        try:
            async with asyncio.timeout(catch_up):
                while not _replicas_caught_up(await client.info("replication")):  # noqa: ASYNC110
                    await asyncio.sleep(0.01)  # replicas report their offset about every 10 ms
        except TimeoutError:
            await client.client_unpause()
            raise Retry(f"replicas of {primary[0]}:{primary[1]} did not catch up before a failover") from None
    except (RedisError, OSError) as exc:
        raise Retry(f"pausing writes on {primary[0]}:{primary[1]} failed: {exc}") from exc
    finally:
        await client.aclose()


async def unpause(primary: tuple[str, int], *, user: str, password: str, tls: ClientTls | None = None) -> None:
    client = _client(*primary, user=user, password=password, timeout=2.0, tls=tls)
    try:
        await client.client_unpause()
    except (RedisError, OSError):
        pass  # the pause lapses on its own
    finally:
        await client.aclose()


def _replicas_caught_up(info: Mapping[str, Any]) -> bool:
    """Every replica's acknowledged offset equals the primary's (fields ``slaveN``: ip, port, offset...)."""
    offset = int(info.get("master_repl_offset", 0))
    replicas = [v for k, v in info.items() if re.fullmatch(r"slave\d+", k)]
    return bool(replicas) and all(int(_field(r, "offset")) >= offset for r in replicas)


def _field(replica: Any, name: str) -> str:
    # redis-py parses "ip=..,port=..,offset=.." into a dict; be tolerant of the raw string too.
    if isinstance(replica, Mapping):
        return str(replica[name])
    return dict(part.split("=", 1) for part in str(replica).split(","))[name]


# -- the engine's commands -----------------------------------------------------------------------


def command_catalog(binary: str, timeout: float = 10.0) -> CommandCatalog:
    """The commands (with their subcommands) and ACL categories the installed ``binary`` knows, for
    checking access strings (``model.acl.parse_access_string``).

    Asked of a throwaway server listening on a unix socket only (no TCP port, no data, no config
    file), stopped by PID before returning. Raises ``RuntimeError`` when it cannot be asked.
    """
    with tempfile.TemporaryDirectory(prefix="cachefleet-catalog-") as work:
        sock = Path(work) / "redis.sock"
        argv = [binary, "--port", "0", "--unixsocket", str(sock), "--save", "", "--appendonly", "no"]
        argv += ["--dir", work, "--logfile", "", "--daemonize", "no"]
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    commands, categories = _ask_unix(sock, [("COMMAND",), ("ACL", "CAT")], timeout)
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"{binary} did not answer on {sock}") from None
                    time.sleep(0.01)
        finally:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stderr is not None:
                process.stderr.close()
    return catalog_from_replies(commands, categories)


def _ask_unix(path: Path, commands: Sequence[Sequence[str]], timeout: float) -> list[resp.Reply]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(str(path))
        conn.sendall(b"".join(resp.encode(*c) for c in commands))
        data = b""
        while (replies := resp.parse(data, len(commands))) is None:
            chunk = conn.recv(1 << 20)
            if not chunk:
                raise OSError("the server closed the connection")
            data += chunk
        return replies


def catalog_from_replies(commands: resp.Reply, categories: resp.Reply) -> CommandCatalog:
    """Pure: a catalog from the replies to ``COMMAND`` and ``ACL CAT`` (RESP2)."""
    if not isinstance(commands, list) or not isinstance(categories, list):
        raise RuntimeError("COMMAND or ACL CAT gave an unexpected answer")
    table: dict[str, frozenset[str]] = {}
    for entry in commands:
        if not isinstance(entry, list) or not entry:
            continue
        name = str(entry[0]).lower()
        subs: set[str] = set()
        # Redis 7: the tenth field lists the subcommands, each an entry named "command|sub".
        if len(entry) > 9 and isinstance(entry[9], list):
            for sub in entry[9]:
                if isinstance(sub, list) and sub:
                    subs.add(str(sub[0]).lower().partition("|")[2])
        table[name] = frozenset(subs)
    return CommandCatalog(commands=table, categories=frozenset(str(c).lower() for c in categories))
