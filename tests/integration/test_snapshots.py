"""Snapshots, restores, automatic snapshots and crash safety, with real processes and boto3.

Data is checked key by key on the nodes themselves: values of every type and their TTLs.
"""

from __future__ import annotations

import hashlib
import json
import signal
import sqlite3
import stat
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from botocore.exceptions import ClientError, WaiterError
from redis.backoff import NoBackoff
from redis.retry import Retry
from tests.integration.conftest import FAST_WAIT
from tests.support.server import ADMIN_USER, ServerProcess, wait_until

from cachefleet.store.keys import InstallationKey, Keyring, KmsKeys
from cachefleet.store.sealed import unseal_file

pytestmark = pytest.mark.integration

ARN = "arn:aws:elasticache:us-east-1:000000000000"
CLOCK_ENV = "CACHEFLEET_SCHEDULER_CLOCK_FILE"


# -- helpers ---------------------------------------------------------------------------------------


def _connect(port: int, password: str | None = None) -> redis.Redis:
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        username=ADMIN_USER if password else None,
        password=password,
        socket_timeout=10,
        socket_connect_timeout=1,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )


def _create_group(client: Any, group_id: str, nodes: int = 2, **extra: Any) -> None:
    client.create_replication_group(
        CacheNodeType="cache.t4g.micro",
        ReplicationGroupId=group_id, ReplicationGroupDescription="snapshots", NumCacheClusters=nodes, **extra
    )
    client.get_waiter("replication_group_available").wait(ReplicationGroupId=group_id, WaiterConfig=FAST_WAIT)


def _group(client: Any, group_id: str) -> dict[str, Any]:
    return dict(client.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0])


def _primary_port(client: Any, group_id: str) -> int:
    return int(_group(client, group_id)["NodeGroups"][0]["PrimaryEndpoint"]["Port"])


def _member_ports(client: Any, group_id: str) -> dict[str, int]:
    members = _group(client, group_id)["NodeGroups"][0]["NodeGroupMembers"]
    return {m["CacheClusterId"]: int(m["ReadEndpoint"]["Port"]) for m in members}


def _cluster_port(client: Any, cluster_id: str) -> int:
    cluster = client.describe_cache_clusters(CacheClusterId=cluster_id, ShowCacheNodeInfo=True)["CacheClusters"][0]
    return int(cluster["CacheNodes"][0]["Endpoint"]["Port"])


def _snapshot(client: Any, name: str) -> dict[str, Any]:
    return dict(client.describe_snapshots(SnapshotName=name)["Snapshots"][0])


def _status(client: Any, name: str) -> str | None:
    try:
        return str(_snapshot(client, name)["SnapshotStatus"])
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "SnapshotNotFoundFault":
            return None
        raise


def _wait_snapshot(client: Any, name: str, status: str = "available", timeout: float = 60) -> dict[str, Any]:
    wait_until(lambda: _status(client, name) == status, timeout, what=f"snapshot {name} {status}")
    return _snapshot(client, name)


def _events(client: Any, source_type: str, source_id: str) -> list[str]:
    found = client.describe_events(SourceType=source_type, SourceIdentifier=source_id, Duration=60)["Events"]
    return [e["Message"] for e in found]


def _stored_file(server: ServerProcess, name: str) -> Path:
    return server.data_dir / "snapshots" / name / "0001.rdb"


def _stored_status(server: ServerProcess, name: str) -> dict[str, Any] | None:
    with sqlite3.connect(server.data_dir / "state.db") as db:
        row = db.execute("SELECT status FROM resources WHERE kind = 'snapshot' AND id = ?", (name,)).fetchone()
    return json.loads(row[0]) if row else None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _plain(server: ServerProcess, path: Path) -> bytes:
    """The RDB a sealed snapshot or export holds, opened with the installation's keys."""
    installation = InstallationKey.load(server.data_dir / "keys", create=False)
    keyring = Keyring(installation, KmsKeys(server.data_dir / "keys", installation, "us-east-1", "000000000000"))
    return b"".join(unseal_file(path, keyring))


