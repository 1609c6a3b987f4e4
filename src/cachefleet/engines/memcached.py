"""Memcached nodes: the command line for one node, and a probe.

Memcached has no config file; everything is on its command line (``NodeConfig``): item memory and
worker threads from the node type (``node_resources``), the ``memcached1.6`` parameters, TLS with
the installation's certificates (``-Z``), and authentication, either memcached's ASCII
authentication (``-Y``, a file of "user:password" lines) or SASL PLAIN over the binary protocol
(``-S``, a sasldb that ``sasl_start_script`` builds on the node's host before it starts memcached).

The probe speaks the protocol directly (``version``, ``stats``; the binary protocol for SASL nodes)
on one short connection, with one deadline for the whole exchange.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import ssl
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cachefleet.engines import nodetypes

# Connections memcached accepts; ElastiCache's default max_simultaneous_connections is 65000, which
# would need a raised RLIMIT_NOFILE; 4096 fits the usual soft limit.
_MAX_CONNECTIONS = 4096

ASCII_AUTH = "ascii"  # memcached -Y: the first ``set`` of a connection carries "user password"
SASL_AUTH = "sasl"  # memcached -S: SASL PLAIN over the binary protocol
AUTH_FILE = "auth"  # -Y's "user:password" lines, in the node dir (0600)
SASL_USERS = "sasl-users"  # the same lines, turned into a sasldb by the start script
SASL_CONF = "memcached.conf"  # Cyrus SASL's config for the application "memcached"
SASL_DB = "sasldb2"
START_SCRIPT = "start-memcached"


@dataclass(frozen=True)
class NodeConfig:
    """Everything one node's command line is made of.

    ``auth``: None, ``ASCII_AUTH`` or ``SASL_AUTH``; each forces memcached's one protocol (ASCII or
    binary), so ``binding_protocol`` is left out then. ``tls``: (certificate chain, key) paths.
    """

    port: int
    bind: str
    memory_mb: int
    threads: int = 4
    parameters: Mapping[str, str] = field(default_factory=dict)
    tls: tuple[str, str] | None = None
    auth: str | None = None
    auth_file: str | None = None  # -Y's file (ASCII_AUTH)


def argv(binary: str, *, port: int, bind: str, memory_mb: int, extra: Sequence[str] = ()) -> tuple[str, ...]:
    """The command line the reconciler starts nodes with today (``node_argv`` takes over from it)."""
    args = [binary, "-p", str(port), "-l", bind, "-m", str(memory_mb), "-U", "0", "-c", str(_MAX_CONNECTIONS)]
    if os.geteuid() == 0:
        args += ["-u", "root"]
    return (*args, *extra)


def node_argv(binary: str, config: NodeConfig) -> tuple[str, ...]:
    """The command line of one node; it runs in the foreground (no ``-d``) under the host driver."""
    args = [binary, "-p", str(config.port), "-l", config.bind, "-m", str(config.memory_mb)]
    args += ["-t", str(config.threads), "-U", "0", "-c", str(_MAX_CONNECTIONS)]
    # memcached refuses to run as root unless told which user to be; staying root is what we want
    # there (the control plane already is), so say so rather than switch to an account that may
    # not be able to read the node dir.
    if os.geteuid() == 0:
        args += ["-u", "root"]
    flags, options = parameter_flags(config.parameters)
    if config.auth is not None:
        flags = [f for f in flags if f[0] != "-B"]
        flags.append(("-Y", config.auth_file or AUTH_FILE) if config.auth == ASCII_AUTH else ("-S",))
    if config.tls is not None:
        cert, key = config.tls
        flags.append(("-Z",))
        options.append(f"ssl_chain_cert={cert},ssl_key={key}")
    for flag in flags:
        args += flag
    if options:
        args += ["-o", ",".join(options)]
    return tuple(args)


def auth_lines(users: Sequence[tuple[str, str]]) -> str:
    """Pure: the "user:password" lines of -Y's file (also the input of the SASL start script)."""
    return "".join(f"{user}:{password}\n" for user, password in users)


def sasl_conf(node_dir: str) -> str:
    """Cyrus SASL's config for memcached: PLAIN against a sasldb in the node dir."""
    return f"mech_list: plain\nsasldb_path: {node_dir}/{SASL_DB}\n"


def sasl_start_script(node_argv: Sequence[str]) -> str:
    """A shell script that builds the node's sasldb from its user file (removed then), then becomes memcached.

    The sasldb is made on the node's own host, right before the start, because its realm is the
    host's name, which memcached and saslpasswd2 agree on only there. The script runs in the node
    dir (the host driver's working directory), which is how the host still knows the process.
    """
    command = " ".join(shlex.quote(a) for a in node_argv)
    return (
        "#!/bin/sh\n"
        "set -eu\n"
        'PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"\n'
        'export SASL_CONF_PATH="$PWD"\n'
        f"rm -f {SASL_DB}\n"
        "while IFS=: read -r user password; do\n"
        f'  printf %s "$password" | saslpasswd2 -p -a memcached -c -f "$PWD/{SASL_DB}" "$user"\n'
        f"done < {SASL_USERS}\n"
        f"rm -f {SASL_USERS}\n"  # the sasldb alone holds the users from here on
        f"chmod 600 {SASL_DB}\n"
        f"exec {command}\n"
    )


