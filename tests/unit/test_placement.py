"""Placement as a table: hosts, what is asked, and the hosts chosen (or the capacity fault)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from cachefleet.model.errors import InsufficientCacheClusterCapacity
from cachefleet.model.placement import Room, Want, place
from cachefleet.store import hosts as stored_hosts
from cachefleet.store.kinds import CLUSTERS
from cachefleet.store.sqlite import Store

A, B, C = "us-east-1a", "us-east-1b", "us-east-1c"
GIB = 1 << 30


def host(
    name: str,
    zone: str,
    *,
    placeable: bool = True,
    nodes: int = 0,
    memory: int = 0,
    max_nodes: int | None = None,
    max_memory: int | None = None,
) -> Room:
    subnets = {f"subnet-{zone[-1]}": zone}
    return Room(name, f"10.0.0.{len(name)}", subnets, placeable, nodes, memory, max_nodes, max_memory)


LOCAL = Room("local", "127.0.0.1", {f"local-{z}": z for z in (A, B, C)}, True)
THREE = [host("h1", A), host("h2", B), host("h3", C)]
FOUR = [*THREE, host("h4", A)]


@dataclass(frozen=True)
class Case:
    name: str
    rooms: list[Room]
    wants: list[Want]
    expected: list[tuple[str, str]] | None  # (host, zone) per want; None: InsufficientCacheClusterCapacity
    subnets: frozenset[str] | None = None
    together: dict[str, int] = field(default_factory=dict)


def members(*zones: str | None, strict: bool = True, memory: int = 0) -> list[Want]:
    return [Want(f"m{i}", z, memory=memory, strict=strict) for i, z in enumerate(zones, 1)]


CASES = [
    Case("embedded host alone takes every AZ", [LOCAL], members(A, B, C), [("local", A), ("local", B), ("local", C)]),
    Case("one member per host, each in its AZ", THREE, members(A, B, C), [("h1", A), ("h2", B), ("h3", C)]),
    Case("two hosts in one AZ share its members", FOUR, members(A, A), [("h1", A), ("h4", A)]),
    Case(
        "a host with a member of the group comes last",
        FOUR,
        members(A),
        [("h4", A)],
        together={"h1": 1},
    ),
    Case(
        "two members on one host only when no other host of the AZ fits",
        THREE,
        members(A, A),
        [("h1", A), ("h1", A)],
    ),
    Case("a strict AZ with no host fails", [host("h1", A), host("h2", B)], members(C), None),
    Case(
        "a replacement prefers its AZ",
        FOUR,
        members(A, strict=False),
        [("h4", A)],
        together={"h1": 1, "h2": 1, "h3": 1},
    ),
    Case(
        "a replacement goes to another AZ when its AZ has no free host",
        [host("h1", A, placeable=False), host("h2", B), host("h3", C)],
        members(A, strict=False),
        [("h3", C)],
        together={"h2": 1},
    ),
    Case(
        "a replacement takes a host of another AZ over its AZ's host that carries a member",
        [host("h1", A), host("h2", B), host("h3", C)],
        members(A, strict=False),
        [("h3", C)],
        together={"h1": 1, "h2": 1},
    ),
    Case(
        "hosts that take no new node are skipped",
        [host("h1", A, placeable=False), host("h4", A)],
        members(A),
        [("h4", A)],
    ),
    Case("node count capacity", [host("h1", A, nodes=2, max_nodes=2), host("h4", A)], members(A), [("h4", A)]),
    Case("no capacity anywhere", [host("h1", A, nodes=2, max_nodes=2)], members(A), None),
    Case(
        "memory capacity counts the node type",
        [host("h1", A, memory=GIB, max_memory=2 * GIB), host("h4", A, max_memory=GIB // 2)],
        members(A, memory=GIB),
        [("h1", A)],
    ),
    Case(
        "memory placed in one call counts for the next",
        [host("h1", A, max_memory=GIB)],
        members(A, A, memory=GIB),
        None,
    ),
    Case("least loaded first", [host("h1", A, nodes=5), host("h4", A, nodes=1)], members(A), [("h4", A)]),
    Case(
        "a subnet group restricts the hosts",
        [LOCAL, *THREE],
        members(A, B, C),
        [("h1", A), ("h2", B), ("h3", C)],
        subnets=frozenset({"subnet-a", "subnet-b", "subnet-c"}),
    ),
    Case("a subnet group without the AZ fails", THREE, members(C), None, subnets=frozenset({"subnet-a"})),
    Case(
        "the embedded host in a subnet group of one AZ",
        [LOCAL],
        members(B),
        [("local", B)],
        subnets=frozenset({f"local-{B}"}),
    ),
    Case(
        "sentinels spread over hosts and AZs and take no capacity",
        [host("h1", A, nodes=1, max_nodes=1), host("h2", B, nodes=1, max_nodes=1), host("h3", C, nodes=1, max_nodes=1)],
        [Want(f"sentinel-{i}", z, strict=False, node=False) for i, z in enumerate((A, B, C), 1)],
        [("h1", A), ("h2", B), ("h3", C)],
    ),
    Case(
        "three sentinels on two hosts: one host carries two",
        [host("h1", A), host("h2", B)],
        [Want(f"sentinel-{i}", z, strict=False, node=False) for i, z in enumerate((A, B, A), 1)],
        [("h1", A), ("h2", B), ("h1", A)],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_placement(case: Case) -> None:
    if case.expected is None:
        with pytest.raises(InsufficientCacheClusterCapacity):
            place(case.wants, case.rooms, subnets=case.subnets, together=case.together)
        return
    chosen = place(case.wants, case.rooms, subnets=case.subnets, together=case.together)
    assert [(c.host, c.zone) for c in chosen] == case.expected


def test_placement_is_deterministic_and_names_the_address() -> None:
    first = place(members(A, B, C), FOUR)
    assert first == place(members(A, B, C), list(reversed(FOUR)))
    assert [c.address for c in first] == ["10.0.0.2"] * 3


def test_the_fault_names_the_zone_and_the_node() -> None:
    with pytest.raises(InsufficientCacheClusterCapacity, match="in us-east-1c to place m1"):
        place(members(C), THREE[:2])


def test_the_load_of_each_host_counts_nodes_where_they_run_and_where_they_move() -> None:
    store = Store(":memory:")
    on_h1, moving = {"placement": {"host": "h1"}}, {"placement": {"host": "h1"}, "moving_to": {"host": "h2"}}
    store.create(CLUSTERS.name, "a", {"node_type": "cache.t4g.micro"}, {"nodes": [on_h1, moving]})
    store.create(CLUSTERS.name, "b", {"node_type": "cache.t4g.small"}, {"nodes": [{"placement": {"host": "h2"}}]})
    store.create(CLUSTERS.name, "c", {"node_type": "cache.t4g.small"}, {"nodes": []})  # nothing placed yet
    memory = {"cache.t4g.micro": 1, "cache.t4g.small": 10}
    assert stored_hosts.load(store, memory.__getitem__) == {"h1": (2, 2), "h2": (2, 11)}