def _load(connection: redis.Redis, count: int = 3000) -> None:
    """``count`` keys of every type (strings, hashes, lists, sets, sorted sets), a third with a TTL."""
    pipe = connection.pipeline(transaction=False)
    for i in range(count):
        kind = i % 5
        key = f"key:{kind}:{i}"
        if kind == 0:
            pipe.set(key, f"value-{i}" * (1 + i % 7))
        elif kind == 1:
            pipe.hset(key, mapping={f"f{j}": f"{i}-{j}" for j in range(1 + i % 5)})
        elif kind == 2:
            pipe.rpush(key, *[f"{i}.{j}" for j in range(1 + i % 6)])
        elif kind == 3:
            pipe.sadd(key, *[f"m{i}-{j}" for j in range(1 + i % 4)])
        else:
            pipe.zadd(key, {f"z{j}": i + j / 10 for j in range(1 + i % 5)})
        if i % 3 == 0:
            pipe.expire(key, 3600 + i)
    pipe.execute()


def _dump(connection: redis.Redis) -> dict[str, tuple[str, Any, bool]]:
    """Every key: its type, its value, and whether it has a TTL."""
    data: dict[str, tuple[str, Any, bool]] = {}
    for key in connection.scan_iter(count=1000):
        kind = connection.type(key)
        if kind == "string":
            value: Any = connection.get(key)
        elif kind == "hash":
            value = connection.hgetall(key)
        elif kind == "list":
            value = connection.lrange(key, 0, -1)
        elif kind == "set":
            value = sorted(connection.smembers(key))
        else:
            value = connection.zrange(key, 0, -1, withscores=True)
        data[key] = (kind, value, connection.ttl(key) > 0)
    return data


def _ttls(connection: redis.Redis) -> dict[str, int]:
    return {k: connection.ttl(k) for k in connection.scan_iter(count=1000) if connection.ttl(k) > 0}


def _rdb_saves(port: int, password: str) -> int:
    with _connect(port, password) as admin:
        return int(admin.info("persistence")["rdb_saves"])


def _tmp_files(server: ServerProcess) -> list[Path]:
    return [p for p in (server.data_dir / "snapshots").rglob("*") if p.name.endswith(".tmp")]


# -- snapshot, delete, restore ---------------------------------------------------------------------


