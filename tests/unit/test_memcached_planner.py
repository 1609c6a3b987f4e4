"""The cluster planner's Memcached part (discovery list, version, removals) and the processes it renders."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from cryptography.x509.oid import NameOID
from tests.support.fakes import KEYS
from tests.support.fakes import NOW as CLOCK

from cachefleet.control import security
from cachefleet.control.actions import (
    AllocatePort,
    DiscoveryInputs,
    ReloadConfigEndpoint,
    RemoveNode,
    StartConfigEndpoint,
)
from cachefleet.control.hosts import host_map, with_placements
from cachefleet.control.memcached_processes import Secrets, access, endpoint_process, node_process
from cachefleet.control.observe import ClusterObservation, ConfigEndpointObservation, NodeObservation
from cachefleet.control.planners import cluster, params
from cachefleet.engines import config_endpoint, memcached
from cachefleet.model.credentials import Credentials
from cachefleet.model.nodes import Placement, config_endpoint_key, node_key
from cachefleet.model.security import Request, at_creation
from cachefleet.model.specs import CacheClusterSpec
from cachefleet.model.status import ClusterState, ClusterStatus, NodeState, NodeStatus
from cachefleet.store.hosts import local_spec
from cachefleet.store.keys import InstallationKey, Sealer
from cachefleet.store.sqlite import Store
from cachefleet.tls import certs

NOW = "2024-01-01T00:00:00+00:00"
OBSERVED = memcached.MemcachedObservation("1.6.18", 1, 1, 0, 0, 1, 1, 0, 0, 0)
CREDENTIALS = Credentials("cachefleet-admin", "admin-secret")
ENDPOINT = Placement("local", "127.0.0.1", "")  # where the configuration endpoint runs: the embedded host


def _spec(*ids: str, **fields: object) -> CacheClusterSpec:
    return CacheClusterSpec(
        id="c",
        engine="memcached",
        engine_version="1.6.18",
        node_type="cache.t4g.micro",
        node_azs=("us-east-1a",) * len(ids),
        created_at=datetime(2024, 1, 1, tzinfo=UTC),
        node_ids=ids,
        last_node=max(int(i) for i in ids),
        **fields,  # type: ignore[arg-type]
    )


def _status(
    listed: Sequence[str], version: int, *nodes: str, state: ClusterState = ClusterState.AVAILABLE
) -> ClusterStatus:
    return ClusterStatus(
        state,
        nodes=tuple(NodeStatus(n, NodeState.AVAILABLE, port=31000 + int(n), created_at=NOW) for n in nodes),
        discovery=tuple(listed),
        config_version=version,
        configuration_port=30999,
    )


def _observed(
    serving: Sequence[str], down: Sequence[str] = (), *, served: DiscoveryInputs | None, listening: bool = True
) -> ClusterObservation:
    nodes = {node_key("c", n): NodeObservation(31000 + int(n), 100 + int(n), memcached=OBSERVED) for n in serving}
    nodes |= {node_key("c", n): NodeObservation(31000 + int(n), 100 + int(n)) for n in down}
    # No inputs served: the endpoint process is not running (yet).
    if served is None:
        return ClusterObservation(nodes, endpoint=ConfigEndpointObservation(30999, None, None))
    return ClusterObservation(nodes, endpoint=ConfigEndpointObservation(30999, 99, served.to_json(), listening))


def _inputs(version: int, *ids: str) -> DiscoveryInputs:
    return DiscoveryInputs(version, tuple((n, 31000 + int(n)) for n in ids))


def _plan(spec: CacheClusterSpec, status: ClusterStatus, observed: ClusterObservation) -> object:
    # Every node on the embedded host, as a status recorded before hosts existed says.
    local = local_spec("127.0.0.1", ("us-east-1a",))
    hosts = host_map(Store(":memory:"), local, None, placing=True)
    placed = with_placements(status, spec.node_azs, local)
    return cluster.plan(spec, placed, observed, hosts=hosts, now=NOW, wanted=params.Wanted())


def test_the_endpoint_starts_with_the_serving_nodes_as_version_one() -> None:
    plan = _plan(
        _spec("0001", "0002"),
        _status((), 0, "0001", "0002", state=ClusterState.CREATING),
        _observed(["0001", "0002"], served=None),
    )
    (start,) = [a for a in plan.actions if isinstance(a, StartConfigEndpoint)]  # type: ignore[attr-defined]
    assert start.inputs == _inputs(1, "0001", "0002")
    status = plan.statuses[("cache-cluster", "c")]  # type: ignore[attr-defined]
    assert (status.discovery, status.config_version, status.configuration_port) == (("0001", "0002"), 1, 30999)


def test_a_cluster_is_available_once_its_endpoint_accepts_connections() -> None:
    spec, status = _spec("0001"), _status(("0001",), 1, "0001", state=ClusterState.CREATING)
    starting = _plan(spec, status, _observed(["0001"], served=_inputs(1, "0001"), listening=False))
    assert starting.statuses[("cache-cluster", "c")].status == ClusterState.CREATING  # type: ignore[attr-defined]
    assert not starting.converged  # type: ignore[attr-defined]
    ready = _plan(spec, status, _observed(["0001"], served=_inputs(1, "0001")))
    assert ready.statuses[("cache-cluster", "c")].status == ClusterState.AVAILABLE  # type: ignore[attr-defined]
    assert [e.message for e in ready.events] == ["Cache cluster created"]  # type: ignore[attr-defined]


def test_a_new_node_is_listed_once_it_serves_with_the_next_version() -> None:
    spec = _spec("0001", "0002", "0003")
    # 0003 was placed and started by an earlier pass; it is listed once it serves.
    status = _status(("0001", "0002"), 4, "0001", "0002", "0003", state=ClusterState.MODIFYING)
    waiting = _plan(spec, status, _observed(["0001", "0002"], ["0003"], served=_inputs(4, "0001", "0002")))
    assert not any(isinstance(a, ReloadConfigEndpoint) for a in waiting.actions)  # type: ignore[attr-defined]
    assert waiting.statuses[("cache-cluster", "c")].status == ClusterState.MODIFYING  # type: ignore[attr-defined]
    ready = _plan(spec, status, _observed(["0001", "0002", "0003"], served=_inputs(4, "0001", "0002")))
    (reload,) = ready.actions  # type: ignore[attr-defined]
    assert reload == ReloadConfigEndpoint(config_endpoint_key("c"), ENDPOINT, "c", _inputs(5, "0001", "0002", "0003"))
    assert "Added cache node 0003 in availability zone us-east-1a" in [e.message for e in ready.events]  # type: ignore[attr-defined]


def test_a_down_node_stays_listed_and_the_version_stays() -> None:
    spec = _spec("0001", "0002")
    served = _inputs(2, "0001", "0002")
    plan = _plan(spec, _status(("0001", "0002"), 2, "0001", "0002"), _observed(["0001"], ["0002"], served=served))
    assert not any(isinstance(a, ReloadConfigEndpoint | RemoveNode) for a in plan.actions)  # type: ignore[attr-defined]
    assert plan.statuses[("cache-cluster", "c")].config_version == 2  # type: ignore[attr-defined]


def test_a_removed_node_leaves_discovery_before_its_process_goes() -> None:
    spec = _spec("0001", "0003")  # 0002 was removed from the spec
    status = _status(("0001", "0002", "0003"), 7, "0001", "0002", "0003", state=ClusterState.MODIFYING)
    first = _plan(spec, status, _observed(["0001", "0003"], served=_inputs(7, "0001", "0002", "0003")))
    assert first.actions == (ReloadConfigEndpoint(config_endpoint_key("c"), ENDPOINT, "c", _inputs(8, "0001", "0003")),)  # type: ignore[attr-defined]
    recorded = first.statuses[("cache-cluster", "c")]  # type: ignore[attr-defined]
    assert recorded.status == ClusterState.MODIFYING
    assert "0002" in [n.node_id for n in recorded.nodes]  # still to be removed
    second = _plan(spec, recorded, _observed(["0001", "0003"], served=_inputs(8, "0001", "0003")))
    assert second.actions == (RemoveNode(node_key("c", "0002"), Placement("local", "127.0.0.1", "us-east-1a")),)  # type: ignore[attr-defined]
    assert "Removed cache node 0002" in [e.message for e in second.events]  # type: ignore[attr-defined]


def test_the_endpoint_gets_its_port_back_from_the_status() -> None:
    observed = ClusterObservation(
        {node_key("c", "0001"): NodeObservation(31001, 101, memcached=OBSERVED)},
        endpoint=ConfigEndpointObservation(None, None),
    )
    plan = _plan(_spec("0001"), _status(("0001",), 1, "0001"), observed)
    assert plan.actions == (AllocatePort(config_endpoint_key("c"), ENDPOINT, port=30999),)  # type: ignore[attr-defined]


def test_deleting_removes_nodes_leftovers_and_the_endpoint() -> None:
    spec = _spec("0001", deleting=True)
    plan = _plan(spec, _status(("0001", "0002"), 3, "0001", "0002"), _observed(["0001"], served=None))
    removed = [a.node for a in plan.actions if isinstance(a, RemoveNode)]  # type: ignore[attr-defined]
    assert removed == [node_key("c", "0001"), node_key("c", "0002"), config_endpoint_key("c")]


TOKEN = "token-0123456789abcdef"
SEALER = Sealer(InstallationKey(os.urandom(32)))
SECRETS = Secrets(CREDENTIALS, KEYS, SEALER, CLOCK)


def _secured(*ids: str) -> CacheClusterSpec:
    """A Memcached cluster with TLS and an AuthToken, as CreateCacheCluster stores it."""
    request = Request(transit_enabled=True, auth_token=TOKEN)
    made = at_creation(request, engine="memcached", user_groups={}, now=CLOCK)
    return _spec(*ids, security=made, sealed_token=SEALER.seal(TOKEN))


def test_a_tls_node_with_ascii_authentication_renders_its_files() -> None:
    spec = _secured("0001")
    node_dir = Path("/data/nodes/c/0001")
    process = node_process(
        spec,
        node_key("c", "0001"),
        binary="/usr/bin/memcached",
        node_dir=node_dir,
        port=31001,
        address="127.0.0.1",
        values={"binding_protocol": "auto"},
        secrets=SECRETS,
    )
    leaf = certs.certificate_of(process.files[security.TLS_FILE].encode())
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "c/0001"
    pem = node_dir / security.TLS_FILE  # key and certificate in one file, as Redis nodes have it
    assert process.argv[process.argv.index("-o") + 1].endswith(f"ssl_chain_cert={pem},ssl_key={pem}")
    assert process.files[memcached.AUTH_FILE] == f"default:{TOKEN}\n{CREDENTIALS.user}:{CREDENTIALS.password}\n"
    assert "-Z" in process.argv
    assert process.argv[process.argv.index("-Y") + 1] == str(node_dir / memcached.AUTH_FILE)
    assert process.argv[process.argv.index("-t") + 1] == "2"  # cache.t4g.micro: 2 vCPUs


def test_sasl_when_the_group_asks_for_the_binary_protocol(tmp_path: Path) -> None:
    spec = _secured("0001")
    process = node_process(
        spec,
        node_key("c", "0001"),
        binary="/usr/bin/memcached",
        node_dir=Path("/n"),
        port=31001,
        address="127.0.0.1",
        values={"binding_protocol": "binary"},
        secrets=SECRETS,
    )
    assert process.argv == ("/bin/sh", "/n/start-memcached")
    assert "-S" in process.scripts[memcached.START_SCRIPT]
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(KEYS.authority.certificate_pem())
    reach = access(spec, {"binding_protocol": "binary"}, CREDENTIALS, ca_file)
    assert (reach.auth, reach.tls is not None) == (memcached.SASL_AUTH, True)


def test_the_endpoint_file_lists_members_with_tls_and_auth() -> None:
    spec = _secured("0001", "0002")
    process = endpoint_process(
        spec,
        config_endpoint_key("c"),
        _inputs(3, "0001", "0002"),
        python="/venv/python",
        node_dir=Path("/n/cfg.c/endpoint"),
        port=30999,
        address="127.0.0.1",
        values={},
        secrets=SECRETS,
    )
    (endpoint,) = config_endpoint.ServerConfig.from_json(process.files[config_endpoint.CONFIG_FILE]).endpoints
    assert (endpoint.port, endpoint.version) == (30999, 3)
    assert [m.entry for m in endpoint.members] == ["127.0.0.1|127.0.0.1|31001", "127.0.0.1|127.0.0.1|31002"]
    assert (endpoint.upstream_ca, endpoint.tls_cert) == (str(KEYS.ca_file), f"/n/cfg.c/endpoint/{security.TLS_FILE}")
    assert endpoint.auth == config_endpoint.Auth(
        memcached.ASCII_AUTH, (("default", TOKEN), (CREDENTIALS.user, CREDENTIALS.password))
    )
    assert json.loads(process.files["inputs.json"])["version"] == 3
    assert process.argv[-1] == "/n/cfg.c/endpoint/endpoint.json"
