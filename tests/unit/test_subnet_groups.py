"""Cache subnet groups and the hosts admin API, in process: real boto3 (and real SigV4) into the app.

Hosts are added through the admin API as ``cachefleet host add`` adds them (the installation CA is
stood in for: these tests look at hosts, subnets and placement, not at certificates).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from botocore.exceptions import ClientError
from tests.support.inprocess import InProcessApi

from cachefleet.api.handlers import subnet_groups
from cachefleet.model.hosts import HostState
from cachefleet.model.nodes import MEMBER_NODE_ID, Placement
from cachefleet.model.status import ClusterState, ClusterStatus, NodeState, NodeStatus
from cachefleet.store import statuses
from cachefleet.store.iam import AccessKey, User
from cachefleet.store.kinds import CLUSTERS, HOSTS

A, B, C = "us-east-1a", "us-east-1b", "us-east-1c"
NODE = {"CacheNodeType": "cache.t4g.micro"}


@pytest.fixture
def api(tmp_path: Any) -> Iterator[InProcessApi]:
    server = InProcessApi(tmp_path / "cf")
    yield server
    server.close()


@pytest.fixture
def client(api: InProcessApi) -> Any:
    return api.client()


def add_host(api: InProcessApi, host_id: str, zone: str, **fields: Any) -> dict[str, Any]:
    number = len(api.admin("GET", "/admin/v1/hosts").json()["hosts"]) + 10
    body = {"id": host_id, "address": f"10.9.0.{number}", "zone": zone, "agent_port": 7000, "csr": "CSR", **fields}
    response = api.admin("POST", "/admin/v1/hosts", body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _active(api: InProcessApi, host_id: str) -> None:
    """Stand in for the host kind: the agent answered (through the one status writer)."""
    current = HOSTS.get(api.store, host_id).status
    assert statuses.write(api.store, HOSTS, host_id, replace(current, status=HostState.ACTIVE))


def three_hosts(api: InProcessApi, **fields: Any) -> None:
    for name, zone in (("h1", A), ("h2", B), ("h3", C)):
        add_host(api, name, zone, subnet=f"agents-{zone[-1]}", **fields)
        _active(api, name)


def error(call: Any, **params: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call(**params)
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


# -- subnet groups ---------------------------------------------------------------------------------


def test_the_default_group_covers_every_subnet(api: InProcessApi, client: Any) -> None:
    groups = client.describe_cache_subnet_groups()["CacheSubnetGroups"]
    assert [g["CacheSubnetGroupName"] for g in groups] == ["default"]
    subnets = {s["SubnetIdentifier"]: s["SubnetAvailabilityZone"]["Name"] for s in groups[0]["Subnets"]}
    assert subnets == {f"local-{z}": z for z in (A, B, C)}
    three_hosts(api)
    (default,) = client.describe_cache_subnet_groups(CacheSubnetGroupName="default")["CacheSubnetGroups"]
    assert {s["SubnetIdentifier"] for s in default["Subnets"]} >= {"agents-a", "agents-b", "agents-c"}
    assert default["VpcId"] == "vpc-cachefleet"
    assert default["ARN"].endswith(":subnetgroup:default")


def test_create_describe_modify_delete(api: InProcessApi, client: Any) -> None:
    three_hosts(api)
    created = client.create_cache_subnet_group(
        CacheSubnetGroupName="Agents",
        CacheSubnetGroupDescription="three agents",
        SubnetIds=["agents-a", "agents-b", "agents-b"],
        Tags=[{"Key": "team", "Value": "cache"}],
    )["CacheSubnetGroup"]
    assert created["CacheSubnetGroupName"] == "agents"  # stored lowercase, as ElastiCache stores it
    assert [(s["SubnetIdentifier"], s["SubnetAvailabilityZone"]["Name"]) for s in created["Subnets"]] == [
        ("agents-a", A),
        ("agents-b", B),
    ]
    arn = created["ARN"]
    assert client.list_tags_for_resource(ResourceName=arn)["TagList"] == [{"Key": "team", "Value": "cache"}]
    modified = client.modify_cache_subnet_group(
        CacheSubnetGroupName="agents", CacheSubnetGroupDescription="all three", SubnetIds=["agents-c", "agents-a"]
    )["CacheSubnetGroup"]
    assert modified["CacheSubnetGroupDescription"] == "all three"
    assert [s["SubnetIdentifier"] for s in modified["Subnets"]] == ["agents-c", "agents-a"]
    names = [g["CacheSubnetGroupName"] for g in client.describe_cache_subnet_groups()["CacheSubnetGroups"]]
    assert names == ["default", "agents"]
    client.delete_cache_subnet_group(CacheSubnetGroupName="agents")
    assert error(client.describe_cache_subnet_groups, CacheSubnetGroupName="agents")[0] == (
        "CacheSubnetGroupNotFoundFault"
    )


def test_refusals(api: InProcessApi, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    three_hosts(api)
    create = client.create_cache_subnet_group
    base = {"CacheSubnetGroupDescription": "d"}
    assert error(create, CacheSubnetGroupName="x", SubnetIds=["subnet-nope"], **base)[0] == "InvalidSubnet"
    assert error(create, CacheSubnetGroupName="default", SubnetIds=["agents-a"], **base)[0] == (
        "CacheSubnetGroupAlreadyExists"
    )
    assert error(create, CacheSubnetGroupName="bad_name", SubnetIds=["agents-a"], **base)[0] == "InvalidParameterValue"
    create(CacheSubnetGroupName="one", SubnetIds=["agents-a"], **base)
    assert error(create, CacheSubnetGroupName="ONE", SubnetIds=["agents-a"], **base)[0] == (
        "CacheSubnetGroupAlreadyExists"
    )
    monkeypatch.setattr(subnet_groups, "MAX_GROUPS", 1)
    assert error(create, CacheSubnetGroupName="two", SubnetIds=["agents-a"], **base)[0] == (
        "CacheSubnetGroupQuotaExceeded"
    )
    monkeypatch.setattr(subnet_groups, "MAX_SUBNETS", 2)
    code, _ = error(
        client.modify_cache_subnet_group, CacheSubnetGroupName="one", SubnetIds=["agents-a", "agents-b", "agents-c"]
    )
    assert code == "CacheSubnetQuotaExceededFault"
    for call in (client.modify_cache_subnet_group, client.delete_cache_subnet_group):
        assert error(call, CacheSubnetGroupName="nope")[0] == "CacheSubnetGroupNotFoundFault"
        assert error(call, CacheSubnetGroupName="default")[0] == "InvalidParameterValue"
    # Nothing changed by the refusals.
    (one,) = client.describe_cache_subnet_groups(CacheSubnetGroupName="one")["CacheSubnetGroups"]
    assert [s["SubnetIdentifier"] for s in one["Subnets"]] == ["agents-a"]


def test_a_subnet_group_restricts_placement(api: InProcessApi, client: Any) -> None:
    three_hosts(api)
    client.create_cache_subnet_group(
        CacheSubnetGroupName="ab", CacheSubnetGroupDescription="d", SubnetIds=["agents-a", "agents-b"]
    )
    rg = {"ReplicationGroupDescription": "d", "CacheSubnetGroupName": "ab", **NODE}
    code, message = error(
        client.create_replication_group,
        ReplicationGroupId="g",
        NumCacheClusters=2,
        PreferredCacheClusterAZs=[A, C],
        **rg,
    )
    assert (code, message) == (
        "InvalidParameterValue",
        f"No subnet of cache subnet group ab is in availability zone {C}.",
    )
    client.create_replication_group(ReplicationGroupId="g", NumCacheClusters=3, **rg)
    clusters = client.describe_cache_clusters(ShowCacheNodeInfo=True)["CacheClusters"]
    assert [(c["CacheClusterId"], c["PreferredAvailabilityZone"]) for c in clusters] == [
        ("g-001", A),
        ("g-002", B),
        ("g-003", A),
    ]
    assert {c["CacheSubnetGroupName"] for c in clusters} == {"ab"}
    assert error(client.delete_cache_subnet_group, CacheSubnetGroupName="ab")[0] == "CacheSubnetGroupInUse"
    code, _ = error(client.create_cache_cluster, CacheClusterId="c", CacheSubnetGroupName="nope", **NODE)
    assert code == "CacheSubnetGroupNotFoundFault"


def test_nothing_fits_is_insufficient_capacity_and_writes_nothing(api: InProcessApi, client: Any) -> None:
    three_hosts(api, max_nodes=1)
    client.create_cache_subnet_group(CacheSubnetGroupName="a", CacheSubnetGroupDescription="d", SubnetIds=["agents-a"])
    code, message = error(
        client.create_replication_group,
        ReplicationGroupId="g",
        ReplicationGroupDescription="d",
        NumCacheClusters=2,
        CacheSubnetGroupName="a",
        **NODE,
    )
    assert code == "InsufficientCacheClusterCapacity"
    assert f"in {A}" in message
    assert client.describe_replication_groups()["ReplicationGroups"] == []
    assert client.describe_cache_clusters()["CacheClusters"] == []


def test_a_placed_node_counts_against_capacity(api: InProcessApi, client: Any) -> None:
    three_hosts(api, max_nodes=1)
    client.create_cache_subnet_group(CacheSubnetGroupName="a", CacheSubnetGroupDescription="d", SubnetIds=["agents-a"])
    client.create_cache_cluster(CacheClusterId="one", CacheSubnetGroupName="a", Engine="memcached", **NODE)
    place(api, "one", Placement("h1", "10.9.0.11", A))
    code, _ = error(
        client.create_cache_cluster, CacheClusterId="two", CacheSubnetGroupName="a", Engine="memcached", **NODE
    )
    assert code == "InsufficientCacheClusterCapacity"
    (node,) = client.describe_cache_clusters(CacheClusterId="one", ShowCacheNodeInfo=True)["CacheClusters"][0][
        "CacheNodes"
    ]
    assert node["CustomerAvailabilityZone"] == A
    assert node["Endpoint"] == {"Address": "10.9.0.11", "Port": 21001}


def place(api: InProcessApi, cluster_id: str, placement: Placement) -> None:
    """Stand in for the reconciler: the cluster's node is placed, runs and serves."""
    node = NodeStatus(
        MEMBER_NODE_ID, NodeState.AVAILABLE, 21001, None, "2026-01-01T00:00:00+00:00", placement=placement
    )
    api.store.write_status(CLUSTERS.name, cluster_id, ClusterStatus(ClusterState.AVAILABLE, (node,)).to_json())