def test_snapshot_on_a_replica_then_restore_after_delete_keeps_every_key_value_and_ttl(
    server: ServerProcess, client: Any
) -> None:
    _create_group(client, "orders", nodes=2)
    password = server.admin_password()
    with _connect(_primary_port(client, "orders")) as app:
        _load(app)
        app.execute_command("WAIT", 1, 5000)
        before = _dump(app)
        ttls_before = _ttls(app)
    ports = _member_ports(client, "orders")
    saves_on_primary = _rdb_saves(ports["orders-001"], password)

    created = client.create_snapshot(ReplicationGroupId="orders", SnapshotName="orders-backup")["Snapshot"]
    assert created["SnapshotStatus"] == "creating"
    assert created["SnapshotSource"] == "manual"
    assert _group(client, "orders")["Status"] == "snapshotting"  # at once, as ElastiCache answers
    with pytest.raises(client.exceptions.InvalidReplicationGroupStateFault):
        client.modify_replication_group(ReplicationGroupId="orders", ReplicationGroupDescription="busy")

    snapshot = _wait_snapshot(client, "orders-backup")
    wait_until(lambda: _group(client, "orders")["Status"] == "available", 10, what="the group back to available")
    (node,) = snapshot["NodeSnapshots"]
    assert node["CacheClusterId"] == "orders-002"  # taken on the replica
    assert node["NodeGroupId"] == "0001"
    assert node["CacheSize"].endswith(" MB")
    assert node["SnapshotCreateTime"]
    assert node["CacheNodeCreateTime"]
    assert _rdb_saves(ports["orders-002"], password) >= 1
    assert _rdb_saves(ports["orders-001"], password) == saves_on_primary  # the primary was spared
    assert snapshot["ReplicationGroupId"] == "orders"
    assert snapshot["ARN"] == f"{ARN}:snapshot:orders-backup"
    assert (snapshot["Engine"], snapshot["CacheNodeType"]) == ("redis", "cache.t4g.micro")

    stored = _stored_file(server, "orders-backup")
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    metadata = json.loads((stored.parent / "metadata.json").read_text())
    assert metadata["files"]["0001.rdb"] == {"size": stored.stat().st_size, "sha256": _sha256(stored)}
    assert _stored_status(server, "orders-backup")["sha256"] == _sha256(stored)  # type: ignore[index]
    succeeded = "Snapshot succeeded for snapshot with ID 'orders-backup' of replication group with ID 'orders'"
    assert succeeded in _events(client, "replication-group", "orders")

    client.delete_replication_group(ReplicationGroupId="orders")
    client.get_waiter("replication_group_deleted").wait(ReplicationGroupId="orders", WaiterConfig=FAST_WAIT)
    assert _status(client, "orders-backup") == "available"  # a manual snapshot outlives its source

    restored = client.create_replication_group(
        ReplicationGroupId="orders", ReplicationGroupDescription="restored", NumCacheClusters=2,
        SnapshotName="orders-backup",
    )["ReplicationGroup"]
    assert restored["Status"] == "creating"
    assert _status(client, "orders-backup") == "restoring"
    client.get_waiter("replication_group_available").wait(ReplicationGroupId="orders", WaiterConfig=FAST_WAIT)
    wait_until(lambda: _status(client, "orders-backup") == "available", 10, what="the snapshot back to available")

    with _connect(_primary_port(client, "orders")) as app:
        assert _dump(app) == before
        ttls_after = _ttls(app)
    assert ttls_after.keys() == ttls_before.keys()
    assert all(0 < ttls_after[k] <= ttls_before[k] for k in ttls_after)
    with _connect(_member_ports(client, "orders")["orders-002"]) as replica:
        assert replica.dbsize() == len(before)
    # A second restore, as a standalone cluster, from the same snapshot.
    client.create_cache_cluster(CacheClusterId="orders-copy", SnapshotName="orders-backup")
    client.get_waiter("cache_cluster_available").wait(CacheClusterId="orders-copy", WaiterConfig=FAST_WAIT)
    with _connect(_cluster_port(client, "orders-copy")) as copy:
        assert _dump(copy) == before


def test_final_snapshots_are_taken_from_the_primary_before_the_nodes_go(server: ServerProcess, client: Any) -> None:
    _create_group(client, "leaving", nodes=2)
    client.create_cache_cluster(CacheNodeType="cache.t4g.micro", CacheClusterId="solo", Engine="redis")
    with _connect(_primary_port(client, "leaving")) as app:
        app.set("last-write", "kept")  # not waited for: the primary's data is the freshest
    client.get_waiter("cache_cluster_available").wait(CacheClusterId="solo", WaiterConfig=FAST_WAIT)
    with _connect(_cluster_port(client, "solo")) as app:
        app.set("solo-key", "kept", ex=600)

    deleting = client.delete_replication_group(ReplicationGroupId="leaving", FinalSnapshotIdentifier="leaving-final")
    assert deleting["ReplicationGroup"]["Status"] == "deleting"
    client.delete_cache_cluster(CacheClusterId="solo", FinalSnapshotIdentifier="solo-final")
    client.get_waiter("replication_group_deleted").wait(ReplicationGroupId="leaving", WaiterConfig=FAST_WAIT)
    client.get_waiter("cache_cluster_deleted").wait(CacheClusterId="solo", WaiterConfig=FAST_WAIT)

    group_final = _snapshot(client, "leaving-final")
    assert group_final["SnapshotStatus"] == "available"
    assert group_final["NodeSnapshots"][0]["CacheClusterId"] == "leaving-001"  # the primary
    solo_final = _snapshot(client, "solo-final")
    assert (solo_final["SnapshotStatus"], solo_final["CacheClusterId"]) == ("available", "solo")
    assert "ReplicationGroupId" not in solo_final

    client.create_cache_cluster(CacheClusterId="back", SnapshotName="leaving-final")
    client.create_cache_cluster(CacheClusterId="solo", SnapshotName="solo-final")
    client.get_waiter("cache_cluster_available").wait(CacheClusterId="back", WaiterConfig=FAST_WAIT)
    client.get_waiter("cache_cluster_available").wait(CacheClusterId="solo", WaiterConfig=FAST_WAIT)
    with _connect(_cluster_port(client, "back")) as app:
        assert app.get("last-write") == "kept"
    with _connect(_cluster_port(client, "solo")) as app:
        assert app.get("solo-key") == "kept"
        assert 0 < app.ttl("solo-key") <= 600


