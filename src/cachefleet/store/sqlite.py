"""Desired state and observed status in one SQLite file (WAL), or in memory for tests.

The API writes specs (bumping ``generation``) and statuses change through ``store.statuses`` (the
one writer, which checks each change against the kind's lifecycle table); this module is where the
two meet. Writers call ``subscribe``d callbacks after commit so the reconciler can react
at once instead of waiting for its next resync.

Reads cost by what they return, not by how many resources exist: one resource by its id, a page
of a kind in creation order (``seq``) from a position, filtered only on the JSON fields that have
an index (``INDEXED``), and events newest first by time window and source, each through an index.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
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
CREATE INDEX IF NOT EXISTS resources_by_kind ON resources (kind, seq);
CREATE INDEX IF NOT EXISTS events_by_date ON events (date, seq);
CREATE INDEX IF NOT EXISTS events_by_source ON events (source_id, date, seq);
CREATE INDEX IF NOT EXISTS events_by_type ON events (source_type, date, seq);
"""

# The JSON fields a page may be filtered on, each with an index on (kind, field, seq), so a filtered
# page reads only the rows it matches. A filter on any other field is refused rather than scanned.
INDEXED: tuple[tuple[str, str], ...] = (
    ("spec", "replication_group_id"),  # a group's member clusters; a group's snapshots
    ("spec", "cache_cluster_id"),  # a cluster's snapshots
    ("status", "node_cluster_id"),  # the snapshots saved on a member
    ("spec", "source"),  # manual or automated snapshots
    ("spec", "parameter_group"),  # the clusters using a parameter group
)


def _field(column: str, key: str) -> str:
    return f"json_extract({column}, '$.{key}')"


_INDEXES = "".join(
    f"CREATE INDEX IF NOT EXISTS resources_by_{column}_{key} ON resources (kind, {_field(column, key)}, seq);\n"
    for column, key in INDEXED
)
# Events are stored with their date in one form (UTC, microseconds), so that comparing the text
# compares the times; ``_migrate`` rewrites rows written before in another form.
_DATE_LENGTH = len("2026-01-01T00:00:00.000000+00:00")

Listener = Callable[[str, str], None]
_JSON_KEY = re.compile(r"[a-z_]+(?:\.[a-z_]+)*")  # a field, or a path of fields ("placement.host")


@dataclass(frozen=True)
class Record:
    kind: str
    id: str
    spec: dict[str, Any]
    status: dict[str, Any]
    generation: int
    seq: int = 0  # creation order: what pages are ordered and resumed by


@dataclass(frozen=True)
class Match:
    """``column``'s JSON field ``key`` equals ``value`` (None: is absent or null); an ``INDEXED`` field."""

    column: str
    key: str
    value: str | None

    def __post_init__(self) -> None:
        if (self.column, self.key) not in INDEXED:
            raise ValueError(f"{self.column}.{self.key} has no index: a filter on it would scan every resource")

    @property
    def index(self) -> str:
        return f"resources_by_{self.column}_{self.key}"

    def sql(self) -> tuple[str, list[str]]:
        field = _field(self.column, self.key)
        return (f"{field} IS NULL", []) if self.value is None else (f"{field} = ?", [self.value])


