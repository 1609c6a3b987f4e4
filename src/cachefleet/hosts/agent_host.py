"""A registered host, as the control plane's async ``Host``: its ``cachefleet agent`` through ``RemoteHost``.

``RemoteHost`` (``hosts/remote.py``) speaks the agent's API with a synchronous HTTP client and keeps
a cache of the agent's nodes current from its event stream (a follower thread). This adapter gives
it the async seam: every call runs in a worker thread, so a slow or silent agent (a call waits up to
its connect timeout) never holds the event loop, and the reconciler's other resources go on. The
cached lookups a pass makes (``port_of``, ``pid``, ``read_file`` of the control plane's own files)
cost a thread hop each, small beside the network.

What the agent's API has no call for is answered conservatively: ``write_new`` (create a file only
if absent) is not offered, so a new member on an agent host gets no seed RDB and its replicas take a
full sync of the empty dataset instead of a partial one (correct, a little slower); ``local_path``
is None (files are streamed, never opened in place).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Collection, Sequence
from pathlib import Path

from cachefleet.hosts.base import FileDigest, HostInfo, PortRequest, ProcessSpec
from cachefleet.hosts.remote import RemoteHost
from cachefleet.model.nodes import PORT_SLOT, NodeKey


class AgentHost:
    def __init__(self, remote: RemoteHost, host_id: str, address: str) -> None:
        self.remote = remote
        self._id = host_id
        self._address = address

    @property
    def id(self) -> str:
        return self._id

    @property
    def address(self) -> str:
        return self._address

    async def node_dir(self, key: NodeKey) -> Path:
        return await asyncio.to_thread(self.remote.node_dir, key)

    def local_path(self, key: NodeKey, name: str) -> Path | None:
        return None

    async def info(self) -> HostInfo:
        info = await asyncio.to_thread(self.remote.info, refresh=True)
        capacity = info.get("capacity") or {}
        memory = capacity.get("memory_bytes")
        return HostInfo(
            agent_version=str(info.get("agent_version", "")) or None,
            memory_bytes=int(memory) if memory is not None else None,
        )

    async def port_of(self, key: NodeKey, slot: str = PORT_SLOT) -> int | None:
        return await asyncio.to_thread(self.remote.port_of, key, slot)

    async def allocate_ports(self, wanted: Sequence[PortRequest], taken: Collection[int] = ()) -> list[int]:
        return await asyncio.to_thread(self.remote.allocate_ports, wanted, taken)

    async def port_taken(self, key: NodeKey, slot: str = PORT_SLOT) -> bool:
        return await asyncio.to_thread(self.remote.port_taken, key, slot)

    async def pid(self, key: NodeKey) -> int | None:
        return await asyncio.to_thread(self.remote.pid, key)

    async def start(self, key: NodeKey, spec: ProcessSpec) -> int:
        return await asyncio.to_thread(self.remote.start, key, spec)

    async def read_file(self, key: NodeKey, name: str) -> str | None:
        return await asyncio.to_thread(self.remote.read_file, key, name)

    async def write_new(self, key: NodeKey, name: str, data: bytes, unless: str | None = None) -> bool:
        return False

    async def fetch_file(self, key: NodeKey, name: str, dest: Path) -> FileDigest:
        return await asyncio.to_thread(self.remote.fetch_file, key, name, dest)

    async def put_file(self, key: NodeKey, name: str, source: Path) -> FileDigest:
        return await asyncio.to_thread(self.remote.put_file, key, name, source)

    async def write_file(self, key: NodeKey, name: str, text: str) -> None:
        # The agent's API replaces a node file by streaming it (``put_file``): the text goes through a
        # private temporary file on this side.
        await asyncio.to_thread(_put_text, self.remote, key, name, text)

    async def reload(self, key: NodeKey, spec: ProcessSpec, signum: int) -> None:
        await asyncio.to_thread(self.remote.reload, key, spec, signum)

    async def stop(self, key: NodeKey, grace: float = 5.0) -> None:
        await asyncio.to_thread(self.remote.stop, key, grace)

    async def remove(self, key: NodeKey) -> None:
        await asyncio.to_thread(self.remote.remove, key)

    async def nodes(self) -> list[NodeKey]:
        return await asyncio.to_thread(self.remote.nodes)

    def close(self) -> None:
        self.remote.close()


def _put_text(remote: RemoteHost, key: NodeKey, name: str, text: str) -> None:
    with tempfile.TemporaryDirectory(prefix="cachefleet-put-") as tmp:
        source = Path(tmp) / name
        fd = os.open(source, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text)
        remote.put_file(key, name, source)
