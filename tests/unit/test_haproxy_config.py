"""HAProxy endpoint config and admin-socket parsing: pure (a real HAProxy reads the config in
tests/integration/test_failover_engines.py)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from cachefleet.engines.haproxy import (
    RELOAD_SIGNAL,
    EndpointConfig,
    argv,
    parse_server_states,
    primary_commands,
    render_config,
    server_name,
)

NODES = (("127.0.0.1", 7001), ("127.0.0.1", 7002), ("127.0.0.1", 7003))


def _cfg(**changes: object) -> EndpointConfig:
    base: dict[str, object] = {
        "bind": "127.0.0.1",
        "primary_port": 6390,
        "reader_port": 6391,
        "nodes": NODES,
        "primary": ("127.0.0.1", 7002),
        "admin_user": "cachefleet-admin",
        "admin_password": "s3cret",
    }
    base.update(changes)
    return EndpointConfig(**base)  # type: ignore[arg-type]


def _sections(text: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if not line.startswith(" "):
            current = sections.setdefault(line.strip(), [])
        else:
            current.append(line.split("  #")[0].strip())
    return sections


def test_global_and_defaults() -> None:
    sections = _sections(render_config(_cfg()))
    assert "nbthread 1" in sections["global"]
    assert "stats socket unix@admin.sock mode 600 level admin expose-fd listeners" in sections["global"]
    assert "hard-stop-after 10s" in sections["global"]
    for expected in ("mode tcp", "timeout connect 1s", "timeout client 24h", "timeout server 24h",
                     "timeout check 1s"):  # fmt: skip
        assert expected in sections["defaults"]


def test_frontends() -> None:
    sections = _sections(render_config(_cfg()))
    assert sections["frontend fe_primary"] == ["bind 127.0.0.1:6390", "default_backend be_primary"]
    assert sections["frontend fe_reader"] == [
        "bind 127.0.0.1:6391",
        "use_backend be_reader if { nbsrv(be_reader) gt 0 }",
        "default_backend be_primary",
    ]


def test_only_the_primary_is_enabled_for_writes() -> None:
    primary = _sections(render_config(_cfg()))["backend be_primary"]
    servers = [line for line in primary if line.startswith("server ")]
    assert servers == [
        "server n7001 127.0.0.1:7001 disabled inter 200ms",
        "server n7002 127.0.0.1:7002",
        "server n7003 127.0.0.1:7003 disabled inter 200ms",
    ]
    assert "tcp-check expect string role:master" in primary
    # A server out of maintenance but down (the replica being promoted) is checked every 50 ms.
    checks = "inter 5s fastinter 20ms downinter 50ms fall 2 rise 1"
    # The first connection a dead primary refuses marks it down, without waiting for a check.
    observe = "observe layer4 error-limit 1 on-error mark-down on-marked-down shutdown-sessions"
    assert f"default-server check {checks} {observe}" in primary


def test_reader_checks_replicas_with_a_link() -> None:
    reader = _sections(render_config(_cfg()))["backend be_reader"]
    assert "balance roundrobin" in reader
    assert "option redispatch" in reader  # a connection a dead replica refuses goes to another one
    # Not in a reader backend: marking a server down cut the connection being redispatched from it.
    assert "default-server check inter 5s fastinter 20ms fall 2 rise 1 on-marked-down shutdown-sessions" in reader
    assert [line for line in reader if line.startswith("server ")] == [
        f"server n{port} 127.0.0.1:{port}" for _, port in NODES
    ]
    expects = [line for line in reader if line.startswith("tcp-check expect")]
    assert expects == ["tcp-check expect string role:slave", "tcp-check expect string master_link_status:up"]


def test_check_request_is_resp_and_needs_no_quoting() -> None:
    password = "p a$s\"w\\o#rd'"
    text = render_config(_cfg(admin_password=password))
    assert password not in text
    sends = [line for line in _sections(text)["backend be_primary"] if line.startswith("tcp-check send")]
    assert len(sends) == 1
    payload = bytes.fromhex(sends[0].split()[2])
    user = b"cachefleet-admin"
    secret = password.encode()
    assert payload == (
        b"*3\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(user), user, len(secret), secret)
        + b"*2\r\n$4\r\nINFO\r\n$11\r\nreplication\r\n*1\r\n$4\r\nQUIT\r\n"
    )


def test_ipv6_addresses_are_bracketed() -> None:
    text = render_config(_cfg(bind="::1", nodes=(("::1", 7001),), primary=("::1", 7001)))
    assert "bind [::1]:6390" in text
    assert "server n7001 [::1]:7001" in text


@pytest.mark.parametrize(
    "changes",
    [
        {"primary": ("127.0.0.1", 7009)},
        {"nodes": ()},
        {"nodes": (("127.0.0.1", 7002), ("127.0.0.2", 7002))},
        {"admin_socket": "/run/admin.sock"},
        {"admin_socket": "sub/admin.sock"},
        {"admin_password": ""},
        {"admin_user": "bad user"},
    ],
)
def test_invalid_configs_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (several messages)
        render_config(_cfg(**changes))


def test_argv_and_reload_signal() -> None:
    conf = Path("/data/ep/haproxy.cfg")
    # The master's CLI beside the config's admin socket, in the working directory.
    expected = ("/usr/sbin/haproxy", "-W", "-db", "-S", "unix@master.sock", "-f", str(conf))
    assert argv("/usr/sbin/haproxy", conf) == expected
    assert RELOAD_SIGNAL == signal.SIGUSR2
    assert server_name(7001) == "n7001"


# As HAProxy 2.6 answers "show servers state" (one backend's lines shown).
SHOW = """1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight \
srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state \
srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port \
srv_check_addr srv_agent_addr srv_agent_port
4 be_primary 1 n7001 127.0.0.1 2 0 1 1 2 15 3 2 6 0 0 0 - 7001 - 0 0 - - 0
4 be_primary 2 n7002 127.0.0.1 0 5 1 1 2 1 0 0 14 0 0 0 - 7002 - 0 0 - - 0
4 be_primary 3 n7003 127.0.0.1 0 1 1 1 2 1 0 0 14 0 0 0 - 7003 - 0 0 - - 0
4 be_primary 4 n7004 127.0.0.1 2 4 1 1 2 1 0 0 14 0 0 0 - 7004 - 0 0 - - 0
5 be_reader 1 n7001 127.0.0.1 0 0 1 1 1 12 0 0 7 0 0 0 - 7001 - 0 0 - - 0

"""


def test_parse_server_states() -> None:
    states = parse_server_states(SHOW, "be_primary")
    assert sorted(states) == ["n7001", "n7002", "n7003", "n7004"]
    assert (states["n7001"].up, states["n7001"].maint, states["n7001"].port) == (True, False, 7001)
    assert (states["n7002"].up, states["n7002"].maint) == (False, True)  # config "disabled"
    assert states["n7003"].maint  # "set server ... state maint"
    assert not states["n7004"].maint  # "disabled" in the config, then "state ready"
    assert states["n7001"].address == "127.0.0.1"
    assert sorted(parse_server_states(SHOW, "be_reader")) == ["n7001"]


def test_primary_commands_retire_the_others_before_readying_the_primary() -> None:
    assert primary_commands(["n7003", "n7001", "n7002"], "n7002").split("; ") == [
        "set server be_primary/n7001 state maint",
        "shutdown sessions server be_primary/n7001",
        "set server be_primary/n7003 state maint",
        "shutdown sessions server be_primary/n7003",
        "set server be_primary/n7002 state ready",
        "set server be_primary/n7002 health up",
    ]
