"""The ``cachefleet`` CLI against a stub ElastiCache client, injected through ``CliState``.

End-to-end runs against a real server live with the integration tests; here we check what the CLI
itself decides: the calls it makes, its tables, its JSON, its errors and its wait loop.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import click
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from click.testing import CliRunner, Result
from rich.console import Console

from cachefleet.cli import complete, render
from cachefleet.cli.commands_events import SOURCE_TYPES
from cachefleet.cli.commands_params import rolling_order
from cachefleet.cli.commands_rg import group_view
from cachefleet.cli.commands_snapshot import group_restore
from cachefleet.cli.connection import ConnectionOptions, Endpoint, collect, resolve
from cachefleet.cli.context import CliState
from cachefleet.cli.errors import ServerNotFound, WaitFailed, WaitTimedOut
from cachefleet.cli.main import main
from cachefleet.cli.options import request
from cachefleet.cli.waiting import wait_for
from cachefleet.settings import Settings

GONE = "<gone>"
CREATED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def endpoint(port: int) -> dict[str, Any]:
    return {"Address": "127.0.0.1", "Port": port}


def not_found(code: str, message: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message, "Type": "Sender"}}, operation)


def group(group_id: str = "orders", status: str = "available", primary: str | None = None) -> dict[str, Any]:
    primary = primary or f"{group_id}-001"
    return {
        "ReplicationGroupId": group_id,
        "Description": "orders cache",
        "Status": status,
        "Engine": "redis",
        "CacheNodeType": "cache.t4g.micro",
        "MemberClusters": [f"{group_id}-001", f"{group_id}-002"],
        "ClusterEnabled": False,
        "AutomaticFailover": "enabled",
        "MultiAZ": "disabled",
        "ReplicationGroupCreateTime": CREATED,
        "NodeGroups": [
            {
                "NodeGroupId": "0001",
                "Status": status,
                "PrimaryEndpoint": endpoint(21000),
                "ReaderEndpoint": endpoint(21001),
                "NodeGroupMembers": [
                    {
                        "CacheClusterId": f"{group_id}-001",
                        "CacheNodeId": "0001",
                        "ReadEndpoint": endpoint(21002),
                        "PreferredAvailabilityZone": "us-east-1a",
                        "CurrentRole": "primary" if primary == f"{group_id}-001" else "replica",
                    },
                    {
                        "CacheClusterId": f"{group_id}-002",
                        "CacheNodeId": "0001",
                        "ReadEndpoint": endpoint(21003),
                        "PreferredAvailabilityZone": "us-east-1b",
                        "CurrentRole": "primary" if primary == f"{group_id}-002" else "replica",
                    },
                ],
            }
        ],
    }


def cluster(cluster_id: str, status: str = "available", **extra: Any) -> dict[str, Any]:
    return {
        "CacheClusterId": cluster_id,
        "CacheClusterStatus": status,
        "Engine": "redis",
        "EngineVersion": "7.0.15",
        "CacheNodeType": "cache.t4g.micro",
        "NumCacheNodes": 1,
        "PreferredAvailabilityZone": "us-east-1a",
        "CacheClusterCreateTime": CREATED,
        "CacheNodes": [
            {
                "CacheNodeId": "0001",
                "CacheNodeStatus": status,
                "Endpoint": endpoint(21100),
                "CustomerAvailabilityZone": "us-east-1a",
            }
        ],
        **extra,
    }


MEMCACHED = cluster(
    "sessions",
    Engine="memcached",
    EngineVersion="1.6.18",
    NumCacheNodes=2,
    PreferredAvailabilityZone="Multiple",
    ConfigurationEndpoint=endpoint(21200),
)


def snapshot(name: str = "nightly", status: str = "available", **extra: Any) -> dict[str, Any]:
    return {
        "SnapshotName": name,
        "SnapshotStatus": status,
        "SnapshotSource": "manual",
        "ReplicationGroupId": "orders",
        "ReplicationGroupDescription": "orders cache",
        "AutomaticFailover": "enabled",
        "Engine": "redis",
        "EngineVersion": "7.0.15",
        "CacheNodeType": "cache.r7g.large",
        "CacheParameterGroupName": "default.redis7",
        "NodeSnapshots": [
            {
                "CacheClusterId": "orders-002",
                "CacheNodeId": "0001",
                "CacheSize": "12 MB",
                "SnapshotCreateTime": CREATED,
                "NodeGroupConfiguration": {
                    "NodeGroupId": "0001",
                    "ReplicaCount": 1,
                    "PrimaryAvailabilityZone": "us-east-1a",
                    "ReplicaAvailabilityZones": ["us-east-1b"],
                },
            }
        ],
        **extra,
    }


def parameter(name: str, value: str, source: str = "system", change: str = "immediate") -> dict[str, Any]:
    return {
        "ParameterName": name,
        "ParameterValue": value,
        "Source": source,
        "ChangeType": change,
        "IsModifiable": True,
        "AllowedValues": "1-1200000",
    }


def event(minute: int, message: str, source: str = "orders", kind: str = "replication-group") -> dict[str, Any]:
    return {
        "SourceIdentifier": source,
        "SourceType": kind,
        "Message": message,
        "Date": datetime(2026, 1, 2, 3, minute, tzinfo=UTC),
    }


class StubClient:
    """Answers like boto3's client from canned data; status scripts drive the wait loops."""

    def __init__(self) -> None:
        self.groups = [group()]
        self.clusters = [
            cluster("orders-001", ReplicationGroupId="orders"),
            cluster("orders-002", ReplicationGroupId="orders"),
            MEMCACHED,
        ]
        self.snapshots = [snapshot()]
        self.parameters = [
            [parameter("maxmemory-policy", "allkeys-lru", "user")],
            [parameter("databases", "32", "user", "requires-reboot"), parameter("timeout", "0")],
        ]  # two pages
        # Successive DescribeEvents answers (newest first, as the API); Ctrl-C once they run out.
        self.event_pages: list[list[dict[str, Any]]] = []
        # Per id, the statuses that successive Describe calls report; GONE raises NotFound.
        self.scripts: dict[str, Iterator[str]] = {}
        # Per group, the primary member successive DescribeReplicationGroups calls report.
        self.primaries: dict[str, Iterator[str]] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _scripted(self, resource_id: str) -> str | None:
        script = self.scripts.get(resource_id)
        return next(script) if script else None

    def describe_replication_groups(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("DescribeReplicationGroups", kwargs))
        wanted = kwargs.get("ReplicationGroupId")
        if wanted is None:
            return {"ReplicationGroups": self.groups, "ResponseMetadata": {"RequestId": "r1"}}
        status = self._scripted(wanted)
        if status == GONE or (status is None and wanted not in {g["ReplicationGroupId"] for g in self.groups}):
            raise not_found(
                "ReplicationGroupNotFoundFault", f"Replication group {wanted} not found.", "DescribeReplicationGroups"
            )
        primaries = self.primaries.get(wanted)
        return {"ReplicationGroups": [group(wanted, status or "available", next(primaries) if primaries else None)]}

    def create_replication_group(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("CreateReplicationGroup", kwargs))
        return {"ReplicationGroup": group(kwargs["ReplicationGroupId"], "creating")}

    def delete_replication_group(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("DeleteReplicationGroup", kwargs))
        return {"ReplicationGroup": group(kwargs["ReplicationGroupId"], "deleting")}

    def describe_cache_clusters(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("DescribeCacheClusters", kwargs))
        wanted = kwargs.get("CacheClusterId")
        if wanted is None:
            return {"CacheClusters": self.clusters}
        status = self._scripted(wanted)
        if status == GONE or (status is None and wanted not in {c["CacheClusterId"] for c in self.clusters}):
            raise not_found("CacheClusterNotFound", f"Cache cluster {wanted} not found.", "DescribeCacheClusters")
        found = next((c for c in self.clusters if c["CacheClusterId"] == wanted), cluster(wanted))
        return {"CacheClusters": [{**found, "CacheClusterStatus": status or found["CacheClusterStatus"]}]}

    def create_cache_cluster(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("CreateCacheCluster", kwargs))
        return {"CacheCluster": cluster(kwargs["CacheClusterId"], "creating")}

    def delete_cache_cluster(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("DeleteCacheCluster", kwargs))
        return {"CacheCluster": cluster(kwargs["CacheClusterId"], "deleting")}

    def describe_cache_engine_versions(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("DescribeCacheEngineVersions", kwargs))
        return {
            "CacheEngineVersions": [
                {
                    "Engine": "redis",
                    "EngineVersion": "7.0.15",
                    "CacheParameterGroupFamily": "redis7",
                    "CacheEngineVersionDescription": "Redis 7.0.15",
                },
                {
                    "Engine": "memcached",
                    "EngineVersion": "1.6.18",
                    "CacheParameterGroupFamily": "memcached1.6",
                    "CacheEngineVersionDescription": "memcached 1.6.18",
                },
            ]
        }

    def modify_replication_group(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("ModifyReplicationGroup", kwargs))
        return {"ReplicationGroup": group(kwargs["ReplicationGroupId"], "modifying")}

    def test_failover(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("TestFailover", kwargs))
        return {"ReplicationGroup": group(kwargs["ReplicationGroupId"])}

    def increase_replica_count(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("IncreaseReplicaCount", kwargs))
        return {"ReplicationGroup": group(kwargs["ReplicationGroupId"], "modifying")}

    def decrease_replica_count(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("DecreaseReplicaCount", kwargs))
        return {"ReplicationGroup": group(kwargs["ReplicationGroupId"], "modifying")}

    def modify_cache_cluster(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("ModifyCacheCluster", kwargs))
        return {"CacheCluster": cluster(kwargs["CacheClusterId"], "modifying")}

    def reboot_cache_cluster(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("RebootCacheCluster", kwargs))
        return {"CacheCluster": cluster(kwargs["CacheClusterId"], "rebooting cluster nodes")}

    def describe_snapshots(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("DescribeSnapshots", kwargs))
        wanted = kwargs.get("SnapshotName")
        if wanted is None:
            return {"Snapshots": self.snapshots}
        status = self._scripted(wanted)
        if status == GONE or (status is None and wanted not in {x["SnapshotName"] for x in self.snapshots}):
            raise not_found("SnapshotNotFoundFault", f"Snapshot {wanted} not found.", "DescribeSnapshots")
        found = next((x for x in self.snapshots if x["SnapshotName"] == wanted), snapshot(wanted))
        return {"Snapshots": [{**found, "SnapshotStatus": status or found["SnapshotStatus"]}]}

    def create_snapshot(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("CreateSnapshot", kwargs))
        return {"Snapshot": snapshot(kwargs["SnapshotName"], "creating")}

    def copy_snapshot(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("CopySnapshot", kwargs))
        if kwargs.get("TargetBucket"):
            return {"Snapshot": snapshot(kwargs["SourceSnapshotName"], "copying")}
        return {"Snapshot": snapshot(kwargs["TargetSnapshotName"], "creating")}

    def delete_snapshot(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("DeleteSnapshot", kwargs))
        return {"Snapshot": snapshot(kwargs["SnapshotName"], "deleting")}

    def describe_cache_parameter_groups(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("DescribeCacheParameterGroups", kwargs))
        groups = [
            {"CacheParameterGroupName": "default.redis7", "CacheParameterGroupFamily": "redis7", "Description": "d"},
            {"CacheParameterGroupName": "tuned", "CacheParameterGroupFamily": "redis7", "Description": "sessions"},
        ]
        wanted = kwargs.get("CacheParameterGroupName")
        chosen = [g for g in groups if wanted in (None, g["CacheParameterGroupName"])]
        if not chosen:
            raise not_found("CacheParameterGroupNotFound", f"{wanted} not found.", "DescribeCacheParameterGroups")
        return {"CacheParameterGroups": chosen}

    def describe_cache_parameters(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("DescribeCacheParameters", kwargs))
        if "Marker" not in kwargs:
            by_node_type = [{"ParameterName": "maxmemory", "ChangeType": "immediate"}]
            return {"Parameters": self.parameters[0], "CacheNodeTypeSpecificParameters": by_node_type, "Marker": "2"}
        return {"Parameters": self.parameters[1], "CacheNodeTypeSpecificParameters": []}

    def create_cache_parameter_group(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("CreateCacheParameterGroup", kwargs))
        return {"CacheParameterGroup": {"CacheParameterGroupName": kwargs["CacheParameterGroupName"]}}

    def modify_cache_parameter_group(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("ModifyCacheParameterGroup", kwargs))
        return {"CacheParameterGroupName": kwargs["CacheParameterGroupName"]}

    def reset_cache_parameter_group(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("ResetCacheParameterGroup", kwargs))
        return {"CacheParameterGroupName": kwargs["CacheParameterGroupName"]}

    def delete_cache_parameter_group(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("DeleteCacheParameterGroup", kwargs))
        return {}

    def describe_events(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("DescribeEvents", kwargs))
        if not self.event_pages:
            raise KeyboardInterrupt  # the user's Ctrl-C, delivered while the CLI polls
        return {"Events": self.event_pages.pop(0)}

    def called(self, operation: str) -> list[dict[str, Any]]:
        return [kwargs for name, kwargs in self.calls if name == operation]


