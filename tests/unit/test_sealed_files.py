"""Sealed snapshot and export stores on real files: nothing plain on disk, tampering refused."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cachefleet.store import envelope
from cachefleet.store.keys import InstallationKey, Keyring, KmsKeys
from cachefleet.store.sealed import SealedBuckets, SealedSnapshotFiles, unseal_file
from cachefleet.store.snapshots import LocalBuckets, LocalSnapshotFiles, SnapshotFileError, StoredFile

MARKER = b"marker-7f3a9c1e-do-not-leak"
RDB = b"REDIS0011" + MARKER * 5000 + b"\xff"


@pytest.fixture
def keyring(tmp_path: Path) -> Keyring:
    installation = InstallationKey.load(tmp_path / "keys", create=True)
    return Keyring(installation, KmsKeys(tmp_path / "keys", installation, "us-east-1", "000000000000"))


@pytest.fixture
def files(tmp_path: Path, keyring: Keyring) -> SealedSnapshotFiles:
    return SealedSnapshotFiles(LocalSnapshotFiles(tmp_path / "snapshots"), keyring)


def _rdb(tmp_path: Path) -> Path:
    path = tmp_path / "dump.rdb"
    path.write_bytes(RDB)
    return path


def _files_containing(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_a_saved_snapshot_is_sealed_and_reads_back_plain(tmp_path: Path, files: SealedSnapshotFiles) -> None:
    stored = files.save("snap", "0001", _rdb(tmp_path), {"spec": {"name": "snap"}})
    on_disk = tmp_path / "snapshots" / "snap" / "0001.rdb"
    assert envelope.is_sealed(on_disk.read_bytes())
    assert _files_containing(tmp_path / "snapshots", MARKER) == []
    assert stored == StoredFile(on_disk.stat().st_size, hashlib.sha256(on_disk.read_bytes()).hexdigest())
    assert b"".join(files.read("snap", "0001", stored)) == RDB
    metadata = json.loads((tmp_path / "snapshots" / "snap" / "metadata.json").read_text())
    assert metadata["encryption"] == {"format": "CFSEAL1", "key": "installation"}
    dest = tmp_path / "node" / "dump.rdb"
    dest.parent.mkdir()
    files.restore("snap", "0001", stored, dest)
    assert dest.read_bytes() == RDB


def test_a_snapshot_of_a_kms_encrypted_source_is_wrapped_by_that_key(
    tmp_path: Path, files: SealedSnapshotFiles, keyring: Keyring
) -> None:
    assert keyring.kms is not None
    key = keyring.kms.create(datetime(2026, 1, 1, tzinfo=UTC), "alias/orders")
    stored = files.save(
        "snap", "0001", _rdb(tmp_path), {"spec": {"encryption": {"enabled": True, "kms_key_id": key.key_id}}}
    )
    header = envelope.header_of((tmp_path / "snapshots" / "snap" / "0001.rdb").read_bytes()[:4096])
    assert header["kek"] == key.key_id
    assert b"".join(files.read("snap", "0001", stored)) == RDB


def test_copies_get_their_own_data_key(tmp_path: Path, files: SealedSnapshotFiles) -> None:
    stored = files.save("a", "0001", _rdb(tmp_path), {})
    copy = files.write("b", "0001", files.read("a", "0001", stored), {})
    first = (tmp_path / "snapshots" / "a" / "0001.rdb").read_bytes()
    second = (tmp_path / "snapshots" / "b" / "0001.rdb").read_bytes()
    assert envelope.header_of(first)["wrapped_key"] != envelope.header_of(second)["wrapped_key"]
    assert b"".join(files.read("b", "0001", copy)) == RDB


def test_a_tampered_snapshot_is_refused_even_when_its_checksum_is_forged(
    tmp_path: Path, files: SealedSnapshotFiles
) -> None:
    files.save("snap", "0001", _rdb(tmp_path), {})
    on_disk = tmp_path / "snapshots" / "snap" / "0001.rdb"
    data = bytearray(on_disk.read_bytes())
    data[len(data) // 2] ^= 0x01
    on_disk.write_bytes(bytes(data))
    # Whoever changed the file also rewrote the size and sha256 recorded for it.
    forged = StoredFile(len(data), hashlib.sha256(bytes(data)).hexdigest())
    dest = tmp_path / "dump.rdb.restored"
    with pytest.raises(SnapshotFileError, match="fails authentication"):
        files.restore("snap", "0001", forged, dest)
    assert not dest.exists()
    assert list(tmp_path.glob(".dump.rdb.restored*")) == []


def test_snapshots_stored_before_sealing_still_restore(tmp_path: Path, keyring: Keyring) -> None:
    plain = LocalSnapshotFiles(tmp_path / "snapshots")
    stored = plain.save("old", "0001", _rdb(tmp_path), {})
    sealed = SealedSnapshotFiles(plain, keyring)
    assert b"".join(sealed.read("old", "0001", stored)) == RDB


def test_exports_are_sealed_and_imports_unseal_or_pass_plain_rdbs(tmp_path: Path, keyring: Keyring) -> None:
    buckets = SealedBuckets(LocalBuckets(tmp_path / "exports"), keyring)
    (tmp_path / "exports" / "bucket").mkdir(parents=True)
    buckets.put("bucket", "dump.rdb", iter([RDB]))
    exported = tmp_path / "exports" / "bucket" / "dump.rdb"
    assert MARKER not in exported.read_bytes()
    assert b"".join(buckets.get("bucket", "dump.rdb")) == RDB
    assert b"".join(unseal_file(exported, keyring)) == RDB
    (tmp_path / "exports" / "bucket" / "plain.rdb").write_bytes(RDB)
    assert b"".join(buckets.get("bucket", "plain.rdb")) == RDB
    (tmp_path / "exports" / "bucket" / "tiny").write_bytes(b"RED")
    assert b"".join(buckets.get("bucket", "tiny")) == b"RED"
