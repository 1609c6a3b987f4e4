"""Where snapshot files live, behind two small interfaces so that an S3-compatible store can be added.

``SnapshotFiles``: the snapshots themselves, one RDB per shard with its size and sha256. The local
implementation keeps ``DIR/snapshots/<name>/``::

    0001.rdb        the RDB of node group 0001, mode 0600
    metadata.json   name, files (size + sha256) and the snapshot's spec, mode 0600

``Buckets``: an object store standing in for S3, where ``CopySnapshot TargetBucket`` exports to and
``SnapshotArns`` imports from. The local implementation maps ``s3://bucket/key`` to
``<root>/<bucket>/<key>``; a bucket is a directory that must exist, as an S3 bucket must.

Crash safety: every file is written under a temporary name (``.<name>.tmp``), its size and sha256
computed on the way, fsynced, and only then renamed into place (and the directory fsynced). A crash
leaves at most a temporary file, which the next write of that name replaces; a file under its final
name is always complete. Reads verify: a stream of a stored file raises ``SnapshotFileError`` at its
end when the bytes read do not have the size and sha256 the caller expects, and every writer drops
its temporary file instead of committing it when the stream it copies from raises.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

CHUNK = 1 << 20
RDB_MAGIC = b"REDIS"
METADATA = "metadata.json"

_NAME = re.compile(r"[a-z0-9][a-z0-9.-]*")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class SnapshotFileError(Exception):
    """A snapshot or object file is missing, unreadable, or not what its recorded size and sha256 say."""


@dataclass(frozen=True)
class StoredFile:
    size: int
    sha256: str


Chunks = Iterator[bytes]


class SnapshotFiles(Protocol):
    def save(self, name: str, node_group: str, rdb: Path, metadata: Mapping[str, Any]) -> StoredFile:
        """Store ``rdb``, a complete RDB file that its writer never changes in place (a node's
        ``dump.rdb``: Redis replaces it by renaming a new file over it)."""
        ...

    def write(self, name: str, node_group: str, chunks: Chunks, metadata: Mapping[str, Any]) -> StoredFile:
        """Store the RDB of ``node_group`` of snapshot ``name`` from ``chunks``; committed only if the
        stream ends without raising."""
        ...

    def read(self, name: str, node_group: str, expected: StoredFile) -> Chunks:
        """The stored RDB, verified against ``expected`` once read to its end."""
        ...

    def restore(self, name: str, node_group: str, expected: StoredFile, dest: Path) -> None:
        """Place the RDB at ``dest`` (a new node's ``dump.rdb``) once verified against ``expected``;
        ``dest`` is left untouched when the stored file does not match."""
        ...

    def delete(self, name: str) -> None:
        """Remove snapshot ``name``'s files (a no-op when there are none)."""
        ...


class Buckets(Protocol):
    def bucket_exists(self, bucket: str) -> bool: ...

    def exists(self, bucket: str, key: str) -> bool: ...

    def put(self, bucket: str, key: str, chunks: Chunks) -> StoredFile:
        """Upload an object from ``chunks``; committed only if the stream ends without raising."""
        ...

    def get(self, bucket: str, key: str) -> Chunks:
        """The object's bytes; ``SnapshotFileError`` when it is missing or unreadable."""
        ...


def file_chunks(path: Path, expected: StoredFile | None = None) -> Chunks:
    """The bytes of ``path``, checked against ``expected`` (size and sha256) at the end when given."""
    digest = hashlib.sha256()
    size = 0
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise SnapshotFileError(f"{path.name} cannot be read: {exc.strerror or exc}") from exc
    with handle:
        while True:
            try:
                chunk = handle.read(CHUNK)
            except OSError as exc:
                raise SnapshotFileError(f"{path.name} cannot be read: {exc.strerror or exc}") from exc
            if not chunk:
                break
            digest.update(chunk)
            size += len(chunk)
            yield chunk
    if expected is not None:
        if size != expected.size:
            raise SnapshotFileError(f"{path.name} has {size} bytes, {expected.size} were stored")
        if digest.hexdigest() != expected.sha256:
            raise SnapshotFileError(f"{path.name} does not match its sha256 (the file is corrupted)")


def write_file(path: Path, chunks: Chunks, *, durable: bool = True) -> StoredFile:
    """Write ``chunks`` to ``path`` atomically, mode 0600; the size and sha256 of what was written.

    ``durable``: fsync the file and its directory before and after the rename (a snapshot). A node's
    seed needs no fsync: a lost one is written again before the node's first start.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    digest = hashlib.sha256()
    size = 0
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), 0o600)
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
            out.flush()
            if durable:
                os.fsync(out.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    os.replace(tmp, path)
    if durable:
        _fsync_dir(path.parent)
    return StoredFile(size, digest.hexdigest())


def check_rdb_header(path: Path) -> None:
    """Refuse a file that is not an RDB at all (the engine would refuse to start on it)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(len(RDB_MAGIC))
    except OSError as exc:
        raise SnapshotFileError(f"{path.name} cannot be read: {exc.strerror or exc}") from exc
    if head != RDB_MAGIC:
        raise SnapshotFileError(f"{path.name} is not an RDB file")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def _commit(tmp: Path, target: Path) -> StoredFile:
    """Hash ``tmp`` (a file already written), make it 0600 and durable, and rename it to ``target``."""
    digest = hashlib.sha256()
    size = 0
    with tmp.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
        os.fchmod(handle.fileno(), 0o600)
        os.fsync(handle.fileno())
    os.replace(tmp, target)
    _fsync_dir(target.parent)
    return StoredFile(size, digest.hexdigest())


class LocalSnapshotFiles:
    """Snapshots in a local directory (``DIR/snapshots``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.abspath(root))

    def directory(self, name: str) -> Path:
        if not _NAME.fullmatch(name) or ".." in name:
            raise ValueError(f"invalid snapshot name {name!r}")
        return self.root / name

    def path(self, name: str, node_group: str) -> Path:
        if not node_group.isdigit():
            raise ValueError(f"invalid node group {node_group!r}")
        return self.directory(name) / f"{node_group}.rdb"

    def save(self, name: str, node_group: str, rdb: Path, metadata: Mapping[str, Any]) -> StoredFile:
        # A hard link instead of a copy: the file is immutable (see the protocol), so the link is a
        # copy that costs nothing but the read that computes its sha256. Another file system, or
        # links refused: a real copy.
        _private_dir(self.root)
        _private_dir(self.directory(name))
        target = self.path(name, node_group)
        tmp = target.with_name(f".{target.name}.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        try:
            os.link(rdb, tmp)
        except FileNotFoundError as exc:
            raise SnapshotFileError(f"{rdb.name} cannot be read: {exc.strerror or exc}") from exc
        except OSError:
            return self.write(name, node_group, file_chunks(rdb), metadata)
        try:
            stored = _commit(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        self._describe(name, node_group, stored, metadata)
        return stored

    def write(self, name: str, node_group: str, chunks: Chunks, metadata: Mapping[str, Any]) -> StoredFile:
        _private_dir(self.root)
        _private_dir(self.directory(name))
        stored = write_file(self.path(name, node_group), chunks)
        self._describe(name, node_group, stored, metadata)
        return stored

    def _describe(self, name: str, node_group: str, stored: StoredFile, metadata: Mapping[str, Any]) -> None:
        meta = {
            "name": name,
            "files": {f"{node_group}.rdb": {"size": stored.size, "sha256": stored.sha256}},
            **metadata,
        }
        text = json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n"
        write_file(self.directory(name) / METADATA, iter([text.encode()]))

    def read(self, name: str, node_group: str, expected: StoredFile) -> Chunks:
        path = self.path(name, node_group)
        if not path.is_file():
            raise SnapshotFileError(f"the file of snapshot {name} is missing")
        return file_chunks(path, expected)

    def restore(self, name: str, node_group: str, expected: StoredFile, dest: Path) -> None:
        # Read once to verify, then hard-link rather than copy: Redis never writes its RDB in place
        # (BGSAVE, SHUTDOWN SAVE and a replica's sync all write a temporary file and rename it over
        # dump.rdb), so the stored snapshot can never change through the node's link.
        for _ in self.read(name, node_group, expected):
            pass
        tmp = dest.with_name(f".{dest.name}.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        try:
            os.link(self.path(name, node_group), tmp)
        except OSError:  # another file system, or links not allowed: copy, verifying on the way
            write_file(dest, self.read(name, node_group, expected), durable=False)
            return
        os.replace(tmp, dest)

    def delete(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.directory(name))


class LocalBuckets:
    """Buckets as directories under ``root`` (the export or import area)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.abspath(root))

    def path(self, bucket: str, key: str) -> Path:
        parts = key.split("/")
        if not _BUCKET.fullmatch(bucket) or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"invalid object s3://{bucket}/{key}")
        return self.root.joinpath(bucket, *parts)

    def bucket_exists(self, bucket: str) -> bool:
        return _BUCKET.fullmatch(bucket) is not None and (self.root / bucket).is_dir()

    def exists(self, bucket: str, key: str) -> bool:
        return self.path(bucket, key).exists()

    def put(self, bucket: str, key: str, chunks: Chunks) -> StoredFile:
        if not self.bucket_exists(bucket):
            raise SnapshotFileError(f"the bucket {bucket} does not exist")
        path = self.path(bucket, key)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        return write_file(path, chunks)

    def get(self, bucket: str, key: str) -> Chunks:
        path = self.path(bucket, key)
        if not path.is_file():
            raise SnapshotFileError(f"s3://{bucket}/{key} does not exist")
        return file_chunks(path)
