"""The identity store on a real SQLite file: sealed secrets, key status, effective policies, migration."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cachefleet.model.patterns import context
from cachefleet.model.policy import Decision, evaluate
from cachefleet.store.iam import AccessKey, Group, IdentityStore, ManagedPolicy, User, holds_sealed_secrets
from cachefleet.store.keys import InstallationKey
from cachefleet.store.sqlite import Store

NOW = datetime(2026, 3, 1, tzinfo=UTC)
ACCOUNT = "000000000000"
SECRET = "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY1"
ALLOW_DESCRIBE = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "elasticache:Describe*", "Resource": "*"}]}
)
DENY_ALL = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]})


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture
def identities(tmp_path: Path, db: Path) -> IdentityStore:
    return IdentityStore(db, InstallationKey.load(tmp_path / "keys", create=True), ACCOUNT)


def _bob(identities: IdentityStore) -> User:
    user = User("AIDABOB00000000000001", "bob", "/ops/", NOW, (("team", "web"),))
    assert identities.add_user(user)
    identities.add_access_key(AccessKey("AKIABOB0000000000001", user.user_id, "Active", NOW), SECRET)
    return user


def _all_bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in directory.rglob("*") if p.is_file())


def test_a_secret_is_sealed_on_disk_and_resolves_to_its_user(identities: IdentityStore, db: Path) -> None:
    _bob(identities)
    found = identities.principal("AKIABOB0000000000001")
    assert found is not None
    principal, secret = found
    assert secret == SECRET
    assert principal.arn == "arn:aws:iam::000000000000:user/ops/bob"
    assert principal.user_name == "bob"
    assert principal.condition_keys()["aws:PrincipalTag/team"] == "web"
    assert SECRET.encode() not in _all_bytes(db.parent)
    assert holds_sealed_secrets(db)


def test_an_inactive_or_deleted_key_stops_resolving_at_once(identities: IdentityStore) -> None:
    _bob(identities)
    assert identities.secret_for("AKIABOB0000000000001") == SECRET  # cached now
    identities.set_access_key_status("AKIABOB0000000000001", "Inactive")
    assert identities.principal("AKIABOB0000000000001") is None
    identities.set_access_key_status("AKIABOB0000000000001", "Active")
    assert identities.secret_for("AKIABOB0000000000001") == SECRET
    identities.delete_access_key("AKIABOB0000000000001")
    assert identities.secret_for("AKIABOB0000000000001") is None
    assert identities.secret_for("AKIANOSUCHKEY0000000") is None


def test_effective_policies_gather_inline_attached_and_group_policies(identities: IdentityStore) -> None:
    user = _bob(identities)
    key = "AKIABOB0000000000001"

    def decision(action: str) -> Decision:
        found = identities.principal(key)
        assert found is not None
        return evaluate(found[0].policies, action, "*", context({}))

    assert decision("elasticache:DescribeReplicationGroups") is Decision.IMPLICIT_DENY
    identities.put_inline(user.user_id, "describe", ALLOW_DESCRIBE)
    assert decision("elasticache:DescribeReplicationGroups") is Decision.ALLOW
    identities.attach(user.user_id, "arn:aws:iam::aws:policy/AmazonElastiCacheFullAccess")
    assert decision("elasticache:CreateReplicationGroup") is Decision.ALLOW
    group = Group("AGPAOPS00000000000001", "ops", "/", NOW)
    identities.add_group(group)
    managed = ManagedPolicy("arn:aws:iam::000000000000:policy/deny", "ANPADENY0000000000001", "deny", "/", None,
                            "v1", NOW, NOW)  # fmt: skip
    identities.add_policy(managed, DENY_ALL)
    identities.attach(group.group_id, managed.arn)
    assert decision("elasticache:DescribeReplicationGroups") is Decision.ALLOW  # not a member yet
    identities.add_member(group.group_id, user.user_id)
    assert decision("elasticache:DescribeReplicationGroups") is Decision.EXPLICIT_DENY
    version = identities.add_policy_version(managed.arn, ALLOW_DESCRIBE, NOW, default=True)
    assert version == "v2"
    assert decision("elasticache:DescribeReplicationGroups") is Decision.ALLOW


def test_names_are_unique_whatever_their_case(identities: IdentityStore) -> None:
    _bob(identities)
    assert not identities.add_user(User("AIDAOTHER000000000001", "BOB", "/", NOW))
    assert identities.user("Bob") is not None


def test_the_plain_admin_key_of_an_older_data_dir_is_sealed_and_wiped(tmp_path: Path, db: Path) -> None:
    legacy = Store(db)
    legacy.secret("admin_access_key_id", lambda: "AKIALEGACY0000000001")
    legacy.secret("admin_secret_access_key", lambda: SECRET)
    legacy.add_access_key("AKIALEGACY0000000001", SECRET, NOW)
    legacy.close()
    assert not holds_sealed_secrets(db)
    identities = IdentityStore(db, InstallationKey.load(tmp_path / "keys", create=True), ACCOUNT)
    assert identities.adopt_legacy_admin_key(NOW) == ("AKIALEGACY0000000001", SECRET)
    assert identities.adopt_legacy_admin_key(NOW) is None  # once
    assert identities.root_key() == ("AKIALEGACY0000000001", SECRET)
    found = identities.principal("AKIALEGACY0000000001")
    assert found is not None
    assert found[0].is_root
    # Neither the database nor its write-ahead log keeps the plain secret anywhere.
    assert SECRET.encode() not in _all_bytes(db.parent)
    identities.close()
    after = Store(db)
    assert after.secret_for("AKIALEGACY0000000001") is None
    after.close()


def test_a_sealed_memcached_token_counts_as_a_sealed_secret(db: Path) -> None:
    store = Store(db)
    store.create("cache_cluster", "plain", {"id": "plain", "sealed_token": None}, {})
    store.close()
    assert not holds_sealed_secrets(db)
    store = Store(db)
    store.create("cache_cluster", "mc", {"id": "mc", "sealed_token": "c2VhbGVk"}, {})
    store.close()
    assert holds_sealed_secrets(db)