# -- describe, copy, export, delete, tags, quota ---------------------------------------------------


def test_describe_filters_paging_copy_delete_tags_and_quota(server: ServerProcess, client: Any) -> None:
    _create_group(client, "web", nodes=2)
    client.create_cache_cluster(CacheNodeType="cache.t4g.micro", CacheClusterId="cache", Engine="redis")
    client.get_waiter("cache_cluster_available").wait(CacheClusterId="cache", WaiterConfig=FAST_WAIT)
    with _connect(_cluster_port(client, "cache")) as app:
        app.set("k", "v")

    client.create_snapshot(CacheClusterId="web-001", SnapshotName="web-on-primary",
                           Tags=[{"Key": "team", "Value": "web"}])
    on_primary = _wait_snapshot(client, "web-on-primary")
    assert on_primary["NodeSnapshots"][0]["CacheClusterId"] == "web-001"  # the member named
    assert on_primary["ReplicationGroupId"] == "web"
    for i in range(20):  # the quota: 20 manual snapshots of a node in 24 hours
        wait_until(lambda: client.describe_cache_clusters(CacheClusterId="cache")["CacheClusters"][0][
            "CacheClusterStatus"] == "available", 10, what="the cluster available")
        client.create_snapshot(CacheClusterId="cache", SnapshotName=f"cache-{i:02d}")
        _wait_snapshot(client, f"cache-{i:02d}")
    wait_until(lambda: client.describe_cache_clusters(CacheClusterId="cache")["CacheClusters"][0][
        "CacheClusterStatus"] == "available", 10, what="the cluster available")
    with pytest.raises(client.exceptions.SnapshotQuotaExceededFault):
        client.create_snapshot(CacheClusterId="cache", SnapshotName="cache-20")

    # Copies: a new manual snapshot with the same file.
    copy = client.copy_snapshot(SourceSnapshotName="cache-00", TargetSnapshotName="cache-copy")["Snapshot"]
    assert copy["SnapshotStatus"] == "creating"
    _wait_snapshot(client, "cache-copy")
    # Sealed under a data key of its own, holding the same RDB.
    assert _sha256(_stored_file(server, "cache-copy")) != _sha256(_stored_file(server, "cache-00"))
    assert _plain(server, _stored_file(server, "cache-copy")) == _plain(server, _stored_file(server, "cache-00"))
    assert _snapshot(client, "cache-copy")["CacheClusterId"] == "cache"

    # Filters and paging (MaxRecords 20-50).
    assert {s["SnapshotName"] for s in client.describe_snapshots(ReplicationGroupId="web")["Snapshots"]} == {
        "web-on-primary"
    }
    by_cluster = client.describe_snapshots(CacheClusterId="cache", MaxRecords=20)
    assert len(by_cluster["Snapshots"]) == 20
    assert "Marker" in by_cluster
    rest = client.describe_snapshots(CacheClusterId="cache", MaxRecords=20, Marker=by_cluster["Marker"])
    assert len(rest["Snapshots"]) == 1
    assert "Marker" not in rest
    assert len(client.describe_snapshots(SnapshotSource="user")["Snapshots"]) == 22
    assert client.describe_snapshots(SnapshotSource="system")["Snapshots"] == []
    assert client.describe_snapshots(CacheClusterId="web-001")["Snapshots"][0]["SnapshotName"] == "web-on-primary"
    paginator = client.get_paginator("describe_snapshots")
    assert sum(len(p["Snapshots"]) for p in paginator.paginate(PaginationConfig={"PageSize": 20})) == 22
    with_config = client.describe_snapshots(SnapshotName="web-on-primary", ShowNodeGroupConfig=True)["Snapshots"][0]
    config = with_config["NodeSnapshots"][0]["NodeGroupConfiguration"]
    assert config["ReplicaCount"] == 1
    assert config["PrimaryAvailabilityZone"] == "us-east-1a"

    # Tags through the tag calls, by ARN.
    resource = f"{ARN}:snapshot:web-on-primary"
    assert client.list_tags_for_resource(ResourceName=resource)["TagList"] == [{"Key": "team", "Value": "web"}]
    client.add_tags_to_resource(ResourceName=resource, Tags=[{"Key": "env", "Value": "prod"}])
    client.remove_tags_from_resource(ResourceName=resource, TagKeys=["team"])
    assert client.list_tags_for_resource(ResourceName=resource)["TagList"] == [{"Key": "env", "Value": "prod"}]

    # Automatic snapshot settings, on a group and on a standalone cluster.
    client.modify_replication_group(ReplicationGroupId="web", SnapshotRetentionLimit=3, SnapshotWindow="02:00-03:00")
    assert (_group(client, "web")["SnapshotRetentionLimit"], _group(client, "web")["SnapshotWindow"]) == (
        3,
        "02:00-03:00",
    )
    client.modify_cache_cluster(CacheClusterId="cache", SnapshotRetentionLimit=2)
    cache = client.describe_cache_clusters(CacheClusterId="cache")["CacheClusters"][0]
    assert (cache["SnapshotRetentionLimit"], cache["SnapshotWindow"]) == (2, "05:00-06:00")

    # Delete: answered with "deleting", then the record and the files are gone.
    deleted = client.delete_snapshot(SnapshotName="cache-copy")["Snapshot"]
    assert deleted["SnapshotStatus"] == "deleting"
    wait_until(lambda: _status(client, "cache-copy") is None, 10, what="the snapshot deleted")
    assert not _stored_file(server, "cache-copy").parent.exists()
    assert "Snapshot cache-copy copied from snapshot cache-00" in _events(client, "cache-cluster", "cache")


