"""How a resource kind plugs into the reconciler: one registration object per kind.

Two shapes, both naming the ``RecordKind`` (``store.kinds``) that gives typed access to their
records, their status type and their lifecycle table:

- ``PlannedKind``, for resources that converge on processes (replication groups, cache clusters):
  ``load`` reads the typed records a plan needs and the spec generations it read; ``observe`` looks
  at the processes (host and probes); ``plan`` decides, purely. The loop executes the plan's actions
  and records its statuses through the one writer (``store.statuses``), unless a spec it read has
  moved on meanwhile.
- ``WorkerKind``, for resources whose work is not a convergence of processes (snapshots, exports,
  a parameter group's change fanned out to its users): ``work`` does the effects and records
  through the writer itself.

``control.kinds.standard`` lists the registrations the server runs (docs/architecture.md).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from cachefleet.control.actions import Plan, ResourceKey
from cachefleet.control.observe import Observer
from cachefleet.control.planners import params
from cachefleet.model.errors import RestoreFailed
from cachefleet.model.hosts import LOCAL_HOST, HostSpec
from cachefleet.model.nodes import Placement
from cachefleet.model.status import SnapshotState
from cachefleet.store.kinds import RecordKind
from cachefleet.store.records import PARAMETER_GROUP, Snapshot, effective_parameters, snapshots_of
from cachefleet.store.sqlite import Store

Generations = dict[ResourceKey, int]  # the spec generation of each record a pass read


def _unwatched(owner: ResourceKey, pids: Iterable[int]) -> None:
    """No exit notification: the periodic resync finds exited processes."""


def embedded_pids(running: Iterable[tuple[Placement | None, int | None]]) -> list[int]:
    """The PIDs of the processes observed on the embedded host, the only ones a pidfd of this
    machine can watch: an agent restarts its own host's processes and reports them (``hosts.remote``)."""
    return [pid for at, pid in running if pid is not None and at is not None and at.host == LOCAL_HOST]


# Wake the owner on the events that these Sentinels (addresses) publish about this master.
Follow = Callable[[ResourceKey, str, Iterable[tuple[str, int]]], None]


def unfollowed(owner: ResourceKey, master: str, sentinels: Iterable[tuple[str, int]]) -> None:
    """No Sentinel events: the periodic resync finds role changes."""


@dataclass(frozen=True)
class Services:
    """What every kind may use: the store, a way to look at processes, the clock, ``wake``, which
    puts a resource on the reconciler's queue (a group when one of its members changed, say), the
    embedded host as the settings describe it (``store.hosts``), ``watch``, which wakes a resource
    the moment one of the processes it observed running exits (``control.exits``), and ``follow``,
    which wakes it on the events of the Sentinels it observed watching its master
    (``control.sentinel_watch``)."""

    store: Store
    observer: Observer
    clock: Callable[[], datetime]
    wake: Callable[[ResourceKey], None]
    local_host: HostSpec
    watch: Callable[[ResourceKey, Iterable[int]], None] = field(default=_unwatched)
    follow: Follow = field(default=unfollowed)
    shared_sentinels: bool = True  # ``HostMap.shared_sentinels``
    shared_set_size: int = 25  # groups per shared Sentinel set (``control.hosts.shared_set_to_join``)

    def now(self) -> str:
        return self.clock().isoformat()

    def event(self, source_id: str, source_type: str, message: str) -> None:
        self.store.add_event(source_id, source_type, message, self.clock())


class Loaded(Protocol):
    """What ``PlannedKind.load`` read: each kind's own typed records, and the generations of their specs."""

    @property
    def generations(self) -> Generations: ...


L = TypeVar("L", bound=Loaded)
Obs = TypeVar("Obs")


class PlannedKind(ABC, Generic[L, Obs]):
    records: RecordKind[Any, Any]

    @property
    def name(self) -> str:
        return self.records.name

    def resync_ids(self, store: Store) -> list[str]:
        """The resources the periodic resync looks at again: every one, so that a killed node comes
        back unasked, unless a kind's resources are planned with others (``ClusterKind``)."""
        return self.records.ids(store)

    @abstractmethod
    def load(self, resource_id: str) -> L | Plan | None:
        """The records a plan needs; a ``Plan`` when the decision needs no look at the processes
        (waiting for a final snapshot); None when there is nothing to do."""

    @abstractmethod
    async def observe(self, loaded: L) -> Obs:
        """The processes of the resource as they are now."""

    @abstractmethod
    def plan(self, loaded: L, observed: Obs) -> Plan:
        """What to do and record: pure, so it is tested without processes (tests/unit/test_planner_*)."""

    def restore_failed(self, resource_id: str, error: RestoreFailed) -> None:
        """A seed (snapshot or RDB object) was refused while the resource was being created."""
        raise NotImplementedError(f"{self.name} is never seeded")


class WorkerKind(ABC):
    records: RecordKind[Any, Any]

    @property
    def name(self) -> str:
        return self.records.name

    def resync_ids(self, store: Store) -> list[str]:
        """As ``PlannedKind.resync_ids``."""
        return self.records.ids(store)

    @abstractmethod
    async def work(self, resource_id: str) -> float | None:
        """Do what the resource needs now; the delay before the next look, or None."""


Kind = PlannedKind[Any, Any] | WorkerKind


def wanted_parameters(
    store: Store, engine: str, version: str, node_type: str, group_name: str | None, *, memcached_live: bool = True
) -> tuple[params.Wanted, Generations]:
    """What the parameter group asks of the nodes, and its generation when it is a stored group."""
    group, values = effective_parameters(store, engine, version, group_name)
    generations: Generations = {}
    if group is not None and not group.is_default:
        generations[(PARAMETER_GROUP, group.spec.name)] = group.generation
    return params.wanted(engine, version, node_type, values, memcached_live=memcached_live), generations


def taking(store: Store, source_id: str) -> list[Snapshot]:
    """The snapshots of ``source_id`` being taken now."""
    return [s for s in snapshots_of(store, source_id) if s.status.status == SnapshotState.CREATING]
