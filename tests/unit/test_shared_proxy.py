"""The host's endpoint proxy: one config for every group (``haproxy.render_proxy``), what a group
contributes (``control.proxy``), and what the proxy's CLIs answer (old workers, their sessions)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest
from tests.support.fakes import ADDRESS, AZS, FakeProxyCli, Fleet, fake_proxy

from cachefleet.control.actions import EndpointInputs
from cachefleet.control.proxy import ENDPOINT_FILE, PROXY_FILE, entry_json, parse_entry, running_primaries
from cachefleet.engines import haproxy
from cachefleet.hosts.base import ProcessSpec
from cachefleet.model.errors import Retry
from cachefleet.model.nodes import (
    PROXY_KEY,
    READER_SLOT,
    NodeKey,
    Placement,
    endpoint_group,
    endpoint_key,
    proxy_index,
    proxy_key,
)
from cachefleet.model.transit import TransitMode

AT = Placement("local", ADDRESS, AZS[0])
SETTINGS = haproxy.ProxySettings(hard_stop_after_s=3600, max_reloads=10)


def _config(group: str, base: int, **extra: object) -> haproxy.EndpointConfig:
    nodes = ((ADDRESS, base + 1), (ADDRESS, base + 2))
    return haproxy.EndpointConfig(
        bind=ADDRESS,
        primary_port=base,
        reader_port=base + 10,
        nodes=nodes,
        primary=nodes[0],
        admin_user="cachefleet-check",
        admin_password="secret",
        group=group,
        **extra,  # type: ignore[arg-type]
    )


def _ports(fleet: Fleet, *groups: str) -> None:
    for group in groups:
        key = endpoint_key(group)
        fleet.host.allocate_port(key)
        fleet.host.allocate_port(key, (), READER_SLOT)


def _inputs(base: int) -> EndpointInputs:
    nodes = ((ADDRESS, base), (ADDRESS, base + 1))
    return EndpointInputs(nodes, nodes[0])


def _listings(monkeypatch: pytest.MonkeyPatch, fleet: Fleet) -> list[int]:
    """One entry per listing of the host's node directories from now on."""
    listings: list[int] = []
    listed = fleet.host.nodes

    async def counted() -> list[NodeKey]:
        listings.append(1)
        return await listed()

    monkeypatch.setattr(fleet.host, "nodes", counted)
    return listings


def test_one_config_serves_every_group_under_its_own_names() -> None:
    tls = haproxy.EndpointTls(TransitMode.PREFERRED, Path("/ca.pem"), plain_ports=((7102, 7202), (7101, 7201)))
    text = haproxy.render_proxy(SETTINGS, [_config("orders", 6000), _config("carts", 7100, tls=tls)])
    assert text.count("\nglobal\n") == 1
    assert "    hard-stop-after 3600s\n    mworker-max-reloads 10\n" in text
    assert "expose-fd listeners" in text
    for name in ("fe_primary.orders", "fe_reader.orders", "be_primary.orders", "be_reader.orders"):
        assert f"\n{'frontend' if name.startswith('fe') else 'backend'} {name}\n" in text
    # TLS preferred for one group only: its sniffing frontends and plain-text backends, not the other's.
    assert "backend be_primary_plain.carts" in text
    assert "be_primary_plain.orders" not in text
    assert "    use_backend be_primary.carts if tls\n    default_backend be_primary_plain.carts" in text
    assert "bind 127.0.0.1:6000\n    default_backend be_primary.orders" in text
    assert haproxy.group_primary_backends("carts", TransitMode.PREFERRED) == (
        "be_primary.carts",
        "be_primary_plain.carts",
    )
    assert haproxy.group_primary_backends("orders", None) == ("be_primary.orders",)


def test_a_shared_config_refuses_clashing_groups_and_ports() -> None:
    with pytest.raises(ValueError, match="distinct"):
        haproxy.render_proxy(SETTINGS, [_config("a", 6000), _config("b", 6010)])  # a's reader is b's primary
    with pytest.raises(ValueError, match="own group name"):
        haproxy.render_proxy(SETTINGS, [_config("a", 6000), _config("a", 7000)])
    with pytest.raises(ValueError, match="own group name"):
        haproxy.render_proxy(SETTINGS, [_config("", 6000), _config("a", 7000)])
    with pytest.raises(ValueError, match="group names"):
        haproxy.render_proxy(SETTINGS, [_config("a.b", 6000)])
    with pytest.raises(ValueError, match="at least one"):
        haproxy.render_proxy(SETTINGS, [])