def test_copy_snapshot_to_a_bucket_exports_the_rdb_and_snapshot_arns_seed_a_new_cluster(
    server: ServerProcess, client: Any
) -> None:
    client.create_cache_cluster(CacheNodeType="cache.t4g.micro", CacheClusterId="source", Engine="redis")
    client.get_waiter("cache_cluster_available").wait(CacheClusterId="source", WaiterConfig=FAST_WAIT)
    with _connect(_cluster_port(client, "source")) as app:
        _load(app, 500)
        before = _dump(app)
    client.create_snapshot(CacheClusterId="source", SnapshotName="to-export")
    _wait_snapshot(client, "to-export")

    with pytest.raises(ClientError) as missing:
        client.copy_snapshot(SourceSnapshotName="to-export", TargetSnapshotName="exported", TargetBucket="no-bucket")
    assert missing.value.response["Error"]["Code"] == "InvalidParameterValue"
    bucket = server.data_dir / "exports" / "my-bucket"
    bucket.mkdir(parents=True)
    answer = client.copy_snapshot(SourceSnapshotName="to-export", TargetSnapshotName="exported",
                                  TargetBucket="my-bucket")["Snapshot"]
    assert answer["SnapshotName"] == "to-export"
    exported = bucket / "exported.rdb"
    wait_until(exported.exists, 20, what="the exported object")
    wait_until(lambda: _status(client, "to-export") == "available", 10, what="the source back to available")
    # The export is sealed (its own data key): the same RDB, and no plain byte of it in the bucket.
    assert _plain(server, exported) == _plain(server, _stored_file(server, "to-export"))
    assert _plain(server, exported).startswith(b"REDIS")
    assert not exported.read_bytes().startswith(b"REDIS")
    with pytest.raises(client.exceptions.SnapshotAlreadyExistsFault):
        client.copy_snapshot(SourceSnapshotName="to-export", TargetSnapshotName="exported", TargetBucket="my-bucket")
    assert any("exported to s3://my-bucket/exported.rdb" in m for m in _events(client, "cache-cluster", "source"))

    # The exported RDB, put in the import area, seeds a new cluster (SnapshotArns).
    imports = server.data_dir / "imports" / "incoming"
    imports.mkdir(parents=True)
    (imports / "dumps").mkdir()
    (imports / "dumps" / "seed.rdb").write_bytes(exported.read_bytes())
    client.create_cache_cluster(CacheNodeType="cache.t4g.micro", CacheClusterId="imported", Engine="redis",
                                SnapshotArns=["arn:aws:s3:::incoming/dumps/seed.rdb"])
    client.get_waiter("cache_cluster_available").wait(CacheClusterId="imported", WaiterConfig=FAST_WAIT)
    with _connect(_cluster_port(client, "imported")) as app:
        assert _dump(app) == before
    client.create_replication_group(ReplicationGroupId="imported-rg", ReplicationGroupDescription="d",
                                    CacheNodeType="cache.t4g.micro", NumCacheClusters=2,
                                    SnapshotArns=["arn:aws:s3:::incoming/dumps/seed.rdb"])
    client.get_waiter("replication_group_available").wait(ReplicationGroupId="imported-rg", WaiterConfig=FAST_WAIT)
    with _connect(_primary_port(client, "imported-rg")) as app:
        assert _dump(app) == before

    # A missing object and a file that is no RDB: restore-failed, an event, nothing started.
    (imports / "garbage.rdb").write_bytes(b"this is not an RDB file\n" * 100)
    client.create_cache_cluster(CacheNodeType="cache.t4g.micro", CacheClusterId="no-object", Engine="redis",
                                SnapshotArns=["arn:aws:s3:::incoming/absent.rdb"])
    client.create_cache_cluster(CacheNodeType="cache.t4g.micro", CacheClusterId="no-rdb", Engine="redis",
                                SnapshotArns=["arn:aws:s3:::incoming/garbage.rdb"])
    for cluster_id in ("no-object", "no-rdb"):
        wait_until(lambda c=cluster_id: client.describe_cache_clusters(CacheClusterId=c)["CacheClusters"][0][
            "CacheClusterStatus"] == "restore-failed", 20, what=f"{cluster_id} restore-failed")
        assert any("Restore from snapshot failed" in m for m in _events(client, "cache-cluster", cluster_id))
        assert not any(k.startswith(f"{cluster_id}/") for k in server.member_pids())
        # boto3's waiter stops on it at once, as its definition says for restore-failed.
        with pytest.raises(WaiterError, match=r"terminal failure state.*restore-failed"):
            client.get_waiter("cache_cluster_available").wait(CacheClusterId=cluster_id, WaiterConfig=FAST_WAIT)
        client.delete_cache_cluster(CacheClusterId=cluster_id)
        client.get_waiter("cache_cluster_deleted").wait(CacheClusterId=cluster_id, WaiterConfig=FAST_WAIT)


