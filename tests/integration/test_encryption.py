"""Encryption at rest with real Redis nodes: nothing of the data on disk in plain text after a
snapshot, a tampered snapshot refused before any node starts, and KMS keys the server manages.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from botocore.exceptions import ClientError
from redis.backoff import NoBackoff
from redis.retry import Retry
from tests.integration.conftest import FAST_WAIT
from tests.support.server import ServerProcess, wait_until

from cachefleet.store import envelope

pytestmark = pytest.mark.integration

ACCOUNT, REGION = "000000000000", "us-east-1"
MARKER = "marker-5b1d7c0e-a-value-that-must-never-reach-the-disk-in-plain"
DEFAULT_KEY = "alias/cachefleet/default"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("enc") / "cf")
    try:
        process.start()
        yield process
    finally:
        process.cleanup()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Any:
    return server.client()


def _group(client: Any, group_id: str) -> dict[str, Any]:
    return dict(client.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0])


def _primary(client: Any, group_id: str) -> redis.Redis:
    port = int(_group(client, group_id)["NodeGroups"][0]["PrimaryEndpoint"]["Port"])
    return redis.Redis(port=port, socket_timeout=10, retry=Retry(NoBackoff(), 0), decode_responses=True)


def _snapshot_status(client: Any, name: str) -> str:
    return str(client.describe_snapshots(SnapshotName=name)["Snapshots"][0]["SnapshotStatus"])


def _files_with(root: Path, needle: bytes) -> list[Path]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                if needle in path.read_bytes():
                    found.append(path)
            except OSError:
                continue  # a socket or a file that went away meanwhile
    return found


def _events(client: Any, source_type: str, source_id: str) -> list[str]:
    found = client.describe_events(SourceType=source_type, SourceIdentifier=source_id, Duration=60)["Events"]
    return [e["Message"] for e in found]


def test_kms_keys_are_the_servers_own(server: ServerProcess, client: Any) -> None:
    def code(**params: Any) -> str:
        with pytest.raises(ClientError) as caught:
            client.create_replication_group(
                ReplicationGroupId="refused", ReplicationGroupDescription="d", CacheNodeType="cache.t4g.micro",
                **params,
            )  # fmt: skip
        return str(caught.value.response["Error"]["Code"])

    aws_key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    assert code(AtRestEncryptionEnabled=True, KmsKeyId=aws_key) == "InvalidKMSKeyFault"
    assert code(AtRestEncryptionEnabled=True, KmsKeyId="alias/not-ours") == "InvalidKMSKeyFault"
    assert code(KmsKeyId=DEFAULT_KEY) == "InvalidParameterCombination"
    assert client.describe_replication_groups()["ReplicationGroups"] == []


def test_after_a_snapshot_no_file_of_the_data_dir_holds_the_data_in_plain(
    server: ServerProcess, client: Any, tmp_path: Path
) -> None:
    client.create_replication_group(
        ReplicationGroupId="vault", ReplicationGroupDescription="sealed", NumCacheClusters=2,
        CacheNodeType="cache.t4g.micro", AtRestEncryptionEnabled=True, KmsKeyId=DEFAULT_KEY,
    )  # fmt: skip
    client.get_waiter("replication_group_available").wait(ReplicationGroupId="vault", WaiterConfig=FAST_WAIT)
    group = _group(client, "vault")
    assert group["AtRestEncryptionEnabled"] is True
    assert group["StorageEncryptionType"] == "sse-kms"
    assert group["KmsKeyId"].startswith(f"arn:aws:kms:{REGION}:{ACCOUNT}:key/")
    member = client.describe_cache_clusters(CacheClusterId="vault-001")["CacheClusters"][0]
    assert member["AtRestEncryptionEnabled"] is True
    with _primary(client, "vault") as app:
        app.set("secret", MARKER)
        app.hset("h", mapping={f"f{i}": f"{MARKER}-{i}" for i in range(100)})
        app.wait(1, 5000)
    client.create_snapshot(ReplicationGroupId="vault", SnapshotName="vault-snap")
    wait_until(lambda: _snapshot_status(client, "vault-snap") == "available", 60, what="the snapshot")
    snapshot = client.describe_snapshots(SnapshotName="vault-snap")["Snapshots"][0]
    assert snapshot["KmsKeyId"] == group["KmsKeyId"]
    stored = server.data_dir / "snapshots" / "vault-snap" / "0001.rdb"
    assert envelope.is_sealed(stored.read_bytes())
    assert _files_with(server.data_dir, MARKER.encode()) == []

    # The owner of the installation can open it (outside the data dir): the RDB with the value in it.
    from click.testing import CliRunner  # noqa: PLC0415

    from cachefleet.cli.main import main  # noqa: PLC0415

    opened = tmp_path / "vault.rdb"
    result = CliRunner().invoke(
        main, ["kms", "decrypt-file", str(stored), str(opened), "--data-dir", str(server.data_dir)]
    )
    assert result.exit_code == 0, result.output
    assert opened.read_bytes().startswith(b"REDIS")
    assert MARKER.encode() in opened.read_bytes()
    assert opened.stat().st_mode & 0o777 == 0o600

    # The sealed snapshot restores: the new group has every value back.
    client.create_replication_group(
        ReplicationGroupId="vault-copy", ReplicationGroupDescription="restored", NumCacheClusters=1,
        SnapshotName="vault-snap",
    )  # fmt: skip
    client.get_waiter("replication_group_available").wait(ReplicationGroupId="vault-copy", WaiterConfig=FAST_WAIT)
    with _primary(client, "vault-copy") as restored:
        assert restored.get("secret") == MARKER
        assert restored.hlen("h") == 100


def test_a_tampered_snapshot_is_refused_and_nothing_starts(server: ServerProcess, client: Any) -> None:
    client.create_cache_cluster(CacheClusterId="plain-source", Engine="redis", CacheNodeType="cache.t4g.micro")
    client.get_waiter("cache_cluster_available").wait(CacheClusterId="plain-source", WaiterConfig=FAST_WAIT)
    client.create_snapshot(CacheClusterId="plain-source", SnapshotName="tampered")
    wait_until(lambda: _snapshot_status(client, "tampered") == "available", 60, what="the snapshot")
    stored = server.data_dir / "snapshots" / "tampered" / "0001.rdb"
    data = bytearray(stored.read_bytes())
    data[len(data) - 20] ^= 0x01  # inside the last chunk's ciphertext
    stored.write_bytes(bytes(data))
    # Whoever changed the file also rewrote its recorded size and sha256: only the seal can tell.
    with sqlite3.connect(server.data_dir / "state.db") as db:
        row = db.execute("SELECT status FROM resources WHERE kind = 'snapshot' AND id = 'tampered'").fetchone()
        status = json.loads(row[0])
        status.update(size=len(data), sha256=hashlib.sha256(bytes(data)).hexdigest())
        db.execute("UPDATE resources SET status = ? WHERE kind = 'snapshot' AND id = 'tampered'", (json.dumps(status),))
    before = server.member_pids()

    client.create_cache_cluster(CacheClusterId="from-tampered", SnapshotName="tampered")
    wait_until(
        lambda: client.describe_cache_clusters(CacheClusterId="from-tampered")["CacheClusters"][0][
            "CacheClusterStatus"] == "restore-failed",
        30,
        what="restore-failed",
    )  # fmt: skip
    assert any("Restore from snapshot failed" in m for m in _events(client, "cache-cluster", "from-tampered"))
    assert not any(k.startswith("from-tampered/") for k in server.member_pids())
    assert not (server.data_dir / "nodes" / "from-tampered" / "0001" / "dump.rdb").exists()
    assert server.member_pids().keys() >= before.keys()
    client.delete_cache_cluster(CacheClusterId="from-tampered")
    client.get_waiter("cache_cluster_deleted").wait(CacheClusterId="from-tampered", WaiterConfig=FAST_WAIT)
