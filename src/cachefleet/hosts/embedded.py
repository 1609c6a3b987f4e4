"""The embedded host: the control plane's own machine, as an async ``Host`` over a ``LocalHost``.

``LocalHost`` (``hosts/local.py``) is the synchronous driver of node directories and processes, used
here and by ``cachefleet agent`` alike. This adapter keeps its blocking work off the event loop: a
spawn, a stop (it waits for the exit), a port allocation (it syncs to disk), a removal and a file
copy run in a worker thread; the lookups a reconcile pass makes for every node (a port file, a
pidfile checked against /proc, a small file) take microseconds, less than the hop to a thread and
back, and answer inline. With no agent registered this is the only host, and a pass costs what it
cost before the seam became async.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Collection, Sequence
from pathlib import Path

from cachefleet.hosts.base import FileDigest, HostInfo, PortRequest, ProcessSpec
from cachefleet.hosts.local import LocalHost
from cachefleet.model.nodes import PORT_SLOT, NodeKey

CHUNK = 1 << 20


class EmbeddedHost:
    def __init__(self, local: LocalHost, host_id: str, address: str) -> None:
        self.local = local
        self._id = host_id
        self._address = address

    @property
    def id(self) -> str:
        return self._id

    @property
    def address(self) -> str:
        return self._address

    async def node_dir(self, key: NodeKey) -> Path:
        return self.local.node_dir(key)

    def local_path(self, key: NodeKey, name: str) -> Path | None:
        return self.local.file_path(key, name)

    async def info(self) -> HostInfo:
        return HostInfo()

    async def port_of(self, key: NodeKey, slot: str = PORT_SLOT) -> int | None:
        return self.local.port_of(key, slot)

    async def allocate_ports(self, wanted: Sequence[PortRequest], taken: Collection[int] = ()) -> list[int]:
        return await asyncio.to_thread(self.local.allocate_ports, wanted, taken)

    async def port_taken(self, key: NodeKey, slot: str = PORT_SLOT) -> bool:
        return self.local.port_taken(key, slot)

    async def pid(self, key: NodeKey) -> int | None:
        return self.local.pid(key)

    async def start(self, key: NodeKey, spec: ProcessSpec) -> int:
        return await asyncio.to_thread(self.local.start, key, spec)

    async def read_file(self, key: NodeKey, name: str) -> str | None:
        return self.local.read_file(key, name)

    async def write_new(self, key: NodeKey, name: str, data: bytes, unless: str | None = None) -> bool:
        return await asyncio.to_thread(_write_new, self.local, key, name, data, unless)

    async def fetch_file(self, key: NodeKey, name: str, dest: Path) -> FileDigest:
        return await asyncio.to_thread(_copy, self.local.file_path(key, name), dest)

    async def put_file(self, key: NodeKey, name: str, source: Path) -> FileDigest:
        return await asyncio.to_thread(_copy, source, self.local.file_path(key, name, writable=True))

    async def write_file(self, key: NodeKey, name: str, text: str) -> None:
        await asyncio.to_thread(self.local.write_file, key, name, text)

    async def reload(self, key: NodeKey, spec: ProcessSpec, signum: int) -> None:
        await asyncio.to_thread(self.local.reload, key, spec, signum)

    async def stop(self, key: NodeKey, grace: float = 5.0) -> None:
        await asyncio.to_thread(self.local.stop, key, grace)

    async def remove(self, key: NodeKey) -> None:
        await asyncio.to_thread(self.local.remove, key)

    async def nodes(self) -> list[NodeKey]:
        return await asyncio.to_thread(self.local.nodes)

    def close(self) -> None:
        pass  # nothing held: the node directories are files here


def _write_new(local: LocalHost, key: NodeKey, name: str, data: bytes, unless: str | None) -> bool:
    path = local.file_path(key, name, writable=True)
    if unless is not None and local.file_path(key, unless).exists():
        return False
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    return True


def _copy(source: Path, dest: Path) -> FileDigest:
    """Copy ``source`` to ``dest`` atomically (a temporary file renamed), 0600, synced; its digest.

    One open file throughout: a file replaced meanwhile by a rename (Redis's dump.rdb) is copied
    whole as it was when opened.
    """
    digest = hashlib.sha256()
    size = 0
    tmp = dest.with_name(f".{dest.name}.tmp")
    with source.open("rb") as src:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), 0o600)
            while chunk := src.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
    os.replace(tmp, dest)
    return FileDigest(size, digest.hexdigest())