# -- the hosts admin API ---------------------------------------------------------------------------


def test_hosts_are_added_listed_drained_and_removed(api: InProcessApi) -> None:
    added = add_host(api, "h1", A, max_nodes=4)
    assert added["certificate"] == "certificate for h1 at 10.9.0.11"
    assert added["ca"] == "ca certificate"
    host = added["host"]
    assert (host["id"], host["status"], host["subnets"], host["max_nodes"]) == (
        "h1",
        "joining",
        [{"id": f"subnet-{A}", "zone": A}],
        4,
    )
    listed = api.admin("GET", "/admin/v1/hosts").json()["hosts"]
    assert [(h["id"], h["embedded"], h["status"]) for h in listed] == [
        ("local", True, "active"),
        ("h1", False, "joining"),
    ]
    _active(api, "h1")
    drained = api.admin("POST", "/admin/v1/hosts/h1/drain").json()["host"]
    assert (drained["status"], drained["draining"]) == ("draining", True)
    back = api.admin("POST", "/admin/v1/hosts/h1/undrain").json()["host"]
    assert (back["status"], back["draining"]) == ("active", False)
    # The embedded host can be drained (its record is made then), not removed.
    assert api.admin("POST", "/admin/v1/hosts/local/drain").json()["host"]["status"] == "draining"
    assert api.admin("DELETE", "/admin/v1/hosts/local").json()["error"]["code"] == "InvalidParameterValue"
    removing = api.admin("DELETE", "/admin/v1/hosts/h1")
    assert removing.json()["host"]["status"] == "removing"


