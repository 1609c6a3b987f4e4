"""The seam between the control plane and the machines that run engine processes.

The reconciler speaks only to a ``Host``: it asks for a node's directory and port, starts a process
from a ``ProcessSpec`` it rendered purely, and observes liveness by PID. Drivers (``LocalHost`` today,
an in-memory one for unit tests in tests/support/fakes.py, remote ones later) decide how; none of
them knows about engines or about each other.

Every method is synchronous. Those that may block (``start``, ``stop`` waits for the process to exit,
``allocate_ports`` syncs to disk) an async caller runs in a thread; the lookups a reconcile pass makes
for every node (``port_of``, ``pid``, ``port_taken``, ``read_file``) read a few small local files and
are cheap enough to call inline. A remote driver would have to keep them so (answer from a cache).
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
class FileDigest:
    """What a node file transfer moved: its size in bytes and its SHA-256 (hex)."""

    size: int
    sha256: str


class Host(Protocol):
    def node_dir(self, key: NodeKey) -> Path:
        """Where the node's config, data, log, pidfile and port file live (not created by this call)."""
        ...

    def port_of(self, key: NodeKey, slot: str = PORT_SLOT) -> int | None:
        """The port persisted for this node in ``slot``, if it has one.

        A node may hold several ports, one per named slot (an endpoint proxy: ``"port"`` for the
        primary endpoint, ``"reader"`` for the reader endpoint).
        """
        ...

    def allocate_port(
        self, key: NodeKey, taken: Collection[int], slot: str = PORT_SLOT, prefer: int | None = None
    ) -> int:
        """The node's persisted port in ``slot``; else ``prefer`` (the port it had), persisted again
        unless another node of this host holds it; else a newly chosen free one (persisted first).

        A newly chosen port is never one in ``taken`` nor one persisted for any slot of any node.
        Raises ``InsufficientCacheClusterCapacity`` when the range has no free port.
        """
        ...

    def allocate_ports(self, wanted: Sequence[PortRequest], taken: Collection[int] = ()) -> list[int]:
        """``allocate_port`` for each request in turn: the ports of a whole new group in one call,
        persisted together."""
        ...

    def port_taken(self, key: NodeKey, slot: str = PORT_SLOT) -> bool:
        """Whether the node is down and its persisted port is held by a process that is not the node."""
        ...

    def pid(self, key: NodeKey) -> int | None:
        """The PID of the node's live process, or None; never a reused PID of another process."""
        ...

    def start(self, key: NodeKey, spec: ProcessSpec) -> int:
        """Start the node unless it already runs; returns its PID either way."""
        ...

    def read_file(self, key: NodeKey, name: str) -> str | None:
        """The text of file ``name`` in the node directory (one the process may have rewritten,
        such as Sentinel's config), or None when it does not exist."""
        ...

    def reload(self, key: NodeKey, spec: ProcessSpec, signum: int) -> None:
        """Write the spec's files and scripts, then send ``signum`` to the node's live process.

        Nothing is started: a no-op (after writing the files) when the node is not running.
        """
        ...

    def stop(self, key: NodeKey, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; a no-op when the node is not running."""
        ...

    def remove(self, key: NodeKey) -> None:
        """Stop the node and delete its directory (and its cluster's directory once empty)."""
        ...

    def nodes(self) -> list[NodeKey]:
        """Every node directory present, running or not, for re-adoption and cleanup."""
        ...


class NodeFiles(Protocol):
    """Whole node files in and out (RDB files for snapshots and restores), each checked against its
    size and SHA-256. ``LocalHost`` copies; ``RemoteHost`` streams them over the agent's API."""

    def fetch_file(self, key: NodeKey, name: str, dest: Path) -> FileDigest:
        """Copy node file ``name`` to local ``dest`` (atomically, 0600); ``FileNotFoundError`` if absent."""
        ...

    def put_file(self, key: NodeKey, name: str, source: Path) -> FileDigest:
        """Copy local ``source`` into the node directory as ``name`` (atomically, 0600). Names the host
        keeps for itself (pidfile, log, port files) are refused with ``ValueError``."""
        ...
