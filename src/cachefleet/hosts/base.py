"""The seam between the control plane and the machines that run engine processes.

The reconciler touches a machine only through a ``Host``: it asks for a node's port, starts a process
from a ``ProcessSpec`` it rendered purely, observes liveness by PID, reads the small files it wrote,
and moves whole files (RDB files of snapshots and restores) in and out. Drivers decide how:
``EmbeddedHost`` (``hosts/embedded.py``, the control plane's own machine, the default), the remote
driver of ``cachefleet agent`` hosts, and an in-memory one for unit tests (tests/support/fakes.py).
None of them knows about engines or about each other; ``Hosts`` gives the driver of a host id.

Every call is async. A driver keeps its blocking work off the event loop (the embedded host runs
spawns, stops, allocations and copies in worker threads; the lookups a pass makes for every node,
``port_of``, ``pid``, ``port_taken`` and ``read_file``, read a few small local files and answer
inline). A host that cannot be reached raises ``Retry``.

Paths: ``node_dir`` is where a node's files live *on that host*, for configs rendered here and run
there; the control plane never opens such a path itself.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cachefleet.model.nodes import PORT_SLOT, NodeKey


@dataclass(frozen=True)
class PortRequest:
    """A port wanted for ``node`` in ``slot``; ``port``: the one the control plane recorded for it.

    A node keeps its port for life, even when its directory (where the host persists the port) is
    lost: the recorded port is persisted again, whether or not something else listens there now.
    """

    node: NodeKey
    slot: str = PORT_SLOT
    port: int | None = None


@dataclass(frozen=True)
class RestartPolicy:
    """How a host that supervises its nodes itself (``cachefleet agent``) restarts a Redis node whose
    group Sentinels watch, so that a former primary never comes back as a second master.

    ``master_name`` is the group's name at the Sentinels, ``sentinels`` their addresses, ``address``
    how they name this node (its port is the node's own). ``down_after_ms`` is the Sentinels'
    ``down-after-milliseconds``: it bounds how long the host waits for their verdict. A node of a
    group without Sentinels has no policy and restarts as it was configured.
    """

    master_name: str
    sentinels: tuple[tuple[str, int], ...]
    address: str
    down_after_ms: int = 1000
    password: str | None = None  # what the Sentinels require of clients, if anything
    tls: bool = False  # the Sentinels speak TLS only (the host asks them with its own certificate)


@dataclass(frozen=True)
class FileDigest:
    """What a whole-file transfer moved: its size in bytes and its SHA-256 (hex)."""

    size: int
    sha256: str


@dataclass(frozen=True)
class ProcessSpec:
    """What to run for a node.

    ``files`` maps a plain file name (no directories) to its text; the host writes them into the node
    directory, mode 0600, before starting ``argv`` (they hold secrets such as ACL passwords).
    ``scripts`` are written the same way but mode 0700: programs the process runs itself (Sentinel
    refuses a ``client-reconfig-script`` without an execute bit, even for root).
    ``restart`` is read only by hosts that restart nodes on their own (``RestartPolicy``); the local
    host leaves restarts to the reconciler.
    """

    argv: tuple[str, ...]
    files: Mapping[str, str] = field(default_factory=dict)
    scripts: Mapping[str, str] = field(default_factory=dict)
    restart: RestartPolicy | None = None


@dataclass(frozen=True)
class HostInfo:
    """What a host says about itself when asked (the host kind asks it on every look)."""

    agent_version: str | None = None
    memory_bytes: int | None = None  # the machine's memory, when known


class Host(Protocol):
    @property
    def id(self) -> str:
        """The host's id (``model.hosts``): what placements name."""
        ...

    @property
    def address(self) -> str:
        """What the host's nodes bind to, and what the control plane and clients dial."""
        ...

    async def node_dir(self, key: NodeKey) -> Path:
        """Where the node's config, data, log, pidfile and port file live on the host (a remote host
        says where its nodes live once, when first asked)."""
        ...

    def local_path(self, key: NodeKey, name: str) -> Path | None:
        """The path of node file ``name`` on the control plane's own machine, when the host is that
        machine (the embedded host: snapshots then link the file instead of copying it); else None."""
        ...

    async def info(self) -> HostInfo:
        """Whether the host answers (``Retry`` when not), and what it says about itself."""
        ...

    async def port_of(self, key: NodeKey, slot: str = PORT_SLOT) -> int | None:
        """The port persisted for this node in ``slot``, if it has one.

        A node may hold several ports, one per named slot (an endpoint proxy: ``"port"`` for the
        primary endpoint, ``"reader"`` for the reader endpoint).
        """
        ...

    async def allocate_ports(self, wanted: Sequence[PortRequest], taken: Collection[int] = ()) -> list[int]:
        """For each request in turn: the node's persisted port in its slot; else the port it had
        (``PortRequest.port``), persisted again unless another node of this host holds it; else a newly
        chosen free one, persisted first. A newly chosen port is never one in ``taken`` nor one
        persisted for any slot of any node. ``InsufficientCacheClusterCapacity`` when the range is full.
        """
        ...

    async def port_taken(self, key: NodeKey, slot: str = PORT_SLOT) -> bool:
        """Whether the node is down and its persisted port is held by a process that is not the node."""
        ...

    async def pid(self, key: NodeKey) -> int | None:
        """The PID of the node's live process, or None; never a reused PID of another process."""
        ...

    async def start(self, key: NodeKey, spec: ProcessSpec) -> int:
        """Start the node unless it already runs; returns its PID either way."""
        ...

    async def read_file(self, key: NodeKey, name: str) -> str | None:
        """The text of file ``name`` in the node directory (one the process may have rewritten,
        such as Sentinel's config), or None when it does not exist."""
        ...

    async def write_new(self, key: NodeKey, name: str, data: bytes, unless: str | None = None) -> bool:
        """Create file ``name`` (0600) in the node directory holding ``data``, unless it or ``unless``
        exists already; whether it was written. A host that cannot do it safely answers False."""
        ...

    async def fetch_file(self, key: NodeKey, name: str, dest: Path) -> FileDigest:
        """Copy node file ``name`` to the control plane's ``dest`` (atomically, 0600), checked against
        its size and SHA-256; ``FileNotFoundError`` when the node has no such file."""
        ...

    async def put_file(self, key: NodeKey, name: str, source: Path) -> FileDigest:
        """Copy the control plane's ``source`` into the node directory as ``name`` (atomically, 0600)."""
        ...

    async def write_file(self, key: NodeKey, name: str, text: str) -> None:
        """Replace file ``name`` in the node directory atomically, mode 0600, without touching the
        process (which reads it when told: a renewed certificate)."""
        ...

    async def reload(self, key: NodeKey, spec: ProcessSpec, signum: int) -> None:
        """Write the spec's files and scripts, then send ``signum`` to the node's live process.

        Nothing is started: a no-op (after writing the files) when the node is not running.
        """
        ...

    async def stop(self, key: NodeKey, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; a no-op when the node is not running."""
        ...

    async def remove(self, key: NodeKey) -> None:
        """Stop the node and delete its directory (and its cluster's directory once empty)."""
        ...

    async def nodes(self) -> list[NodeKey]:
        """Every node directory present, running or not, for re-adoption and cleanup."""
        ...

    def close(self) -> None:
        """Let go of the host's connections (the host was removed); returns at once."""
        ...


class Hosts(Protocol):
    """The driver of each host: what placements name (``control.hosts.Drivers``)."""

    def get(self, host_id: str) -> Host:
        """The host's driver; ``Retry`` when no such host is registered (any more)."""
        ...