def node_resources(node_type: str, values: Mapping[str, str]) -> tuple[int, int]:
    """Pure: (item memory in MB, worker threads) of a node, as ElastiCache sizes them.

    Memory is the node type's (``max_cache_memory``) less ``memcached_connections_overhead``;
    threads are its vCPUs (``num_threads``, a node-type-specific parameter that no group changes).
    An unknown node type gets memcached's own defaults (64 MB, 4 threads).
    """
    memory = (nodetypes.memory_bytes(node_type) or 64 << 20) >> 20
    overhead = _int(values.get("memcached_connections_overhead"), 0)
    return max(1, memory - overhead), nodetypes.vcpus(node_type) or 4


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


# Boolean parameters (0/1) that add a flag when set to 1, and those that memcached 1.6 has on by
# default, which an ``-o no_<option>`` turns off when set to 0.
_FLAGS_WHEN_ON = {"cas_disabled": "-C", "error_on_memory_exhausted": "-M", "disable_flush_all": "-F"}
_OPTIONS_ON_BY_DEFAULT = ("lru_crawler", "lru_maintainer", "maxconns_fast", "slab_reassign")


def parameter_flags(values: Mapping[str, str]) -> tuple[list[tuple[str, ...]], list[str]]:
    """Pure: the flags (each with its value) and ``-o`` options a node's memcached1.6 parameters stand for."""
    flags: list[tuple[str, ...]] = []
    for name, flag in (("max_item_size", "-I"), ("chunk_size", "-n"), ("chunk_size_growth_factor", "-f")):
        if name in values:
            flags.append((flag, values[name]))
    if "binding_protocol" in values:
        flags.append(("-B", values["binding_protocol"]))
    flags += [(flag,) for name, flag in _FLAGS_WHEN_ON.items() if values.get(name) == "1"]
    options = [f"no_{name}" for name in _OPTIONS_ON_BY_DEFAULT if values.get(name) == "0"]
    if values.get("track_sizes") == "1":
        options.append("track_sizes")
    for name in ("hash_algorithm", "slab_automove", "idle_timeout"):
        if name in values:
            options.append(f"{name}={values[name]}")
    return flags, options


def parameter_args(values: Mapping[str, str]) -> tuple[str, ...]:
    """Pure: the command-line flags a node's effective memcached1.6 parameters stand for."""
    flags, options = parameter_flags(values)
    args = [part for flag in flags for part in flag]
    if options:
        args += ["-o", ",".join(options)]
    return tuple(args)


@dataclass(frozen=True)
class MemcachedObservation:
    version: str
    pid: int
    uptime: int
    curr_items: int
    bytes: int  # memory used by items
    limit_maxbytes: int
    curr_connections: int
    evictions: int
    get_hits: int
    get_misses: int
    # ``stats settings``: what the node runs with (threads, memory, the live parameters' values).
    settings: Mapping[str, str] = field(default_factory=dict)

    @property
    def threads(self) -> int:
        return int(self.settings.get("num_threads", "0") or 0)


@dataclass(frozen=True)
class Access:
    """How the control plane reaches a node: TLS (a context trusting the installation's CA) and
    its own credentials when the node requires authentication (``ASCII_AUTH`` or ``SASL_AUTH``)."""

    tls: ssl.SSLContext | None = None
    auth: str | None = None
    user: str = ""
    password: str = ""


PLAIN = Access()


# One deadline for connect + both answers; the ``timeout`` parameter is the caller's budget for it.
async def probe(
    host: str,
    port: int,
    timeout: float = 1.0,  # noqa: ASYNC109
    access: Access = PLAIN,
) -> MemcachedObservation | None:
    """What the node reports now, or None when it cannot be reached or answers unexpectedly."""
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                host, port, ssl=access.tls, server_hostname=host if access.tls is not None else None
            )
            if access.auth == SASL_AUTH:
                return await _binary_probe(reader, writer, access)
            if access.auth == ASCII_AUTH:
                secret = f"{access.user} {access.password}".encode()
                writer.write(b"set auth 0 0 %d\r\n%s\r\n" % (len(secret), secret))
            writer.write(b"version\r\nstats\r\nstats settings\r\n")
            await writer.drain()
            if access.auth == ASCII_AUTH and await reader.readuntil(b"\r\n") != b"STORED\r\n":
                return None
            version_line = (await reader.readuntil(b"\r\n")).decode(errors="replace")
            stats_text = (await reader.readuntil(b"END\r\n")).decode(errors="replace")
            settings_text = (await reader.readuntil(b"END\r\n")).decode(errors="replace")
    except (OSError, TimeoutError, ssl.SSLError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return None
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):  # the peer may have reset; closing is all we want
                await writer.wait_closed()
    if not version_line.startswith("VERSION "):
        return None
    version = version_line.removeprefix("VERSION ").strip()
    return observation_from_stats(version, parse_stats(stats_text), parse_stats(settings_text))


