"""Sentinel's config, id, argv, reply parsing and reconfig script: pure (real sentinels run them in
tests/integration/test_failover_engines.py)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest

from cachefleet.engines.sentinel import (
    RECONFIG_SCRIPT,
    SCRIPT_GROUP,
    Hello,
    KnownSentinel,
    Monitor,
    SentinelConfig,
    SharedSentinelConfig,
    argv,
    connected_peers,
    hello_message,
    monitor_commands,
    my_id,
    ready_replicas,
    reconfig_script,
    render_config,
    render_shared_config,
    reply_fields,
    shared_reconfig_script,
    view_from_reply,
)

ID = my_id("rg1/0001")


def _cfg(**changes: object) -> SentinelConfig:
    base: dict[str, object] = {
        "port": 26381,
        "bind": "127.0.0.1",
        "data_dir": Path("/data/nodes/rg1-sentinel/0001"),
        "master_name": "rg1",
        "primary": ("127.0.0.1", 7001),
        "quorum": 2,
        "admin_user": "cachefleet-admin",
        "admin_password": "s3cret",
        "my_id": ID,
    }
    base.update(changes)
    return SentinelConfig(**base)  # type: ignore[arg-type]


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_config_has_required_directives() -> None:
    lines = _lines(render_config(_cfg()))
    for expected in (
        "port 26381",
        "bind 127.0.0.1",
        'dir "/data/nodes/rg1-sentinel/0001"',
        "daemonize no",
        'logfile ""',
        f"sentinel myid {ID}",
        "sentinel resolve-hostnames no",
        "sentinel monitor rg1 127.0.0.1 7001 2",
        "sentinel auth-user rg1 cachefleet-admin",
        'sentinel auth-pass rg1 "s3cret"',
        "sentinel down-after-milliseconds rg1 1000",
        "sentinel failover-timeout rg1 3000",
        "sentinel parallel-syncs rg1 1",
        "sentinel deny-scripts-reconfig yes",
    ):
        assert expected in lines
    # The config path stays in the process title, where the host driver looks for the node dir.
    assert 'proc-title-template "{title} {listen-addr} {server-mode} {config-file}"' in lines
    assert not any("client-reconfig-script" in line for line in lines)


def test_reconfig_script_and_timings() -> None:
    script = Path("/data/nodes/rg1-sentinel/0001") / RECONFIG_SCRIPT
    lines = _lines(render_config(_cfg(reconfig_script=script, down_after_ms=5000, failover_timeout_ms=4000)))
    assert f'sentinel client-reconfig-script rg1 "{script}"' in lines
    # The same script, for the promotion the leader is about to make (see its arguments below).
    assert f'sentinel notification-script rg1 "{script}"' in lines
    assert "sentinel down-after-milliseconds rg1 5000" in lines
    assert "sentinel failover-timeout rg1 4000" in lines


def test_password_is_quoted() -> None:
    lines = _lines(render_config(_cfg(admin_password='a "b" \\c')))
    assert 'sentinel auth-pass rg1 "a \\"b\\" \\\\c"' in lines


@pytest.mark.parametrize(
    "changes",
    [
        {"master_name": "rg 1"},
        {"my_id": "abc"},
        {"my_id": ID.upper()},
        {"admin_user": "default"},
        {"admin_password": ""},
        {"primary": ("localhost", 7001)},
        {"quorum": 0},
        {"known_replicas": (("replica.local", 7002),)},
        {"known_sentinels": (KnownSentinel("127.0.0.1", 26382, "abc"),)},
        {"known_sentinels": (KnownSentinel("127.0.0.1", 26382, ID),)},  # itself
    ],
)
def test_invalid_configs_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (several messages)
        render_config(_cfg(**changes))


def test_my_id_is_stable_and_distinct() -> None:
    assert my_id("rg1/0001") == ID
    assert re.fullmatch(r"[0-9a-f]{40}", ID)
    assert my_id("rg1/0002") != ID


def test_argv_works_for_either_binary() -> None:
    conf = Path("/data/s/sentinel.conf")
    assert argv("/usr/bin/redis-sentinel", conf) == ("/usr/bin/redis-sentinel", str(conf))
    assert argv("/usr/bin/redis-server", conf) == ("/usr/bin/redis-server", str(conf), "--sentinel")


def test_view_from_flat_and_parsed_replies() -> None:
    flat = ["name", "rg1", "ip", "127.0.0.1", "port", "7002", "flags", "master,s_down",
            "num-slaves", "2", "num-other-sentinels", "2", "quorum", "2"]  # fmt: skip
    view = view_from_reply(reply_fields(flat))
    assert (view.master_host, view.master_port, view.num_replicas, view.num_other_sentinels) == (
        "127.0.0.1",
        7002,
        2,
        2,
    )
    assert view.flags == frozenset({"master", "s_down"})
    parsed = {"ip": "127.0.0.1", "port": 7002, "flags": {"master"}, "num-slaves": 1, "quorum": 2}
    assert view_from_reply(reply_fields(parsed)).flags == frozenset({"master"})


def test_reconfig_script_compiles_and_names_the_socket() -> None:
    socket_path = Path("/data/" + "x" * 150 + "/admin.sock")
    text = reconfig_script("/usr/bin/python3", socket_path)
    assert text.startswith("#!/bin/sh\n")
    assert 'exec /usr/bin/python3 -I "$0" "$@"' in text
    compile(text, RECONFIG_SCRIPT, "exec")
    assert repr(str(socket_path)) in text
    assert "be_primary" in text
    with pytest.raises(ValueError, match="absolute"):
        reconfig_script("python3", socket_path)
    with pytest.raises(ValueError, match="absolute"):
        reconfig_script("/usr/bin/python3", Path("admin.sock"))


def _script_target() -> Callable[[list[str]], tuple[str, bool, str] | None]:
    namespace: dict[str, Any] = {"__name__": "not-main"}
    exec(compile(reconfig_script("/usr/bin/python3", Path("/d/admin.sock")), RECONFIG_SCRIPT, "exec"), namespace)
    return cast("Callable[[list[str]], tuple[str, bool, str] | None]", namespace["target"])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        # client-reconfig-script: <master-name> <role> <state> <from-ip> <from-port> <to-ip> <to-port>
        (["rg1", "leader", "start", "127.0.0.1", "7001", "127.0.0.1", "7002"], ("n7002", False, "rg1")),
        # notification-script: the replica the leader chose; HAProxy waits for it to answer as master.
        (["+selected-slave", "slave 127.0.0.1:7003 127.0.0.1 7003 @ rg1 127.0.0.1 7001"], ("n7003", True, "rg1")),
        # that promotion given up: back to the master Sentinel still names.
        (["-failover-abort-slave-timeout", "master rg1 127.0.0.1 7001"], ("n7001", False, "rg1")),
        # every other warning event leaves the endpoint alone.
        (["+sdown", "master rg1 127.0.0.1 7001"], None),
        (["+switch-master", "rg1 127.0.0.1 7001 127.0.0.1 7002"], None),
        (["+selected-slave", "slave garbled"], None),
        (["too", "few"], None),
    ],
)
def test_the_script_tells_its_two_callers_apart(args: list[str], expected: tuple[str, bool, str] | None) -> None:
    assert _script_target()(["reconfig.py", *args]) == expected


def test_known_replicas_and_sentinels_follow_the_monitor_line() -> None:
    peer = my_id("rg1/0002")
    text = render_config(
        _cfg(
            known_replicas=(("127.0.0.1", 7002), ("127.0.0.1", 7003)),
            known_sentinels=(KnownSentinel("127.0.0.1", 26382, peer),),
        )
    )
    lines = _lines(text)
    monitor = lines.index("sentinel monitor rg1 127.0.0.1 7001 2")
    known = [i for i, line in enumerate(lines) if line.startswith("sentinel known-")]
    assert [lines[i] for i in known] == [
        "sentinel known-replica rg1 127.0.0.1 7002",
        "sentinel known-replica rg1 127.0.0.1 7003",
        f"sentinel known-sentinel rg1 127.0.0.1 26382 {peer}",
    ]
    assert min(known) > monitor  # Sentinel refuses a known-* line before the monitor it names
    assert not any(line.startswith("sentinel known-") for line in _lines(render_config(_cfg())))


def test_only_reached_replicas_and_peers_count_as_ready() -> None:
    master = ("127.0.0.1", 7001)

    def replica(flags: str, link: str = "ok", port: str = "7001") -> dict[str, str]:
        return {"flags": flags, "master-link-status": link, "master-host": "127.0.0.1", "master-port": port}

    replicas = [
        replica("slave"),
        replica("slave,disconnected"),  # a known replica not reached yet
        replica("slave", link="err"),  # reached, still syncing
        replica("slave", port="7009"),  # replicating from something else
        replica("s_down,slave"),
    ]
    assert ready_replicas(replicas, master) == 1
    peers = [{"flags": "sentinel"}, {"flags": "sentinel,disconnected"}, {"flags": "s_down,sentinel"}]
    assert connected_peers(peers) == 1
    assert connected_peers([]) == 0


# -- shared Sentinels --------------------------------------------------------------------------


def test_a_shared_sentinel_starts_watching_nothing_and_allows_scripts_set_at_run_time() -> None:
    text = render_shared_config(SharedSentinelConfig(26390, "127.0.0.1", Path("/d/s1"), ID, "pw"))
    lines = _lines(text)
    assert not any(line.startswith("sentinel monitor") for line in lines)
    assert "sentinel deny-scripts-reconfig no" in lines
    assert 'requirepass "pw"' in lines  # only the control plane may SET a script
    assert 'sentinel sentinel-pass "pw"' in lines
    assert f"sentinel myid {ID}" in lines
    with pytest.raises(ValueError, match="password"):
        render_shared_config(SharedSentinelConfig(26390, "127.0.0.1", Path("/d/s1"), ID, ""))


def test_a_group_joins_with_monitor_then_its_settings() -> None:
    monitor = Monitor("rg1", ("127.0.0.1", 7001), 2, "cachefleet-sentinel", "pw", 1000, reconfig_script=Path("/s/r.py"))
    commands = monitor_commands(monitor, monitored=False)
    assert commands == [
        ("SENTINEL", "MONITOR", "rg1", "127.0.0.1", "7001", "2"),
        (
            "SENTINEL", "SET", "rg1",
            "auth-user", "cachefleet-sentinel",
            "auth-pass", "pw",
            "down-after-milliseconds", "1000",
            "failover-timeout", "3000",
            "parallel-syncs", "1",
            "client-reconfig-script", "/s/r.py",
            "notification-script", "/s/r.py",
        ),
    ]  # fmt: skip
    # Already monitored (its file kept it): the primary it has seen since is left alone.
    assert monitor_commands(monitor, monitored=True) == commands[1:]
    with pytest.raises(ValueError, match="IP address"):
        monitor_commands(replace(monitor, primary=("localhost", 7001)), monitored=False)
    with pytest.raises(ValueError, match="master name"):
        monitor_commands(replace(monitor, master_name="a b"), monitored=False)


def test_a_hello_introduces_a_sentinel_with_epochs_that_change_nothing() -> None:
    hello = hello_message(Hello("127.0.0.1", 26390, ID), "rg1", ("127.0.0.1", 7001))
    assert hello == f"127.0.0.1,26390,{ID},0,rg1,127.0.0.1,7001,0"


def _shared_script(tmp_path: Path) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "not-main"}
    backends = (f"be_primary.{SCRIPT_GROUP}", f"be_primary_plain.{SCRIPT_GROUP}")
    text = shared_reconfig_script("/usr/bin/python3", tmp_path / "admin.sock", backends)
    exec(compile(text, RECONFIG_SCRIPT, "exec"), namespace)
    return namespace


def test_the_shared_script_flips_the_backends_of_the_master_it_is_told(tmp_path: Path) -> None:
    script = _shared_script(tmp_path)
    # The proxy's socket is absent here: it says so (exit 2), having named the group's own backends.
    assert script["main"](["reconfig.py", "rg1", "leader", "start", "127.0.0.1", "7001", "127.0.0.1", "7002"]) == 2
    assert script["BACKENDS"] == ("be_primary.rg1", "be_primary_plain.rg1")
    # A master name that is no group id is refused before anything is asked.
    other = _shared_script(tmp_path)
    assert other["main"](["reconfig.py", "Rg.x", "leader", "start", "127.0.0.1", "7001", "127.0.0.1", "7002"]) == 2
    assert other["BACKENDS"] == (f"be_primary.{SCRIPT_GROUP}", f"be_primary_plain.{SCRIPT_GROUP}")
    with pytest.raises(ValueError, match=SCRIPT_GROUP):
        shared_reconfig_script("/usr/bin/python3", tmp_path / "admin.sock", ("be_primary",))


def test_the_shared_script_finds_the_proxy_that_its_group_names(tmp_path: Path) -> None:
    first = tmp_path / "host.endpoints" / "haproxy" / "admin.sock"
    backends = (f"be_primary.{SCRIPT_GROUP}",)
    proxy_file = tmp_path / f"rg.{SCRIPT_GROUP}" / "endpoint" / "proxy"
    namespace: dict[str, Any] = {"__name__": "not-main"}
    text = shared_reconfig_script("/usr/bin/python3", first, backends, first.parent / "master.sock", proxy_file)
    exec(compile(text, RECONFIG_SCRIPT, "exec"), namespace)
    proxy_dir = namespace["proxy_dir"]
    assert proxy_dir("g1") == str(first.parent)  # no file: a group of the first proxy
    named = tmp_path / "rg.g2" / "endpoint" / "proxy"
    named.parent.mkdir(parents=True)
    named.write_text("haproxy-2")
    assert proxy_dir("g2") == str(tmp_path / "host.endpoints" / "haproxy-2")
    named.write_text("../../elsewhere")
    with pytest.raises(OSError, match="unexpected proxy name"):
        proxy_dir("g2")
    with pytest.raises(ValueError, match=SCRIPT_GROUP):
        shared_reconfig_script("/usr/bin/python3", first, backends, None, tmp_path / "rg.g1" / "endpoint" / "proxy")
    with pytest.raises(ValueError, match="absolute"):
        reconfig_script("/usr/bin/python3", first, proxy_file=Path("proxy"))


def test_the_script_starts_python_only_for_the_calls_it_acts_on(tmp_path: Path) -> None:
    # An interpreter that does not exist: a call that reaches it fails with sh's "not found" (127).
    script = tmp_path / RECONFIG_SCRIPT
    script.write_text(reconfig_script("/nonexistent/python3", tmp_path / "admin.sock"))
    script.chmod(0o700)

    def run(*args: str) -> int:
        return subprocess.run([str(script), *args], capture_output=True, check=False).returncode

    # Notifications it ignores end in the shell.
    assert run("+set", "master rg1 127.0.0.1 7001 down-after-milliseconds 1000") == 0
    assert run("+sdown", "slave 127.0.0.1:7002 127.0.0.1 7002 @ rg1 127.0.0.1 7001") == 0
    # The two it acts on, the client-reconfig call and anything unexpected go on to Python.
    assert run("+selected-slave", "slave 127.0.0.1:7002 127.0.0.1 7002 @ rg1 127.0.0.1 7001") == 127
    assert run("-failover-abort-slave-timeout", "master rg1 127.0.0.1 7001") == 127
    assert run("rg1", "leader", "start", "127.0.0.1", "7001", "127.0.0.1", "7002") == 127
    assert run("unexpected") == 127
