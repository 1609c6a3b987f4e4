"""Cut the established connections an endpoint carries to one target (the ``conntrack`` CLI).

Re-pointing an endpoint only changes where new connections go: the kernel keeps every tracked
connection on the target it was DNATed to. When that target is a demoted primary that still runs,
its clients would keep writing to it. Deleting the connections' conntrack entries makes the next
packet of each one a new, loose flow that is DNATed to the new target, which answers with a reset:
the client sees one error and reconnects to the new target (the DNAT equivalent of HAProxy's
``shutdown-sessions``). Needs CAP_NET_ADMIN in the namespace where the DNAT happened.
"""

from __future__ import annotations

import asyncio
import re

from cachefleet.endpoints.base import Address, DataPathError, tool

_DELETED = re.compile(r"(\d+) flow entries have been deleted")
_TIMEOUT = 10.0


class ConntrackError(DataPathError):
    """``conntrack`` failed or printed something other than its deletion count."""


def argv(endpoint: Address, target: Address | None, binary: str = "conntrack") -> list[str]:
    """``conntrack -D`` for TCP connections made to ``endpoint`` (as the client addressed them) and,
    when ``target`` is given, DNATed to that target only."""
    args = [binary, "-D", "-p", "tcp", "--orig-dst", endpoint.host, "--orig-port-dst", str(endpoint.port)]
    if target is not None:
        args += ["--reply-src", target.host, "--reply-port-src", str(target.port)]
    return args


def parse_deleted(returncode: int, stderr: str) -> int:
    """Pure: how many entries ``conntrack -D`` deleted. It exits 1 when it deleted none, which is
    not a failure here."""
    found = _DELETED.search(stderr)
    if found is None:
        raise ConntrackError(f"conntrack exited {returncode}: {stderr.strip()}")
    return int(found.group(1))


async def flush(endpoint: Address, target: Address | None = None, *, binary: str = "conntrack") -> int:
    """Delete the tracked connections from ``endpoint`` to ``target`` (every target when None);
    returns how many were deleted. About 11 ms with nothing to delete on this machine (a fork)."""
    try:
        program = tool(binary)
    except DataPathError as exc:
        raise ConntrackError(str(exc)) from exc
    process = await asyncio.create_subprocess_exec(
        *argv(endpoint, target, program),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(_TIMEOUT):
            _, stderr = await process.communicate()
    except TimeoutError as exc:
        process.kill()
        await process.wait()
        raise ConntrackError(f"conntrack took more than {_TIMEOUT:.0f} s") from exc
    return parse_deleted(process.returncode or 0, stderr.decode(errors="replace"))
