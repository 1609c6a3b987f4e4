"""The `cachefleet` CLI against a real server: every verb, as a person or a script uses it.

One server for the module and as few real groups as the verbs need: `shop` (three nodes, Multi-AZ)
serves the read-only verbs, snapshots, parameter groups, replicas and the failover; its snapshot is
restored into a one-node group (then deleted with a final snapshot) and into a standalone cluster
(modified, rebooted, deleted). Most verbs run in-process through click's runner with the real boto3
client; what only a process shows (exit statuses, progress lines, --follow and Ctrl-C, completion)
runs `python -m cachefleet`.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner, Result
from tests.support.server import ServerProcess

from cachefleet.cli.context import CliState
from cachefleet.cli.main import main
from cachefleet.engines.installed import require_binaries

pytestmark = pytest.mark.integration

REDIS_CLI = require_binaries("redis-cli")["redis-cli"]
FOLLOW_TIMEOUT = 30.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("cli") / "cf")
    try:
        process.start()
        yield process
    finally:
        process.cleanup()


def cli(server: ServerProcess, *args: str) -> Result:
    """One verb in-process, with the real client factory reading the server's data dir."""
    state = CliState(poll_interval=0.1)
    env = {"COLUMNS": "200"}
    return CliRunner().invoke(main, ["--data-dir", str(server.data_dir), *args], obj=state, env=env)


def ok(server: ServerProcess, *args: str) -> Result:
    result = cli(server, *args)
    assert result.exit_code == 0, f"{args}: {result.stderr}{result.exception!r}"
    return result


def as_json(server: ServerProcess, *args: str) -> Any:
    return json.loads(ok(server, "--json", *args).stdout)