@pytest.fixture
def client() -> StubClient:
    return StubClient()


def run(client: object, *args: str, options: list[ConnectionOptions] | None = None) -> Result:
    def factory(connection: ConnectionOptions) -> Any:
        if options is not None:
            options.append(connection)
        return client

    state = CliState(client_factory=factory, poll_interval=0.001)
    # A wide, colourless, non-interactive terminal: one table row per line, no escape codes.
    env = {"COLUMNS": "200", "FORCE_COLOR": None, "TTY_COMPATIBLE": None, "TTY_INTERACTIVE": None}
    return CliRunner().invoke(main, list(args), obj=state, env=env, catch_exceptions=False)


def row(output: str, first_cell: str) -> str:
    """The table line whose first cell is ``first_cell``."""
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip("│┃ ").split("│")]
        if cells and cells[0] == first_cell:
            return line
    raise AssertionError(f"no row for {first_cell!r} in:\n{output}")


# Tables


def test_rg_list_shows_one_row_per_group(client: StubClient) -> None:
    result = run(client, "rg", "list")

    assert result.exit_code == 0, result.output
    line = row(result.stdout, "orders")
    for cell in ("available", "redis 7.0.15", "cache.t4g.micro", "127.0.0.1:21000", "127.0.0.1:21001"):
        assert cell in line
    assert "│ 2 " in line  # members