def test_a_contribution_round_trips_with_its_primary() -> None:
    inputs = EndpointInputs(((ADDRESS, 1), (ADDRESS, 2)), (ADDRESS, 2), tls="preferred", plain_ports=((1, 11), (2, 12)))
    assert parse_entry(entry_json(inputs)) == inputs
    # What the planner compares leaves the primary out: a new primary is a runtime flip, not a reload.
    assert "primary" not in inputs.to_json()
    for unreadable in (None, "", "{", '{"nodes": []}', '{"nodes": [["h", "x"]], "primary": ["h", 1]}'):
        assert parse_entry(unreadable) is None


def test_an_endpoint_key_names_its_group() -> None:
    assert endpoint_group(endpoint_key("orders")) == "orders"
    assert endpoint_group(NodeKey("rg.orders", "sentinel-1")) is None
    assert endpoint_group(PROXY_KEY) is None
    assert endpoint_group(NodeKey("orders-001", "endpoint")) is None


# As HAProxy 2.6 answers "show servers state" for the whole proxy (two groups).
STATES = """1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight \
srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state \
srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port \
srv_check_addr srv_agent_addr srv_agent_port
3 be_primary.a 1 n7001 127.0.0.1 0 1 1 1 5 15 3 2 6 0 0 0 - 7001 - 0 0 - - 0
3 be_primary.a 2 n7002 127.0.0.1 2 0 1 1 5 15 3 2 6 0 0 0 - 7002 - 0 0 - - 0
4 be_reader.a 1 n7001 127.0.0.1 2 0 1 1 5 15 3 2 6 0 0 0 - 7001 - 0 0 - - 0
5 be_primary.b 1 n8001 127.0.0.1 0 1 1 1 5 15 3 2 6 0 0 0 - 8001 - 0 0 - - 0
5 be_primary.b 2 n8002 127.0.0.1 0 1 1 1 5 15 3 2 6 0 0 0 - 8002 - 0 0 - - 0
"""


def test_a_reload_keeps_each_group_on_the_primary_its_backend_routes_to_now() -> None:
    # b has no server out of maintenance (a flip in progress): its recorded primary is kept instead.
    assert running_primaries(STATES) == {"a": ("127.0.0.1", 7002)}
    assert set(haproxy.parse_all_server_states(STATES)) == {"be_primary.a", "be_reader.a", "be_primary.b"}


SHOW_PROC = """#<PID>          <type>          <reloads>       <uptime>        <version>
26508           master          2 [failed: 0]   0d00h00m03s     2.6.12-1+deb12u4
# workers
26530           worker          0               0d00h00m01s     2.6.12-1+deb12u4
# old workers
26517           worker          1               0d00h00m02s     2.6.12-1+deb12u4
26514           worker          2               0d00h00m03s     2.6.12-1+deb12u4
# programs

"""

SHOW_SESS = """0x55841b124200: proto=tcpv4 src=127.0.0.1:35060 fe=fe_primary.a be=be_primary.a srv=n7001 ts=00 age=9s
0x55841b124300: proto=tcpv4 src=127.0.0.1:35061 fe=fe_primary.a be=be_primary.a srv=n7002 ts=00 age=9s
0x55841b124400: proto=tcpv4 src=127.0.0.1:35062 fe=fe_reader.a be=be_reader.a srv=n7001 ts=00 age=9s
0x55841b124500: proto=tcpv4 src=127.0.0.1:35063 fe=fe_primary.b be=be_primary.b srv=n8001 ts=00 age=9s
0x55841b21abc0: proto=sockpair src=unix:2 fe=GLOBAL be=<NONE> srv=<none> ts=00 age=0s
"""


def test_old_workers_and_their_sessions_to_a_demoted_primary() -> None:
    assert haproxy.old_workers(SHOW_PROC) == [26517, 26514]
    assert haproxy.old_workers(SHOW_PROC.replace("26517", "").replace("26514", "")) == []
    # Only the group's primary backend, and only servers other than its primary.
    assert haproxy.stale_sessions(SHOW_SESS, {"be_primary.a"}, "n7002") == ["0x55841b124200"]
    assert haproxy.stale_sessions(SHOW_SESS, {"be_primary.b"}, "n8001") == []


