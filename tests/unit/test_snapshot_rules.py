"""Snapshot rules (names, windows, retention, quotas, S3 ARNs) and the snapshot file store."""

from __future__ import annotations

import hashlib
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cachefleet.model import lifecycle
from cachefleet.model import snapshots as sn
from cachefleet.model.errors import InvalidParameterValue, InvalidSnapshotState
from cachefleet.model.specs import AUTOMATED, MANUAL, CacheClusterSpec, ReplicationGroupSpec, SnapshotSpec
from cachefleet.model.status import SnapshotStatus
from cachefleet.store.snapshots import (
    LocalBuckets,
    LocalSnapshotFiles,
    SnapshotFileError,
    StoredFile,
    check_rdb_header,
    file_chunks,
    write_file,
)

T0 = datetime(2030, 1, 1, 4, 10, tzinfo=UTC)


# -- names, windows, retention, quotas -------------------------------------------------------------


def test_automatic_names_follow_elasticache() -> None:
    assert sn.automatic_name("orders", T0) == "automatic.orders-2030-01-01-04-10"
    assert sn.is_stored_name("automatic.orders-2030-01-01-04-10")
    assert not sn.is_stored_name("../etc")


@pytest.mark.parametrize("text", ["05:00-05:59", "5:00-06:00", "24:00-01:00", "05:00", "05:60-07:00", ""])
def test_bad_windows_are_refused(text: str) -> None:
    with pytest.raises(InvalidParameterValue):
        sn.parse_window(text)


def test_window_openings_including_one_past_midnight() -> None:
    window = sn.parse_window("04:00-05:00")
    assert window.opening(T0) == datetime(2030, 1, 1, 4, 0, tzinfo=UTC)
    assert window.opening(T0.replace(hour=5, minute=0)) is None
    assert window.opening(T0.replace(hour=3, minute=59)) is None
    late = sn.parse_window("23:30-00:45")
    assert late.minutes == 75
    assert late.opening(datetime(2030, 1, 2, 0, 15, tzinfo=UTC)) == datetime(2030, 1, 1, 23, 30, tzinfo=UTC)
    assert late.opening(datetime(2030, 1, 1, 23, 45, tzinfo=UTC)) == datetime(2030, 1, 1, 23, 30, tzinfo=UTC)


def test_one_automatic_snapshot_per_window() -> None:
    assert sn.due("04:00-05:00", T0, []) == datetime(2030, 1, 1, 4, 0, tzinfo=UTC)
    assert sn.due("04:00-05:00", T0 + timedelta(minutes=20), [T0]) is None
    assert sn.due("04:00-05:00", T0 + timedelta(days=1), [T0]) is not None
    assert sn.due(None, T0.replace(hour=5, minute=30), []) is not None  # the default window 05:00-06:00
    assert sn.due("04:00-05:00", T0.replace(hour=6), []) is None


def test_retention_keeps_the_newest_days() -> None:
    assert not sn.expired(T0, 2, T0 + timedelta(days=1, hours=23))
    assert sn.expired(T0, 2, T0 + timedelta(days=2))
    assert sn.expired(T0, 0, T0)
    with pytest.raises(InvalidParameterValue):
        sn.check_retention(36)
    assert sn.check_retention(35) == 35


def test_manual_snapshot_quota_counts_the_last_24_hours() -> None:
    recent = [T0 - timedelta(hours=h) for h in range(19)]
    assert not sn.over_quota(recent, T0)
    assert sn.over_quota([*recent, T0 - timedelta(hours=23)], T0)
    assert not sn.over_quota([*recent, T0 - timedelta(hours=24)], T0)


def test_s3_arns() -> None:
    assert sn.parse_s3_arn("arn:aws:s3:::my-bucket/dumps/one.rdb") == ("my-bucket", "dumps/one.rdb")
    for bad in ("s3://b/k", "arn:aws:s3:::b/k", "arn:aws:s3:::bucket/a,b.rdb", "arn:aws:s3:::bucket/../x.rdb",
                "arn:aws:s3:::bucket/"):
        with pytest.raises(InvalidParameterValue):
            sn.parse_s3_arn(bad)


def test_cache_size_is_whole_megabytes() -> None:
    assert sn.cache_size(24_777_878) == "24 MB"
    assert sn.cache_size(5 << 20) == "5 MB"


def test_snapshot_state_rules() -> None:
    lifecycle.require("snapshot", "DeleteSnapshot", "s", "available")
    lifecycle.require("snapshot", "CopySnapshot", "s", "restoring")
    for state in ("creating", "deleting", "copying"):
        with pytest.raises(InvalidSnapshotState):
            lifecycle.require("snapshot", "DeleteSnapshot", "s", state)
    with pytest.raises(InvalidSnapshotState):
        lifecycle.require("snapshot", "Restore", "s", "creating")


def test_a_group_snapshot_copies_its_source_and_survives_a_round_trip() -> None:
    group = ReplicationGroupSpec(
        id="g", description="d", engine="redis", engine_version="7.0.15", node_type="cache.t4g.micro",
        members=("g-001", "g-002"), primary_cluster_id="g-001", created_at=T0, snapshot_retention_limit=3,
    )
    members = [
        CacheClusterSpec(id=m, engine="redis", engine_version="7.0.15", node_type="cache.t4g.micro",
                         node_azs=(az,), created_at=T0, replication_group_id="g")
        for m, az in (("g-001", "us-east-1a"), ("g-002", "us-east-1b"))
    ]
    spec = sn.of_group("s", group, members, "g-002", source=MANUAL, created_at=T0)
    assert (spec.primary_az, spec.replica_azs) == ("us-east-1b", ("us-east-1a",))
    assert (spec.source_id, spec.source_type, spec.snapshot_retention_limit) == ("g", "replication-group", 3)
    assert SnapshotSpec.from_json(spec.to_json()) == spec
    copied = sn.copy(spec, "t", created_at=T0)
    assert (copied.copy_of, copied.source, copied.replication_group_id) == ("s", MANUAL, "g")
    automatic = sn.of_cluster("a", members[0], source=AUTOMATED, created_at=T0)
    assert (automatic.source_id, automatic.source_type) == ("g-001", "cache-cluster")
    status = SnapshotStatus("available", size=3, sha256="ab")
    assert SnapshotStatus.from_json(status.to_json()) == status