def test_a_host_with_nodes_is_not_removed(api: InProcessApi, client: Any) -> None:
    three_hosts(api)
    client.create_cache_cluster(CacheClusterId="one", Engine="memcached", **NODE)
    place(api, "one", Placement("h2", "10.9.0.12", B))
    answer = api.admin("DELETE", "/admin/v1/hosts/h2")
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "InvalidHostState"
    assert HOSTS.get(api.store, "h2").status.status == HostState.ACTIVE


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"id": "Bad_Id", "address": "10.0.0.1", "zone": A, "agent_port": 1}, "InvalidParameterValue"),
        ({"id": "h", "address": "not-an-ip", "zone": A, "agent_port": 1}, "InvalidParameterValue"),
        ({"id": "h", "address": "0.0.0.0", "zone": A, "agent_port": 1}, "InvalidParameterValue"),
        ({"id": "h", "address": "10.0.0.1", "zone": "mars-1a", "agent_port": 1}, "InvalidParameterValue"),
        ({"id": "h", "address": "10.0.0.1", "zone": A, "agent_port": 0}, "InvalidParameterValue"),
        ({"id": "h", "address": "10.0.0.1", "zone": A, "agent_port": 1, "subnet": "local-x"}, "InvalidSubnet"),
        ({"id": "local", "address": "10.0.0.1", "zone": A, "agent_port": 1}, "HostAlreadyExists"),
        ({"id": "h", "address": "10.0.0.1", "zone": A, "agent_port": True}, "InvalidParameterValue"),
    ],
)
def test_bad_hosts_are_refused(api: InProcessApi, body: dict[str, Any], code: str) -> None:
    answer = api.admin("POST", "/admin/v1/hosts", {**body, "csr": "CSR"})
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == code
    assert [h["id"] for h in api.admin("GET", "/admin/v1/hosts").json()["hosts"]] == ["local"]


