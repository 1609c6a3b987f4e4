"""Rendering of a Redis node's config: pure, checked line by line (a real server reads it in the
integration tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cachefleet.engines.redis import (
    RESTRICTED_COMMANDS,
    RedisNodeConfig,
    argv,
    observation_from_info,
    quote,
    render_config,
)


def _cfg(**changes: object) -> RedisNodeConfig:
    base: dict[str, object] = {
        "port": 21001,
        "bind": "127.0.0.1",
        "data_dir": Path("/data/nodes/c1/0001"),
        "maxmemory_bytes": 536870912,
        "admin_user": "cachefleet-admin",
        "admin_password": "s3cret",
    }
    base.update(changes)
    return RedisNodeConfig(**base)  # type: ignore[arg-type]


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_primary_config_has_required_directives() -> None:
    lines = _lines(render_config(_cfg()))
    for expected in (
        "daemonize no",
        'logfile ""',
        'dir "/data/nodes/c1/0001"',
        "dbfilename dump.rdb",
        "bind 127.0.0.1",
        "port 21001",
        "protected-mode no",
        "maxmemory 536870912",
        "maxmemory-policy volatile-lru",
        "repl-diskless-sync-delay 0",
        'save ""',
        "replica-read-only yes",
        "appendonly no",
        "masteruser cachefleet-admin",
        'masterauth "s3cret"',
    ):
        assert expected in lines
    assert not any(line.startswith("replicaof") for line in lines)


def test_every_directive_appears_once() -> None:
    names = [line.split()[0] for line in _lines(render_config(_cfg(replicaof=("127.0.0.1", 21000))))]
    repeated = {n for n in names if names.count(n) > 1}
    assert repeated == {"user"}


def test_replica_and_aof() -> None:
    lines = _lines(render_config(_cfg(replicaof=("127.0.0.1", 21000), appendonly=True)))
    assert "replicaof 127.0.0.1 21000" in lines
    assert "appendonly yes" in lines


def test_admin_user_is_hashed_and_unrestricted() -> None:
    text = render_config(_cfg())
    admin = next(line for line in _lines(text) if line.startswith("user cachefleet-admin "))
    assert admin.split()[3].startswith("#")  # sha256, not >password
    assert admin.endswith("~* &* +@all")
    assert ">s3cret" not in text


def test_default_user_loses_restricted_commands() -> None:
    default = next(line for line in _lines(render_config(_cfg())) if line.startswith("user default "))
    rules = default.split()
    assert rules[2:6] == ["on", "nopass", "~*", "&*"]
    assert rules[6] == "+@all"
    denied = {r[1:] for r in rules if r.startswith("-")}
    must_deny = {"config", "shutdown", "replicaof", "slaveof", "debug", "save", "bgsave", "monitor", "acl"}
    assert must_deny <= denied
    assert denied == set(RESTRICTED_COMMANDS)
    # Re-allowed subcommands come after the denial, or they would be denied again.
    assert rules.index("+acl|whoami") > rules.index("-acl")
    assert rules.index("+acl|cat") > rules.index("-acl")


@pytest.mark.parametrize("user", ["default", "bad user", "", "a\nb"])
def test_bad_admin_user_is_refused(user: str) -> None:
    with pytest.raises(ValueError, match="admin user"):
        render_config(_cfg(admin_user=user))


def test_empty_password_is_refused() -> None:
    with pytest.raises(ValueError, match="password"):
        render_config(_cfg(admin_password=""))


@pytest.mark.parametrize(
    ("raw", "quoted"),
    [
        ("plain", '"plain"'),
        ('a"b', '"a\\"b"'),
        ("back\\slash", '"back\\\\slash"'),
        ("sp ace", '"sp ace"'),
        ("new\nline", '"new\\x0aline"'),
        ("é", '"\\xc3\\xa9"'),
    ],
)
def test_quote(raw: str, quoted: str) -> None:
    assert quote(raw) == quoted


def test_paths_with_spaces_are_quoted() -> None:
    assert 'dir "/data/my nodes/c1/0001"' in render_config(_cfg(data_dir=Path("/data/my nodes/c1/0001")))


def test_argv() -> None:
    assert argv("/usr/bin/redis-server", Path("/n/redis.conf")) == ("/usr/bin/redis-server", "/n/redis.conf")


def test_observation_of_replica() -> None:
    obs = observation_from_info(
        {
            "role": "slave",
            "master_host": "127.0.0.1",
            "master_port": 21000,
            "master_link_status": "up",
            "connected_slaves": 0,
            "loading": 0,
            "used_memory": 1000,
            "master_repl_offset": 42,
            "slave_repl_offset": 40,
        }
    )
    assert (obs.role, obs.master_host, obs.master_port) == ("slave", "127.0.0.1", 21000)
    assert obs.master_link_up
    assert (obs.loading, obs.used_memory, obs.repl_offset) == (False, 1000, 40)


def test_observation_of_primary() -> None:
    obs = observation_from_info(
        {"role": "master", "connected_slaves": 2, "loading": 1, "used_memory": 5, "master_repl_offset": 7}
    )
    assert (obs.master_host, obs.master_port, obs.master_link_up) == (None, None, False)
    assert (obs.connected_replicas, obs.loading, obs.repl_offset) == (2, True, 7)