# A filter: every group must hold (AND), and within a group any one match (OR).
Filter = Sequence[Sequence[Match]]


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
        self._db.executescript(_SCHEMA + _INDEXES)
        self._migrate()

    def _migrate(self) -> None:
        """Rewrite, in place, event dates stored in another form than ``_date``'s (earlier versions
        wrote ``isoformat()``, which leaves out zero microseconds)."""
        with self.transaction():
            rows = self._db.execute(
                "SELECT seq, date FROM events WHERE length(date) != ? OR substr(date, -6) != '+00:00'",
                (_DATE_LENGTH,),
            ).fetchall()
            for row in rows:
                self._db.execute(
                    "UPDATE events SET date = ? WHERE seq = ?", (_date(datetime.fromisoformat(row["date"])), row["seq"])
                )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def version(self) -> tuple[int, int]:
        """A value that changes whenever the stored data may have: the rows this connection has
        written (SQLite's ``total_changes``) and ``PRAGMA data_version``, which moves when another
        connection commits to the file. Sweeps that run every second compare it to skip their work
        when nothing changed, instead of decoding every record each time."""
        with self._lock:
            return self._db.total_changes, int(self._db.execute("PRAGMA data_version").fetchone()[0])

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
        """Every resource of ``kind``: for the reconciler's sweeps, never for a request (``page``)."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM resources WHERE kind = ? ORDER BY seq", (kind,)).fetchall()
        return [_record(r) for r in rows]

    def many(self, kind: str, ids: Sequence[str]) -> list[Record]:
        """The resources of ``kind`` named in ``ids`` (in that order; missing ones left out), in one query."""
        if not ids:
            return []
        marks = ", ".join("?" * len(ids))
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM resources WHERE kind = ? AND id IN ({marks})", (kind, *ids)
            ).fetchall()
        found = {r["id"]: _record(r) for r in rows}
        return [found[i] for i in dict.fromkeys(ids) if i in found]

    def page(self, kind: str, *, start: int = 0, limit: int | None, where: Filter = ()) -> list[Record]:
        """At most ``limit`` (None: every one) resources of ``kind`` with ``seq >= start``, in ``seq`` order, that
        ``where`` matches. The first group of the filter leads: the rows are found through its
        index (a union of indexes for an OR), the other groups are checked on those rows only; so
        the cost follows the page and the matches of the first group, not the number of resources."""
        source = "resources INDEXED BY resources_by_kind"
        clauses = ["kind = ?", "seq >= ?"]
        params: list[str | int] = [kind, start]
        for position, group in enumerate(where):
            if position == 0 and len(group) == 1:
                source = f"resources INDEXED BY {group[0].index}"
            if position == 0 and len(group) > 1:
                subqueries = []
                for match in group:
                    sql, values = match.sql()
                    subqueries.append(f"SELECT seq FROM resources INDEXED BY {match.index} WHERE kind = ? AND {sql}")
                    params += [kind, *values]
                clauses.append(f"seq IN ({' UNION ALL '.join(subqueries)})")
                continue
            parts = [m.sql() for m in group]
            clauses.append("(" + " OR ".join(sql for sql, _ in parts) + ")")
            params += [value for _, values in parts for value in values]
        query = f"SELECT * FROM {source} WHERE {' AND '.join(clauses)} ORDER BY seq LIMIT ?"
        with self._lock:
            rows = self._db.execute(query, (*params, -1 if limit is None else limit)).fetchall()
        return [_record(r) for r in rows]

    def ids(self, kind: str) -> list[str]:
        """The ids of every resource of ``kind`` in creation order, without reading specs or statuses."""
        with self._lock:
            rows = self._db.execute("SELECT id FROM resources WHERE kind = ? ORDER BY seq", (kind,)).fetchall()
        return [r["id"] for r in rows]

    def count(self, kind: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT count(*) FROM resources WHERE kind = ?", (kind,)).fetchone()
        return int(row[0])

    def json_values(self, kind: str, column: str, key: str, *, each: str | None = None) -> list[Any]:
        """The non-null JSON field ``key`` of every resource of ``kind``, read by SQLite without
        decoding whole records (or of every element of the array ``each``, e.g. a cluster's nodes)."""
        if column not in ("spec", "status") or not _JSON_KEY.fullmatch(key) or (each and not _JSON_KEY.fullmatch(each)):
            raise ValueError(f"not a JSON field: {column}.{each or ''}.{key}")
        if each is None:
            query = f"SELECT {_field(column, key)} AS v FROM resources WHERE kind = ?"
        else:
            query = (
                f"SELECT json_extract(e.value, '$.{key}') AS v FROM resources, json_each({column}, '$.{each}') AS e"
                " WHERE kind = ?"
            )
        with self._lock:
            rows = self._db.execute(f"SELECT v FROM ({query}) WHERE v IS NOT NULL", (kind,)).fetchall()
        return [r["v"] for r in rows]

    def ids_with(self, kind: str, column: str, key: str) -> list[str]:
        """The ids, in creation order, of the resources of ``kind`` whose JSON field ``key`` is set
        (neither null nor false nor zero), chosen by SQLite without decoding whole records."""
        if column not in ("spec", "status") or not _JSON_KEY.fullmatch(key):
            raise ValueError(f"not a JSON field: {column}.{key}")
        query = f"SELECT id FROM resources WHERE kind = ? AND coalesce({_field(column, key)}, 0) != 0 ORDER BY seq"
        with self._lock:
            rows = self._db.execute(query, (kind,)).fetchall()
        return [r["id"] for r in rows]

    def json_pairs(self, kind: str, spec_key: str, each: str, key: str) -> list[tuple[Any, Any]]:
        """(the resource's spec field ``spec_key``, the field ``key`` of an element of its status array
        or object ``each``) for every such element of every resource of ``kind`` where ``key`` is not
        null: say a cluster's node type beside each of its nodes' hosts, or a group's id beside each
        of its Sentinels' hosts, without decoding whole records."""
        if not all(_JSON_KEY.fullmatch(k) for k in (spec_key, each, key)):
            raise ValueError(f"not JSON fields: {spec_key}, {each}.{key}")
        query = (
            f"SELECT {_field('spec', spec_key)} AS s, json_extract(e.value, '$.{key}') AS v"
            f" FROM resources, json_each(status, '$.{each}') AS e WHERE kind = ?"
        )
        with self._lock:
            rows = self._db.execute(f"SELECT s, v FROM ({query}) WHERE v IS NOT NULL", (kind,)).fetchall()
        return [(r["s"], r["v"]) for r in rows]

    def status_keys(self, kind: str, each: str) -> list[tuple[str, str]]:
        """(resource id, key) for every key of the status object ``each`` of every resource of
        ``kind``: say each group's id beside the node id of each of its Sentinels, without decoding
        whole records."""
        if not _JSON_KEY.fullmatch(each):
            raise ValueError(f"not a JSON field: {each}")
        query = (
            f"SELECT resources.id AS i, e.key AS k FROM resources, json_each(status, '$.{each}') AS e WHERE kind = ?"
        )
        with self._lock:
            rows = self._db.execute(query, (kind,)).fetchall()
        return [(r["i"], r["k"]) for r in rows]

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
        transitions come with a spec write, which does, or with ``wake``."""
        with self.transaction():
            self._db.execute(
                "UPDATE resources SET status = ? WHERE kind = ? AND id = ?",
                (json.dumps(status), kind, resource_id),
            )

    def wake(self, kind: str, resource_id: str) -> None:
        """Tell the listeners about a resource whose spec did not change: an API transition that is a
        status alone (DeleteUser), which the reconciler must carry out now, not at its next resync."""
        with self.transaction():
            self._pending.append((kind, resource_id))

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
                (source_id, source_type, message, _date(date)),
            )

    def events(self) -> list[Event]:
        """Every event, oldest first: for tests and tools; requests read ``recent_events``."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM events ORDER BY seq").fetchall()
        return [_event(r) for r in rows]

    def recent_events(
        self,
        *,
        start: datetime,
        end: datetime | None = None,
        limit: int | None = None,
        source_type: str | None = None,
        source_id: str | None = None,
        before: tuple[datetime, int] | None = None,
        message_prefix: str | None = None,
    ) -> list[Event]:
        """At most ``limit`` events dated within [start, end] (None: no bound), newest first (ties: the later written
        first), from the position ``before`` (date, seq) on, inclusive; by source if given. An index
        leads to the first one, so the cost follows the page, not how many events there are. A
        ``message_prefix`` is checked by SQLite on the rows of the window, so only matches are decoded."""
        source = "events"
        clauses = ["date >= ?"]
        params: list[str | int] = [_date(start)]
        if end is not None:
            clauses.append("date <= ?")
            params.append(_date(end))
        if source_type is not None:
            clauses.append("source_type = ?")
            params.append(source_type)
        if source_id is not None:
            clauses.append("source_id = ?")
            params.append(source_id)
            source = "events INDEXED BY events_by_source"  # an id is the narrowest, whatever the planner guesses
        if message_prefix is not None:
            clauses.append("substr(message, 1, ?) = ?")
            params += [len(message_prefix), message_prefix]
        if before is not None:
            clauses.append("(date, seq) <= (?, ?)")
            params += [_date(before[0]), before[1]]
        query = f"SELECT * FROM {source} WHERE {' AND '.join(clauses)} ORDER BY date DESC, seq DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(query, (*params, -1 if limit is None else limit)).fetchall()
        return [_event(r) for r in rows]


def _record(row: sqlite3.Row) -> Record:
    return Record(
        kind=row["kind"],
        id=row["id"],
        spec=json.loads(row["spec"]),
        status=json.loads(row["status"]),
        generation=row["generation"],
        seq=row["seq"],
    )


def _event(row: sqlite3.Row) -> Event:
    return Event(row["seq"], row["source_id"], row["source_type"], row["message"], datetime.fromisoformat(row["date"]))


def _date(moment: datetime) -> str:
    """A time as events store it: UTC, with microseconds always written (a naive time is taken as UTC)."""
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return utc.isoformat(timespec="microseconds")