def test_rg_list_says_so_when_empty(client: StubClient) -> None:
    client.groups = []

    assert run(client, "rg", "list").stdout.strip() == "No replication groups."


def test_rg_describe_shows_a_header_and_its_members(client: StubClient) -> None:
    result = run(client, "rg", "describe", "orders")

    assert result.exit_code == 0, result.output
    assert "orders cache" in result.stdout
    primary = row(result.stdout, "orders-001")
    assert all(cell in primary for cell in ("primary", "us-east-1a", "127.0.0.1:21002", "available"))
    replica = row(result.stdout, "orders-002")
    assert all(cell in replica for cell in ("replica", "us-east-1b", "127.0.0.1:21003"))


def test_cluster_list_asks_for_node_info_and_shows_endpoints(client: StubClient) -> None:
    result = run(client, "cluster", "list")

    assert result.exit_code == 0, result.output
    assert client.called("DescribeCacheClusters") == [{"ShowCacheNodeInfo": True}]
    line = row(result.stdout, "sessions")
    assert all(cell in line for cell in ("memcached 1.6.18", "Multiple", "config 127.0.0.1:21200"))
    assert "127.0.0.1:21100" in row(result.stdout, "orders-001")


def test_cluster_describe_lists_nodes(client: StubClient) -> None:
    result = run(client, "cluster", "describe", "orders-001")

    assert result.exit_code == 0, result.output
    assert "Replication group       orders" in result.stdout
    assert "127.0.0.1:21100" in row(result.stdout, "0001")


def test_engines_lists_versions(client: StubClient) -> None:
    result = run(client, "engines")

    assert "redis7" in row(result.stdout, "redis")
    assert "1.6.18" in row(result.stdout, "memcached")


# JSON


@pytest.mark.parametrize(
    "args",
    [("--json", "rg", "list"), ("rg", "list", "--json")],
    ids=["before-the-verb", "after-the-verb"],
)
def test_json_prints_the_api_result_and_nothing_else(client: StubClient, args: tuple[str, ...]) -> None:
    result = run(client, *args)

    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["ReplicationGroups"][0]["ReplicationGroupId"] == "orders"
    assert body["ReplicationGroups"][0]["ReplicationGroupCreateTime"] == "2026-01-02T03:04:05+00:00"
    assert "ResponseMetadata" not in body
    assert result.stderr == ""


def test_json_of_describe_is_the_describe_result(client: StubClient) -> None:
    body = json.loads(run(client, "--json", "cluster", "describe", "sessions").stdout)

    assert body["CacheClusters"][0]["ConfigurationEndpoint"] == endpoint(21200)


# Errors


def test_api_error_prints_code_and_message_and_exits_1(client: StubClient) -> None:
    result = run(client, "rg", "describe", "nope")

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.strip() == "Error (ReplicationGroupNotFoundFault): Replication group nope not found."


def test_connection_error_exits_2_with_a_hint() -> None:
    class Unreachable(StubClient):
        def describe_replication_groups(self, **kwargs: Any) -> dict[str, Any]:
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1/")

    result = run(Unreachable(), "rg", "list")

    assert result.exit_code == 2
    assert "No cachefleet server found at http://127.0.0.1:1/: start it with ./run.sh" in result.stderr
    assert "Traceback" not in result.output


def test_no_server_json_exits_2_with_a_hint(tmp_path: Path) -> None:
    # The real factory this time: the data dir has no server.json, so no request is ever made.
    result = CliRunner().invoke(main, ["--data-dir", str(tmp_path), "cluster", "list"], catch_exceptions=False)

    assert result.exit_code == 2
    assert result.stderr.strip() == f"No cachefleet server found at {tmp_path}: start it with ./run.sh"


def test_bad_tag_is_a_usage_error(client: StubClient) -> None:
    result = run(client, "rg", "create", "g1", "--description", "d", "--tag", "novalue")

    assert result.exit_code == 64
    assert "expected KEY=VALUE" in result.stderr
    assert client.calls == []


def test_replicas_and_num_cache_clusters_exclude_each_other(client: StubClient) -> None:
    result = run(client, "rg", "create", "g1", "--description", "d", "--replicas", "1", "--num-cache-clusters", "2")

    assert result.exit_code == 64
    assert client.calls == []


# Create, delete and the wait loop