def run(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """One verb as a user runs it: its own process, its exit status, its stderr."""
    return subprocess.run(
        [sys.executable, "-m", "cachefleet", "--data-dir", str(server.data_dir), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def redis_cli(url: str, *command: str) -> str:
    done = subprocess.run([REDIS_CLI, "-u", url, *command], capture_output=True, text=True, timeout=10, check=True)
    return done.stdout.strip()


def connect(server: ServerProcess, group_id: str) -> redis.Redis:
    address, port = ok(server, "rg", "endpoint", group_id).stdout.strip().rsplit(":", 1)
    return redis.Redis(address, int(port), decode_responses=True, retry=None)


def primary_of(server: ServerProcess, group_id: str) -> str:
    members = as_json(server, "rg", "describe", group_id)["ReplicationGroups"][0]["NodeGroups"][0]["NodeGroupMembers"]
    return str(next(m["CacheClusterId"] for m in members if m["CurrentRole"] == "primary"))


@pytest.fixture(scope="module")
def shop(server: ServerProcess) -> dict[str, Any]:
    """`rg create` of a Multi-AZ group with two replicas; the CLI waits and prints it available."""
    created = run(server, "--json", "rg", "create", "shop", "--description", "shop cache", "--replicas", "2",
                  "--multi-az", "--tag", "team=web")  # fmt: skip
    assert created.returncode == 0, created.stderr
    group: dict[str, Any] = json.loads(created.stdout)["ReplicationGroup"]
    with connect(server, "shop") as app:
        app.set("greeting", "hello")
    return group


@pytest.fixture(scope="module")
def snap(server: ServerProcess, shop: dict[str, Any]) -> dict[str, Any]:
    """`snapshot create` of shop (with its data), waited for until stored."""
    snapshot: dict[str, Any] = as_json(server, "snapshot", "create", "snap", "--rg", "shop")["Snapshot"]
    return snapshot


# Replication groups


def test_rg_create_waits_and_prints_the_available_group(server: ServerProcess, shop: dict[str, Any]) -> None:
    assert shop["Status"] == "available"
    assert (shop["MultiAZ"], shop["AutomaticFailover"]) == ("enabled", "enabled")
    assert len(shop["MemberClusters"]) == 3

    duplicate = run(server, "rg", "create", "shop", "--description", "again")
    assert duplicate.returncode == 1
    assert "Error (ReplicationGroupAlreadyExists)" in duplicate.stderr
    assert "Traceback" not in duplicate.stderr


def test_rg_list_describe_and_show(server: ServerProcess, shop: dict[str, Any]) -> None:
    listing = ok(server, "rg", "list").stdout
    assert "shop" in listing
    assert "available" in listing
    described = ok(server, "rg", "describe", "shop").stdout
    assert "shop cache" in described
    assert described.count("│ replica ") == 2
    assert ok(server, "rg", "show", "shop").stdout == described
    members = as_json(server, "rg", "describe", "shop")["ReplicationGroups"][0]["NodeGroups"][0]["NodeGroupMembers"]
    assert sorted(m["CurrentRole"] for m in members) == ["primary", "replica", "replica"]


def test_rg_endpoint_feeds_redis_cli(server: ServerProcess, shop: dict[str, Any]) -> None:
    primary = ok(server, "rg", "endpoint", "shop", "--url").stdout.strip()
    reader = ok(server, "rg", "endpoint", "shop", "--reader", "--url").stdout.strip()
    assert primary.startswith("redis://127.0.0.1:")
    assert redis_cli(primary, "SET", "via", "cli") == "OK"
    assert redis_cli(reader, "GET", "greeting") == "hello"  # written by the fixture, long replicated
    assert "role:slave" in redis_cli(reader, "INFO", "replication")
    assert as_json(server, "rg", "endpoint", "shop")["PrimaryEndpoint"]["Port"] == int(primary.rsplit(":", 1)[1])


def test_rg_modify_changes_the_description(server: ServerProcess, shop: dict[str, Any]) -> None:
    group = as_json(server, "rg", "modify", "shop", "--description", "the shop's cache")["ReplicationGroup"]
    assert (group["Description"], group["Status"]) == ("the shop's cache", "available")
    nothing = cli(server, "rg", "modify", "shop")
    assert nothing.exit_code == 64
    assert "nothing to change" in nothing.stderr


def test_rg_add_and_remove_replicas(server: ServerProcess, shop: dict[str, Any]) -> None:
    grown = as_json(server, "rg", "add-replicas", "shop", "--azs", "us-east-1c")["ReplicationGroup"]
    assert grown["MemberClusters"] == ["shop-001", "shop-002", "shop-003", "shop-004"]
    added = next(m for m in grown["NodeGroups"][0]["NodeGroupMembers"] if m["CacheClusterId"] == "shop-004")
    assert added["PreferredAvailabilityZone"] == "us-east-1c"
    with connect(server, "shop") as app:
        app.set("after", "growth")
    shrunk = as_json(server, "rg", "remove-replicas", "shop", "shop-004")["ReplicationGroup"]
    assert shrunk["MemberClusters"] == ["shop-001", "shop-002", "shop-003"]
    assert shrunk["Status"] == "available"


def test_rg_failover_while_event_list_follows(server: ServerProcess, shop: dict[str, Any]) -> None:
    before = primary_of(server, "shop")
    argv = [sys.executable, "-m", "cachefleet", "--data-dir", str(server.data_dir), "events", "--follow",
            "--source-type", "replication-group", "--source-id", "shop"]  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as follower:
        stdout, stderr = follower.stdout, follower.stderr
        assert stdout is not None
        assert stderr is not None
        threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True).start()
        try:
            assert "Replication group shop created" in lines.get(timeout=FOLLOW_TIMEOUT)  # the window's events
            failover = run(server, "rg", "failover", "shop")
            assert failover.returncode == 0, failover.stderr
            after = failover.stdout.strip().splitlines()[-1]
            assert after.endswith(f"is the primary now (was {before}).")
            assert after.split()[0] != before
            # Progress on stderr, off a terminal one line per change, until the new primary serves.
            assert f"Replication group shop: failing over from {before}" in failover.stderr
            wanted = f"Failover from primary node {before} to replica node {after.split()[0]} completed"
            seen: list[str] = []
            while not any(wanted in line for line in seen):
                seen.append(lines.get(timeout=FOLLOW_TIMEOUT))
            assert any("Test Failover API called for node group 0001" in line for line in seen)
            follower.send_signal(signal.SIGINT)
            assert follower.wait(FOLLOW_TIMEOUT) == 0  # Ctrl-C is how --follow ends
            assert "Traceback" not in stderr.read()
        finally:
            if follower.poll() is None:
                follower.kill()
    with connect(server, "shop") as app:
        assert app.get("greeting") == "hello"


def test_event_list_filters_and_json(server: ServerProcess, shop: dict[str, Any]) -> None:
    events = as_json(server, "event", "list", "--source-type", "replication-group", "--source-id", "shop",
                     "--duration", "60")["Events"]  # fmt: skip
    assert "Replication group shop created" in [e["Message"] for e in events]
    assert {e["SourceIdentifier"] for e in events} == {"shop"}
    table = ok(server, "events", "--source-type", "replication-group", "--source-id", "shop").stdout
    assert "Replication group shop created" in table
    bad = cli(server, "event", "list", "--source-id", "shop")
    assert bad.exit_code == 1
    assert "Error (InvalidParameterCombination)" in bad.stderr


# Snapshots


def test_snapshot_create_list_describe(server: ServerProcess, snap: dict[str, Any]) -> None:
    assert (snap["SnapshotStatus"], snap["ReplicationGroupId"]) == ("available", "shop")
    listing = ok(server, "snapshot", "list", "--rg", "shop").stdout
    assert "snap" in listing
    assert "rg shop" in listing
    described = ok(server, "snapshot", "describe", "snap").stdout
    azs = next(line for line in described.splitlines() if line.startswith("AZs"))
    assert sorted(azs.split(maxsplit=1)[1].strip().split(", ")) == ["us-east-1a", "us-east-1b", "us-east-1c"]
    body = as_json(server, "snapshot", "show", "snap")["Snapshots"][0]
    assert body["NodeSnapshots"][0]["NodeGroupConfiguration"]["ReplicaCount"] == 2


def test_snapshot_copy_export_delete(server: ServerProcess, snap: dict[str, Any]) -> None:
    copied = as_json(server, "snapshot", "copy", "snap", "snap-copy")["Snapshot"]
    assert (copied["SnapshotName"], copied["SnapshotStatus"]) == ("snap-copy", "available")

    bucket = server.data_dir / "exports" / "backups"
    bucket.mkdir(parents=True)
    exported = ok(server, "snapshot", "export", "snap", "--bucket", "backups", "--key", "shop-today")
    assert exported.stdout.strip() == "Snapshot snap is exported to s3://backups/shop-today.rdb."
    # Exports are sealed (docs/api-security.md); the installation's owner opens one with the CLI.
    assert (bucket / "shop-today.rdb").read_bytes().startswith(b"CFSEAL1")
    opened = server.data_dir.parent / "shop-today.rdb"
    ok(server, "kms", "decrypt-file", str(bucket / "shop-today.rdb"), str(opened))
    assert opened.read_bytes().startswith(b"REDIS")
    missing = cli(server, "snapshot", "export", "snap", "--bucket", "nowhere")
    assert missing.exit_code == 1
    assert "InvalidParameterValue" in missing.stderr

    deleted = ok(server, "snapshot", "delete", "snap-copy")
    assert deleted.stdout.strip() == "Snapshot snap-copy is deleted."
    assert "snap-copy" not in ok(server, "snapshot", "list").stdout


def test_snapshot_restore_into_a_group_then_delete_it_with_a_final_snapshot(
    server: ServerProcess, snap: dict[str, Any]
) -> None:
    restored = as_json(server, "snapshot", "restore", "snap", "restored", "--replicas", "0")["ReplicationGroup"]
    assert (restored["Status"], restored["MemberClusters"]) == ("available", ["restored-001"])
    with connect(server, "restored") as app:
        assert app.get("greeting") == "hello"

    deleted = run(server, "rg", "delete", "restored", "--final-snapshot", "restored-final")
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.strip() == "Replication group restored is deleted."
    assert "Replication group restored: deleted" in deleted.stderr.splitlines()
    final = as_json(server, "snapshot", "describe", "restored-final")["Snapshots"][0]
    assert final["SnapshotStatus"] == "available"
    ok(server, "snapshot", "delete", "restored-final")


def test_snapshot_restore_into_a_cluster_which_is_modified_rebooted_and_deleted(
    server: ServerProcess, snap: dict[str, Any]
) -> None:
    solo = as_json(server, "snapshot", "restore", "snap", "solo", "--into", "cluster")["CacheCluster"]
    assert (solo["CacheClusterStatus"], solo["Engine"], solo["NumCacheNodes"]) == ("available", "redis", 1)
    port = solo["CacheNodes"][0]["Endpoint"]["Port"]
    with redis.Redis("127.0.0.1", port, decode_responses=True, retry=None) as app:
        assert app.get("greeting") == "hello"

    modified = as_json(server, "cluster", "modify", "solo", "--snapshot-retention-limit", "2")["CacheCluster"]
    assert modified["SnapshotRetentionLimit"] == 2
    assert "kept 2 days" in ok(server, "cluster", "describe", "solo").stdout

    rebooted = run(server, "cluster", "reboot", "solo")
    assert rebooted.returncode == 0, rebooted.stderr
    assert rebooted.stderr.splitlines()[-2:] == [
        "Cache cluster solo: rebooting cluster nodes",
        "Cache cluster solo: available",
    ]
    events = as_json(server, "event", "list", "--source-type", "cache-cluster", "--source-id", "solo")["Events"]
    assert "Cache node 0001 restarted" in [e["Message"] for e in events]
    with redis.Redis("127.0.0.1", port, decode_responses=True, retry=None) as app:
        assert app.get("greeting") == "hello"

    assert ok(server, "cluster", "delete", "solo").stdout.strip() == "Cache cluster solo is deleted."


# Parameter groups


def test_parameter_group_create_set_show_reset_list(server: ServerProcess) -> None:
    ok(server, "param-group", "create", "tuning", "--family", "redis7", "--description", "tuning")
    changed = ok(server, "param-group", "set", "tuning", "maxmemory-policy=allkeys-lru", "databases=32")
    assert changed.stdout.strip() == "Parameter group tuning: set maxmemory-policy, databases."
    assert "databases take effect when the nodes restart" in changed.stderr
    mine = as_json(server, "param-group", "describe", "tuning", "--source", "user")["Parameters"]
    assert {p["ParameterName"]: p["ParameterValue"] for p in mine} == {
        "maxmemory-policy": "allkeys-lru",
        "databases": "32",
    }
    ok(server, "pg", "reset", "tuning", "maxmemory-policy")
    shown = ok(server, "pg", "show", "tuning", "--source", "user").stdout
    assert "databases" in shown
    assert "maxmemory-policy" not in shown
    assert "tuning" in ok(server, "param-group", "list").stdout
    bad = cli(server, "param-group", "set", "tuning", "databases=none")
    assert bad.exit_code == 1
    assert "Error (InvalidParameterValue)" in bad.stderr


def test_parameter_group_apply_reboots_the_clusters_using_it_then_delete(
    server: ServerProcess, shop: dict[str, Any]
) -> None:
    ok(server, "param-group", "create", "sessions", "--family", "redis7", "--description", "sessions")
    ok(server, "param-group", "modify", "sessions", "databases=32")
    ok(server, "rg", "modify", "shop", "--parameter-group", "sessions")
    with connect(server, "shop") as app, pytest.raises(redis.ResponseError, match="DB index is out of range"):
        app.execute_command("SELECT", "20")  # 16 databases until the nodes restart

    primary = primary_of(server, "shop")
    applied = run(server, "--json", "param-group", "apply", "sessions")
    assert applied.returncode == 0, applied.stderr
    rebooted = [c["CacheClusterId"] for c in json.loads(applied.stdout)["CacheClusters"]]
    assert sorted(rebooted) == ["shop-001", "shop-002", "shop-003"]
    assert rebooted[-1] == primary  # replicas first: the group never loses more than one member at once
    with connect(server, "shop") as app:
        assert app.get("greeting") == "hello"
        assert app.execute_command("SELECT", "20") is True  # the nodes restarted with 32 databases
    assert "sessions (in-sync)" in ok(server, "rg", "describe", "shop").stdout

    in_use = cli(server, "param-group", "delete", "sessions")
    assert in_use.exit_code == 1
    assert "InvalidCacheParameterGroupState" in in_use.stderr
    ok(server, "rg", "modify", "shop", "--parameter-group", "default.redis7")
    assert ok(server, "param-group", "delete", "sessions").stdout.strip() == "Parameter group sessions is deleted."


# Cache clusters, engines, completion, no server


def test_memcached_cluster_create_list_describe_delete_and_engines(server: ServerProcess) -> None:
    created = run(server, "cluster", "create", "mc", "--engine", "memcached", "--num-nodes", "2")
    assert created.returncode == 0, created.stderr
    assert created.stderr.splitlines() == ["Cache cluster mc: creating", "Cache cluster mc: available"]
    described = as_json(server, "cluster", "describe", "mc")
    assert len(described["CacheClusters"][0]["CacheNodes"]) == 2
    assert "mc" in ok(server, "cluster", "list").stdout
    engines = ok(server, "engine", "list").stdout
    assert "memcached" in engines
    assert "redis" in engines
    assert ok(server, "engines").stdout == engines
    assert ok(server, "cluster", "delete", "mc").stdout.strip() == "Cache cluster mc is deleted."


def test_completion_scripts_and_ids_from_the_server(server: ServerProcess, shop: dict[str, Any]) -> None:
    for shell, marker in (("bash", "complete -o nosort -F"), ("zsh", "#compdef cachefleet"), ("fish", "complete")):
        script = run(server, "completion", shell)
        assert script.returncode == 0
        assert marker in script.stdout
        assert "_CACHEFLEET_COMPLETE" in script.stdout
    env = {
        **os.environ,
        "_CACHEFLEET_COMPLETE": "bash_complete",
        "COMP_WORDS": f"cachefleet --data-dir {server.data_dir} rg describe sh",
        "COMP_CWORD": "5",
    }
    done = subprocess.run([sys.executable, "-m", "cachefleet"], capture_output=True, text=True, env=env, timeout=60,
                          check=False)  # fmt: skip
    assert done.stdout.split() == ["plain,shop"]


def test_no_server_is_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cachefleet", "--data-dir", str(tmp_path), "rg", "list"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "No cachefleet server" in result.stderr
