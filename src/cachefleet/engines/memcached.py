"""Memcached nodes: the command line for one node, and a probe over the ASCII protocol.

Memcached has no config file; everything is on its command line. The probe speaks the protocol
directly (``version``, ``stats``) on one short connection, with one deadline for the whole exchange.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# Connections memcached accepts; ElastiCache's default max_simultaneous_connections is 65000, which
# would need a raised RLIMIT_NOFILE; 4096 fits the usual soft limit.
_MAX_CONNECTIONS = 4096


def argv(binary: str, *, port: int, bind: str, memory_mb: int, extra: Sequence[str] = ()) -> tuple[str, ...]:
    """The command line of one node; it runs in the foreground (no ``-d``) under the host driver."""
    args = [binary, "-p", str(port), "-l", bind, "-m", str(memory_mb), "-U", "0", "-c", str(_MAX_CONNECTIONS)]
    # memcached refuses to run as root unless told which user to be; staying root is what we want
    # there (the control plane already is), so say so rather than switch to an account that may
    # not be able to read the node dir.
    if os.geteuid() == 0:
        args += ["-u", "root"]
    return (*args, *extra)


# Boolean parameters (0/1) that add a flag when set to 1, and those that memcached 1.6 has on by
# default, which an ``-o no_<option>`` turns off when set to 0.
_FLAGS_WHEN_ON = {"cas_disabled": "-C", "error_on_memory_exhausted": "-M", "disable_flush_all": "-F"}
_OPTIONS_ON_BY_DEFAULT = ("lru_crawler", "lru_maintainer", "maxconns_fast", "slab_reassign")


def parameter_args(values: Mapping[str, str]) -> tuple[str, ...]:
    """Pure: the command-line flags a node's effective memcached1.6 parameters stand for."""
    args: list[str] = []
    for name, flag in (("max_item_size", "-I"), ("chunk_size", "-n"), ("chunk_size_growth_factor", "-f")):
        if name in values:
            args += [flag, values[name]]
    if "binding_protocol" in values:
        args += ["-B", values["binding_protocol"]]
    args += [flag for name, flag in _FLAGS_WHEN_ON.items() if values.get(name) == "1"]
    options = [f"no_{name}" for name in _OPTIONS_ON_BY_DEFAULT if values.get(name) == "0"]
    if values.get("track_sizes") == "1":
        options.append("track_sizes")
    for name in ("hash_algorithm", "slab_automove", "idle_timeout"):
        if name in values:
            options.append(f"{name}={values[name]}")
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


# One deadline for connect + both answers; the ``timeout`` parameter is the caller's budget for it.
async def probe(host: str, port: int, timeout: float = 1.0) -> MemcachedObservation | None:  # noqa: ASYNC109
    """What the node reports now, or None when it cannot be reached or answers unexpectedly."""
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"version\r\nstats\r\n")
            await writer.drain()
            version_line = (await reader.readuntil(b"\r\n")).decode(errors="replace")
            stats_text = (await reader.readuntil(b"END\r\n")).decode(errors="replace")
    except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return None
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):  # the peer may have reset; closing is all we want
                await writer.wait_closed()
    if not version_line.startswith("VERSION "):
        return None
    return observation_from_stats(version_line.removeprefix("VERSION ").strip(), parse_stats(stats_text))


def parse_stats(text: str) -> dict[str, str]:
    """Pure: ``STAT name value`` lines (up to ``END``) as a dict."""
    stats: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[0] == "STAT":
            stats[parts[1]] = parts[2]
    return stats


def observation_from_stats(version: str, stats: Mapping[str, str]) -> MemcachedObservation:
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
    )
