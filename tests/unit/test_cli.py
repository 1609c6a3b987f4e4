"""The ``cachefleet`` CLI against a stub ElastiCache client, injected through ``CliState``.

End-to-end runs against a real server live with the integration tests; here we check what the CLI
itself decides: the calls it makes, its tables, its JSON, its errors and its wait loop.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from click.testing import CliRunner, Result

from cachefleet.cli.connection import ConnectionOptions, Endpoint, collect, resolve
from cachefleet.cli.context import CliState
from cachefleet.cli.errors import ServerNotFound, WaitFailed, WaitTimedOut
from cachefleet.cli.main import main
from cachefleet.cli.waiting import wait_for
from cachefleet.settings import Settings

GONE = "<gone>"
CREATED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def endpoint(port: int) -> dict[str, Any]:
    return {"Address": "127.0.0.1", "Port": port}


def not_found(code: str, message: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message, "Type": "Sender"}}, operation)


def group(group_id: str = "orders", status: str = "available") -> dict[str, Any]:
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
                        "CurrentRole": "primary",
                    },
                    {
                        "CacheClusterId": f"{group_id}-002",
                        "CacheNodeId": "0001",
                        "ReadEndpoint": endpoint(21003),
                        "PreferredAvailabilityZone": "us-east-1b",
                        "CurrentRole": "replica",
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


class StubClient:
    """Answers like boto3's client from canned data; status scripts drive the wait loops."""

    def __init__(self) -> None:
        self.groups = [group()]
        self.clusters = [
            cluster("orders-001", ReplicationGroupId="orders"),
            cluster("orders-002", ReplicationGroupId="orders"),
            MEMCACHED,
        ]
        # Per id, the statuses that successive Describe calls report; GONE raises NotFound.
        self.scripts: dict[str, Iterator[str]] = {}
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
        return {"ReplicationGroups": [group(wanted, status or "available")]}

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