def test_a_subnet_stays_in_one_zone(api: InProcessApi) -> None:
    add_host(api, "h1", A, subnet="rack-1")
    answer = api.admin("POST", "/admin/v1/hosts", {"id": "h2", "address": "10.0.0.2", "zone": B, "agent_port": 1,
                                                   "subnet": "rack-1", "csr": "CSR"})  # fmt: skip
    assert answer.json()["error"]["code"] == "InvalidSubnet"


def test_only_the_root_identity_may_call(api: InProcessApi) -> None:
    unsigned = api.admin("GET", "/admin/v1/hosts", signed=False)
    assert unsigned.status_code in (400, 403)
    assert unsigned.json()["error"]["code"] in ("MissingAuthenticationToken", "IncompleteSignature")
    # An IAM user's key (any key but the root identity's) is refused, whatever its policies.
    identities = api.api_security.identities
    identities.add_user(User("AIDAOTHERUSER0000001", "operator", "/", api.now()))
    identities.add_access_key(
        AccessKey("AKIAOTHERUSER0000001", "AIDAOTHERUSER0000001", "Active", api.now()), "another-secret"
    )
    other = api.admin("GET", "/admin/v1/hosts", key=("AKIAOTHERUSER0000001", "another-secret"))
    assert other.status_code == 403
    assert other.json()["error"]["code"] == "AccessDenied"
    assert api.admin("GET", "/admin/v1/nope").status_code == 404
    assert api.admin("GET", "/admin/v1/hosts/nope").json()["error"]["code"] == "HostNotFound"
    assert api.admin("PUT", "/admin/v1/hosts").status_code == 405