def test_a_corrupted_snapshot_fails_the_restore_cleanly_and_touches_nothing_else(
    server: ServerProcess, client: Any
) -> None:
    _create_group(client, "healthy", nodes=2)
    with _connect(_primary_port(client, "healthy")) as app:
        _load(app, 500)
    client.create_snapshot(ReplicationGroupId="healthy", SnapshotName="damaged")
    _wait_snapshot(client, "damaged")
    wait_until(lambda: _group(client, "healthy")["Status"] == "available", 10, what="the group available")
    stored = _stored_file(server, "damaged")
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, size unchanged
    stored.write_bytes(bytes(data))
    pids_before = server.member_pids()

    client.create_replication_group(ReplicationGroupId="from-damaged", ReplicationGroupDescription="d",
                                    NumCacheClusters=2, SnapshotName="damaged")
    client.create_cache_cluster(CacheClusterId="also-damaged", SnapshotName="damaged")
    wait_until(lambda: _group(client, "from-damaged")["Status"] == "create-failed", 20, what="create-failed")
    wait_until(lambda: client.describe_cache_clusters(CacheClusterId="also-damaged")["CacheClusters"][0][
        "CacheClusterStatus"] == "restore-failed", 20, what="restore-failed")
    assert any("Failed to create replication group from-damaged" in m and "sha256" in m
               for m in _events(client, "replication-group", "from-damaged"))
    assert any("Restore from snapshot failed" in m for m in _events(client, "cache-cluster", "also-damaged"))
    members = client.describe_cache_clusters(CacheClusterId="from-damaged-001")["CacheClusters"][0]
    assert members["CacheClusterStatus"] == "restore-failed"
    assert not any(k.startswith(("from-damaged", "also-damaged")) for k in server.member_pids())
    assert not (server.data_dir / "nodes" / "from-damaged-001" / "0001" / "dump.rdb").exists()

    # Everything else is untouched: the other group serves, the server answers, the snapshot is usable.
    assert server.member_pids() | pids_before == server.member_pids()
    assert _group(client, "healthy")["Status"] == "available"
    with _connect(_primary_port(client, "healthy")) as app:
        assert app.dbsize() == 500
    wait_until(lambda: _status(client, "damaged") == "available", 10, what="the snapshot no longer restoring")
    client.delete_replication_group(ReplicationGroupId="from-damaged")
    client.delete_cache_cluster(CacheClusterId="also-damaged")
    client.get_waiter("replication_group_deleted").wait(ReplicationGroupId="from-damaged", WaiterConfig=FAST_WAIT)
    client.get_waiter("cache_cluster_deleted").wait(CacheClusterId="also-damaged", WaiterConfig=FAST_WAIT)


