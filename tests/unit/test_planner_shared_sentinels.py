"""What a group plans on the embedded host's shared Sentinels (``planners.group``, docs/decisions.md
"Shared Sentinels"): it joins them once its replicas are synced, is introduced to their peers, starts
one that is not running, leaves them when automatic failover goes off, when it moves to TLS and when
it is deleted. The fake fleet of tests/support/fakes.py, no process."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from tests.support.fakes import ADDRESS, Fleet

from cachefleet.control.actions import (
    AllocatePort,
    AnnounceSentinels,
    JoinSentinel,
    LeaveSentinel,
    Plan,
    RemoveNode,
    ResetSentinel,
    StartSharedSentinel,
    TuneSentinel,
)
from cachefleet.engines.sentinel import ASK_PERIOD_MS, PING_PERIOD_MS, SentinelView, Timings, my_id
from cachefleet.model.nodes import (
    Placement,
    first_with_room,
    member_key,
    sentinel_keys,
    shared_sentinel_keys,
    shared_set,
)
from cachefleet.model.security import Security
from cachefleet.model.status import GroupState
from cachefleet.model.transit import Transit, TransitMode
from cachefleet.store.kinds import GROUPS

G = "replication-group"
LOCAL = Placement("local", ADDRESS, "")
KEYS = shared_sentinel_keys()


def _primary(fleet: Fleet) -> tuple[str, int]:
    port = fleet.host.port_now(member_key("g-001"))
    assert port is not None
    return (ADDRESS, port)


def _view(primary: tuple[str, int], *, peers: int = 2, timings: Timings | None = None) -> SentinelView:
    return SentinelView(
        primary[0],
        primary[1],
        frozenset({"master"}),
        2,
        peers,
        2,
        ready_replicas=2,
        connected_peers=peers,
        timings=timings or Timings(PING_PERIOD_MS, ASK_PERIOD_MS),
    )


def _shared(fleet: Fleet, *, monitoring: bool = True, peers: int = 2) -> list[int]:
    """Group ``g`` (three synced members) with automatic failover on and the shared Sentinels running;
    watching it (``monitoring``) with ``peers`` listed, or not yet."""
    spec = fleet.group(failover=False)
    GROUPS.put_spec(fleet.store, "g", replace(spec, automatic_failover=True, multi_az=True))
    fleet.with_status(G, "g", sentinels={k.node_id: LOCAL for k in KEYS}, failover_active=monitoring)
    ports = []
    for key in KEYS:
        port = fleet.host.allocate_port(key)
        fleet.host.run(key, port)
        ports.append(port)
        if monitoring:
            fleet.probes.sentinel_by_port[port] = _view(_primary(fleet), peers=peers)
    return ports


def _plan(fleet: Fleet) -> Plan:
    plan = asyncio.run(fleet.plan(G, "g"))
    assert plan is not None
    return plan


def test_a_group_joins_the_shared_sentinels_once_its_replicas_are_synced() -> None:
    fleet = Fleet(shared_sentinels=True)
    _shared(fleet, monitoring=False)
    plan = _plan(fleet)
    assert plan.actions == tuple(JoinSentinel(k, LOCAL, "g", _primary(fleet)) for k in KEYS)
    assert plan.statuses[(G, "g")].status == GroupState.AVAILABLE  # type: ignore[union-attr]
    assert not plan.converged


def test_a_joined_group_introduces_the_sentinels_to_each_other() -> None:
    fleet = Fleet(shared_sentinels=True)
    ports = _shared(fleet, peers=0)
    plan = _plan(fleet)
    hellos = tuple((ADDRESS, p, my_id(str(k))) for k, p in zip(KEYS, ports, strict=True))
    assert plan.actions == (AnnounceSentinels("g", _primary(fleet), hellos),)
    assert not plan.converged


def test_a_group_watched_by_the_shared_sentinels_is_converged() -> None:
    fleet = Fleet(shared_sentinels=True)
    _shared(fleet)
    plan = _plan(fleet)
    assert plan.actions == ()
    assert plan.converged
    assert plan.statuses[(G, "g")].sentinels == {k.node_id: LOCAL for k in KEYS}  # type: ignore[union-attr]


def test_a_killed_shared_sentinel_is_started_again_and_its_periods_set() -> None:
    fleet = Fleet(shared_sentinels=True)
    ports = _shared(fleet)
    fleet.kill(KEYS[1])
    fleet.probes.sentinel_by_port[ports[2]] = _view(_primary(fleet), timings=Timings(PING_PERIOD_MS, 1000))
    plan = _plan(fleet)
    assert plan.actions == (StartSharedSentinel(KEYS[1], LOCAL), TuneSentinel(KEYS[2], LOCAL, Timings(1000, 100)))


def test_a_shared_sentinel_that_lost_its_monitors_is_joined_again() -> None:
    fleet = Fleet(shared_sentinels=True)
    ports = _shared(fleet)
    del fleet.probes.sentinel_by_port[ports[0]]  # it answers, but knows no such master
    plan = _plan(fleet)
    assert plan.actions == (JoinSentinel(KEYS[0], LOCAL, "g", _primary(fleet)),)


def test_the_first_group_gives_the_shared_sentinels_their_ports() -> None:
    fleet = Fleet(shared_sentinels=True)
    spec = fleet.group(failover=False)
    GROUPS.put_spec(fleet.store, "g", replace(spec, automatic_failover=True, multi_az=True))
    fleet.with_status(G, "g", sentinels={k.node_id: LOCAL for k in KEYS})
    assert _plan(fleet).actions == tuple(AllocatePort(k, LOCAL) for k in KEYS)


def test_automatic_failover_off_leaves_the_shared_sentinels() -> None:
    fleet = Fleet(shared_sentinels=True)
    _shared(fleet)
    GROUPS.put_spec(fleet.store, "g", replace(GROUPS.get(fleet.store, "g").spec, automatic_failover=False))
    plan = _plan(fleet)
    assert plan.actions == tuple(LeaveSentinel(k, LOCAL, "g") for k in KEYS)
    assert plan.statuses[(G, "g")].sentinels == {}  # type: ignore[union-attr]


def test_a_group_moving_to_tls_leaves_the_plain_text_shared_sentinels() -> None:
    fleet = Fleet(shared_sentinels=True)
    _shared(fleet)
    spec = GROUPS.get(fleet.store, "g").spec
    tls = Security(transit=Transit(enabled=True, mode=TransitMode.REQUIRED))
    GROUPS.put_spec(fleet.store, "g", replace(spec, security=tls))
    plan = _plan(fleet)
    assert [a for a in plan.actions if isinstance(a, LeaveSentinel)] == [LeaveSentinel(k, LOCAL, "g") for k in KEYS]
    assert plan.statuses[(G, "g")].sentinels == {}  # type: ignore[union-attr]


def test_a_deleted_group_leaves_the_shared_sentinels_running() -> None:
    fleet = Fleet(shared_sentinels=True)
    _shared(fleet)
    GROUPS.put_spec(fleet.store, "g", replace(GROUPS.get(fleet.store, "g").spec, deleting=True))
    plan = _plan(fleet)
    assert plan.actions[:3] == tuple(LeaveSentinel(k, LOCAL, "g") for k in KEYS)
    assert not any(getattr(a, "node", None) in KEYS for a in plan.actions[3:])


def test_with_an_agent_host_a_new_group_runs_sentinels_of_its_own() -> None:
    fleet = Fleet(shared_sentinels=True)
    fleet.add_host("h1", "us-east-1a")
    spec = fleet.group(failover=False)
    GROUPS.put_spec(fleet.store, "g", replace(spec, automatic_failover=True, multi_az=True))
    placed = _plan(fleet).statuses[(G, "g")].sentinels  # type: ignore[union-attr]
    assert sorted(placed) == ["sentinel-1", "sentinel-2", "sentinel-3"]


def test_a_group_turning_automatic_failover_on_records_the_shared_sentinels_first() -> None:
    fleet = Fleet(shared_sentinels=True)
    spec = fleet.group(failover=False)
    GROUPS.put_spec(fleet.store, "g", replace(spec, automatic_failover=True, multi_az=True))
    plan = _plan(fleet)
    assert plan.actions == ()
    assert plan.statuses[(G, "g")].sentinels == {k.node_id: LOCAL for k in KEYS}  # type: ignore[union-attr]


def test_a_group_with_sentinels_of_its_own_moves_to_the_shared_ones_without_a_gap() -> None:
    fleet = Fleet(shared_sentinels=True)
    fleet.group(failover=True)  # an earlier version's: three Sentinels of its own, all ready
    own = {k.node_id: s for k, s in [(k, fleet.status(G, "g").sentinels[k.node_id]) for k in sentinel_keys("g")]}
    plan = _plan(fleet)
    # The shared ones are recorded beside its own, which keep watching (nothing is stopped yet).
    assert plan.actions == ()
    assert plan.statuses[(G, "g")].sentinels == {**own, **{k.node_id: LOCAL for k in KEYS}}  # type: ignore[union-attr]
    fleet.with_status(G, "g", sentinels=plan.statuses[(G, "g")].sentinels)  # type: ignore[union-attr]
    ports = []
    for key in KEYS:
        ports.append(fleet.host.allocate_port(key))
        fleet.host.run(key, ports[-1])
    assert _plan(fleet).actions == tuple(JoinSentinel(k, LOCAL, "g", _primary(fleet)) for k in KEYS)
    # Joined but not yet linked to their peers: its own stay.
    for port in ports:
        fleet.probes.sentinel_by_port[port] = _view(_primary(fleet), peers=0)
    assert not any(isinstance(a, RemoveNode) for a in _plan(fleet).actions)
    # Ready (they list its own Sentinels too, through their hellos): its own go.
    for port in ports:
        fleet.probes.sentinel_by_port[port] = replace(_view(_primary(fleet)), num_other_sentinels=5)
    plan = _plan(fleet)
    assert plan.actions == tuple(RemoveNode(k, own[k.node_id]) for k in sentinel_keys("g"))
    assert plan.statuses[(G, "g")].sentinels == {k.node_id: LOCAL for k in KEYS}  # type: ignore[union-attr]
    # Then the peers that are gone are forgotten, one Sentinel at a time.
    fleet.with_status(G, "g", sentinels=plan.statuses[(G, "g")].sentinels)  # type: ignore[union-attr]
    assert _plan(fleet).actions == (ResetSentinel(KEYS[0], LOCAL, "g", _primary(fleet)),)


def test_a_removed_replica_is_forgotten_by_a_reset() -> None:
    fleet = Fleet(shared_sentinels=True)
    ports = _shared(fleet)
    fleet.probes.sentinel_by_port[ports[1]] = replace(_view(_primary(fleet)), num_replicas=3)
    assert _plan(fleet).actions == (ResetSentinel(KEYS[1], LOCAL, "g", _primary(fleet)),)


def _joining(fleet: Fleet, group_id: str) -> dict[str, Placement]:
    """Where group ``group_id``, turning automatic failover on, records its Sentinels."""
    spec = GROUPS.get(fleet.store, group_id).spec
    GROUPS.put_spec(fleet.store, group_id, replace(spec, automatic_failover=True, multi_az=True))
    plan = asyncio.run(fleet.plan(G, group_id))
    assert plan is not None
    return plan.statuses[(G, group_id)].sentinels  # type: ignore[union-attr,no-any-return]


def test_a_group_joins_the_first_shared_set_with_room() -> None:
    fleet = Fleet(shared_sentinels=True, shared_set_size=2)
    for group_id in ("a", "b", "c"):
        fleet.group(group_id)
    second = shared_sentinel_keys(2)
    fleet.with_status(G, "a", sentinels={k.node_id: LOCAL for k in KEYS})
    fleet.with_status(G, "b", sentinels={k.node_id: LOCAL for k in KEYS})
    assert _joining(fleet, "c") == {k.node_id: LOCAL for k in second}
    assert [k.node_id for k in second] == ["shared-4", "shared-5", "shared-6"]
    # A deletion makes room in the first set again: the next group fills it before the second.
    fleet.with_status(G, "b", sentinels={})
    assert _joining(fleet, "c") == {k.node_id: LOCAL for k in KEYS}


def test_a_group_on_the_second_shared_set_is_joined_and_converged_there() -> None:
    fleet = Fleet(shared_sentinels=True, shared_set_size=1)
    fleet.group("a")
    fleet.with_status(G, "a", sentinels={k.node_id: LOCAL for k in KEYS})
    spec = fleet.group("g")
    GROUPS.put_spec(fleet.store, "g", replace(spec, automatic_failover=True, multi_az=True))
    second = shared_sentinel_keys(2)
    fleet.with_status(G, "g", sentinels={k.node_id: LOCAL for k in second})
    for key in second:
        fleet.host.run(key, fleet.host.allocate_port(key))
    assert _plan(fleet).actions == tuple(JoinSentinel(k, LOCAL, "g", _primary(fleet)) for k in second)
    for key in second:
        port = fleet.host.port_now(key)
        assert port is not None
        fleet.probes.sentinel_by_port[port] = _view(_primary(fleet))
    plan = _plan(fleet)
    assert plan.actions == ()
    # Watched and ready, it stays on its set (a group of Sentinels of its own would move now).
    assert set(plan.statuses.get((G, "g"), fleet.status(G, "g")).sentinels) == {k.node_id for k in second}  # type: ignore[union-attr]


def test_shared_sets_are_numbered_by_their_sentinels_and_fill_in_order() -> None:
    assert [shared_set(f"shared-{i}") for i in range(1, 8)] == [1, 1, 1, 2, 2, 2, 3]
    assert first_with_room({}, 50) == 1
    assert first_with_room({1: 49}, 50) == 1
    assert first_with_room({1: 50}, 50) == 2
    assert first_with_room({1: 50, 2: 50, 4: 3}, 50) == 3  # a set emptied by deletions comes first
    assert first_with_room({1: 2, 2: 50}, 1) == 3