# The binary protocol, for nodes with SASL (memcached -S speaks nothing else).
_HEADER = struct.Struct(">BBHBBHIIQ")
_SASL_AUTH, _VERSION, _STAT = 0x21, 0x0B, 0x10


def _binary_request(opcode: int, key: bytes = b"", value: bytes = b"") -> bytes:
    return _HEADER.pack(0x80, opcode, len(key), 0, 0, 0, len(key) + len(value), 0, 0) + key + value


async def _binary_reply(reader: asyncio.StreamReader) -> tuple[int, bytes, bytes]:
    """(status, key, value) of the next reply."""
    _, _, key_length, extras, _, status, body, _, _ = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    data = await reader.readexactly(body)
    return status, data[extras : extras + key_length], data[extras + key_length :]


async def _binary_probe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, access: Access
) -> MemcachedObservation | None:
    plain = b"\0%s\0%s" % (access.user.encode(), access.password.encode())
    writer.write(
        _binary_request(_SASL_AUTH, b"PLAIN", plain)
        + _binary_request(_VERSION)
        + _binary_request(_STAT)
        + _binary_request(_STAT, b"settings")
    )
    await writer.drain()
    status, _, _ = await _binary_reply(reader)
    if status != 0:
        return None
    _, _, version = await _binary_reply(reader)
    stats, settings = await _binary_stats(reader), await _binary_stats(reader)
    return observation_from_stats(version.decode(errors="replace"), stats, settings)


async def _binary_stats(reader: asyncio.StreamReader) -> dict[str, str]:
    """One reply per statistic, then one with an empty key."""
    stats: dict[str, str] = {}
    while True:
        _, key, value = await _binary_reply(reader)
        if not key:
            return stats
        stats[key.decode(errors="replace")] = value.decode(errors="replace")


def parse_stats(text: str) -> dict[str, str]:
    """Pure: ``STAT name value`` lines (up to ``END``) as a dict."""
    stats: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[0] == "STAT":
            stats[parts[1]] = parts[2]
    return stats


def observation_from_stats(
    version: str, stats: Mapping[str, str], settings: Mapping[str, str] | None = None
) -> MemcachedObservation:
    def number(name: str) -> int:
        try:
            return int(stats.get(name, "0"))
        except ValueError:
            return 0

    return MemcachedObservation(
        version=version,
        pid=number("pid"),
        uptime=number("uptime"),
        curr_items=number("curr_items"),
        bytes=number("bytes"),
        limit_maxbytes=number("limit_maxbytes"),
        curr_connections=number("curr_connections"),
        evictions=number("evictions"),
        get_hits=number("get_hits"),
        get_misses=number("get_misses"),
        settings=dict(settings or {}),
    )


# -- parameters a running node changes ---------------------------------------------------------

# memcached1.6 parameters that memcached changes at run time, without a restart (the others are
# start-up flags: ``requires-reboot``).
LIVE_PARAMETERS = ("slab_automove", "lru_crawler")


def live_commands(wanted: Mapping[str, str], settings: Mapping[str, str]) -> tuple[str, ...]:
    """Pure: the commands that bring a running node's live parameters (``stats settings``) to
    ``wanted``; none for a setting the node does not report."""
    commands: list[str] = []
    automove = wanted.get("slab_automove")
    if automove is not None and settings.get("slab_automove", automove) != automove:
        commands.append(f"slabs automove {automove}")
    crawler = wanted.get("lru_crawler")
    if crawler is not None:
        on = crawler == "1"
        if settings.get("lru_crawler", "yes" if on else "no") != ("yes" if on else "no"):
            commands.append("lru_crawler enable" if on else "lru_crawler disable")
    return tuple(commands)


async def apply_live(
    host: str,
    port: int,
    commands: Sequence[str],
    access: Access = PLAIN,
    timeout: float = 2.0,  # noqa: ASYNC109
) -> bool:
    """Run ``commands`` on a node (ASCII protocol; nodes with SASL take no live changes); True
    when each answered ``OK``."""
    if not commands or access.auth == SASL_AUTH:
        return not commands
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                host, port, ssl=access.tls, server_hostname=host if access.tls is not None else None
            )
            if access.auth == ASCII_AUTH:
                secret = f"{access.user} {access.password}".encode()
                writer.write(b"set auth 0 0 %d\r\n%s\r\n" % (len(secret), secret))
            writer.write(b"".join(c.encode() + b"\r\n" for c in commands))
            await writer.drain()
            if access.auth == ASCII_AUTH and await reader.readuntil(b"\r\n") != b"STORED\r\n":
                return False
            answers = [await reader.readuntil(b"\r\n") for _ in commands]
    except (OSError, TimeoutError, ssl.SSLError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return False
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
    return all(a == b"OK\r\n" for a in answers)