# -- automatic snapshots ---------------------------------------------------------------------------


@pytest.fixture
def clocked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ServerProcess, Path]]:
    """A server whose snapshot scheduler reads "now" from a file the test writes."""
    clock = tmp_path / "clock"
    clock.write_text("2030-01-01T03:00:00+00:00\n")
    monkeypatch.setenv(CLOCK_ENV, str(clock))
    process = ServerProcess(tmp_path / "cf")
    try:
        process.start()
        yield process, clock
    finally:
        process.cleanup()


def test_automatic_snapshots_in_the_window_with_retention_pruning(clocked: tuple[ServerProcess, Path]) -> None:
    server, clock = clocked
    client = server.client()
    _create_group(client, "daily", nodes=2, SnapshotRetentionLimit=2, SnapshotWindow="04:00-05:00")
    group = _group(client, "daily")
    assert (group["SnapshotRetentionLimit"], group["SnapshotWindow"]) == (2, "04:00-05:00")
    with _connect(_primary_port(client, "daily")) as app:
        app.set("k", "v")
    client.create_snapshot(ReplicationGroupId="daily", SnapshotName="by-hand")
    _wait_snapshot(client, "by-hand")

    def automatic() -> list[str]:
        found = client.describe_snapshots(ReplicationGroupId="daily", SnapshotSource="system")["Snapshots"]
        return sorted(s["SnapshotName"] for s in found)

    start = datetime(2030, 1, 1, 4, 10, tzinfo=UTC)
    names = [f"automatic.daily-{start + timedelta(days=d):%Y-%m-%d-%H-%M}" for d in range(3)]
    wait_until(lambda: _group(client, "daily")["Status"] == "available", 10, what="the group available")
    clock.write_text(datetime(2030, 1, 1, 3, 59, tzinfo=UTC).isoformat())  # outside the window: nothing
    time.sleep(2.5)  # the scheduler looks every second
    assert automatic() == []

    clock.write_text(start.isoformat())
    first = _wait_snapshot(client, names[0])
    assert first["SnapshotSource"] == "automated"
    assert first["SnapshotRetentionLimit"] == 2
    assert names[0] not in {s["SnapshotName"] for s in client.describe_snapshots(SnapshotSource="user")["Snapshots"]}
    wait_until(lambda: _group(client, "daily")["Status"] == "available", 10, what="the group available")
    clock.write_text((start + timedelta(minutes=30)).isoformat())  # same window: no second one
    time.sleep(2.5)
    assert automatic() == names[:1]
    clock.write_text((start + timedelta(days=1)).isoformat())
    _wait_snapshot(client, names[1])
    assert automatic() == names[:2]
    wait_until(lambda: _group(client, "daily")["Status"] == "available", 10, what="the group available")
    clock.write_text((start + timedelta(days=2)).isoformat())
    _wait_snapshot(client, names[2])
    # Retention 2: the day-1 snapshot is two days old now and goes; the manual one stays.
    wait_until(lambda: automatic() == names[1:], 15, what="the oldest automatic snapshot pruned")
    assert _status(client, "by-hand") == "available"
    assert not _stored_file(server, names[0]).parent.exists()

    # Retention off, source deleted: the automatic snapshots go with it, the manual one stays.
    client.delete_replication_group(ReplicationGroupId="daily")
    client.get_waiter("replication_group_deleted").wait(ReplicationGroupId="daily", WaiterConfig=FAST_WAIT)
    wait_until(lambda: automatic() == [], 15, what="automatic snapshots deleted with their group")
    assert _status(client, "by-hand") == "available"