def test_rg_create_sends_the_parameters_and_waits_until_available(client: StubClient) -> None:
    client.scripts["g1"] = iter(["creating", "creating", "available", "available"])

    result = run(
        client,
        "rg", "create", "g1", "--description", "cart", "--replicas", "2",
        "--azs", "us-east-1a,us-east-1b,us-east-1c", "--tag", "team=web", "--tag", "empty=",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert client.called("CreateReplicationGroup") == [
        {
            "ReplicationGroupId": "g1",
            "ReplicationGroupDescription": "cart",
            "Engine": "redis",
            "CacheNodeType": "cache.t4g.micro",
            "NumCacheClusters": 3,
            "PreferredCacheClusterAZs": ["us-east-1a", "us-east-1b", "us-east-1c"],
            "Tags": [{"Key": "team", "Value": "web"}, {"Key": "empty", "Value": ""}],
        }
    ]
    # Off a terminal, progress is one stderr line per change of status; stdout gets the result.
    assert result.stderr.splitlines() == ["Replication group g1: creating", "Replication group g1: available"]
    assert "g1-001" in result.stdout


def test_rg_create_json_waits_quietly_and_prints_the_final_group(client: StubClient) -> None:
    client.scripts["g1"] = iter(["creating", "available", "available"])

    result = run(client, "--json", "rg", "create", "g1", "--description", "cart")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["ReplicationGroup"]["Status"] == "available"
    assert result.stderr == ""


def test_rg_create_no_wait_does_not_poll(client: StubClient) -> None:
    result = run(client, "rg", "create", "g1", "--description", "cart", "--no-wait")

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "Replication group g1 is creating."
    assert client.called("DescribeReplicationGroups") == []


def test_rg_create_that_fails_exits_1(client: StubClient) -> None:
    client.scripts["g1"] = iter(["creating", "create-failed"])

    result = run(client, "rg", "create", "g1", "--description", "cart")

    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == "Error (WaitFailed): Replication group g1 is create-failed"


def test_rg_create_gives_up_after_the_timeout(client: StubClient) -> None:
    client.scripts["g1"] = iter(["creating"] * 1000)

    result = run(client, "rg", "create", "g1", "--description", "cart", "--timeout", "0")

    assert result.exit_code == 3
    assert "Error (Timeout): Replication group g1 is still creating after 0 s" in result.stderr


def test_rg_delete_waits_until_not_found(client: StubClient) -> None:
    client.scripts["orders"] = iter(["deleting", "deleting", GONE])

    result = run(client, "rg", "delete", "orders", "--retain-primary-cluster")

    assert result.exit_code == 0, result.output
    assert client.called("DeleteReplicationGroup") == [{"ReplicationGroupId": "orders", "RetainPrimaryCluster": True}]
    assert len(client.called("DescribeReplicationGroups")) == 3
    assert result.stdout.strip() == "Replication group orders is deleted."
    assert result.stderr.splitlines() == ["Replication group orders: deleting", "Replication group orders: deleted"]


def test_cluster_create_maps_memcached_options(client: StubClient) -> None:
    client.scripts["mc"] = iter(["creating", "available", "available"])

    result = run(
        client,
        "cluster", "create", "mc", "--engine", "memcached", "--num-nodes", "2",
        "--az-mode", "cross-az", "--azs", "us-east-1a,us-east-1b",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert client.called("CreateCacheCluster") == [
        {
            "CacheClusterId": "mc",
            "Engine": "memcached",
            "NumCacheNodes": 2,
            "CacheNodeType": "cache.t4g.micro",
            "AZMode": "cross-az",
            "PreferredAvailabilityZones": ["us-east-1a", "us-east-1b"],
        }
    ]


def test_cluster_create_gives_redis_a_single_az(client: StubClient) -> None:
    result = run(client, "cluster", "create", "r1", "--engine", "redis", "--azs", "us-east-1c", "--no-wait")

    assert result.exit_code == 0, result.output
    assert client.called("CreateCacheCluster")[0]["PreferredAvailabilityZone"] == "us-east-1c"


def test_cluster_delete_waits_until_not_found(client: StubClient) -> None:
    client.scripts["sessions"] = iter(["deleting", GONE])

    result = run(client, "--json", "cluster", "delete", "sessions")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["CacheCluster"]["CacheClusterStatus"] == "deleting"
    assert len(client.called("DescribeCacheClusters")) == 2


def test_wait_for_fails_when_the_resource_vanishes_while_creating() -> None:
    with pytest.raises(WaitFailed, match="disappeared"):
        wait_for(lambda: None, label="x", target="available", timeout=1, interval=0, show=lambda _: None)


def test_wait_for_sleeps_the_interval_between_polls() -> None:
    statuses = iter(["creating", "modifying", "available"])
    sleeps: list[float] = []

    wait_for(
        lambda: next(statuses),
        label="x",
        target="available",
        timeout=10,
        interval=0.25,
        show=lambda _: None,
        sleep=sleeps.append,
    )

    assert sleeps == [0.25, 0.25]


def test_wait_for_times_out_on_the_clock() -> None:
    now = iter([0.0, 5.0, 11.0])

    with pytest.raises(WaitTimedOut, match="still creating after 10 s"):
        wait_for(
            lambda: "creating",
            label="x",
            target="available",
            timeout=10,
            interval=0,
            show=lambda _: None,
            clock=lambda: next(now),
            sleep=lambda _: None,
        )


# Connection


def test_verb_options_override_global_ones(client: StubClient, tmp_path: Path) -> None:
    seen: list[ConnectionOptions] = []

    run(
        client,
        "--data-dir", str(tmp_path / "a"), "--region", "eu-west-1",
        "rg", "list", "--data-dir", str(tmp_path / "b"), "--endpoint-url", "http://h:1", "--profile", "p",
        options=seen,
    )  # fmt: skip

    assert seen == [
        ConnectionOptions(data_dir=tmp_path / "b", endpoint_url="http://h:1", profile="p", region="eu-west-1")
    ]


def write_installation(data_dir: Path) -> None:
    data_dir.mkdir(exist_ok=True)
    (data_dir / "server.json").write_text(json.dumps({"endpoint_url": "http://127.0.0.1:8787", "region": "eu-west-1"}))
    (data_dir / "credentials").write_text("[cachefleet]\naws_access_key_id = AKIAX\naws_secret_access_key = s3cret\n")


def test_resolve_reads_server_json_and_credentials(tmp_path: Path) -> None:
    write_installation(tmp_path)

    assert resolve(ConnectionOptions(data_dir=tmp_path)) == Endpoint(
        url="http://127.0.0.1:8787", region="eu-west-1", access_key_id="AKIAX", secret_access_key="s3cret"
    )
    flags = ConnectionOptions(data_dir=tmp_path, endpoint_url="http://other:1", region="us-west-2")
    assert resolve(flags).url == "http://other:1"
    assert resolve(flags).region == "us-west-2"


def test_resolve_needs_the_profile(tmp_path: Path) -> None:
    write_installation(tmp_path)

    with pytest.raises(ServerNotFound, match=r"No profile \[other\]"):
        resolve(ConnectionOptions(data_dir=tmp_path, profile="other"))


def test_resolve_without_server_json_says_how_to_start_one(tmp_path: Path) -> None:
    with pytest.raises(ServerNotFound, match=r"start it with \./run\.sh"):
        resolve(ConnectionOptions(data_dir=tmp_path))


def test_collect_follows_markers() -> None:
    pages = {None: {"Items": [1, 2], "Marker": "m"}, "m": {"Items": [3]}}
    seen: list[dict[str, Any]] = []

    def call(**params: Any) -> dict[str, Any]:
        seen.append(params)
        return pages[params.get("Marker")]

    assert collect(call, "Items", MaxRecords=2) == [1, 2, 3]
    assert seen == [{"MaxRecords": 2}, {"MaxRecords": 2, "Marker": "m"}]


# Server


def test_server_builds_settings_from_its_flags(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import cachefleet.wiring  # noqa: PLC0415 - only this test needs the whole server importable

    started: list[Settings] = []
    monkeypatch.setattr(cachefleet.wiring, "run_server", started.append)

    result = CliRunner().invoke(
        main,
        [
            "server", "--data-dir", str(tmp_path), "--listen", "127.0.0.1:0", "--region", "eu-west-1",
            "--account-id", "123456789012", "--azs", "eu-west-1a,eu-west-1b", "--port-range", "30000-30099",
        ],
        catch_exceptions=False,
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert started == [
        Settings(
            data_dir=tmp_path,
            listen="127.0.0.1:0",
            region="eu-west-1",
            account_id="123456789012",
            availability_zones=("eu-west-1a", "eu-west-1b"),
            port_range=(30000, 30099),
        )
    ]


def test_server_defaults_come_from_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import cachefleet.wiring  # noqa: PLC0415

    started: list[Settings] = []
    monkeypatch.setattr(cachefleet.wiring, "run_server", started.append)
    monkeypatch.setenv("CACHEFLEET_HOME", str(tmp_path))

    assert CliRunner().invoke(main, ["server"], catch_exceptions=False).exit_code == 0
    assert started == [Settings(data_dir=tmp_path)]


@pytest.mark.parametrize(
    "args",
    [
        ("--listen", "nohost"),
        ("--listen", "h:99999"),
        ("--port-range", "9-1"),
        ("--azs", "a,,b"),
        ("--account-id", "1"),
    ],
)
def test_server_rejects_malformed_flags(monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]) -> None:
    import cachefleet.wiring  # noqa: PLC0415

    monkeypatch.setattr(cachefleet.wiring, "run_server", lambda _settings: pytest.fail("must not start"))

    result = CliRunner().invoke(main, ["server", *args], catch_exceptions=False)

    assert result.exit_code == 64
    assert "Invalid value" in result.stderr


# Rendering


def text(renderable: Any) -> str:
    console = Console(width=200, color_system=None, record=True)
    console.print(renderable)
    return console.export_text()


def test_when_is_utc_iso_to_the_second() -> None:
    assert render.when(datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=UTC)) == "2026-01-02T03:04:05Z"
    assert render.when(datetime(2026, 1, 2, 4, 4, 5, tzinfo=timezone(timedelta(hours=1)))) == "2026-01-02T03:04:05Z"
    assert render.when(None) == "-"


def test_snapshots_table_and_view() -> None:
    table = text(render.snapshots_table([snapshot(), snapshot("auto", SnapshotSource="automatic")]))
    line = row(table, "nightly")
    cells = ("available", "manual", "rg orders", "redis 7.0.15", "cache.r7g.large", "12 MB", "2026-01-02T03:04:05Z")
    assert all(cell in line for cell in cells)
    assert "automatic" in row(table, "auto")

    view = text(render.snapshot_view(snapshot()))
    assert "Taken on            orders-002" in view
    assert "AZs                 us-east-1a, us-east-1b" in view
    assert "Replicas            1" in view


def test_parameter_group_view_lists_parameters_and_those_set_by_the_node_type() -> None:
    group = {"CacheParameterGroupName": "tuned", "CacheParameterGroupFamily": "redis7", "Description": "sessions"}
    parameters = [parameter("databases", "32", "user", "requires-reboot"), parameter("timeout", "0")]

    view = text(render.parameter_group_view(group, parameters, [{"ParameterName": "maxmemory"}]))

    assert "Family           redis7" in view
    assert all(cell in row(view, "databases") for cell in ("32", "user", "requires-reboot", "yes", "1-1200000"))
    assert "system" in row(view, "timeout")
    assert view.rstrip().endswith("Set by the node type: maxmemory")


def test_events_read_oldest_first() -> None:
    newest_first = [event(3, "third"), event(2, "second b"), event(2, "second a"), event(1, "first")]

    assert [e["Message"] for e in render.chronological(newest_first)] == ["first", "second a", "second b", "third"]
    table = text(render.events_table(newest_first))
    assert table.index("first") < table.index("second a") < table.index("third")
    assert render.event_line(event(1, "Failover done")) == (
        "2026-01-02T03:01:00Z  replication-group orders" + " " * 16 + "  Failover done"
    )
    assert json.loads(render.to_json_line(event(1, "x")))["Date"] == "2026-01-02T03:01:00+00:00"


def test_group_view_shows_its_parameter_group_and_snapshot_schedule(client: StubClient) -> None:
    parameters = {"CacheParameterGroupName": "tuned", "ParameterApplyStatus": "pending-reboot"}
    client.clusters = [cluster("orders-001", ReplicationGroupId="orders", CacheParameterGroup=parameters)]
    client.groups = [{**group(), "SnapshotRetentionLimit": 3, "SnapshotWindow": "04:00-05:00"}]

    view = group_view(client, client.groups[0])

    assert "Parameter group      tuned (pending-reboot)" in text(view)
    assert "Automatic snapshots  daily in 04:00-05:00 UTC, kept 3 days" in text(view)


# Verbs, aliases and requests


def test_request_leaves_out_what_was_not_given_but_keeps_false() -> None:
    assert request(A=None, B=[], C=(), D=False, E=0, F="x") == {"D": False, "E": 0, "F": "x"}


def test_show_is_describe_and_old_spellings_still_work(client: StubClient) -> None:
    assert run(client, "rg", "show", "orders").stdout == run(client, "rg", "describe", "orders").stdout
    assert run(client, "engines").stdout == run(client, "engine", "list").stdout
    assert run(client, "replication-group", "list").stdout == run(client, "rg", "list").stdout
    assert "set" in run(client, "pg", "--help").stdout.split("Aliases:")[1]


def test_multi_az_turns_automatic_failover_on_and_a_restore_keeps_the_snapshots_node_type(client: StubClient) -> None:
    run(client, "rg", "create", "g1", "--description", "d", "--replicas", "1", "--multi-az", "--no-wait")
    run(client, "rg", "create", "g2", "--description", "d", "--snapshot", "nightly", "--no-wait")
    run(client, "rg", "create", "g3", "--description", "d", "--multi-az", "--no-automatic-failover", "--no-wait")

    first, second, third = client.called("CreateReplicationGroup")
    assert (first["MultiAZEnabled"], first["AutomaticFailoverEnabled"]) == (True, True)
    assert "CacheNodeType" not in second
    assert second["SnapshotName"] == "nightly"
    assert (third["MultiAZEnabled"], third["AutomaticFailoverEnabled"]) == (True, False)


def test_rg_modify_sends_only_what_was_given_and_waits(client: StubClient) -> None:
    client.scripts["orders"] = iter(["modifying", "available", "available"])

    result = run(client, "rg", "modify", "orders", "--parameter-group", "tuned", "--no-automatic-failover")

    assert result.exit_code == 0, result.output
    assert client.called("ModifyReplicationGroup") == [
        {"ReplicationGroupId": "orders", "AutomaticFailoverEnabled": False, "CacheParameterGroupName": "tuned"}
    ]
    assert result.stderr.splitlines() == ["Replication group orders: modifying", "Replication group orders: available"]


def test_nothing_to_modify_is_a_usage_error(client: StubClient) -> None:
    for noun in ("rg", "cluster"):
        result = run(client, noun, "modify", "orders")
        assert result.exit_code == 64
        assert "nothing to change" in result.stderr
    assert client.calls == []


def test_add_replicas_counts_from_the_group_and_places_new_ones(client: StubClient) -> None:
    run(client, "rg", "add-replicas", "orders", "--count", "2", "--no-wait")
    run(client, "rg", "add-replicas", "orders", "--azs", "us-east-1c", "--no-wait")

    plain, placed = client.called("IncreaseReplicaCount")
    assert plain == {"ReplicationGroupId": "orders", "ApplyImmediately": True, "NewReplicaCount": 3}
    assert placed["ReplicaConfiguration"] == [
        {
            "NodeGroupId": "0001",
            "NewReplicaCount": 2,
            # The whole node group's AZs, the primary's first, then the new replica's.
            "PreferredAvailabilityZones": ["us-east-1a", "us-east-1b", "us-east-1c"],
        }
    ]
    assert run(client, "rg", "add-replicas", "orders", "--count", "2", "--azs", "us-east-1c").exit_code == 64


def test_remove_replicas_by_name_or_by_count(client: StubClient) -> None:
    run(client, "rg", "remove-replicas", "orders", "orders-002", "--no-wait")
    run(client, "rg", "remove-replicas", "orders", "--no-wait")

    named, counted = client.called("DecreaseReplicaCount")
    assert named["ReplicasToRemove"] == ["orders-002"]
    assert counted["NewReplicaCount"] == 0
    assert run(client, "rg", "remove-replicas", "orders", "orders-002", "--count", "1").exit_code == 64


def test_failover_waits_until_another_member_is_primary(client: StubClient) -> None:
    client.primaries["orders"] = iter(["orders-001", "orders-001", "orders-001", "orders-002", "orders-002"])

    result = run(client, "rg", "failover", "orders")

    assert result.exit_code == 0, result.output
    assert client.called("TestFailover") == [{"ReplicationGroupId": "orders", "NodeGroupId": "0001"}]
    assert result.stderr.splitlines() == [
        "Replication group orders: failing over from orders-001",
        "Replication group orders: available",
    ]
    assert result.stdout.strip().endswith("orders-002 is the primary now (was orders-001).")


def test_endpoint_prints_host_port_or_a_url(client: StubClient) -> None:
    assert run(client, "rg", "endpoint", "orders").stdout == "127.0.0.1:21000\n"
    assert run(client, "rg", "endpoint", "orders", "--reader", "--url").stdout == "redis://127.0.0.1:21001\n"
    assert json.loads(run(client, "--json", "rg", "endpoint", "orders").stdout) == {"PrimaryEndpoint": endpoint(21000)}


def test_endpoint_of_a_group_still_creating_says_so() -> None:
    class Creating(StubClient):
        def describe_replication_groups(self, **kwargs: Any) -> dict[str, Any]:
            fresh = group(kwargs["ReplicationGroupId"], "creating")
            del fresh["NodeGroups"][0]["PrimaryEndpoint"]
            return {"ReplicationGroups": [fresh]}

    result = run(Creating(), "rg", "endpoint", "orders")

    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "Error (NotReady): Replication group orders has no PrimaryEndpoint yet (it is creating)"
    )


def test_cluster_reboot_restarts_every_node_unless_told_which(client: StubClient) -> None:
    client.scripts["sessions"] = iter(["available", "rebooting cluster nodes", "available", "available"])

    result = run(client, "cluster", "reboot", "sessions")
    run(client, "cluster", "reboot", "sessions", "--node", "0002", "--no-wait")

    assert result.exit_code == 0, result.output
    everything, one = client.called("RebootCacheCluster")
    assert everything == {"CacheClusterId": "sessions", "CacheNodeIdsToReboot": ["0001"]}
    assert one == {"CacheClusterId": "sessions", "CacheNodeIdsToReboot": ["0002"]}


def test_cluster_modify_maps_its_options(client: StubClient) -> None:
    run(client, "cluster", "modify", "sessions", "--num-nodes", "3", "--new-azs", "us-east-1c",
        "--snapshot-retention-limit", "0", "--apply-immediately", "--no-wait")  # fmt: skip

    assert client.called("ModifyCacheCluster") == [
        {
            "CacheClusterId": "sessions",
            "NumCacheNodes": 3,
            "NewAvailabilityZones": ["us-east-1c"],
            "SnapshotRetentionLimit": 0,
            "ApplyImmediately": True,
        }
    ]


# Snapshots


def test_snapshot_create_names_one_source(client: StubClient) -> None:
    assert run(client, "snapshot", "create", "s", "--no-wait").exit_code == 64
    assert run(client, "snapshot", "create", "s", "--rg", "a", "--cluster", "b", "--no-wait").exit_code == 64
    client.scripts["s"] = iter(["creating", "available", "available"])

    result = run(client, "snapshot", "create", "s", "--cluster", "orders-002", "--tag", "k=v")

    assert result.exit_code == 0, result.output
    assert client.called("CreateSnapshot") == [
        {"SnapshotName": "s", "CacheClusterId": "orders-002", "Tags": [{"Key": "k", "Value": "v"}]}
    ]
    assert "Snapshot" in result.stdout
    assert "orders-002" in result.stdout


def test_snapshot_export_waits_for_the_source_to_be_available_again(client: StubClient) -> None:
    client.scripts["nightly"] = iter(["copying", "available"])

    result = run(client, "snapshot", "export", "nightly", "--bucket", "backups")

    assert result.exit_code == 0, result.output
    assert client.called("CopySnapshot") == [
        {"SourceSnapshotName": "nightly", "TargetSnapshotName": "nightly", "TargetBucket": "backups"}
    ]
    assert result.stdout.strip() == "Snapshot nightly is exported to s3://backups/nightly.rdb."


def test_snapshot_copy_waits_for_the_target_and_delete_until_gone(client: StubClient) -> None:
    client.scripts["copy"] = iter(["creating", "available", "available"])
    client.scripts["nightly"] = iter(["deleting", GONE])

    copied = run(client, "--json", "snapshot", "copy", "nightly", "copy")
    deleted = run(client, "snapshot", "delete", "nightly")

    assert json.loads(copied.stdout)["Snapshot"]["SnapshotName"] == "copy"
    assert deleted.stdout.strip() == "Snapshot nightly is deleted."


def test_restore_takes_the_snapshots_shape_unless_told_otherwise() -> None:
    source = snapshot()

    same = group_restore(source, description=None, replicas=None, automatic_failover=None, multi_az=None, azs=None)
    assert same == {
        "ReplicationGroupDescription": "orders cache",
        "NumCacheClusters": 2,
        "PreferredCacheClusterAZs": ["us-east-1a", "us-east-1b"],
        "AutomaticFailoverEnabled": True,
    }
    smaller = group_restore(source, description="copy", replicas=0, automatic_failover=None, multi_az=None, azs=None)
    assert smaller == {"ReplicationGroupDescription": "copy", "NumCacheClusters": 1, "AutomaticFailoverEnabled": False}
    multi = group_restore(source, description=None, replicas=2, automatic_failover=None, multi_az=True, azs=None)
    assert (multi["NumCacheClusters"], multi["AutomaticFailoverEnabled"], multi["MultiAZEnabled"]) == (3, True, True)


def test_restore_into_a_cluster_or_a_group(client: StubClient) -> None:
    solo = snapshot("solo", CacheClusterId="one")
    del solo["ReplicationGroupId"]
    client.snapshots = [snapshot(), solo]

    run(client, "snapshot", "restore", "solo", "back", "--no-wait")
    run(client, "snapshot", "restore", "nightly", "again", "--node-type", "cache.t4g.small", "--no-wait")
    run(client, "snapshot", "restore", "nightly", "flat", "--into", "cluster", "--azs", "us-east-1c", "--no-wait")

    assert client.called("CreateCacheCluster") == [
        {"CacheClusterId": "back", "Engine": "redis", "SnapshotName": "solo"},
        {"CacheClusterId": "flat", "Engine": "redis", "PreferredAvailabilityZone": "us-east-1c",
         "SnapshotName": "nightly"},
    ]  # fmt: skip
    (again,) = client.called("CreateReplicationGroup")
    assert (again["ReplicationGroupId"], again["SnapshotName"], again["CacheNodeType"]) == (
        "again", "nightly", "cache.t4g.small",
    )  # fmt: skip
    assert run(client, "snapshot", "restore", "nightly", "x", "--into", "cluster", "--replicas", "1").exit_code == 64


# Parameter groups


def test_param_group_describe_reads_every_page(client: StubClient) -> None:
    result = run(client, "--json", "param-group", "describe", "tuned", "--source", "user")

    body = json.loads(result.stdout)
    assert [p["ParameterName"] for p in body["Parameters"]] == ["maxmemory-policy", "databases", "timeout"]
    assert body["CacheNodeTypeSpecificParameters"] == [{"ParameterName": "maxmemory", "ChangeType": "immediate"}]
    assert body["CacheParameterGroups"][0]["Description"] == "sessions"
    assert client.called("DescribeCacheParameters") == [
        {"CacheParameterGroupName": "tuned", "Source": "user"},
        {"CacheParameterGroupName": "tuned", "Source": "user", "Marker": "2"},
    ]


def test_param_group_set_says_which_changes_wait_for_a_reboot(client: StubClient) -> None:
    result = run(client, "pg", "set", "tuned", "databases=32", "maxmemory-policy=allkeys-lru")

    assert result.exit_code == 0, result.output
    assert client.called("ModifyCacheParameterGroup") == [
        {
            "CacheParameterGroupName": "tuned",
            "ParameterNameValues": [
                {"ParameterName": "databases", "ParameterValue": "32"},
                {"ParameterName": "maxmemory-policy", "ParameterValue": "allkeys-lru"},
            ],
        }
    ]
    assert result.stdout.strip() == "Parameter group tuned: set databases, maxmemory-policy."
    assert result.stderr.strip() == (
        "databases take effect when the nodes restart: cachefleet param-group apply tuned"
    )
    assert run(client, "pg", "set", "tuned", "novalue").exit_code == 64


def test_param_group_reset_names_or_all(client: StubClient) -> None:
    run(client, "param-group", "reset", "tuned", "databases")
    run(client, "param-group", "reset", "tuned", "--all")

    assert client.called("ResetCacheParameterGroup") == [
        {"CacheParameterGroupName": "tuned", "ParameterNameValues": [{"ParameterName": "databases"}]},
        {"CacheParameterGroupName": "tuned", "ResetAllParameters": True},
    ]
    assert run(client, "param-group", "reset", "tuned").exit_code == 64
    assert run(client, "param-group", "reset", "tuned", "databases", "--all").exit_code == 64


def test_param_group_create_list_delete(client: StubClient) -> None:
    created = run(client, "param-group", "create", "t2", "--family", "redis7", "--description", "d")
    listing = run(client, "param-group", "list")
    deleted = run(client, "param-group", "delete", "t2")

    assert created.stdout.strip() == "Parameter group t2 (redis7) is created."
    assert "sessions" in row(listing.stdout, "tuned")
    assert deleted.stdout.strip() == "Parameter group t2 is deleted."


def test_apply_reboots_the_groups_users_one_at_a_time_primaries_last(client: StubClient) -> None:
    uses = {"CacheParameterGroupName": "tuned", "ParameterApplyStatus": "pending-reboot"}
    client.clusters = [
        cluster("orders-001", ReplicationGroupId="orders", CacheParameterGroup=uses),
        cluster("orders-002", ReplicationGroupId="orders", CacheParameterGroup=uses),
        cluster("other", CacheParameterGroup={"CacheParameterGroupName": "default.redis7"}),
    ]

    result = run(client, "param-group", "apply", "tuned")

    assert result.exit_code == 0, result.output
    reboots = client.called("RebootCacheCluster")
    assert reboots == [
        {"CacheClusterId": "orders-002", "CacheNodeIdsToReboot": ["0001"]},
        {"CacheClusterId": "orders-001", "CacheNodeIdsToReboot": ["0001"]},
    ]
    assert "orders-002" in result.stdout
    assert run(client, "param-group", "apply", "nope").exit_code == 1


def test_rolling_order_puts_primaries_last() -> None:
    clusters = [{"CacheClusterId": name} for name in ("a-001", "a-002", "solo", "b-001")]

    ordered = rolling_order(clusters, ["a-001", None, "b-001"])

    assert [c["CacheClusterId"] for c in ordered] == ["a-002", "solo", "a-001", "b-001"]


# Events


def test_event_list_prints_oldest_first_and_json_as_the_api_answers(client: StubClient) -> None:
    client.event_pages = [[event(2, "second"), event(1, "first")]] * 2

    table = run(client, "event", "list", "--source-type", "replication-group", "--source-id", "orders").stdout
    body = json.loads(run(client, "--json", "events", "--duration", "30").stdout)

    assert table.index("first") < table.index("second")
    assert [e["Message"] for e in body["Events"]] == ["second", "first"]
    assert client.called("DescribeEvents") == [
        {"SourceType": "replication-group", "SourceIdentifier": "orders"},
        {"Duration": 30},
    ]


def test_follow_prints_each_new_event_once_until_ctrl_c(client: StubClient) -> None:
    client.event_pages = [
        [event(2, "b"), event(1, "a")],
        [event(2, "b")],  # StartTime is inclusive: the newest event seen comes back
        [event(3, "d"), event(3, "c"), event(2, "b")],
    ]

    result = run(client, "events", "--follow", "--source-type", "replication-group", "--source-id", "orders")

    assert result.exit_code == 0, result.output  # Ctrl-C ends --follow
    assert [line.split()[-1] for line in result.stdout.splitlines()] == ["a", "b", "c", "d"]
    polls = client.called("DescribeEvents")
    assert polls[0] == {"SourceType": "replication-group", "SourceIdentifier": "orders"}
    assert polls[1] == {**polls[0], "StartTime": datetime(2026, 1, 2, 3, 2, tzinfo=UTC)}
    assert polls[3] == {**polls[0], "StartTime": datetime(2026, 1, 2, 3, 3, tzinfo=UTC)}


def test_follow_keeps_the_window_until_a_first_event_and_prints_json_lines(client: StubClient) -> None:
    client.event_pages = [[], [event(1, "a")]]

    result = run(client, "--json", "events", "--follow", "--duration", "5")

    assert [json.loads(line)["Message"] for line in result.stdout.splitlines()] == ["a"]
    assert client.called("DescribeEvents")[:2] == [{"Duration": 5}, {"Duration": 5}]


def test_follow_takes_no_end_time_and_times_are_iso(client: StubClient) -> None:
    assert run(client, "events", "--follow", "--end-time", "2026-01-02T03:00:00Z").exit_code == 64
    assert run(client, "events", "--start-time", "yesterday").exit_code == 64
    client.event_pages = [[]]

    run(client, "events", "--start-time", "2026-01-02 03:00")

    assert client.called("DescribeEvents") == [{"StartTime": datetime(2026, 1, 2, 3, 0, tzinfo=UTC)}]


# Exit statuses and completion


def test_ctrl_c_while_waiting_exits_130_and_says_the_work_goes_on(client: StubClient) -> None:
    def interrupted() -> Iterator[str]:
        yield "creating"
        raise KeyboardInterrupt

    client.scripts["g1"] = interrupted()

    result = run(client, "rg", "create", "g1", "--description", "d")

    assert result.exit_code == 130
    assert "what was asked of the server goes on" in result.stderr


def test_completion_prints_each_shells_script() -> None:
    for shell, marker in (("bash", "_cachefleet_completion"), ("zsh", "#compdef cachefleet"), ("fish", "complete")):
        result = CliRunner().invoke(main, ["completion", shell])
        assert result.exit_code == 0
        assert marker in result.stdout
        assert "_CACHEFLEET_COMPLETE" in result.stdout
    assert CliRunner().invoke(main, ["completion", "tcsh"]).exit_code == 64


def test_completion_of_ids_asks_the_server_and_never_fails(client: StubClient) -> None:
    ctx = click.Context(main, obj=CliState(client_factory=lambda _: client))
    param = click.Argument(["x"])

    assert [item.value for item in complete.groups(ctx, param, "or")] == ["orders"]
    assert [item.value for item in complete.snapshots(ctx, param, "")] == ["nightly"]
    assert [item.value for item in complete.parameter_groups(ctx, param, "t")] == ["tuned"]

    def unreachable(_: ConnectionOptions) -> Any:
        raise ServerNotFound("no server")

    offline = click.Context(main, obj=CliState(client_factory=unreachable))
    assert complete.clusters(offline, param, "") == []


def test_event_source_types_are_the_service_models() -> None:
    import botocore.session  # noqa: PLC0415 - only this test needs the model

    model = botocore.session.get_session().get_service_model("elasticache")
    assert tuple(model.shape_for("SourceType").enum) == SOURCE_TYPES
