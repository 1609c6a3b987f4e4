"""IAM identities of the account, in their own tables of ``state.db``: users, groups, access keys,
inline and managed policies (with versions) and attachments.

This module opens its own connection to the database file, so the resource tables of
``store.sqlite`` and these never share a transaction, and neither module knows the other's schema
(the one exception is ``adopt_legacy_admin_key``, which moves the admin key of older data
directories out of ``store.sqlite``'s tables once). Secret access keys are stored sealed by the
installation key (``store.keys``), bound to their key id; deleted rows are overwritten
(``secure_delete``), so no secret lingers in free pages.

Reads for authentication are cached: ``principal(key_id)`` resolves a key to its identity, with its
policies parsed and compiled once; every write clears the cache. Only the server process writes.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cachefleet.model.iam import (
    AWS_MANAGED_POLICIES,
    IAM_USER,
    Principal,
    policy_arn,
    root_principal,
    user_arn,
)
from cachefleet.model.policy import Policy, parse_policy
from cachefleet.store.keys import InstallationKey, SealError

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS iam_users (
    user_id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    path TEXT NOT NULL,
    created_at TEXT NOT NULL,
    tags TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS iam_groups (
    group_id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    path TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS iam_group_members (
    group_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE TABLE IF NOT EXISTS iam_access_keys (
    key_id TEXT PRIMARY KEY,
    user_id TEXT,  -- NULL: the account's root identity
    sealed_secret BLOB NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS iam_inline_policies (
    owner TEXT NOT NULL,  -- a user id or a group id
    name TEXT NOT NULL COLLATE NOCASE,
    document TEXT NOT NULL,
    PRIMARY KEY (owner, name)
);
CREATE TABLE IF NOT EXISTS iam_policies (
    arn TEXT PRIMARY KEY,
    policy_id TEXT NOT NULL,
    name TEXT NOT NULL,
    path TEXT NOT NULL,
    description TEXT,
    default_version TEXT NOT NULL,
    next_version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    tags TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS iam_policy_versions (
    arn TEXT NOT NULL,
    version_id TEXT NOT NULL,
    document TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (arn, version_id)
);
CREATE TABLE IF NOT EXISTS iam_attachments (
    owner TEXT NOT NULL,  -- a user id or a group id
    arn TEXT NOT NULL,
    PRIMARY KEY (owner, arn)
);
"""

Tags = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class User:
    user_id: str
    name: str
    path: str
    created_at: datetime
    tags: Tags = ()


@dataclass(frozen=True)
class Group:
    group_id: str
    name: str
    path: str
    created_at: datetime


@dataclass(frozen=True)
class AccessKey:
    key_id: str
    user_id: str | None  # None: root
    status: str  # "Active" | "Inactive"
    created_at: datetime


@dataclass(frozen=True)
class ManagedPolicy:
    arn: str
    policy_id: str
    name: str
    path: str
    description: str | None
    default_version: str
    created_at: datetime
    updated_at: datetime
    tags: Tags = ()
    aws_managed: bool = False


@dataclass(frozen=True)
class PolicyVersion:
    version_id: str
    document: str
    created_at: datetime


# A fixed creation time for AWS managed policies (they exist before any installation).
_AWS_EPOCH = datetime.fromisoformat("2015-02-06T18:40:00+00:00")


def _aws_policy(name: str) -> tuple[ManagedPolicy, str]:
    description, document = AWS_MANAGED_POLICIES[name]
    policy = ManagedPolicy(
        arn=policy_arn("aws", "/", name),
        policy_id="ANPA" + base64.b32encode(hashlib.sha256(name.encode()).digest()).decode()[:17],
        name=name,
        path="/",
        description=description,
        default_version="v1",
        created_at=_AWS_EPOCH,
        updated_at=_AWS_EPOCH,
        aws_managed=True,
    )
    return policy, document


def holds_sealed_secrets(path: Path) -> bool:
    """Whether the database at ``path`` has secrets sealed by an installation key: access keys, or a
    Memcached cluster's AuthToken (``store.keys.Sealer``)."""
    if not path.exists():
        return False
    counts = (
        "SELECT COUNT(*) FROM iam_access_keys",
        "SELECT COUNT(*) FROM resources WHERE json_extract(spec, '$.sealed_token') IS NOT NULL",
    )
    with contextlib.closing(sqlite3.connect(str(path))) as db:
        found = 0
        for count in counts:
            try:
                found += db.execute(count).fetchone()[0]
            except sqlite3.OperationalError:  # no such table: a data dir from before it existed
                continue
    return bool(found)


