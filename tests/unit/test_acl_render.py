"""ACL users as a node gets them: internal users with only what they need, application users with the
restricted commands taken away (in every selector too), hashes only, and the live sync commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from cachefleet.engines import acl
from cachefleet.engines.redis import RedisNodeConfig, render_config
from cachefleet.model.acl import RESTRICTED_COMMANDS, password_hash
from cachefleet.model.auth_token import NO_TOKEN, TokenState
from cachefleet.model.credentials import Credentials
from cachefleet.model.users import AuthenticationType, User

ADMIN = Credentials("cachefleet-admin", "admin-secret-0001")
INTERNAL = acl.InternalUsers(
    replication=Credentials(acl.REPLICATION_USER, "repl-secret-0002"),
    sentinel=Credentials(acl.SENTINEL_USER, "sentinel-secret-0003"),
    check=Credentials(acl.CHECK_USER, "check-secret-0004"),
)
TOKEN = "customer-token-0123456789"


def _config(**changes: object) -> str:
    base: dict[str, object] = {
        "port": 21001,
        "bind": "127.0.0.1",
        "data_dir": Path("/data/nodes/c1/0001"),
        "maxmemory_bytes": 1 << 20,
        "admin_user": ADMIN.user,
        "admin_password": ADMIN.password,
        "internal": INTERNAL,
    }
    base.update(changes)
    return render_config(RedisNodeConfig(**base))  # type: ignore[arg-type]


def _user_line(text: str, name: str) -> str:
    (line,) = [line for line in text.splitlines() if line.startswith(f"user {name} ")]
    return line


def test_internal_users_get_only_what_their_job_needs() -> None:
    text = _config()
    assert _user_line(text, "cachefleet-admin").endswith("~* &* +@all")
    assert _user_line(text, "cachefleet-repl").endswith(" +psync +replconf +ping")
    assert "+config|rewrite" in _user_line(text, "cachefleet-sentinel")
    assert "+@all" not in _user_line(text, "cachefleet-sentinel")
    assert _user_line(text, "cachefleet-check").endswith(" +ping +info")
    # Replicas authenticate as the replication user, not as the admin.
    assert "masteruser cachefleet-repl" in text.splitlines()
    assert 'masterauth "repl-secret-0002"' in text.splitlines()


def test_secrets_appear_hashed_only_except_the_one_masterauth_needs() -> None:
    text = _config(application=(acl.token_default_user(TokenState((password_hash(TOKEN),), False)),))
    for secret in (ADMIN.password, INTERNAL.sentinel.password, INTERNAL.check.password, TOKEN):
        assert secret not in text
        assert f"#{password_hash(secret)}" in text
    assert text.count(INTERNAL.replication.password) == 1  # masterauth


def test_without_internal_users_replicas_use_the_admin_as_before() -> None:
    text = _config(internal=None)
    assert "masteruser cachefleet-admin" in text.splitlines()
    assert not any(line.startswith("user cachefleet-repl") for line in text.splitlines())


def test_default_user_follows_the_token_state() -> None:
    restrictions = " ".join(f"-{c}" for c in RESTRICTED_COMMANDS) + " +acl|whoami +acl|cat"
    assert _user_line(_config(), "default") == f"user default on nopass ~* &* +@all {restrictions}"
    one = TokenState((password_hash(TOKEN),), open_access=False)
    assert _user_line(_config(application=(acl.token_default_user(one),)), "default") == (
        f"user default on #{password_hash(TOKEN)} ~* &* +@all {restrictions}"
    )
    two = TokenState((password_hash("a" * 16), password_hash("b" * 16)), open_access=False)
    words = acl.token_default_user(two).acl_rules()
    assert words[:3] == ["on", f"#{password_hash('a' * 16)}", f"#{password_hash('b' * 16)}"]
    # Rotating from no token: Redis cannot hold nopass and a password, and nopass takes any password.
    opening = TokenState((password_hash(TOKEN),), open_access=True)
    assert acl.token_default_user(opening).acl_rules()[:2] == ["on", "nopass"]
    assert acl.token_default_user(NO_TOKEN).nopass


def _rbac(name: str, access: str, *passwords: str, user_id: str | None = None) -> User:
    return User(
        user_id=user_id or name,
        user_name=name,
        engine="redis",
        access_string=access,
        password_hashes=tuple(password_hash(p) for p in passwords),
        authentication=AuthenticationType.PASSWORD if passwords else AuthenticationType.NO_PASSWORD,
    )


def test_rbac_users_keep_their_rules_then_lose_the_restricted_commands() -> None:
    app = acl.rbac_user(_rbac("app", "on ~app:* -@all +@read", "app-password-000001"))
    words = app.acl_rules()
    assert words[:5] == ["on", f"#{password_hash('app-password-000001')}", "~app:*", "-@all", "+@read"]
    assert words[5:] == [*(f"-{c}" for c in RESTRICTED_COMMANDS), "+acl|whoami", "+acl|cat"]
    off = acl.rbac_user(_rbac("off-user", "off ~* +@all", "app-password-000001"))
    assert off.acl_rules()[0] == "off"
    open_user = acl.rbac_user(_rbac("open", "on ~* +@all"))
    assert open_user.acl_rules()[:2] == ["on", "nopass"]


def test_selectors_get_the_restrictions_inside_them() -> None:
    user = acl.rbac_user(_rbac("sel", "on -@all (~a:* +@all) (~b:* +get)", "app-password-000001"))
    selectors = [w for w in user.acl_rules() if w.startswith("(")]
    denied = " ".join(f"-{c}" for c in RESTRICTED_COMMANDS)
    assert selectors == [f"(~a:* +@all {denied})", f"(~b:* +get {denied})"]
    line = _user_line(_config(application=(acl.token_default_user(NO_TOKEN), user)), "sel")
    assert f'"(~a:* +@all {denied})"' in line  # one quoted word for redis.conf's parser


def test_application_users_under_rbac_replace_the_token_default() -> None:
    named_default = _rbac("default", "on ~* +@read", "default-password-01", user_id="locked")
    users = acl.application_users(NO_TOKEN, [named_default, _rbac("app", "on ~* +@all", "app-password-000001")])
    assert [u.name for u in users] == ["default", "app"]
    assert users[0].password_hashes == (password_hash("default-password-01"),)
    assert [u.name for u in acl.application_users(NO_TOKEN, None)] == ["default"]
    with pytest.raises(ValueError, match="named default"):
        acl.application_users(NO_TOKEN, [_rbac("app", "on ~* +@all", "app-password-000001")])


def test_acl_users_refuse_what_would_leak_or_break() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        acl.AclUser("u", True, (), False, ("~*",))
    with pytest.raises(ValueError, match="64 lowercase hex"):
        acl.AclUser("u", True, ("plain-password",), False, ("~*",))
    with pytest.raises(ValueError, match="does not belong"):
        acl.AclUser("u", True, (), True, (">secret",))
    with pytest.raises(ValueError, match="internal user name"):
        acl.AclUser("cachefleet-admin", True, (), True, ("~*",))
    with pytest.raises(ValueError, match="invalid ACL user name"):
        acl.AclUser("two words", True, (), True, ("~*",))
    with pytest.raises(ValueError, match="internal users are named"):
        acl.InternalUsers(INTERNAL.sentinel, INTERNAL.replication, INTERNAL.check)
    assert "admin-secret" not in repr(ADMIN)


def test_sync_commands_set_every_wanted_user_and_delete_strays_but_never_internal_ones() -> None:
    wanted = acl.application_users(NO_TOKEN, [_rbac("default", "on ~* +@all"), _rbac("app", "on ~* +get", "a" * 16)])
    commands = acl.sync_commands(wanted, ["default", "old-app", "cachefleet-admin", "cachefleet-repl", "app"])
    assert commands[0][:5] == ("ACL", "SETUSER", "default", "reset", "on")
    assert commands[1][:4] == ("ACL", "SETUSER", "app", "reset")
    assert commands[2] == ("ACL", "DELUSER", "old-app")
    assert len(commands) == 3
    assert acl.sync_commands(wanted, ["default", "app"])[-1][1] == "SETUSER"
    with pytest.raises(ValueError, match="distinct"):
        acl.sync_commands([wanted[0], wanted[0]], [])


def test_fingerprint_changes_with_any_user_and_not_with_order() -> None:
    one = acl.application_users(TokenState((password_hash(TOKEN),), False), None)
    two = acl.application_users(TokenState((password_hash(TOKEN + "x"),), False), None)
    internal = acl.internal_users(ADMIN, INTERNAL)
    assert acl.fingerprint([*internal, *one]) == acl.fingerprint([*one, *internal])
    assert acl.fingerprint([*internal, *one]) != acl.fingerprint([*internal, *two])
