"""In-memory stand-ins for the control plane's two seams to processes, for unit tests only.

``FakeHost`` implements the ``Host`` protocol (``cachefleet.hosts.base``) with dictionaries: ports,
PIDs and files of nodes that never run; ``FakeHosts`` gives the fake host of each host id.
``FakeProbes`` answers for the engines (``control.observe.Probes``). ``Fleet`` puts a real in-memory
``Store`` beside them and arranges resources as the API creates them and processes as a converged
reconciler leaves them, so that a test breaks one thing
(kills a node, loses its directory, squats its port, lets Sentinel promote another member) and
looks at what a kind plans. Nothing here is importable from the server: it lives under tests/.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cachefleet.control import kinds as control_kinds
from cachefleet.control.actions import DiscoveryInputs, EndpointInputs, Plan, ResourceKey
from cachefleet.control.hosts import Drivers
from cachefleet.control.kinds.base import PlannedKind, Services, wanted_parameters
from cachefleet.control.observe import EndpointServers, Observer
from cachefleet.control.proxy import ENDPOINT_FILE, EndpointProxy, entry_json
from cachefleet.control.security import Keys
from cachefleet.engines import acl
from cachefleet.engines.haproxy import WORKER_PID, ServerState, server_name
from cachefleet.engines.memcached import PLAIN, Access, MemcachedObservation
from cachefleet.engines.redis import RedisObservation
from cachefleet.engines.sentinel import ASK_PERIOD_MS, PING_PERIOD_MS, SentinelView, Timings
from cachefleet.hosts.base import FileDigest, HostInfo, PortRequest, ProcessSpec
from cachefleet.model.credentials import Credentials
from cachefleet.model.errors import InsufficientCacheClusterCapacity, Retry
from cachefleet.model.hosts import LOCAL_HOST, HostSpec, HostState, HostStatus, Subnet
from cachefleet.model.ids import member_cluster_id
from cachefleet.model.nodes import (
    MEMBER_NODE_ID,
    PORT_SLOT,
    PROXY_KEY,
    READER_SLOT,
    NodeKey,
    Placement,
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
from cachefleet.store.hosts import local_spec
from cachefleet.store.kinds import CLUSTERS, GROUPS, HOSTS
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
LOST_AFTER = 30.0


@dataclass
class FakeNode:
    ports: dict[str, int] = field(default_factory=dict)
    pid: int | None = None
    files: dict[str, str] = field(default_factory=dict)


class FakeHost:
    """The ``Host`` protocol in memory. Ports come from ``first_port`` up; ``squatted`` ports are held
    by processes that are not nodes; ``down`` makes every call raise ``Retry`` (its agent is gone).

    The ``*_now`` methods are the tests' own synchronous look at (and arrangement of) the same state.
    """

    def __init__(
        self, first_port: int = 30001, last_port: int = 30999, *, host_id: str = LOCAL_HOST, address: str = ADDRESS
    ) -> None:
        self.root = Path(f"/fake-hosts/{host_id}/nodes")  # node_dir() spells paths here; nothing touches them
        self.nodes_by_key: dict[NodeKey, FakeNode] = {}
        self.squatted: set[int] = set()
        self.started: list[NodeKey] = []
        self.removed: list[NodeKey] = []
        self.specs: dict[NodeKey, ProcessSpec] = {}  # the last spec each node was started with
        self.signals: list[tuple[NodeKey, int]] = []  # what ``reload`` sent each node
        self.blobs: dict[tuple[NodeKey, str], bytes] = {}  # binary node files (RDB seeds)
        self.down = False
        self.closed = False
        self._id = host_id
        self._address = address
        self._range = range(first_port, last_port + 1)
        self._pids = itertools.count(1000)

    # -- the protocol ------------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._id

    @property
    def address(self) -> str:
        return self._address

    async def node_dir(self, key: NodeKey) -> Path:
        return self.dir_now(key)

    def dir_now(self, key: NodeKey) -> Path:
        return self.root / key.cluster_id / key.node_id

    def local_path(self, key: NodeKey, name: str) -> Path | None:
        return None

    async def info(self) -> HostInfo:
        self._reach()
        return HostInfo(agent_version="fake", memory_bytes=8 << 30)

    async def port_of(self, key: NodeKey, slot: str = PORT_SLOT) -> int | None:
        self._reach()
        return self.port_now(key, slot)

    async def allocate_ports(self, wanted: Sequence[PortRequest], taken: Collection[int] = ()) -> list[int]:
        self._reach()
        return self.allocate_now(wanted, taken)

    async def port_taken(self, key: NodeKey, slot: str = PORT_SLOT) -> bool:
        self._reach()
        port = self.port_now(key, slot)
        return port is not None and self.pid_now(key) is None and port in self.squatted

    async def pid(self, key: NodeKey) -> int | None:
        self._reach()
        return self.pid_now(key)

    async def start(self, key: NodeKey, spec: ProcessSpec) -> int:
        self._reach()
        node = self.nodes_by_key.setdefault(key, FakeNode())
        self.specs[key] = spec
        if node.pid is None:
            node.pid = next(self._pids)
            node.files.update(spec.files)
            node.files.update(spec.scripts)
            self.started.append(key)
        return node.pid

    async def read_file(self, key: NodeKey, name: str) -> str | None:
        self._reach()
        return self.file_now(key, name)

    async def write_new(self, key: NodeKey, name: str, data: bytes, unless: str | None = None) -> bool:
        self._reach()
        if (key, name) in self.blobs or (unless is not None and (key, unless) in self.blobs):
            return False
        self.nodes_by_key.setdefault(key, FakeNode())
        self.blobs[(key, name)] = data
        return True

    async def fetch_file(self, key: NodeKey, name: str, dest: Path) -> FileDigest:
        self._reach()
        data = self.blobs.get((key, name))
        if data is None:
            raise FileNotFoundError(name)
        await asyncio.to_thread(dest.write_bytes, data)
        return FileDigest(len(data), hashlib.sha256(data).hexdigest())

    async def put_file(self, key: NodeKey, name: str, source: Path) -> FileDigest:
        self._reach()
        data = await asyncio.to_thread(source.read_bytes)
        self.nodes_by_key.setdefault(key, FakeNode())
        self.blobs[(key, name)] = data
        return FileDigest(len(data), hashlib.sha256(data).hexdigest())

    async def write_file(self, key: NodeKey, name: str, text: str) -> None:
        self._reach()
        self.nodes_by_key.setdefault(key, FakeNode()).files[name] = text

    async def reload(self, key: NodeKey, spec: ProcessSpec, signum: int) -> None:
        self._reach()
        node = self.nodes_by_key.setdefault(key, FakeNode())
        node.files.update(spec.files)
        node.files.update(spec.scripts)
        self.signals.append((key, signum))

    async def stop(self, key: NodeKey, grace: float = 5.0) -> None:
        self._reach()
        node = self.nodes_by_key.get(key)
        if node is not None:
            node.pid = None

    async def remove(self, key: NodeKey) -> None:
        self._reach()
        self.nodes_by_key.pop(key, None)
        self.removed.append(key)

    async def nodes(self) -> list[NodeKey]:
        self._reach()
        return sorted(self.nodes_by_key, key=str)

    def close(self) -> None:
        self.closed = True

    # -- the tests' own look -----------------------------------------------------------------

    def port_now(self, key: NodeKey, slot: str = PORT_SLOT) -> int | None:
        node = self.nodes_by_key.get(key)
        return node.ports.get(slot) if node else None

    def pid_now(self, key: NodeKey) -> int | None:
        node = self.nodes_by_key.get(key)
        return node.pid if node else None

    def file_now(self, key: NodeKey, name: str) -> str | None:
        node = self.nodes_by_key.get(key)
        return node.files.get(name) if node else None

    def allocate_now(self, wanted: Sequence[PortRequest], taken: Collection[int] = ()) -> list[int]:
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

    def allocate_port(self, key: NodeKey, taken: Collection[int] = (), slot: str = PORT_SLOT) -> int:
        (port,) = self.allocate_now([PortRequest(key, slot)], taken)
        return port

    def run(self, key: NodeKey, port: int, slot: str = PORT_SLOT, **files: str) -> None:
        """A node that runs on ``port`` (another call adds a slot)."""
        node = self.nodes_by_key.setdefault(key, FakeNode())
        node.ports[slot] = port
        if node.pid is None:
            node.pid = next(self._pids)
        node.files.update(files)

    def start_now(self, key: NodeKey) -> None:
        """A process without ports runs for the node (the endpoint proxy)."""
        self.nodes_by_key.setdefault(key, FakeNode()).pid = next(self._pids)

    def _persisted(self) -> set[int]:
        return {p for n in self.nodes_by_key.values() for p in n.ports.values()}

    def _reach(self) -> None:
        if self.down:
            raise Retry(f"host {self._id} does not answer")


class FakeHosts:
    """``Hosts``: the fake host of each id."""

    def __init__(self, *hosts: FakeHost) -> None:
        self.by_id = {h.id: h for h in hosts}

    def get(self, host_id: str) -> FakeHost:
        host = self.by_id.get(host_id)
        if host is None:
            raise Retry(f"host {host_id} is not registered")
        return host


class FakeProxyCli:
    """Answers the endpoint proxies' admin sockets and master CLIs (``EndpointProxy.admin``,
    ``.master``): each ``show info`` finds a new worker of that socket's proxy, as after a reload,
    which its ``show proc`` then lists; the proxies have no servers to report."""

    def __init__(self) -> None:
        self.worker = 0  # the last worker any proxy started
        self.current: dict[Path, int] = {}  # each proxy's (its directory's) current worker
        self.commands: list[str] = []

    def __call__(self, socket_path: Path, command: str) -> str:
        self.commands.append(command)
        if command == WORKER_PID:
            self.worker += 1
            self.current[socket_path.parent] = self.worker
            return f"Pid: {self.worker}\n"
        return "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_port\n"

    def master(self, socket_path: Path, commands: Sequence[str]) -> str:
        self.commands += commands
        if list(commands) == ["show proc"]:
            return f"# workers\n{self.current.get(socket_path.parent, 0)} worker 0\n# old workers\n"
        return ""


def fake_proxy(hosts: FakeHosts, cli: FakeProxyCli | None = None, *, size: int = 25) -> EndpointProxy:
    """The endpoint proxies of ``hosts`` for executors under test, ``size`` groups each, their admin
    sockets answered in memory (by ``cli``, a new ``FakeProxyCli`` unless given)."""
    cli = cli or FakeProxyCli()
    return EndpointProxy(
        hosts, "/usr/sbin/haproxy", KEYS.internal.check, KEYS.ca_file, size=size, admin=cli, master=cli.master
    )


class FakeProbes:
    """The ``Probes`` protocol from dictionaries: what each port (or admin socket) answers."""

    def __init__(self) -> None:
        self.redis_by_port: dict[int, RedisObservation] = {}
        self.silent: set[int] = set()  # ports whose process runs but does not accept connections yet
        self.memcached_by_port: dict[int, MemcachedObservation] = {}
        self.sentinel_by_port: dict[int, SentinelView] = {}
        self.endpoints: dict[str, dict[str, ServerState]] = {}  # each group's be_primary, by group id
        self.readers: dict[str, dict[str, ServerState]] = {}  # be_reader, when a test sets it

    async def redis(self, address: str, port: int, credentials: Credentials) -> RedisObservation | None:
        return self.redis_by_port.get(port)

    async def memcached(self, address: str, port: int, access: Access = PLAIN) -> MemcachedObservation | None:
        return self.memcached_by_port.get(port)

    async def sentinel(self, address: str, port: int, group_id: str) -> SentinelView | None:
        return self.sentinel_by_port.get(port)

    async def accepting(self, address: str, port: int) -> bool:
        return port not in self.silent

    def endpoint(self, admin_socket: Path, group_id: str) -> EndpointServers | None:
        servers = self.endpoints.get(group_id)
        # No reader backend by default: its health checks are the real HAProxy's.
        if servers is None:
            return None
        return EndpointServers(dict(servers), dict(self.readers.get(group_id, {})))


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


def replica_of(
    primary: tuple[str, int] | int, config: dict[str, str] | None = None, link_up: bool = True
) -> RedisObservation:
    """A replica of ``primary`` (an address, or a port of the embedded host)."""
    host, port = primary if isinstance(primary, tuple) else (ADDRESS, primary)
    return RedisObservation(
        role="slave",
        master_host=host,
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
    """A store, fake hosts and fake probes that agree with each other.

    ``group``/``cluster`` create resources as the API does and, unless told otherwise, their
    processes as a converged reconciler leaves them (every node serving in its role, the endpoint
    routing to the primary, Sentinels watching it) with the statuses recorded, placements included:
    a plan of that world has nothing to do. By default everything runs on the embedded host
    (``host``); ``add_host`` registers more, and ``group(..., on=[...])`` places members there. Tests
    then break one thing and ask a kind what it plans.
    """

    def __init__(self, *, shared_sentinels: bool = False, shared_set_size: int = 25) -> None:
        """``shared_sentinels``: new groups join the embedded host's shared Sentinels, as the server
        does by default, ``shared_set_size`` groups a set; without, groups run their own
        (``group(failover=True)`` makes them so)."""
        self.store = Store(":memory:")
        self.host = FakeHost()
        self.hosts = FakeHosts(self.host)
        self.probes = FakeProbes()
        self.woken: list[ResourceKey] = []
        self.clock = NOW
        self.local = local_spec(ADDRESS, AZS)
        self.followed: dict[str, tuple[str, int]] = {}  # where the failover follower leads each group
        self.endpoint_pending: dict[str, str] = {}  # endpoint changes the proxy has queued, by group
        observer = Observer(
            hosts=self.hosts,
            probes=self.probes,
            credentials=CREDENTIALS,
            followed=self.followed.get,
            endpoint_pending=self.endpoint_pending.get,
        )
        self.services = Services(
            store=self.store,
            observer=observer,
            clock=lambda: self.clock,
            wake=self.woken.append,
            local_host=self.local,
            shared_sentinels=shared_sentinels,
            shared_set_size=shared_set_size,
        )
        self.drivers = Drivers(self.store, self.host, lambda spec: self.hosts.get(spec.id))
        kinds = control_kinds.standard(self.services, None, self.drivers, lost_after=LOST_AFTER)
        self.kinds = {k.name: k for k in kinds}

    # -- arranging -----------------------------------------------------------------------------

    def add_host(
        self, host_id: str, zone: str, *, state: HostState = HostState.ACTIVE, subnet: str | None = None, **fields: Any
    ) -> FakeHost:
        """A registered host with its agent (a fake host of its own, with its own port range)."""
        number = len(self.hosts.by_id)
        address = f"10.0.0.{10 + number}"
        host = FakeHost(30001 + 1000 * number, 30999 + 1000 * number, host_id=host_id, address=address)
        self.hosts.by_id[host_id] = host
        spec = HostSpec(host_id, address, (Subnet(subnet or f"subnet-{zone}", zone),), NOW, agent_port=7000, **fields)
        statuses.create(self.store, HOSTS, host_id, spec)
        self.put_status(HOSTS.name, host_id, HostStatus(state))
        return host

    def placement(self, host_id: str, zone: str) -> Placement:
        return Placement(host_id, self.hosts.get(host_id).address, zone)

    def where(self, member: str, node_id: str = MEMBER_NODE_ID) -> FakeHost:
        """The fake host the store places ``member``'s node on."""
        node = self.status(CLUSTERS.name, member).node(node_id)
        assert node is not None
        assert node.placement is not None
        return self.hosts.get(node.placement.host)

    def group(
        self,
        group_id: str = "g",
        *,
        nodes: int = 3,
        failover: bool = False,
        state: GroupState = GroupState.AVAILABLE,
        running: bool = True,
        on: Sequence[str] = (),
        **spec_fields: Any,
    ) -> ReplicationGroupSpec:
        """A group of ``nodes`` members, the first the primary; ``on`` names each member's host (and,
        with automatic failover, its Sentinel's), else they all run on the embedded host."""
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
                    node_azs=(self._zone(on, index),),
                    created_at=NOW,
                    replication_group_id=group_id,
                    subnet_group=spec.subnet_group,
                )
                statuses.create(self.store, CLUSTERS, member, cluster)
        if running:
            self._run_group(spec, state, on)
        elif state != GroupState.CREATING:
            self.put_status(GROUPS.name, group_id, GroupStatus(state, primary_cluster_id=members[0]))
        return spec

    def _zone(self, on: Sequence[str], index: int) -> str:
        if on:
            host = HOSTS.find(self.store, on[index % len(on)])
            if host is not None:
                return host.spec.subnets[0].zone
        return AZS[index % len(AZS)]

    def _run_group(self, spec: ReplicationGroupSpec, state: GroupState, on: Sequence[str]) -> None:
        placements = {
            m: self.placement(on[i % len(on)] if on else LOCAL_HOST, self._zone(on, i))
            for i, m in enumerate(spec.members)
        }
        ports = {m: self.hosts.get(at.host).allocate_port(member_key(m)) for m, at in placements.items()}
        primary = (placements[spec.primary_cluster_id].address, ports[spec.primary_cluster_id])
        live = self.live_parameters(spec.engine, spec.engine_version, spec.node_type)
        for member, port in ports.items():
            self.hosts.get(placements[member].host).run(member_key(member), port)
            is_primary = member == spec.primary_cluster_id
            self.probes.redis_by_port[port] = master(len(ports) - 1, live) if is_primary else replica_of(primary, live)
        # The group's endpoint: its ports, served by the host's proxy.
        endpoint = endpoint_key(spec.id)
        self.host.allocate_port(endpoint)
        self.host.allocate_port(endpoint, (), READER_SLOT)
        self.host.nodes_by_key.setdefault(PROXY_KEY, FakeNode())
        if self.host.nodes_by_key[PROXY_KEY].pid is None:
            self.host.start_now(PROXY_KEY)
        sentinels: dict[str, Placement] = {}
        if spec.automatic_failover:
            for index, key in enumerate(sentinel_keys(spec.id)):
                at = self.placement(on[index % len(on)] if on else LOCAL_HOST, self._zone(on, index))
                sentinels[key.node_id] = at
                sentinel_host = self.hosts.get(at.host)
                sentinel_host.run(key, sentinel_host.allocate_port(key))
        member_state = ClusterState.CREATING if state == GroupState.CREATING else ClusterState.AVAILABLE
        with self.store.transaction():
            for member, port in ports.items():
                role = PRIMARY if member == spec.primary_cluster_id else REPLICA
                node = NodeStatus(
                    MEMBER_NODE_ID,
                    NodeState.AVAILABLE,
                    port=port,
                    role=role,
                    created_at=NOW.isoformat(),
                    placement=placements[member],
                )
                self.put_status(CLUSTERS.name, member, ClusterStatus(member_state, nodes=(node,)))
            self.put_status(
                GROUPS.name,
                spec.id,
                GroupStatus(
                    state,
                    primary_cluster_id=spec.primary_cluster_id,
                    failover_active=spec.automatic_failover,
                    primary_endpoint_port=self.host.port_now(endpoint),
                    reader_endpoint_port=self.host.port_now(endpoint, READER_SLOT),
                    sentinels=sentinels,
                ),
            )
        self.route(spec.id, primary)
        if spec.automatic_failover:
            self.sentinels_name(spec.id, primary)

    def cluster(
        self,
        cluster_id: str = "c",
        *,
        engine: str = ENGINE,
        nodes: int = 1,
        state: ClusterState = ClusterState.AVAILABLE,
        running: bool = True,
        on: Sequence[str] = (),
        **spec_fields: Any,
    ) -> CacheClusterSpec:
        version = VERSION if engine != "memcached" else "1.6.18"
        zones = tuple(self._zone(on, i) if on else AZS[0] for i in range(nodes))
        spec = CacheClusterSpec(
            id=cluster_id,
            engine=engine,
            engine_version=version,
            node_type=NODE_TYPE,
            node_azs=spec_fields.pop("node_azs", zones),
            created_at=NOW,
            **spec_fields,
        )
        statuses.create(self.store, CLUSTERS, cluster_id, spec)
        if running:
            live = self.live_parameters(engine, version, NODE_TYPE)
            recorded = []
            for index, key in enumerate(cluster_node_keys(cluster_id, nodes)):
                at = self.placement(on[index % len(on)] if on else LOCAL_HOST, spec.node_azs[index])
                host = self.hosts.get(at.host)
                port = host.allocate_port(key)
                host.run(key, port)
                if engine == "memcached":
                    self.probes.memcached_by_port[port] = memcached_stats()
                else:
                    self.probes.redis_by_port[port] = master(0, live)
                role = None if engine == "memcached" else PRIMARY
                recorded.append(NodeStatus(key.node_id, NodeState.AVAILABLE, port, role, NOW.isoformat(), placement=at))
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
                    configuration_port=self.host.port_now(endpoint),
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

    def address_of(self, member: str) -> tuple[str, int]:
        host = self.where(member)
        port = host.port_now(member_key(member))
        assert port is not None
        return host.address, port

    def route(self, group_id: str, primary: tuple[str, int]) -> None:
        """The group's endpoint, rendered for the current members, sends writes to ``primary`` only."""
        group = GROUPS.get(self.store, group_id)
        nodes = sorted(
            self.address_of(m) for m in group.spec.members if self.where(m).port_now(member_key(m)) is not None
        )
        key = endpoint_key(group_id)
        node = self.host.nodes_by_key[key]
        inputs = EndpointInputs(tuple(nodes), primary)
        node.files[ENDPOINT_FILE] = entry_json(inputs)
        self.probes.endpoints[group_id] = {
            server_name(n[1]): ServerState(server_name(n[1]), n[0], n[1], up=True, maint=n != primary) for n in nodes
        }

    def sentinels_name(self, group_id: str, primary: tuple[str, int]) -> None:
        group = GROUPS.get(self.store, group_id)
        for key in sentinel_keys(group_id):
            at = group.status.sentinels[key.node_id]
            port = self.hosts.get(at.host).port_now(key)
            assert port is not None
            replicas = len(group.spec.members) - 1
            self.probes.sentinel_by_port[port] = SentinelView(
                primary[0],
                primary[1],
                frozenset({"master"}),
                replicas,
                2,
                2,
                ready_replicas=replicas,
                connected_peers=2,
                timings=Timings(PING_PERIOD_MS, ASK_PERIOD_MS),
            )

    # -- breaking ------------------------------------------------------------------------------

    def kill(self, key: NodeKey, host: FakeHost | None = None) -> None:
        """The node's process died (its directory and port stay)."""
        host = host or self._host_of(key)
        host.nodes_by_key[key].pid = None
        port = host.port_now(key)
        if port is not None:
            self.probes.redis_by_port.pop(port, None)
            self.probes.memcached_by_port.pop(port, None)
            self.probes.sentinel_by_port.pop(port, None)

    def lose(self, key: NodeKey) -> None:
        """The node's process died and its directory is gone (the host knows nothing of it)."""
        host = self._host_of(key)
        self.kill(key, host)
        del host.nodes_by_key[key]

    def squat(self, key: NodeKey) -> int:
        """The dead node's port is held by a process that is not a node."""
        host = self._host_of(key)
        self.kill(key, host)
        port = host.port_now(key)
        assert port is not None
        host.squatted.add(port)
        return port

    def promote(self, group_id: str, member: str) -> None:
        """Sentinel made ``member`` the primary (the others its replicas)."""
        group = GROUPS.get(self.store, group_id)
        new = self.address_of(member)
        live = self.live_parameters(ENGINE, VERSION, NODE_TYPE)
        for other in group.spec.members:
            host = self.where(other)
            port = host.port_now(member_key(other))
            if port is not None and host.pid_now(member_key(other)) is not None:
                self.probes.redis_by_port[port] = master(2, live) if other == member else replica_of(new, live)
        self.sentinels_name(group_id, new)
        self.route(group_id, new)

    def take_down(self, host_id: str, state: HostState = HostState.LOST) -> None:
        """The host stops answering (its agent and nodes gone, or cut off), and the store says ``state``."""
        host = self.hosts.get(host_id)
        host.down = True
        for key in list(host.nodes_by_key):
            port = host.port_now(key)
            if port is not None:
                self.probes.redis_by_port.pop(port, None)
                self.probes.sentinel_by_port.pop(port, None)
                self.probes.memcached_by_port.pop(port, None)
        current = HOSTS.get(self.store, host_id).status
        self.put_status(HOSTS.name, host_id, replace(current, status=state, unreachable_since=NOW.isoformat()))

    def _host_of(self, key: NodeKey) -> FakeHost:
        """The fake host that runs ``key`` (the one the store places it on, when both have it)."""
        holders = [h for h in self.hosts.by_id.values() if key in h.nodes_by_key]
        assert holders, f"no host runs {key}"
        if len(holders) > 1 and not key.cluster_id.startswith("rg."):
            return self.where(key.cluster_id, key.node_id)
        return holders[0]

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
        found = {GROUPS.name: GROUPS, CLUSTERS.name: CLUSTERS, HOSTS.name: HOSTS}[kind].find(self.store, resource_id)
        assert found is not None
        return found.status

    def with_status(self, kind: str, resource_id: str, **fields: Any) -> None:
        self.put_status(kind, resource_id, replace(self.status(kind, resource_id), **fields))
