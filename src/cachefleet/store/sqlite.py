"""Desired state and observed status in one SQLite file (WAL), or in memory for tests.

The API writes specs (bumping ``generation``) and statuses change through ``store.statuses`` (the
one writer, which checks each change against the kind's lifecycle table); this module is where the
two meet. Writers call ``subscribe``d callbacks after commit so the reconciler can react
at once instead of waiting for its next resync.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    spec TEXT NOT NULL,
    status TEXT NOT NULL,
    generation INTEGER NOT NULL DEFAULT 1,
    UNIQUE (kind, id)
);
CREATE TABLE IF NOT EXISTS access_keys (
    key_id TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    source_id TEXT NOT NULL,
    source_type TEXT NOT NULL,
    message TEXT NOT NULL,
    date TEXT NOT NULL
);
"""

Listener = Callable[[str, str], None]


@dataclass(frozen=True)
class Record:
    kind: str
    id: str
    spec: dict[str, Any]
    status: dict[str, Any]
    generation: int


@dataclass(frozen=True)
class Event:
    seq: int
    source_id: str
    source_type: str
    message: str
    date: datetime


class Store:
    """Thread-safe: the reconciler's blocking steps run in worker threads and may write here."""

    def __init__(self, path: Path | str) -> None:
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._listeners: list[Listener] = []
        self._pending: list[tuple[str, str]] = []
        self._depth = 0
        if str(path) != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes atomically; listeners hear about them once the outermost one commits."""
        pending: list[tuple[str, str]] = []
        with self._lock:
            self._depth += 1
            if self._depth == 1:
                self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._depth -= 1
                if self._depth == 0:
                    self._db.execute("ROLLBACK")
                    self._pending.clear()
                raise
            self._depth -= 1
            if self._depth == 0:
                self._db.execute("COMMIT")
                pending, self._pending = self._pending, []
        for kind, resource_id in dict.fromkeys(pending):
            for listener in self._listeners:
                listener(kind, resource_id)

    # Resources

    def get(self, kind: str, resource_id: str) -> Record | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM resources WHERE kind = ? AND id = ?", (kind, resource_id)
            ).fetchone()
        return _record(row) if row else None

    def records(self, kind: str) -> list[Record]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM resources WHERE kind = ? ORDER BY seq", (kind,)).fetchall()
        return [_record(r) for r in rows]

    def create(self, kind: str, resource_id: str, spec: dict[str, Any], status: dict[str, Any]) -> bool:
        """Insert a new resource; False when one with that id exists already."""
        with self.transaction():
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO resources (kind, id, spec, status) VALUES (?, ?, ?, ?)",
                (kind, resource_id, json.dumps(spec), json.dumps(status)),
            )
            if cursor.rowcount:
                self._pending.append((kind, resource_id))
            return bool(cursor.rowcount)

    def put_spec(self, kind: str, resource_id: str, spec: dict[str, Any]) -> None:
        with self.transaction():
            self._db.execute(
                "UPDATE resources SET spec = ?, generation = generation + 1 WHERE kind = ? AND id = ?",
                (json.dumps(spec), kind, resource_id),
            )
            self._pending.append((kind, resource_id))

    def write_status(self, kind: str, resource_id: str, status: dict[str, Any]) -> None:
        """Only ``store.statuses`` calls this: it checks every write against the kind's lifecycle.

        A status write wakes nobody: the reconciler makes most of them, and the API's immediate
        transitions come with a spec write, which does."""
        with self.transaction():
            self._db.execute(
                "UPDATE resources SET status = ? WHERE kind = ? AND id = ?",
                (json.dumps(status), kind, resource_id),
            )

    def delete(self, kind: str, resource_id: str) -> None:
        with self.transaction():
            self._db.execute("DELETE FROM resources WHERE kind = ? AND id = ?", (kind, resource_id))

    # Credentials and internal secrets

    def add_access_key(self, key_id: str, secret: str, created_at: datetime) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT INTO access_keys (key_id, secret, created_at) VALUES (?, ?, ?)",
                (key_id, secret, created_at.isoformat()),
            )

    def secret_for(self, key_id: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT secret FROM access_keys WHERE key_id = ?", (key_id,)).fetchone()
        return str(row["secret"]) if row else None

    def secret(self, name: str, make: Callable[[], str]) -> str:
        """The named internal secret, created with ``make`` the first time it is asked for."""
        with self.transaction():
            self._db.execute("INSERT OR IGNORE INTO secrets (name, value) VALUES (?, ?)", (name, make()))
            row = self._db.execute("SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()
        return str(row["value"])

    # Events

    def add_event(self, source_id: str, source_type: str, message: str, date: datetime) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT INTO events (source_id, source_type, message, date) VALUES (?, ?, ?, ?)",
                (source_id, source_type, message, date.isoformat()),
            )

    def events(self) -> list[Event]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM events ORDER BY seq").fetchall()
        return [
            Event(r["seq"], r["source_id"], r["source_type"], r["message"], datetime.fromisoformat(r["date"]))
            for r in rows
        ]


def _record(row: sqlite3.Row) -> Record:
    return Record(
        kind=row["kind"],
        id=row["id"],
        spec=json.loads(row["spec"]),
        status=json.loads(row["status"]),
        generation=row["generation"],
    )