def test_the_worker_pid_from_show_info() -> None:
    assert haproxy.worker_pid("Name: HAProxy\nVersion: 2.6.12\nPid: 4242\nUptime: 0d\n") == 4242
    with pytest.raises(Retry):
        haproxy.worker_pid("Unknown command")


def test_groups_come_and_go_through_one_proxy_process() -> None:
    fleet = Fleet()
    proxy = fake_proxy(fleet.hosts)
    cli = proxy.admin
    assert isinstance(cli, FakeProxyCli)
    for group, base in (("a", 7001), ("b", 8001)):
        key = endpoint_key(group)
        fleet.host.allocate_port(key)
        fleet.host.allocate_port(key, (), READER_SLOT)
        nodes = ((ADDRESS, base), (ADDRESS, base + 1))
        asyncio.run(proxy.serve(AT, group, EndpointInputs(nodes, nodes[0])))
    pid = fleet.host.pid_now(PROXY_KEY)
    assert pid is not None
    assert fleet.host.started.count(PROXY_KEY) == 1  # started once, reloaded for the second group
    conf = fleet.host.file_now(PROXY_KEY, haproxy.CONFIG_FILE) or ""
    assert "frontend fe_primary.a" in conf
    assert "frontend fe_primary.b" in conf
    assert parse_entry(fleet.host.file_now(endpoint_key("b"), ENDPOINT_FILE)) is not None
    asyncio.run(proxy.withdraw(AT, "a"))
    conf = fleet.host.file_now(PROXY_KEY, haproxy.CONFIG_FILE) or ""
    assert "fe_primary.a" not in conf
    assert "frontend fe_primary.b" in conf
    assert fleet.host.pid_now(PROXY_KEY) == pid
    assert parse_entry(fleet.host.file_now(endpoint_key("a"), ENDPOINT_FILE)) is None
    # Its last group gone, the proxy stops.
    asyncio.run(proxy.withdraw(AT, "b"))
    assert fleet.host.pid_now(PROXY_KEY) is None
    assert "show servers state" in cli.commands


def _served_by(fleet: Fleet, index: int) -> set[str]:
    conf = fleet.host.file_now(proxy_key(index), haproxy.CONFIG_FILE) or ""
    return {
        line.removeprefix("frontend fe_primary.")
        for line in conf.splitlines()
        if line.startswith("frontend fe_primary.")
    }


def _homes(fleet: Fleet, groups: str) -> dict[str, str | None]:
    return {group: fleet.host.file_now(endpoint_key(group), PROXY_FILE) for group in groups}


def test_groups_beyond_a_proxys_size_go_to_the_next_proxy_and_stay_with_theirs() -> None:
    fleet = Fleet()
    proxy = fake_proxy(fleet.hosts, size=2)
    _ports(fleet, *"abcde")
    for i, group in enumerate("abcde"):
        asyncio.run(proxy.serve(AT, group, _inputs(7001 + 10 * i)))
    assert _homes(fleet, "abcde") == {
        "a": "haproxy",
        "b": "haproxy",
        "c": "haproxy-2",
        "d": "haproxy-2",
        "e": "haproxy-3",
    }
    assert [_served_by(fleet, i) for i in (1, 2, 3)] == [{"a", "b"}, {"c", "d"}, {"e"}]
    assert all(fleet.host.pid_now(proxy_key(i)) is not None for i in (1, 2, 3))
    # A deletion makes room in its proxy, which the next new group takes; a changed group stays.
    asyncio.run(proxy.withdraw(AT, "c"))
    asyncio.run(fleet.host.remove(endpoint_key("c")))  # as RemoveNode does next
    _ports(fleet, "f")
    asyncio.run(proxy.serve(AT, "f", _inputs(8001)))
    asyncio.run(proxy.serve(AT, "a", _inputs(9001)))
    assert _homes(fleet, "af") == {"a": "haproxy", "f": "haproxy-2"}
    assert [_served_by(fleet, i) for i in (1, 2, 3)] == [{"a", "b"}, {"d", "f"}, {"e"}]
    # A proxy stops with its last group; the others serve on.
    asyncio.run(proxy.withdraw(AT, "e"))
    assert fleet.host.pid_now(proxy_key(3)) is None
    assert fleet.host.pid_now(proxy_key(1)) is not None
    assert fleet.host.pid_now(proxy_key(2)) is not None


