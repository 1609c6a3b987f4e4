"""Snapshot and object stores whose files are sealed (``store.envelope``), behind the same protocols.

``SealedSnapshotFiles`` wraps a ``SnapshotFiles``: every snapshot it stores (taken, copied) is sealed
under a data key of its own, wrapped by the snapshot's KMS key when its spec names one
(``encryption.kms_key_id``) and by the installation key otherwise. Size and sha256 are those of the sealed
file, so the inner store's checks (and the records in ``state.db``) still cover every byte.
``SealedBuckets`` does the same for exports; reading an object (an import) unseals what this or
another cachefleet installation with the same key sealed, and passes a plain RDB through as it is.

Readers authenticate as they go: a changed byte ends the stream with ``SnapshotFileError`` before
any unauthenticated byte is used, so a restore from a tampered file fails with nothing started.
Snapshots stored before sealing existed are plain RDB files; they are read as they are.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from cachefleet.store import envelope
from cachefleet.store.keys import INSTALLATION, Keyring, SealError
from cachefleet.store.snapshots import (
    Buckets,
    Chunks,
    SnapshotFileError,
    SnapshotFiles,
    StoredFile,
    file_chunks,
    write_file,
)


def _kek(metadata: Mapping[str, Any]) -> str:
    spec = metadata.get("spec")
    encryption = spec.get("encryption") if isinstance(spec, Mapping) else None
    kms = encryption.get("kms_key_id") if isinstance(encryption, Mapping) else None
    return str(kms) if kms else INSTALLATION


def _sealed(chunks: Chunks, keyring: Keyring, kek: str) -> Chunks:
    try:
        yield from envelope.seal(chunks, keyring, kek)
    except SealError as exc:
        raise SnapshotFileError(f"the file cannot be sealed: {exc}") from exc


def opened(chunks: Chunks, keyring: Keyring) -> Chunks:
    """The plain bytes of a stored file: unsealed (and authenticated) if sealed, else as they are."""
    first = b""
    for chunk in chunks:
        first += chunk
        if len(first) >= len(envelope.MAGIC):
            break
    rest = itertools.chain([first], chunks)
    if not envelope.is_sealed(first):
        yield from (c for c in rest if c)
        return
    try:
        yield from envelope.unseal(rest, keyring)
    except SealError as exc:
        raise SnapshotFileError(f"the file fails authentication and was not used: {exc}") from exc


class SealedSnapshotFiles:
    def __init__(self, inner: SnapshotFiles, keyring: Keyring) -> None:
        self.inner = inner
        self.keyring = keyring

    def save(self, name: str, node_group: str, rdb: Path, metadata: Mapping[str, Any]) -> StoredFile:
        return self.write(name, node_group, file_chunks(rdb), metadata)

    def write(self, name: str, node_group: str, chunks: Chunks, metadata: Mapping[str, Any]) -> StoredFile:
        kek = _kek(metadata)
        described = {**metadata, "encryption": {"format": envelope.MAGIC.decode().strip(), "key": kek}}
        return self.inner.write(name, node_group, _sealed(chunks, self.keyring, kek), described)

    def read(self, name: str, node_group: str, expected: StoredFile) -> Chunks:
        return opened(self.inner.read(name, node_group, expected), self.keyring)

    def restore(self, name: str, node_group: str, expected: StoredFile, dest: Path) -> None:
        # First the stored file against its recorded size and sha256 (a damaged file is reported as
        # such), then unsealed into a temporary file renamed only once every chunk authenticated.
        for _ in self.inner.read(name, node_group, expected):
            pass
        write_file(dest, self.read(name, node_group, expected), durable=False)

    def delete(self, name: str) -> None:
        self.inner.delete(name)


class SealedBuckets:
    def __init__(self, inner: Buckets, keyring: Keyring, kek: str = INSTALLATION) -> None:
        self.inner = inner
        self.keyring = keyring
        self.kek = kek

    def bucket_exists(self, bucket: str) -> bool:
        return self.inner.bucket_exists(bucket)

    def exists(self, bucket: str, key: str) -> bool:
        return self.inner.exists(bucket, key)

    def put(self, bucket: str, key: str, chunks: Chunks) -> StoredFile:
        return self.inner.put(bucket, key, _sealed(chunks, self.keyring, self.kek))

    def get(self, bucket: str, key: str) -> Chunks:
        return opened(self.inner.get(bucket, key), self.keyring)


def unseal_file(source: Path, keyring: Keyring) -> Iterator[bytes]:
    """The plain bytes of a sealed export or snapshot file (``cachefleet kms decrypt-file``)."""
    return opened(file_chunks(source), keyring)