class IdentityStore:
    def __init__(self, path: Path | str, key: InstallationKey, account: str) -> None:
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._key = key
        self.account = account
        self._principals: dict[str, tuple[Principal, str] | None] = {}
        self._policies: dict[str, Policy] = {}
        if str(path) != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        # Deleted rows (a secret, a policy) are overwritten rather than left in free pages.
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            self._principals.clear()

    def _rows(self, sql: str, *args: object) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _row(self, sql: str, *args: object) -> sqlite3.Row | None:
        with self._lock:
            row: sqlite3.Row | None = self._db.execute(sql, args).fetchone()
            return row

    # -- authentication ------------------------------------------------------------------------

    def principal(self, key_id: str) -> tuple[Principal, str] | None:
        """The identity and secret of an *active* access key; None for an unknown or inactive key."""
        with self._lock:
            if key_id in self._principals:
                return self._principals[key_id]
            found = self._resolve(key_id)
            self._principals[key_id] = found
            return found

    def _resolve(self, key_id: str) -> tuple[Principal, str] | None:
        row = self._row("SELECT * FROM iam_access_keys WHERE key_id = ?", key_id)
        if row is None or row["status"] != "Active":
            return None
        try:
            secret = self._key.open(row["sealed_secret"], _secret_context(key_id)).decode()
        except SealError:
            log.error("the secret of access key %s does not open with the installation key", key_id)
            return None
        if row["user_id"] is None:
            return root_principal(self.account, key_id), secret
        user = self.user_by_id(row["user_id"])
        if user is None:
            return None
        principal = Principal(
            account=self.account,
            kind=IAM_USER,
            arn=user_arn(self.account, user.path, user.name),
            user_id=user.user_id,
            access_key_id=key_id,
            user_name=user.name,
            policies=self.effective_policies(user.user_id),
            tags=user.tags,
        )
        return principal, secret

    def secret_for(self, key_id: str) -> str | None:
        found = self.principal(key_id)
        return found[1] if found else None

    def effective_policies(self, user_id: str) -> tuple[Policy, ...]:
        """Every policy that applies to a user: inline and attached, its own and its groups'."""
        owners = [user_id, *(g.group_id for g in self.groups_for_user(user_id))]
        documents: list[str] = []
        for owner in owners:
            documents.extend(r["document"] for r in self._rows(
                "SELECT document FROM iam_inline_policies WHERE owner = ? ORDER BY name", owner
            ))  # fmt: skip
            for arn in self.attached(owner):
                found = self.policy_document(arn)
                if found is not None:
                    documents.append(found)
        return tuple(self._parsed(d) for d in documents)

    def _parsed(self, document: str) -> Policy:
        cached = self._policies.get(document)
        if cached is None:
            cached = parse_policy(document)
            if len(self._policies) > 10_000:
                self._policies.clear()
            self._policies[document] = cached
        return cached

    # -- users ---------------------------------------------------------------------------------

    def add_user(self, user: User) -> bool:
        try:
            with self._write() as db:
                db.execute(
                    "INSERT INTO iam_users (user_id, name, path, created_at, tags) VALUES (?, ?, ?, ?, ?)",
                    (user.user_id, user.name, user.path, user.created_at.isoformat(), _tags_json(user.tags)),
                )
        except sqlite3.IntegrityError:
            return False
        return True

    def user(self, name: str) -> User | None:
        row = self._row("SELECT * FROM iam_users WHERE name = ?", name)
        return _user(row) if row else None

    def user_by_id(self, user_id: str) -> User | None:
        row = self._row("SELECT * FROM iam_users WHERE user_id = ?", user_id)
        return _user(row) if row else None

    def users(self, path_prefix: str = "/") -> list[User]:
        rows = self._rows("SELECT * FROM iam_users ORDER BY name COLLATE NOCASE")
        return [_user(r) for r in rows if r["path"].startswith(path_prefix)]

    def count_users(self) -> int:
        row = self._row("SELECT COUNT(*) AS n FROM iam_users")
        return int(row["n"]) if row else 0

    def update_user(self, user_id: str, *, name: str, path: str) -> bool:
        try:
            with self._write() as db:
                db.execute("UPDATE iam_users SET name = ?, path = ? WHERE user_id = ?", (name, path, user_id))
        except sqlite3.IntegrityError:
            return False
        return True

    def set_user_tags(self, user_id: str, tags: Tags) -> None:
        with self._write() as db:
            db.execute("UPDATE iam_users SET tags = ? WHERE user_id = ?", (_tags_json(tags), user_id))

    def delete_user(self, user_id: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM iam_users WHERE user_id = ?", (user_id,))

    # -- access keys ---------------------------------------------------------------------------

    def add_access_key(self, key: AccessKey, secret: str) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO iam_access_keys (key_id, user_id, sealed_secret, status, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    key.key_id,
                    key.user_id,
                    self._key.seal(secret.encode(), _secret_context(key.key_id)),
                    key.status,
                    key.created_at.isoformat(),
                ),
            )

    def access_key(self, key_id: str) -> AccessKey | None:
        row = self._row("SELECT * FROM iam_access_keys WHERE key_id = ?", key_id)
        return _access_key(row) if row else None

    def access_keys(self, user_id: str | None) -> list[AccessKey]:
        if user_id is None:
            rows = self._rows("SELECT * FROM iam_access_keys WHERE user_id IS NULL ORDER BY created_at, key_id")
        else:
            rows = self._rows("SELECT * FROM iam_access_keys WHERE user_id = ? ORDER BY created_at, key_id", user_id)
        return [_access_key(r) for r in rows]

    def set_access_key_status(self, key_id: str, status: str) -> None:
        with self._write() as db:
            db.execute("UPDATE iam_access_keys SET status = ? WHERE key_id = ?", (status, key_id))

    def delete_access_key(self, key_id: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM iam_access_keys WHERE key_id = ?", (key_id,))

    def root_key(self) -> tuple[str, str] | None:
        """The oldest active access key of the root identity, with its secret."""
        for key in self.access_keys(None):
            if key.status == "Active":
                found = self.principal(key.key_id)
                if found is not None:
                    return key.key_id, found[1]
        return None

    def adopt_legacy_admin_key(self, created_at: datetime) -> tuple[str, str] | None:
        """Move the admin key that older versions kept in plain text (``store.sqlite``'s ``secrets``
        and ``access_keys`` tables) into the sealed root key; the plain copies are overwritten."""
        with self._write() as db:
            rows = {
                r["name"]: r["value"]
                for r in db.execute(
                    "SELECT name, value FROM secrets WHERE name IN ('admin_access_key_id', 'admin_secret_access_key')"
                ).fetchall()
            } if _has_table(db, "secrets") else {}  # fmt: skip
            key_id, secret = rows.get("admin_access_key_id"), rows.get("admin_secret_access_key")
            if not key_id or not secret:
                return None
            db.execute(
                "INSERT OR IGNORE INTO iam_access_keys (key_id, user_id, sealed_secret, status, created_at) "
                "VALUES (?, NULL, ?, 'Active', ?)",
                (key_id, self._key.seal(secret.encode(), _secret_context(key_id)), created_at.isoformat()),
            )
            db.execute("DELETE FROM secrets WHERE name IN ('admin_access_key_id', 'admin_secret_access_key')")
            if _has_table(db, "access_keys"):
                db.execute("DELETE FROM access_keys WHERE key_id = ?", (key_id,))
        with self._lock:
            # The overwritten pages reach the database file now, and the log is emptied.
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return key_id, secret

    # -- inline policies (of a user or a group) -------------------------------------------------

    def put_inline(self, owner: str, name: str, document: str) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO iam_inline_policies (owner, name, document) VALUES (?, ?, ?) "
                "ON CONFLICT (owner, name) DO UPDATE SET document = excluded.document",
                (owner, name, document),
            )

    def inline(self, owner: str, name: str) -> tuple[str, str] | None:
        """The stored name and document of an inline policy."""
        row = self._row("SELECT name, document FROM iam_inline_policies WHERE owner = ? AND name = ?", owner, name)
        return (row["name"], row["document"]) if row else None

    def inline_names(self, owner: str) -> list[str]:
        return [r["name"] for r in self._rows(
            "SELECT name FROM iam_inline_policies WHERE owner = ? ORDER BY name COLLATE NOCASE", owner
        )]  # fmt: skip

    def inline_documents(self, owner: str, *, except_name: str | None = None) -> list[str]:
        rows = self._rows("SELECT name, document FROM iam_inline_policies WHERE owner = ?", owner)
        skip = except_name.lower() if except_name else None
        return [r["document"] for r in rows if r["name"].lower() != skip]

    def delete_inline(self, owner: str, name: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM iam_inline_policies WHERE owner = ? AND name = ?", (owner, name))

    # -- managed policies ----------------------------------------------------------------------

    def add_policy(self, policy: ManagedPolicy, document: str) -> bool:
        try:
            with self._write() as db:
                db.execute(
                    "INSERT INTO iam_policies (arn, policy_id, name, path, description, default_version, "
                    "next_version, created_at, updated_at, tags) VALUES (?, ?, ?, ?, ?, 'v1', 2, ?, ?, ?)",
                    (
                        policy.arn,
                        policy.policy_id,
                        policy.name,
                        policy.path,
                        policy.description,
                        policy.created_at.isoformat(),
                        policy.updated_at.isoformat(),
                        _tags_json(policy.tags),
                    ),
                )
                db.execute(
                    "INSERT INTO iam_policy_versions (arn, version_id, document, created_at) VALUES (?, 'v1', ?, ?)",
                    (policy.arn, document, policy.created_at.isoformat()),
                )
        except sqlite3.IntegrityError:
            return False
        return True

    def policy(self, arn: str) -> ManagedPolicy | None:
        if arn.startswith("arn:aws:iam::aws:policy/"):
            name = arn.rsplit("/", 1)[1]
            return (
                _aws_policy(name)[0] if name in AWS_MANAGED_POLICIES and arn == policy_arn("aws", "/", name) else None
            )
        row = self._row("SELECT * FROM iam_policies WHERE arn = ?", arn)
        return _policy(row) if row else None

    def policy_named(self, name: str) -> ManagedPolicy | None:
        """A customer managed policy by name (names are unique in an account, whatever the path)."""
        row = self._row("SELECT * FROM iam_policies WHERE name = ? COLLATE NOCASE", name)
        return _policy(row) if row else None

    def policies(self, *, aws: bool, local: bool) -> list[ManagedPolicy]:
        found = [_aws_policy(n)[0] for n in sorted(AWS_MANAGED_POLICIES)] if aws else []
        if local:
            found.extend(_policy(r) for r in self._rows("SELECT * FROM iam_policies ORDER BY name COLLATE NOCASE"))
        return found

    def count_policies(self) -> int:
        row = self._row("SELECT COUNT(*) AS n FROM iam_policies")
        return int(row["n"]) if row else 0

    def policy_document(self, arn: str, version_id: str | None = None) -> str | None:
        """The document of a version of a policy (its default version when none is named)."""
        policy = self.policy(arn)
        if policy is None:
            return None
        if policy.aws_managed:
            return _aws_policy(policy.name)[1] if version_id in (None, "v1") else None
        row = self._row(
            "SELECT document FROM iam_policy_versions WHERE arn = ? AND version_id = ?",
            arn,
            version_id or policy.default_version,
        )
        return str(row["document"]) if row else None

    def policy_versions(self, arn: str) -> list[PolicyVersion]:
        policy = self.policy(arn)
        if policy is not None and policy.aws_managed:
            return [PolicyVersion("v1", _aws_policy(policy.name)[1], policy.created_at)]
        rows = self._rows("SELECT * FROM iam_policy_versions WHERE arn = ?", arn)
        versions = [
            PolicyVersion(r["version_id"], r["document"], datetime.fromisoformat(r["created_at"])) for r in rows
        ]
        return sorted(versions, key=lambda v: int(v.version_id[1:]), reverse=True)

    def add_policy_version(self, arn: str, document: str, created_at: datetime, *, default: bool) -> str:
        with self._write() as db:
            row = db.execute("SELECT next_version FROM iam_policies WHERE arn = ?", (arn,)).fetchone()
            version_id = f"v{row['next_version']}"
            db.execute(
                "INSERT INTO iam_policy_versions (arn, version_id, document, created_at) VALUES (?, ?, ?, ?)",
                (arn, version_id, document, created_at.isoformat()),
            )
            db.execute(
                "UPDATE iam_policies SET next_version = next_version + 1, updated_at = ?"
                + (", default_version = ?" if default else "")
                + " WHERE arn = ?",
                (created_at.isoformat(), *((version_id,) if default else ()), arn),
            )
        return version_id

    def set_default_version(self, arn: str, version_id: str, updated_at: datetime) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE iam_policies SET default_version = ?, updated_at = ? WHERE arn = ?",
                (version_id, updated_at.isoformat(), arn),
            )

    def delete_policy_version(self, arn: str, version_id: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM iam_policy_versions WHERE arn = ? AND version_id = ?", (arn, version_id))

    def delete_policy(self, arn: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM iam_policy_versions WHERE arn = ?", (arn,))
            db.execute("DELETE FROM iam_policies WHERE arn = ?", (arn,))

    # -- attachments (of a user or a group) ----------------------------------------------------

    def attach(self, owner: str, arn: str) -> None:
        with self._write() as db:
            db.execute("INSERT OR IGNORE INTO iam_attachments (owner, arn) VALUES (?, ?)", (owner, arn))

    def detach(self, owner: str, arn: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM iam_attachments WHERE owner = ? AND arn = ?", (owner, arn))

    def attached(self, owner: str) -> list[str]:
        return [r["arn"] for r in self._rows("SELECT arn FROM iam_attachments WHERE owner = ? ORDER BY arn", owner)]

    def attached_to(self, arn: str) -> list[str]:
        """The owners (user and group ids) a managed policy is attached to."""
        return [r["owner"] for r in self._rows("SELECT owner FROM iam_attachments WHERE arn = ? ORDER BY owner", arn)]

    # -- groups --------------------------------------------------------------------------------

    def add_group(self, group: Group) -> bool:
        try:
            with self._write() as db:
                db.execute(
                    "INSERT INTO iam_groups (group_id, name, path, created_at) VALUES (?, ?, ?, ?)",
                    (group.group_id, group.name, group.path, group.created_at.isoformat()),
                )
        except sqlite3.IntegrityError:
            return False
        return True

    def group(self, name: str) -> Group | None:
        row = self._row("SELECT * FROM iam_groups WHERE name = ?", name)
        return _group(row) if row else None

    def group_by_id(self, group_id: str) -> Group | None:
        row = self._row("SELECT * FROM iam_groups WHERE group_id = ?", group_id)
        return _group(row) if row else None

    def groups(self, path_prefix: str = "/") -> list[Group]:
        rows = self._rows("SELECT * FROM iam_groups ORDER BY name COLLATE NOCASE")
        return [_group(r) for r in rows if r["path"].startswith(path_prefix)]

    def delete_group(self, group_id: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM iam_groups WHERE group_id = ?", (group_id,))

    def add_member(self, group_id: str, user_id: str) -> None:
        with self._write() as db:
            db.execute("INSERT OR IGNORE INTO iam_group_members (group_id, user_id) VALUES (?, ?)", (group_id, user_id))

    def remove_member(self, group_id: str, user_id: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM iam_group_members WHERE group_id = ? AND user_id = ?", (group_id, user_id))

    def members(self, group_id: str) -> list[User]:
        rows = self._rows(
            "SELECT u.* FROM iam_users u JOIN iam_group_members m ON m.user_id = u.user_id "
            "WHERE m.group_id = ? ORDER BY u.name COLLATE NOCASE",
            group_id,
        )
        return [_user(r) for r in rows]

    def groups_for_user(self, user_id: str) -> list[Group]:
        rows = self._rows(
            "SELECT g.* FROM iam_groups g JOIN iam_group_members m ON m.group_id = g.group_id "
            "WHERE m.user_id = ? ORDER BY g.name COLLATE NOCASE",
            user_id,
        )
        return [_group(r) for r in rows]


def _secret_context(key_id: str) -> bytes:
    return f"cachefleet/iam-access-key/{key_id}".encode()


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def _tags_json(tags: Tags) -> str:
    return json.dumps([list(t) for t in tags])


def _tags(text: str) -> Tags:
    return tuple((str(k), str(v)) for k, v in json.loads(text))


def _user(row: sqlite3.Row) -> User:
    return User(
        user_id=row["user_id"],
        name=row["name"],
        path=row["path"],
        created_at=datetime.fromisoformat(row["created_at"]),
        tags=_tags(row["tags"]),
    )


def _group(row: sqlite3.Row) -> Group:
    return Group(
        group_id=row["group_id"],
        name=row["name"],
        path=row["path"],
        created_at=datetime.fromisoformat(row["created_at"]),
    )


def _access_key(row: sqlite3.Row) -> AccessKey:
    return AccessKey(
        key_id=row["key_id"],
        user_id=row["user_id"],
        status=row["status"],
        created_at=datetime.fromisoformat(row["created_at"]),
    )


def _policy(row: sqlite3.Row) -> ManagedPolicy:
    return ManagedPolicy(
        arn=row["arn"],
        policy_id=row["policy_id"],
        name=row["name"],
        path=row["path"],
        description=row["description"],
        default_version=row["default_version"],
        created_at=datetime.fromisoformat(row["created_at"]),
        updated_at=datetime.fromisoformat(row["updated_at"]),
        tags=_tags(row["tags"]),
    )