# -- the file store --------------------------------------------------------------------------------


def _rdb(tmp_path: Path, size: int = 3 << 20) -> Path:
    path = tmp_path / "dump.rdb"
    path.write_bytes(b"REDIS0010" + os.urandom(size))
    return path


def test_a_stored_snapshot_is_private_verified_and_described(tmp_path: Path) -> None:
    files = LocalSnapshotFiles(tmp_path / "snapshots")
    rdb = _rdb(tmp_path)
    stored = files.write("s1", "0001", file_chunks(rdb), {"engine": "redis"})
    assert stored == StoredFile(rdb.stat().st_size, hashlib.sha256(rdb.read_bytes()).hexdigest())
    path = files.path("s1", "0001")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert (path.parent / "metadata.json").read_text().count(stored.sha256) == 1
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []
    assert b"".join(files.read("s1", "0001", stored)) == rdb.read_bytes()


def test_a_node_rdb_is_saved_by_link_and_outlives_the_node_rewriting_it(tmp_path: Path) -> None:
    files = LocalSnapshotFiles(tmp_path / "data" / "snapshots")
    rdb = _rdb(tmp_path)
    original = rdb.read_bytes()
    stored = files.save("s2", "0001", rdb, {"node": "n"})
    path = files.path("s2", "0001")
    assert stored == StoredFile(len(original), hashlib.sha256(original).hexdigest())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(files.root.stat().st_mode) == 0o700
    # The node saves again the way Redis does: a new file renamed over dump.rdb.
    fresh = tmp_path / "temp-123.rdb"
    fresh.write_bytes(b"REDIS0010-newer")
    os.replace(fresh, rdb)
    rdb.unlink()
    assert b"".join(files.read("s2", "0001", stored)) == original
    with pytest.raises(SnapshotFileError):
        files.save("s3", "0001", tmp_path / "gone.rdb", {})
    assert not files.path("s3", "0001").exists()


def test_a_corrupted_or_missing_file_is_refused_and_never_placed(tmp_path: Path) -> None:
    files = LocalSnapshotFiles(tmp_path / "snapshots")
    stored = files.write("s1", "0001", file_chunks(_rdb(tmp_path)), {})
    path = files.path("s1", "0001")
    data = bytearray(path.read_bytes())
    data[1000] ^= 1
    path.write_bytes(bytes(data))
    dest = tmp_path / "node" / "dump.rdb"
    dest.parent.mkdir()
    with pytest.raises(SnapshotFileError, match="sha256"):
        files.restore("s1", "0001", stored, dest)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []
    path.write_bytes(bytes(data[:-10]))
    with pytest.raises(SnapshotFileError, match="bytes"):
        files.restore("s1", "0001", stored, dest)
    files.delete("s1")
    with pytest.raises(SnapshotFileError, match="missing"):
        files.restore("s1", "0001", stored, dest)


def test_a_restore_places_the_verified_file(tmp_path: Path) -> None:
    files = LocalSnapshotFiles(tmp_path / "snapshots")
    rdb = _rdb(tmp_path)
    stored = files.write("s1", "0001", file_chunks(rdb), {})
    dest = tmp_path / "node-dump.rdb"
    files.restore("s1", "0001", stored, dest)
    assert dest.read_bytes() == rdb.read_bytes()


def test_an_interrupted_write_leaves_no_file_under_its_name(tmp_path: Path) -> None:
    target = tmp_path / "out.rdb"

    def failing() -> object:
        yield b"REDIS" * 1000
        raise SnapshotFileError("source went away")

    with pytest.raises(SnapshotFileError):
        write_file(target, failing())  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
    # A temporary file left by a crash is replaced by the next write.
    (tmp_path / ".out.rdb.tmp").write_bytes(b"half")
    write_file(target, iter([b"REDIS-complete"]))
    assert target.read_bytes() == b"REDIS-complete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.rdb"]


def test_buckets_stand_in_for_s3(tmp_path: Path) -> None:
    buckets = LocalBuckets(tmp_path / "exports")
    assert not buckets.bucket_exists("bucket-1")
    with pytest.raises(SnapshotFileError):
        buckets.put("bucket-1", "k.rdb", iter([b"x"]))
    (tmp_path / "exports" / "bucket-1").mkdir(parents=True)
    stored = buckets.put("bucket-1", "dir/k.rdb", iter([b"REDIS", b"0010"]))
    assert stored.sha256 == hashlib.sha256(b"REDIS0010").hexdigest()
    assert buckets.exists("bucket-1", "dir/k.rdb")
    assert b"".join(buckets.get("bucket-1", "dir/k.rdb")) == b"REDIS0010"
    with pytest.raises(SnapshotFileError):
        list(buckets.get("bucket-1", "nope.rdb"))
    with pytest.raises(ValueError, match="invalid"):
        buckets.path("bucket-1", "../escape")


def test_only_rdb_files_pass_the_header_check(tmp_path: Path) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_bytes(b"REDIS0010rest")
    bad.write_bytes(b"hello")
    check_rdb_header(good)
    with pytest.raises(SnapshotFileError):
        check_rdb_header(bad)