def test_a_restarted_control_plane_knows_each_groups_proxy_from_the_files() -> None:
    fleet = Fleet()
    _ports(fleet, *"abcd")
    first = fake_proxy(fleet.hosts, size=2)
    for i, group in enumerate("abc"):
        asyncio.run(first.serve(AT, group, _inputs(7001 + 10 * i)))
    # "a" was served before proxies had a size: no file names its proxy, the first one serves it.
    del fleet.host.nodes_by_key[endpoint_key("a")].files[PROXY_FILE]
    restarted = fake_proxy(fleet.hosts, size=2)
    asyncio.run(restarted.serve(AT, "d", _inputs(8001)))
    asyncio.run(restarted.serve(AT, "a", _inputs(9001)))
    assert _homes(fleet, "abcd") == {"a": None, "b": "haproxy", "c": "haproxy-2", "d": "haproxy-2"}
    assert [_served_by(fleet, i) for i in (1, 2)] == [{"a", "b"}, {"c", "d"}]
    assert asyncio.run(restarted.admin_socket(AT, "a")).parent == fleet.host.dir_now(proxy_key(1))
    assert asyncio.run(restarted.admin_socket(AT, "d")).parent == fleet.host.dir_now(proxy_key(2))


def test_the_endpoint_proxies_keys() -> None:
    assert proxy_key(1) == PROXY_KEY
    assert proxy_key(2) == NodeKey(PROXY_KEY.cluster_id, "haproxy-2")
    assert [proxy_index(proxy_key(i)) for i in (1, 2, 12)] == [1, 2, 12]
    others = [NodeKey(PROXY_KEY.cluster_id, n) for n in ("haproxy-1", "haproxy-x", "haproxy2", "other")]
    assert [proxy_index(k) for k in [*others, endpoint_key("a")]] == [None] * 5


def test_a_group_with_its_own_haproxy_of_an_older_version_is_taken_over() -> None:
    # Before the shared proxy each group ran its own HAProxy in its endpoint directory, on the
    # group's ports: it is stopped first (its clients see a short gap), then the proxy binds them.
    fleet = Fleet()
    key = endpoint_key("old")
    fleet.host.run(key, fleet.host.allocate_port(key), inputs_json='{"nodes": []}')
    fleet.host.allocate_port(key, (), READER_SLOT)
    assert fleet.host.pid_now(key) is not None
    nodes = ((ADDRESS, 7001),)
    asyncio.run(fake_proxy(fleet.hosts).serve(AT, "old", EndpointInputs(nodes, nodes[0])))
    assert fleet.host.pid_now(key) is None
    assert fleet.host.pid_now(PROXY_KEY) is not None
    assert "frontend fe_primary.old" in (fleet.host.file_now(PROXY_KEY, haproxy.CONFIG_FILE) or "")


