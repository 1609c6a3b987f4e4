"""Hosts: the machines that run nodes, as the control plane records them, and their lifecycle.

A host is registered with its address, its availability zone, the subnet it belongs to and its
capacity (docs/architecture.md "Hosts and placement"). The embedded host (``LOCAL_HOST``), the
control plane's own machine, always exists: it stands in every AZ of the installation, one subnet
per AZ (``local-<az>``), so that an installation without agents places every node there, as before.

A subnet stands for a set of hosts in one AZ (what ``CacheSubnetGroup`` lists); a host belongs to
one subnet per zone it serves. A cache subnet group is a set of subnets: a group or cluster created
with it runs only on their hosts.

Statuses belong to the reconciler (``control.kinds.host``) except the administrative ones an
operator asks for: ``draining`` (its nodes move off it; no new node lands on it) and ``removing``.

- ``joining``: registered, its agent not reached yet;
- ``active``: reached; takes new nodes;
- ``draining``/``drained``: asked to drain; nodes are moving off / none is left;
- ``unreachable``: its agent does not answer (since ``unreachable_since``);
- ``lost``: unreachable for longer than the installation's ``host_lost_after``: its nodes are
  replaced elsewhere, with the same member ids; when it answers again, its stale nodes are removed;
- ``removing``: asked to be removed (no node placed on it); the record goes once the host holds none.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Self

from cachefleet.model.errors import InvalidHostState
from cachefleet.model.lifecycle import Event, Lifecycle

LOCAL_HOST = "local"  # the embedded host: the control plane's own machine
LOCAL_SUBNET_PREFIX = "local-"


class HostState(StrEnum):
    JOINING = "joining"
    ACTIVE = "active"
    DRAINING = "draining"
    DRAINED = "drained"
    UNREACHABLE = "unreachable"
    LOST = "lost"
    REMOVING = "removing"


# A host takes new nodes only when active; these are left where they are but get nothing new.
PLACEABLE = frozenset({HostState.ACTIVE})
# Nodes on these hosts cannot be reached: the planners neither observe nor command them.
OUT_OF_REACH = frozenset({HostState.UNREACHABLE, HostState.LOST, HostState.JOINING})


@dataclass(frozen=True)
class Subnet:
    id: str
    zone: str


def local_subnet(zone: str) -> str:
    return f"{LOCAL_SUBNET_PREFIX}{zone}"


DEFAULT_SUBNET_GROUP = "default"  # every subnet: what a group or cluster created without one uses


@dataclass(frozen=True)
class CacheSubnetGroupSpec:
    """A customer's cache subnet group: the subnets (sets of hosts, one AZ each) its users run on.

    The ``default`` group is never stored: it covers every subnet there is.
    """

    name: str
    description: str
    subnet_ids: tuple[str, ...]
    tags: tuple[tuple[str, str], ...] = ()

    @property
    def id(self) -> str:
        return self.name

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(
            name=data["name"],
            description=data["description"],
            subnet_ids=tuple(data["subnet_ids"]),
            tags=tuple((str(k), str(v)) for k, v in data.get("tags", ())),
        )

    def with_tags(self, tags: tuple[tuple[str, str], ...]) -> Self:
        return replace(self, tags=tags)


@dataclass(frozen=True)
class HostSpec:
    """A host as registered. ``agent_port`` is None for the embedded host, which has no agent."""

    id: str
    address: str  # what nodes bind to, what the control plane dials and what clients are given
    subnets: tuple[Subnet, ...]  # one per zone it serves (an agent's host: exactly one)
    created_at: datetime
    agent_port: int | None = None
    # Capacity: how many cache nodes, and how many bytes of node-type memory, it may carry; None
    # means no limit of that kind (ports remain one). Sentinels and endpoints do not count.
    max_nodes: int | None = None
    memory_bytes: int | None = None
    draining: bool = False
    removing: bool = False

    @property
    def embedded(self) -> bool:
        return self.agent_port is None

    @property
    def zones(self) -> tuple[str, ...]:
        return tuple(s.zone for s in self.subnets)

    def zone_of(self, subnet_id: str) -> str | None:
        return next((s.zone for s in self.subnets if s.id == subnet_id), None)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(
            **{
                **data,
                "subnets": tuple(Subnet(**s) for s in data["subnets"]),
                "created_at": datetime.fromisoformat(data["created_at"]),
            }
        )

    def with_drain(self, draining: bool) -> Self:
        return replace(self, draining=draining)


@dataclass(frozen=True)
class HostStatus:
    status: HostState
    unreachable_since: str | None = None  # ISO time of the first failed look since it last answered
    message: str = ""  # why it is unreachable, as the last look found
    nodes: int = 0  # cache nodes placed on it (what placement counts)
    agent_version: str | None = None
    reported_memory_bytes: int | None = None  # what its agent reports of the machine

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(**{**data, "status": HostState(data["status"])})


H = HostState

HOST = Lifecycle(
    "host",
    "Host",
    HostState,
    [
        (None, Event.CREATE, H.JOINING),
        (None, Event.READY, H.ACTIVE),  # the embedded host's record, made when an operator first changes it
        (H.JOINING, Event.READY, H.ACTIVE),  # its agent answered
        (H.ACTIVE, Event.DRAIN, H.DRAINING),
        (H.JOINING, Event.DRAIN, H.DRAINING),
        (H.DRAINING, Event.EMPTY, H.DRAINED),  # no node left on it
        (H.ACTIVE, Event.EMPTY, H.DRAINED),  # asked to drain while out of reach, and back with nothing on it
        (H.JOINING, Event.EMPTY, H.DRAINED),
        (H.DRAINING, Event.UNDRAIN, H.ACTIVE),
        (H.DRAINED, Event.UNDRAIN, H.ACTIVE),
        (H.DRAINED, Event.FILL, H.DRAINING),  # a node found on it again (a stale one come back)
        (H.ACTIVE, Event.UNREACHABLE, H.UNREACHABLE),
        (H.DRAINING, Event.UNREACHABLE, H.UNREACHABLE),
        (H.DRAINED, Event.UNREACHABLE, H.UNREACHABLE),
        (H.UNREACHABLE, Event.LOSE, H.LOST),  # unreachable for longer than host_lost_after
        (H.UNREACHABLE, Event.READY, H.ACTIVE),
        (H.UNREACHABLE, Event.DRAIN, H.DRAINING),  # back, and still asked to drain
        (H.UNREACHABLE, Event.EMPTY, H.DRAINED),
        (H.LOST, Event.READY, H.ACTIVE),  # back: its stale nodes are removed by its next passes
        (H.LOST, Event.DRAIN, H.DRAINING),
        (H.LOST, Event.EMPTY, H.DRAINED),
        (H.ACTIVE, Event.DELETE, H.REMOVING),
        (H.JOINING, Event.DELETE, H.REMOVING),
        (H.DRAINING, Event.DELETE, H.REMOVING),
        (H.DRAINED, Event.DELETE, H.REMOVING),
        (H.UNREACHABLE, Event.DELETE, H.REMOVING),
        (H.LOST, Event.DELETE, H.REMOVING),
    ],
    InvalidHostState,
)


def computed_state(previous: HostState, *, draining: bool, reachable: bool, lost: bool, has_nodes: bool) -> HostState:
    """The status a look at the host yields (pure): what ``control.kinds.host`` records.

    ``removing`` stays until the record goes; a host never reached stays ``joining`` (it has no
    node to lose); a host is ``lost`` only after a look has found it ``unreachable``.
    """
    if previous is H.REMOVING:
        return previous
    if not reachable:
        if previous is H.JOINING:
            return previous
        if previous is H.LOST:
            return previous  # until it answers again
        return H.LOST if lost and previous is H.UNREACHABLE else H.UNREACHABLE
    if draining:
        return H.DRAINING if has_nodes else H.DRAINED
    return H.ACTIVE
