"""In-memory stand-ins for the control plane's two seams to processes, for unit tests only.

``FakeHost`` implements the ``Host`` protocol (``cachefleet.hosts.base``) with dictionaries: ports,
PIDs and files of nodes that never run. ``FakeProbes`` answers for the engines (``control.observe.
Probes``). ``Fleet`` puts a real in-memory ``Store`` beside them and arranges resources as the API
creates them and processes as a converged reconciler leaves them, so that a test breaks one thing
(kills a node, loses its directory, squats its port, lets Sentinel promote another member) and
looks at what a kind plans. Nothing here is importable from the server: it lives under tests/.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cachefleet.control import kinds as control_kinds
from cachefleet.control.actions import DiscoveryInputs, EndpointInputs, Plan, ResourceKey
from cachefleet.control.kinds.base import PlannedKind, Services, wanted_parameters
from cachefleet.control.observe import EndpointServers, Observer
from cachefleet.control.security import Keys
from cachefleet.engines import acl
from cachefleet.engines.haproxy import ADMIN_SOCKET, ServerState, server_name
from cachefleet.engines.memcached import PLAIN, Access, MemcachedObservation
from cachefleet.engines.redis import RedisObservation
from cachefleet.engines.sentinel import ASK_PERIOD_MS, PING_PERIOD_MS, SentinelView, Timings
from cachefleet.hosts.base import PortRequest, ProcessSpec
from cachefleet.model.credentials import Credentials
from cachefleet.model.errors import InsufficientCacheClusterCapacity
from cachefleet.model.ids import member_cluster_id
from cachefleet.model.nodes import (
    MEMBER_NODE_ID,
    PORT_SLOT,
    READER_SLOT,
    NodeKey,
    cluster_node_keys,
    config_endpoint_key,
    endpoint_key,
    member_key,
    sentinel_keys,
)
from cachefleet.model.specs import CacheClusterSpec, ReplicationGroupSpec
from cachefleet.model.status import (
    PRIMARY,
    REPLICA,
    ClusterState,
    ClusterStatus,
    GroupState,
    GroupStatus,
    NodeState,
    NodeStatus,
)
from cachefleet.store import statuses
from cachefleet.store.kinds import CLUSTERS, GROUPS
from cachefleet.store.sqlite import Store
from cachefleet.tls import certs

ADDRESS = "127.0.0.1"
CREDENTIALS = Credentials("cachefleet-admin", "secret")
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
# The installation's security material, with a CA made in memory (nothing is written).
KEYS = Keys(
    internal=acl.InternalUsers(
        replication=Credentials(acl.REPLICATION_USER, "repl-secret"),
        sentinel=Credentials(acl.SENTINEL_USER, "sentinel-secret"),
        check=Credentials(acl.CHECK_USER, "check-secret"),
    ),
    sentinel_password="sentinels-secret",
    ca_file=Path("/fake-host/ca.pem"),
    authority=certs.new_authority("test CA", NOW, timedelta(days=3650)),
    leaf_validity=timedelta(days=365),
)
ENGINE, VERSION, NODE_TYPE = "redis", "7.0.15", "cache.t3.micro"
AZS = ("us-east-1a", "us-east-1b", "us-east-1c")


@dataclass
class FakeNode:
    ports: dict[str, int] = field(default_factory=dict)
    pid: int | None = None
    files: dict[str, str] = field(default_factory=dict)


class FakeHost:
    """The ``Host`` protocol in memory. Ports come from ``first_port`` up; ``squatted`` ports are held
    by processes that are not nodes."""

    def __init__(self, first_port: int = 30001, last_port: int = 30999) -> None:
        self.root = Path("/fake-host/nodes")  # node_dir() spells paths here; nothing touches them
        self.nodes_by_key: dict[NodeKey, FakeNode] = {}
        self.squatted: set[int] = set()
        self.started: list[NodeKey] = []
        self._range = range(first_port, last_port + 1)
        self._pids = itertools.count(1000)

    # -- the protocol ------------------------------------------------------------------------

    def node_dir(self, key: NodeKey) -> Path:
        return self.root / key.cluster_id / key.node_id

    def port_of(self, key: NodeKey, slot: str = PORT_SLOT) -> int | None:
        node = self.nodes_by_key.get(key)
        return node.ports.get(slot) if node else None

    def allocate_port(
        self, key: NodeKey, taken: Collection[int], slot: str = PORT_SLOT, prefer: int | None = None
    ) -> int:
        (port,) = self.allocate_ports([PortRequest(key, slot, prefer)], taken)
        return port

    def allocate_ports(self, wanted: Sequence[PortRequest], taken: Collection[int] = ()) -> list[int]:
        chosen = []
        for request in wanted:
            node = self.nodes_by_key.setdefault(request.node, FakeNode())
            if request.slot not in node.ports:
                held = self._persisted()
                if request.port is not None and request.port not in held:
                    node.ports[request.slot] = request.port
                else:
                    free = [p for p in self._range if p not in held and p not in taken and p not in self.squatted]
                    if not free:
                        raise InsufficientCacheClusterCapacity(f"no free port for node {request.node}")
                    node.ports[request.slot] = free[0]
            chosen.append(node.ports[request.slot])
        return chosen

    def port_taken(self, key: NodeKey, slot: str = PORT_SLOT) -> bool:
        port = self.port_of(key, slot)
        return port is not None and self.pid(key) is None and port in self.squatted

    def pid(self, key: NodeKey) -> int | None:
        node = self.nodes_by_key.get(key)
        return node.pid if node else None

    def start(self, key: NodeKey, spec: ProcessSpec) -> int:
        node = self.nodes_by_key.setdefault(key, FakeNode())
        if node.pid is None:
            node.pid = next(self._pids)
            node.files.update(spec.files)
            node.files.update(spec.scripts)
            self.started.append(key)
        return node.pid

    def read_file(self, key: NodeKey, name: str) -> str | None:
        node = self.nodes_by_key.get(key)
        return node.files.get(name) if node else None

    def write_file(self, key: NodeKey, name: str, text: str) -> None:
        self.nodes_by_key.setdefault(key, FakeNode()).files[name] = text

    def reload(self, key: NodeKey, spec: ProcessSpec, signum: int) -> None:
        node = self.nodes_by_key.setdefault(key, FakeNode())
        node.files.update(spec.files)

    def stop(self, key: NodeKey, timeout: float = 5.0) -> None:
        node = self.nodes_by_key.get(key)
        if node is not None:
            node.pid = None

    def remove(self, key: NodeKey) -> None:
        self.nodes_by_key.pop(key, None)

    def nodes(self) -> list[NodeKey]:
        return sorted(self.nodes_by_key, key=str)

    # -- test helpers ------------------------------------------------------------------------

    def run(self, key: NodeKey, port: int, slot: str = PORT_SLOT, **files: str) -> None:
        """A node that runs on ``port`` (another call adds a slot)."""
        node = self.nodes_by_key.setdefault(key, FakeNode())
        node.ports[slot] = port
        if node.pid is None:
            node.pid = next(self._pids)
        node.files.update(files)

    def _persisted(self) -> set[int]:
        return {p for n in self.nodes_by_key.values() for p in n.ports.values()}


class FakeProbes:
    """The ``Probes`` protocol from dictionaries: what each port (or admin socket) answers."""

    def __init__(self) -> None:
        self.redis_by_port: dict[int, RedisObservation] = {}
        self.silent: set[int] = set()  # ports whose process runs but does not accept connections yet
        self.memcached_by_port: dict[int, MemcachedObservation] = {}
        self.sentinel_by_port: dict[int, SentinelView] = {}
        self.endpoints: dict[Path, dict[str, ServerState]] = {}
        self.readers: dict[Path, dict[str, ServerState]] = {}  # be_reader, when a test sets it

    async def redis(self, address: str, port: int, credentials: Credentials) -> RedisObservation | None:
        return self.redis_by_port.get(port)

    async def memcached(self, address: str, port: int, access: Access = PLAIN) -> MemcachedObservation | None:
        return self.memcached_by_port.get(port)

    async def sentinel(self, address: str, port: int, group_id: str) -> SentinelView | None:
        return self.sentinel_by_port.get(port)

    async def accepting(self, address: str, port: int) -> bool:
        return port not in self.silent


    def endpoint(self, admin_socket: Path) -> EndpointServers | None:
        servers = self.endpoints.get(admin_socket)
        # No reader backend by default: its health checks are the real HAProxy's.
        if servers is None:
            return None
        return EndpointServers(dict(servers), dict(self.readers.get(admin_socket, {})))


def master(replicas: int = 0, config: dict[str, str] | None = None) -> RedisObservation:
    return RedisObservation(
        role="master",
        master_host=None,
        master_port=None,
        master_link_up=False,
        connected_replicas=replicas,
        loading=False,
        used_memory=0,
        repl_offset=0,
        config=config,
    )


def replica_of(port: int, config: dict[str, str] | None = None, link_up: bool = True) -> RedisObservation:
    return RedisObservation(
        role="slave",
        master_host=ADDRESS,
        master_port=port,
        master_link_up=link_up,
        connected_replicas=0,
        loading=False,
        used_memory=0,
        repl_offset=0,
        config=config,
    )


def memcached_stats() -> MemcachedObservation:
    return MemcachedObservation("1.6.18", 1, 10, 0, 0, 64 << 20, 1, 0, 0, 0)


class Fleet:
    """A store, a fake host and fake probes that agree with each other.

    ``group``/``cluster`` create resources as the API does and, unless told otherwise, their
    processes as a converged reconciler leaves them (every node serving in its role, the endpoint
    routing to the primary, Sentinels watching it) with the statuses recorded: a plan of that world
    has nothing to do. Tests then break one thing and ask a kind what it plans.
    """

    def __init__(self) -> None:
        self.store = Store(":memory:")
        self.host = FakeHost()
        self.probes = FakeProbes()
        self.woken: list[ResourceKey] = []
        self.clock = NOW
        observer = Observer(host=self.host, probes=self.probes, address=ADDRESS, credentials=CREDENTIALS)
        self.services = Services(store=self.store, observer=observer, clock=lambda: self.clock, wake=self.woken.append)
        self.kinds = {k.name: k for k in control_kinds.standard(self.services, None)}

    # -- arranging -----------------------------------------------------------------------------

    def group(
        self,
        group_id: str = "g",
        *,
        nodes: int = 3,
        failover: bool = False,
        state: GroupState = GroupState.AVAILABLE,
        running: bool = True,
        **spec_fields: Any,
    ) -> ReplicationGroupSpec:
        members = tuple(member_cluster_id(group_id, i) for i in range(1, nodes + 1))
        spec = ReplicationGroupSpec(
            id=group_id,
            description="test",
            engine=ENGINE,
            engine_version=VERSION,
            node_type=NODE_TYPE,
            members=members,
            primary_cluster_id=members[0],
            created_at=NOW,
            automatic_failover=failover,
            multi_az=failover,
            **spec_fields,
        )
        with self.store.transaction():
            statuses.create(self.store, GROUPS, group_id, spec)
            for index, member in enumerate(members):
                cluster = CacheClusterSpec(
                    id=member,
                    engine=ENGINE,
                    engine_version=VERSION,
                    node_type=NODE_TYPE,
                    node_azs=(AZS[index % len(AZS)],),
                    created_at=NOW,
                    replication_group_id=group_id,
                )
                statuses.create(self.store, CLUSTERS, member, cluster)
        if running:
            self._run_group(spec, state)
        elif state != GroupState.CREATING:
            self.put_status(GROUPS.name, group_id, GroupStatus(state, primary_cluster_id=members[0]))
        return spec

    def _run_group(self, spec: ReplicationGroupSpec, state: GroupState) -> None:
        ports = {m: self.host.allocate_port(member_key(m), ()) for m in spec.members}
        primary = ports[spec.primary_cluster_id]
        live = self.live_parameters(spec.engine, spec.engine_version, spec.node_type)
        for member, port in ports.items():
            self.host.run(member_key(member), port)
            is_primary = member == spec.primary_cluster_id
            self.probes.redis_by_port[port] = (
                master(len(ports) - 1, live) if is_primary else replica_of(primary, live)
            )
        endpoint = endpoint_key(spec.id)
        self.host.run(endpoint, self.host.allocate_port(endpoint, ()))
        self.host.run(endpoint, self.host.allocate_port(endpoint, (), READER_SLOT), READER_SLOT)
        self.route(spec.id, primary)
        if spec.automatic_failover:
            for key in sentinel_keys(spec.id):
                self.host.run(key, self.host.allocate_port(key, ()))
            self.sentinels_name(spec.id, primary)
        member_state = ClusterState.CREATING if state == GroupState.CREATING else ClusterState.AVAILABLE
        with self.store.transaction():
            for member, port in ports.items():
                role = PRIMARY if member == spec.primary_cluster_id else REPLICA
                node = NodeStatus(MEMBER_NODE_ID, NodeState.AVAILABLE, port=port, role=role, created_at=NOW.isoformat())
                self.put_status(CLUSTERS.name, member, ClusterStatus(member_state, nodes=(node,)))
            self.put_status(
                GROUPS.name,
                spec.id,
                GroupStatus(
                    state,
                    primary_cluster_id=spec.primary_cluster_id,
                    failover_active=spec.automatic_failover,
                    primary_endpoint_port=self.host.port_of(endpoint),
                    reader_endpoint_port=self.host.port_of(endpoint, READER_SLOT),
                ),
            )

    def cluster(
        self,
        cluster_id: str = "c",
        *,
        engine: str = ENGINE,
        nodes: int = 1,
        state: ClusterState = ClusterState.AVAILABLE,
        running: bool = True,
        **spec_fields: Any,
    ) -> CacheClusterSpec:
        version = VERSION if engine != "memcached" else "1.6.18"
        spec = CacheClusterSpec(
            id=cluster_id,
            engine=engine,
            engine_version=version,
            node_type=NODE_TYPE,
            node_azs=(AZS[0],) * nodes,
            created_at=NOW,
            **spec_fields,
        )
        statuses.create(self.store, CLUSTERS, cluster_id, spec)
        if running:
            live = self.live_parameters(engine, version, NODE_TYPE)
            recorded = []
            for key in cluster_node_keys(cluster_id, nodes):
                port = self.host.allocate_port(key, ())
                self.host.run(key, port)
                if engine == "memcached":
                    self.probes.memcached_by_port[port] = memcached_stats()
                else:
                    self.probes.redis_by_port[port] = master(0, live)
                role = None if engine == "memcached" else PRIMARY
                recorded.append(NodeStatus(key.node_id, NodeState.AVAILABLE, port, role, NOW.isoformat()))
            status = ClusterStatus(state, nodes=tuple(recorded))
            if engine == "memcached":
                # Its configuration endpoint lists every node, at version 1.
                endpoint = config_endpoint_key(cluster_id)
                inputs = DiscoveryInputs(1, tuple((n.node_id, n.port) for n in recorded if n.port is not None))
                self.host.run(endpoint, self.host.allocate_port(endpoint, ()))
                self.host.nodes_by_key[endpoint].files["inputs.json"] = inputs.to_json()
                status = replace(
                    status,
                    discovery=tuple(n.node_id for n in recorded),
                    config_version=1,
                    configuration_port=self.host.port_of(endpoint),
                )
            self.put_status(CLUSTERS.name, cluster_id, status)
        elif state != ClusterState.CREATING:
            self.put_status(CLUSTERS.name, cluster_id, ClusterStatus(state))
        return spec

    def live_parameters(self, engine: str, version: str, node_type: str) -> dict[str, str]:
        wanted, _ = wanted_parameters(self.store, engine, version, node_type, None)
        return dict(wanted.live)

    def put_status(self, kind: str, resource_id: str, status: Any) -> None:
        """Arrange a status directly (a test's setup, not a transition the writer would check)."""
        self.store.write_status(kind, resource_id, status.to_json())

    def route(self, group_id: str, primary_port: int) -> None:
        """The group's endpoint, rendered for the current members, sends writes to ``primary_port`` only."""
        group = GROUPS.get(self.store, group_id)
        ports = sorted(p for m in group.spec.members if (p := self.host.port_of(member_key(m))) is not None)
        key = endpoint_key(group_id)
        node = self.host.nodes_by_key[key]
        inputs = EndpointInputs(tuple((ADDRESS, p) for p in ports), (ADDRESS, primary_port))
        node.files["inputs.json"] = inputs.to_json()
        self.probes.endpoints[self.host.node_dir(key) / ADMIN_SOCKET] = {
            server_name(p): ServerState(server_name(p), ADDRESS, p, up=True, maint=p != primary_port) for p in ports
        }

    def sentinels_name(self, group_id: str, primary_port: int) -> None:
        group = GROUPS.get(self.store, group_id)
        for key in sentinel_keys(group_id):
            port = self.host.port_of(key)
            assert port is not None
            replicas = len(group.spec.members) - 1
            self.probes.sentinel_by_port[port] = SentinelView(
                ADDRESS,
                primary_port,
                frozenset({"master"}),
                replicas,
                2,
                2,
                ready_replicas=replicas,
                connected_peers=2,
                timings=Timings(PING_PERIOD_MS, ASK_PERIOD_MS),
            )

    # -- breaking ------------------------------------------------------------------------------

    def kill(self, key: NodeKey) -> None:
        """The node's process died (its directory and port stay)."""
        self.host.nodes_by_key[key].pid = None
        port = self.host.port_of(key)
        if port is not None:
            self.probes.redis_by_port.pop(port, None)
            self.probes.memcached_by_port.pop(port, None)
            self.probes.sentinel_by_port.pop(port, None)

    def lose(self, key: NodeKey) -> None:
        """The node's process died and its directory is gone (the host knows nothing of it)."""
        self.kill(key)
        del self.host.nodes_by_key[key]

    def squat(self, key: NodeKey) -> int:
        """The dead node's port is held by a process that is not a node."""
        self.kill(key)
        port = self.host.port_of(key)
        assert port is not None
        self.host.squatted.add(port)
        return port

    def promote(self, group_id: str, member: str) -> None:
        """Sentinel made ``member`` the primary (the others its replicas)."""
        group = GROUPS.get(self.store, group_id)
        new = self.host.port_of(member_key(member))
        assert new is not None
        live = self.live_parameters(ENGINE, VERSION, NODE_TYPE)
        for other in group.spec.members:
            port = self.host.port_of(member_key(other))
            if port is not None and self.host.pid(member_key(other)) is not None:
                self.probes.redis_by_port[port] = master(2, live) if other == member else replica_of(new, live)
        self.sentinels_name(group_id, new)
        self.route(group_id, new)

    # -- looking -------------------------------------------------------------------------------

    async def plan(self, kind: str, resource_id: str) -> Plan | None:
        """What ``kind``'s registration plans for the resource now (load, observe, plan); None when
        it has nothing to do."""
        registered = self.kinds[kind]
        assert isinstance(registered, PlannedKind)
        loaded = registered.load(resource_id)
        if loaded is None:
            return None
        if isinstance(loaded, Plan):
            return loaded
        return registered.plan(loaded, await registered.observe(loaded))

    def status(self, kind: str, resource_id: str) -> Any:
        found = {GROUPS.name: GROUPS, CLUSTERS.name: CLUSTERS}[kind].find(self.store, resource_id)
        assert found is not None
        return found.status

    def with_status(self, kind: str, resource_id: str, **fields: Any) -> None:
        self.put_status(kind, resource_id, replace(self.status(kind, resource_id), **fields))