# -- crash safety ----------------------------------------------------------------------------------


def _populate(port: int, password: str, keys: int) -> None:
    with _connect(port, password) as admin:
        admin.execute_command("DEBUG", "POPULATE", keys, "key", 64)


def test_control_plane_killed_in_the_middle_of_a_snapshot_converges_on_restart(
    server: ServerProcess, client: Any
) -> None:
    client.create_cache_cluster(CacheClusterId="big", Engine="redis", CacheNodeType="cache.r7g.large")
    client.get_waiter("cache_cluster_available").wait(CacheClusterId="big", WaiterConfig=FAST_WAIT)
    password = server.admin_password()
    port = _cluster_port(client, "big")
    _populate(port, password, 1_000_000)

    client.create_snapshot(CacheClusterId="big", SnapshotName="interrupted")

    def saving() -> bool:
        with _connect(port, password) as admin:
            return bool(int(admin.info("persistence")["rdb_bgsave_in_progress"]))

    wait_until(saving, 10, interval=0.005, what="the BGSAVE under way")
    with pytest.raises(client.exceptions.InvalidSnapshotStateFault):  # still creating: it cannot go yet
        client.delete_snapshot(SnapshotName="interrupted")
    server.signal(signal.SIGSTOP)  # frozen mid-snapshot, then killed
    server.kill()
    assert _stored_status(server, "interrupted")["status"] == "creating"  # type: ignore[index]

    server.start()
    client = server.client()
    snapshot = _wait_snapshot(client, "interrupted", timeout=60)
    stored = _stored_file(server, "interrupted")
    assert _sha256(stored) == _stored_status(server, "interrupted")["sha256"]  # type: ignore[index]
    assert stored.stat().st_size == _stored_status(server, "interrupted")["size"]  # type: ignore[index]
    assert _tmp_files(server) == []
    assert snapshot["NodeSnapshots"][0]["CacheClusterId"] == "big"
    wait_until(lambda: client.describe_cache_clusters(CacheClusterId="big")["CacheClusters"][0][
        "CacheClusterStatus"] == "available", 15, what="the cluster back to available")


def test_control_plane_killed_in_the_middle_of_a_restore_converges_on_restart(
    server: ServerProcess, client: Any
) -> None:
    client.create_cache_cluster(CacheClusterId="origin", Engine="redis", CacheNodeType="cache.r7g.large")
    client.get_waiter("cache_cluster_available").wait(CacheClusterId="origin", WaiterConfig=FAST_WAIT)
    password = server.admin_password()
    _populate(_cluster_port(client, "origin"), password, 300_000)
    client.create_snapshot(CacheClusterId="origin", SnapshotName="seed")
    _wait_snapshot(client, "seed")

    client.create_replication_group(ReplicationGroupId="reborn", ReplicationGroupDescription="d",
                                    NumCacheClusters=2, SnapshotName="seed", CacheNodeType="cache.r7g.large")
    server.signal(signal.SIGSTOP)
    server.kill()

    server.start()
    client = server.client()
    client.get_waiter("replication_group_available").wait(ReplicationGroupId="reborn", WaiterConfig=FAST_WAIT)
    with _connect(_primary_port(client, "reborn")) as app:
        assert app.dbsize() == 300_000
    with _connect(_member_ports(client, "reborn")["reborn-002"]) as replica:
        wait_until(lambda: replica.dbsize() == 300_000, 15, what="the replica synced")
    wait_until(lambda: _status(client, "seed") == "available", 10, what="the snapshot back to available")
    assert not [p for p in (server.data_dir / "nodes").rglob("*.tmp")]
    assert len(server.processes_under_data_dir()) == len(server.node_pids())  # nothing started twice
