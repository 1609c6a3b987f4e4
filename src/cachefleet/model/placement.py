"""Placement: which host runs each new node, decided purely from the hosts and what they carry.

The rules, as ElastiCache places a group's nodes (docs/architecture.md "Hosts and placement"):

1. Only hosts that take new nodes (``active``), in a subnet the cache subnet group allows, with room
   left: fewer nodes than ``max_nodes`` and the node type's memory within ``memory_bytes``.
2. A node asked for in an AZ lands in that AZ: a creation that names an AZ (``strict``) fails if no
   host there fits; a replacement (its host lost or drained) prefers the AZ and goes elsewhere only
   when no host of the AZ fits (the caller tells the user with an event).
3. Never two members of one group on one host when another host allows it: among the hosts that
   fit, those carrying fewer of the group come first, then (for a replacement) the wanted AZ, then
   the least loaded host, then the host id, so the same inputs always give the same answer.
4. Nothing fits: ``InsufficientCacheClusterCapacity``, naming the AZ.

Nodes placed in one call count for the next ones (a new group's three members spread out).
Sentinels are placed by the same function with ``Want(node=False)``: they take no capacity, and
"the group" there means the group's Sentinels, so they spread one per host and AZ when hosts allow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from cachefleet.model.errors import InsufficientCacheClusterCapacity


@dataclass(frozen=True)
class Room:
    """A host as placement sees it: its zones by subnet, whether it takes nodes, and its load."""

    host: str
    address: str
    subnets: Mapping[str, str]  # subnet id -> zone
    placeable: bool
    nodes: int = 0  # cache nodes it carries now
    memory: int = 0  # bytes of node-type memory those nodes may use
    max_nodes: int | None = None
    max_memory: int | None = None


@dataclass(frozen=True)
class Want:
    """One process to place: ``name`` for messages; ``zone`` the AZ asked for (None: any)."""

    name: str
    zone: str | None
    memory: int = 0
    strict: bool = True  # the AZ is a must (a creation) rather than a preference (a replacement)
    node: bool = True  # a cache node (takes capacity) rather than a Sentinel


@dataclass(frozen=True)
class Choice:
    host: str
    address: str
    zone: str  # the AZ the process serves: the wanted one when the host has it


def place(
    wants: Sequence[Want],
    rooms: Iterable[Room],
    *,
    subnets: frozenset[str] | None = None,
    together: Mapping[str, int] | None = None,
) -> list[Choice]:
    """A host for each of ``wants``, in order, or ``InsufficientCacheClusterCapacity``.

    ``subnets``: the cache subnet group's subnets (None: every subnet, the ``default`` group).
    ``together``: how many processes of the same group (members, or Sentinels) each host carries
    already, besides those placed here.
    """
    choices = place_each(wants, rooms, subnets=subnets, together=together)
    for want, choice in zip(wants, choices, strict=True):
        if choice is None:
            raise InsufficientCacheClusterCapacity(no_room(want))
    return [c for c in choices if c is not None]


def no_room(want: Want) -> str:
    where = f" in {want.zone}" if want.zone and want.strict else ""
    return (
        f"There is not enough capacity{where} to place {want.name}: no host of the allowed subnets that takes "
        "new nodes has room for it."
    )


def place_each(
    wants: Sequence[Want],
    rooms: Iterable[Room],
    *,
    subnets: frozenset[str] | None = None,
    together: Mapping[str, int] | None = None,
) -> list[Choice | None]:
    """``place``, with None for each want nothing fits (the others are placed all the same)."""
    state = {r.host: r for r in rooms}
    shared = dict(together or {})
    choices: list[Choice | None] = []
    for want in wants:
        best = _best(want, state.values(), subnets, shared)
        if best is None:
            choices.append(None)
            continue
        room, zone = best
        choices.append(Choice(room.host, room.address, zone))
        shared[room.host] = shared.get(room.host, 0) + 1
        if want.node:
            state[room.host] = Room(
                room.host,
                room.address,
                room.subnets,
                room.placeable,
                room.nodes + 1,
                room.memory + want.memory,
                room.max_nodes,
                room.max_memory,
            )
    return choices


def _best(
    want: Want, rooms: Iterable[Room], subnets: frozenset[str] | None, shared: Mapping[str, int]
) -> tuple[Room, str] | None:
    ranked: list[tuple[tuple[int, int, int, str], Room, str]] = []
    for room in rooms:
        zones = [z for s, z in room.subnets.items() if subnets is None or s in subnets]
        if not room.placeable or not zones or not _fits(room, want):
            continue
        in_zone = want.zone in zones
        if want.strict and want.zone is not None and not in_zone:
            continue
        zone = want.zone if in_zone and want.zone is not None else sorted(zones)[0]
        load = room.nodes if want.node else shared.get(room.host, 0)
        ranked.append(((shared.get(room.host, 0), 0 if in_zone else 1, load, room.host), room, zone))
    if not ranked:
        return None
    _, room, zone = min(ranked, key=lambda item: item[0])
    return room, zone


def _fits(room: Room, want: Want) -> bool:
    if not want.node:
        return True
    if room.max_nodes is not None and room.nodes + 1 > room.max_nodes:
        return False
    return room.max_memory is None or room.memory + want.memory <= room.max_memory
