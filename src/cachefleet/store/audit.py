"""The audit trail: one JSON object per line in ``DIR/audit/audit.log``, rotated by size.

``AuditLog.append`` writes a record (``model.audit``) with one ``write`` on an ``O_APPEND`` file, so
lines never interleave. When the file would pass ``max_bytes`` it becomes ``audit.log.1`` (the older
ones shift to ``.2`` ... up to ``backups``; the oldest is dropped). Files are 0600 in a 0700
directory. ``read_records`` and ``follow`` read them back, oldest first, for ``cachefleet audit``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

AUDIT_FILE = "audit.log"
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_BACKUPS = 5


class AuditLog:
    def __init__(self, directory: Path, *, max_bytes: int = DEFAULT_MAX_BYTES, backups: int = DEFAULT_BACKUPS) -> None:
        self.directory = directory
        self.path = directory / AUDIT_FILE
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock = threading.Lock()
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)

    def append(self, record: Mapping[str, Any]) -> None:
        line = (json.dumps(record, separators=(",", ":"), sort_keys=True, default=str) + "\n").encode()
        with self._lock:
            try:
                size = self.path.stat().st_size
            except FileNotFoundError:
                size = 0
            if size and size + len(line) > self.max_bytes:
                self._rotate()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)

    def _rotate(self) -> None:
        for index in range(self.backups, 0, -1):
            older = self.directory / f"{AUDIT_FILE}.{index}"
            if index == self.backups:
                older.unlink(missing_ok=True)
                continue
            if older.exists():
                older.rename(self.directory / f"{AUDIT_FILE}.{index + 1}")
        if self.backups:
            self.path.rename(self.directory / f"{AUDIT_FILE}.1")
        else:
            self.path.unlink()


def audit_files(directory: Path) -> list[Path]:
    """The audit files, oldest first."""
    rotated = sorted(
        (p for p in directory.glob(f"{AUDIT_FILE}.*") if p.suffix[1:].isdigit()),
        key=lambda p: int(p.suffix[1:]),
        reverse=True,
    )
    current = directory / AUDIT_FILE
    return [*rotated, *([current] if current.exists() else [])]


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None  # a line cut short by a crash: skipped, not fatal
    return record if isinstance(record, dict) else None


def read_records(directory: Path) -> Iterator[dict[str, Any]]:
    for path in audit_files(directory):
        try:
            with path.open("rb") as handle:
                for line in handle:
                    record = _parse(line)
                    if record is not None:
                        yield record
        except FileNotFoundError:
            continue  # rotated away while we read


def follow(
    directory: Path, *, interval: float = 0.5, sleep: Callable[[float], None] = time.sleep
) -> Iterator[dict[str, Any]]:
    """Records appended from now on, across rotations, for as long as the caller iterates."""
    path = directory / AUDIT_FILE
    handle: BinaryIO | None = None
    inode = None
    pending = b""
    first = True  # the file open at the start is read from its end; later ones from their start
    try:
        while True:
            if handle is None:
                try:
                    handle = path.open("rb")
                except FileNotFoundError:
                    first = False
                    sleep(interval)
                    continue
                inode = os.fstat(handle.fileno()).st_ino
                if first:
                    handle.seek(0, os.SEEK_END)
                first = False
            chunk = handle.read()
            if chunk:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    record = _parse(line)
                    if record is not None:
                        yield record
                continue
            try:
                rotated = os.stat(path).st_ino != inode
            except FileNotFoundError:
                rotated = True
            if rotated:
                handle.close()
                handle, pending = None, b""
                continue
            sleep(interval)
    finally:
        if handle is not None:
            handle.close()