def test_a_change_reads_only_its_own_group_until_the_files_are_due_again(monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = Fleet()
    proxy = fake_proxy(fleet.hosts)
    listings = _listings(monkeypatch, fleet)

    def serve(group: str, base: int) -> None:
        key = endpoint_key(group)
        fleet.host.allocate_port(key)
        fleet.host.allocate_port(key, (), READER_SLOT)
        nodes = ((ADDRESS, base), (ADDRESS, base + 1))
        asyncio.run(proxy.serve(AT, group, EndpointInputs(nodes, nodes[0])))

    serve("a", 7001)  # the proxy did not run: every contribution is read from the files
    read = len(listings)
    assert read > 0
    serve("b", 8001)
    serve("c", 9001)
    assert len(listings) == read
    conf = fleet.host.file_now(PROXY_KEY, haproxy.CONFIG_FILE) or ""
    assert all(f"frontend fe_primary.{g}" in conf for g in "abc")
    # Due again: the files are the truth, and one written behind the proxy's back is served.
    monkeypatch.setattr("cachefleet.control.proxy.REREAD_INTERVAL", 0.0)
    key = endpoint_key("d")
    fleet.host.allocate_port(key)
    fleet.host.allocate_port(key, (), READER_SLOT)
    nodes = ((ADDRESS, 6001),)
    asyncio.run(fleet.host.write_file(key, ENDPOINT_FILE, entry_json(EndpointInputs(nodes, nodes[0]))))
    asyncio.run(proxy.withdraw(AT, "a"))
    assert len(listings) > read
    conf = fleet.host.file_now(PROXY_KEY, haproxy.CONFIG_FILE) or ""
    assert "fe_primary.a" not in conf
    assert all(f"frontend fe_primary.{g}" in conf for g in "bcd")


def test_a_failed_change_makes_the_next_one_read_the_files(monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = Fleet()
    proxy = fake_proxy(fleet.hosts)
    for group in ("a", "b"):
        key = endpoint_key(group)
        fleet.host.allocate_port(key)
        fleet.host.allocate_port(key, (), READER_SLOT)
    nodes = ((ADDRESS, 7001), (ADDRESS, 7002))
    asyncio.run(proxy.serve(AT, "a", EndpointInputs(nodes, nodes[0])))
    listings = _listings(monkeypatch, fleet)

    async def refuse(*_: object) -> None:
        raise Retry("reload refused")

    with monkeypatch.context() as patched:
        patched.setattr(fleet.host, "reload", refuse)
        with pytest.raises(Retry):
            asyncio.run(proxy.serve(AT, "b", EndpointInputs(((ADDRESS, 8001),), (ADDRESS, 8001))))
    assert listings == []
    asyncio.run(proxy.serve(AT, "b", EndpointInputs(((ADDRESS, 8001),), (ADDRESS, 8001))))
    assert listings == [1]


def test_changes_queued_during_a_reload_go_together_in_the_next_one(monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = Fleet()
    proxy = fake_proxy(fleet.hosts)
    _ports(fleet, "a", "b", "c", "d")
    asyncio.run(proxy.serve(AT, "a", _inputs(7001)))  # the proxy starts
    reloads: list[str] = []
    reloaded = fleet.host.reload

    async def scenario() -> list[str]:
        reloading, release, all_served = asyncio.Event(), asyncio.Event(), asyncio.Event()

        async def slow(key: NodeKey, spec: ProcessSpec, signum: int) -> None:
            reloads.append(spec.files[haproxy.CONFIG_FILE])
            reloading.set()
            await release.wait()
            await reloaded(key, spec, signum)

        def done(group: str) -> None:
            served.append(group)
            if len(served) == 3:
                all_served.set()

        monkeypatch.setattr(fleet.host, "reload", slow)
        served: list[str] = []
        proxy.serve_soon(AT, "b", _inputs(8001), done)
        await reloading.wait()
        # While b's reload runs, c and d are asked for: they wait, then go in one reload.
        proxy.serve_soon(AT, "c", _inputs(9001), done)
        proxy.serve_soon(AT, "d", _inputs(6001), done)
        assert {g: proxy.pending(g) for g in "abcd"} == {
            "a": None,
            "b": _inputs(8001).to_json(),
            "c": _inputs(9001).to_json(),
            "d": _inputs(6001).to_json(),
        }
        release.set()
        await all_served.wait()
        return served

    assert asyncio.run(scenario()) == ["b", "c", "d"]
    assert len(reloads) == 2
    assert "fe_primary.b" in reloads[0]
    assert "fe_primary.c" not in reloads[0]
    assert all(f"frontend fe_primary.{g}" in reloads[1] for g in "abcd")
    assert all(proxy.pending(g) is None for g in "abcd")
    assert parse_entry(fleet.host.file_now(endpoint_key("d"), ENDPOINT_FILE)) == _inputs(6001)


def test_a_queued_change_that_failed_stays_pending_for_a_pause(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fleet = Fleet()
    proxy = fake_proxy(fleet.hosts)
    _ports(fleet, "a", "b")
    asyncio.run(proxy.serve(AT, "a", _inputs(7001)))
    monkeypatch.setattr("cachefleet.control.proxy.RETRY_PAUSE", 0.05)

    async def refuse(*_: object) -> None:
        raise Retry("reload refused")

    monkeypatch.setattr(fleet.host, "reload", refuse)

    async def scenario() -> tuple[list[str], str | None, list[str]]:
        served: list[str] = []
        proxy.serve_soon(AT, "b", _inputs(8001), served.append)
        await asyncio.sleep(0.02)  # failed by now, and pausing
        during = (list(served), proxy.pending("b"))
        await asyncio.sleep(0.1)
        return during[0], during[1], served

    before, pending, after = asyncio.run(scenario())
    assert (before, pending) == ([], _inputs(8001).to_json())  # not asked again at once
    assert after == ["b"]  # woken after the pause, to ask again
    assert proxy.pending("b") is None
    assert parse_entry(fleet.host.file_now(endpoint_key("b"), ENDPOINT_FILE)) is None  # not served
    assert "b: the endpoint proxy did not apply its change: reload refused" in caplog.text


def test_a_group_withdrawn_before_its_queued_change_is_not_served() -> None:
    fleet = Fleet()
    proxy = fake_proxy(fleet.hosts)
    _ports(fleet, "a", "b")
    asyncio.run(proxy.serve(AT, "a", _inputs(7001)))

    async def scenario() -> list[str]:
        served: list[str] = []
        proxy.serve_soon(AT, "b", _inputs(8001), served.append)
        await proxy.withdraw(AT, "b")  # before the drain had its turn
        await asyncio.sleep(0.01)
        return served

    assert asyncio.run(scenario()) == []
    assert proxy.pending("b") is None
    conf = fleet.host.file_now(PROXY_KEY, haproxy.CONFIG_FILE) or ""
    assert "fe_primary.b" not in conf
    assert "frontend fe_primary.a" in conf


def test_a_group_withdrawn_while_its_proxy_is_chosen_is_withdrawn_after_it_is_served(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Its change already left the queue: the withdrawal must find the proxy it went to, and come
    # after the change there, or that proxy serves a deleted group (and binds its freed ports).
    fleet = Fleet()
    proxy = fake_proxy(fleet.hosts, size=1)
    _ports(fleet, "a", "b")
    asyncio.run(proxy.serve(AT, "a", _inputs(7001)))
    written = fleet.host.write_file

    async def scenario() -> None:
        choosing, release = asyncio.Event(), asyncio.Event()

        async def slow(key: NodeKey, name: str, text: str) -> None:
            if name == PROXY_FILE:
                choosing.set()
                await release.wait()
            await written(key, name, text)

        monkeypatch.setattr(fleet.host, "write_file", slow)
        served = asyncio.get_running_loop().create_future()
        proxy.serve_soon(AT, "b", _inputs(8001), served.set_result)
        await choosing.wait()
        withdrawal = asyncio.create_task(proxy.withdraw(AT, "b"))
        await asyncio.sleep(0.01)
        release.set()
        await withdrawal
        await proxy.serve(AT, "a", _inputs(7001))  # queued behind whatever was left of b's change

    asyncio.run(scenario())
    assert fleet.host.file_now(endpoint_key("b"), PROXY_FILE) == "haproxy-2"
    assert fleet.host.pid_now(proxy_key(2)) is None  # started to serve it, then stopped with it
    assert _served_by(fleet, 1) == {"a"}
    assert parse_entry(fleet.host.file_now(endpoint_key("b"), ENDPOINT_FILE)) is None


class _SlowMaster(FakeProxyCli):
    """A master that lists a new worker only when the test says so (``listed``)."""

    def __init__(self) -> None:
        super().__init__()
        self.listed = 1

    def master(self, socket_path: Path, commands: Sequence[str]) -> str:
        self.commands += commands
        return f"# workers\n{self.listed} worker 0\n# old workers\n" if list(commands) == ["show proc"] else ""


def test_a_change_is_served_once_its_worker_answers_and_the_next_reload_waits_for_the_master(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fleet = Fleet()
    cli = _SlowMaster()
    proxy = fake_proxy(fleet.hosts, cli)
    _ports(fleet, "a", "b", "c")
    signals: list[int] = []
    reloaded = fleet.host.reload

    async def counted(key: NodeKey, spec: ProcessSpec, signum: int) -> None:
        signals.append(signum)
        await reloaded(key, spec, signum)

    monkeypatch.setattr(fleet.host, "reload", counted)

    async def scenario() -> None:
        await proxy.serve(AT, "a", _inputs(7001))  # started: its first worker (1) is listed
        # b is served by worker 3 (2 answered before the signal), which the master does not list yet.
        await asyncio.wait_for(proxy.serve(AT, "b", _inputs(8001)), 2)
        assert signals == [haproxy.RELOAD_SIGNAL]
        c = asyncio.create_task(proxy.serve(AT, "c", _inputs(9001)))
        await asyncio.sleep(0.1)
        assert signals == [haproxy.RELOAD_SIGNAL]  # no second signal before the master takes worker 3
        assert not c.done()
        cli.listed = 3
        await asyncio.wait_for(c, 2)
        assert signals == [haproxy.RELOAD_SIGNAL] * 2

    asyncio.run(scenario())
    conf = fleet.host.file_now(PROXY_KEY, haproxy.CONFIG_FILE) or ""
    assert all(f"frontend fe_primary.{g}" in conf for g in "abc")
