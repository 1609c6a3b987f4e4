"""Whole-file copies with their digest, shared by the host drivers' node file transfers."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from cachefleet.hosts.base import FileDigest

CHUNK = 1 << 20


def chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def digest_of(path: Path) -> FileDigest:
    hasher, size = hashlib.sha256(), 0
    for chunk in chunks(path):
        hasher.update(chunk)
        size += len(chunk)
    return FileDigest(size, hasher.hexdigest())


def write_chunks(dest: Path, data: Iterable[bytes]) -> FileDigest:
    """Write ``data`` to ``dest`` (mode 0600) through a temporary file in the same directory, synced
    and renamed into place: a reader sees the old file or the whole new one."""
    tmp = dest.with_name(f".{dest.name}.part")
    hasher, size = hashlib.sha256(), 0
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            for chunk in data:
                out.write(chunk)
                hasher.update(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return FileDigest(size, hasher.hexdigest())
