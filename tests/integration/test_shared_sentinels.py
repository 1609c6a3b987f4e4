"""The embedded host's shared Sentinels with real processes: two groups watched by the same three
Sentinel processes, a failover of one that leaves the other alone, a shared Sentinel killed with
kill -9 (back with its monitors and the short ask period) or stripped of its monitors and healed
without the resync (the server's resync is 10 minutes here), and a deleted group forgotten by every
Sentinel while the other stays watched. Then, on servers of their own, an earlier version's group
moving to the shared Sentinels, and sets of one group each.

The module's server serves the first five tests, in order, on the same two groups (each leaves them
serving).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from tests.integration.conftest import FAST_WAIT, create_multi_az_groups
from tests.support.server import ServerProcess, wait_until

from cachefleet.control.execute import RECONFIG_SCRIPT
from cachefleet.engines import sentinel

SHARED = "sentinels.shared"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("shared") / "cf", "--resync-interval", "600")
    try:
        process.start()
        create_multi_az_groups(process.client(), "alpha", "beta", description="shared sentinels")
        yield process
    finally:
        process.cleanup()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Any:
    return server.client()


def _sentinel(server: ServerProcess, port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, password=server.sentinel_password(), socket_timeout=1, retry=None)


def _masters(server: ServerProcess, port: int) -> dict[str, dict[str, Any]]:
    """What one Sentinel watches: master name -> its ``SENTINEL MASTERS`` fields ({} when it is down)."""
    try:
        with _sentinel(server, port) as sentinel:
            return {str(k): dict(v) for k, v in sentinel.sentinel_masters().items()}
    except redis.RedisError:
        return {}


def _watched_by_all(server: ServerProcess, group_id: str) -> bool:
    """Every shared Sentinel watches the group with both replicas and both peers listed."""
    return all(
        (m := _masters(server, port).get(group_id)) is not None
        and int(m["num-slaves"]) == 2
        and int(m["num-other-sentinels"]) == 2
        and "s_down" not in str(m["flags"])
        for port in server.shared_sentinel_ports()
    )


def _ask_period(server: ServerProcess, port: int) -> int | None:
    """The Sentinel's ``ask-period`` (``SENTINEL DEBUG``), None when it cannot be asked."""
    try:
        with _sentinel(server, port) as sentinel:
            reply = sentinel.execute_command("SENTINEL", "DEBUG")
    except redis.RedisError:
        return None
    pairs = zip(reply[::2], reply[1::2], strict=True) if isinstance(reply, list) else reply.items()
    return next(int(value) for name, value in pairs if name.lower() == b"ask-period")


def _shared_pids(server: ServerProcess) -> dict[str, int]:
    return {k: v for k, v in server.node_pids().items() if k.startswith(f"{SHARED}/")}


def _primary_of(client: Any, group_id: str) -> str:
    group = client.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]
    return next(
        m["CacheClusterId"] for m in group["NodeGroups"][0]["NodeGroupMembers"] if m["CurrentRole"] == "primary"
    )


def _endpoint(client: Any, group_id: str) -> int:
    group = client.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]
    return int(group["NodeGroups"][0]["PrimaryEndpoint"]["Port"])


def _connect(port: int) -> redis.Redis:
    return redis.Redis(
        host="127.0.0.1", port=port, socket_timeout=0.5, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )


def _kill_primary_and_wait(server: ServerProcess, client: Any, group_id: str) -> str:
    """kill -9 of the group's primary: the group's status names another member within 20 s, and
    writes go through its endpoint again."""
    old = _primary_of(client, group_id)
    os.kill(server.member_pids()[f"{old}/0001"], signal.SIGKILL)
    wait_until(lambda: _primary_of(client, group_id) != old, 20, what=f"a failover of {group_id}")

    def writes() -> bool:
        try:
            with _connect(_endpoint(client, group_id)) as connection:
                return bool(connection.set("after", old))
        except redis.RedisError:
            return False

    wait_until(writes, 10, what=f"writes through {group_id}'s endpoint")
    client.get_waiter("replication_group_available").wait(ReplicationGroupId=group_id, WaiterConfig=FAST_WAIT)
    return old


def test_two_groups_are_watched_by_the_same_three_sentinel_processes(server: ServerProcess) -> None:
    pids = _shared_pids(server)
    assert sorted(pids) == [f"{SHARED}/shared-1", f"{SHARED}/shared-2", f"{SHARED}/shared-3"]
    assert not any("/sentinel-" in key for key in server.node_pids())  # no group has Sentinels of its own
    for port in server.shared_sentinel_ports():
        assert set(_masters(server, port)) == {"alpha", "beta"}
    assert _watched_by_all(server, "alpha")
    assert _watched_by_all(server, "beta")


def test_a_failover_of_one_group_leaves_the_other_alone(server: ServerProcess, client: Any) -> None:
    beta_primary = _primary_of(client, "beta")
    held = _connect(_endpoint(client, "beta"))
    held_id = held.client_id()
    try:
        _kill_primary_and_wait(server, client, "alpha")
        assert _primary_of(client, "beta") == beta_primary
        assert held.client_id() == held_id  # the same socket, retries off: never cut
        assert held.set("beta", "untouched")
    finally:
        held.close()
    wait_until(lambda: _watched_by_all(server, "alpha"), 15, what="the Sentinels to settle on alpha's new primary")
    assert _watched_by_all(server, "beta")


def test_a_killed_shared_sentinel_comes_back_watching_every_group(server: ServerProcess, client: Any) -> None:
    key = f"{SHARED}/shared-1"
    old = _shared_pids(server)[key]
    os.kill(old, signal.SIGKILL)
    wait_until(lambda: _shared_pids(server).get(key) not in (None, old), 10, what="the shared Sentinel's restart")
    port = server.shared_sentinel_ports()[0]
    # Its monitors come from the file it rewrote (nobody joined it again: the groups were watched).
    wait_until(lambda: set(_masters(server, port)) == {"alpha", "beta"}, 10, what="its monitors back")
    wait_until(lambda: _watched_by_all(server, "alpha") and _watched_by_all(server, "beta"), 15, what="its peers")
    # Runtime only, so Sentinel's default (1000) after the restart: the control plane sets its own
    # again, or this failover could be followed by a second one (engines.sentinel.ASK_PERIOD_MS).
    wait_until(lambda: _ask_period(server, port) == sentinel.ASK_PERIOD_MS, 10, what="the short ask period again")
    _kill_primary_and_wait(server, client, "beta")
    wait_until(lambda: _watched_by_all(server, "beta"), 15, what="the Sentinels to settle on beta's new primary")


def test_a_shared_sentinel_that_lost_its_monitors_gets_them_again(server: ServerProcess, client: Any) -> None:
    port = server.shared_sentinel_ports()[1]
    with _sentinel(server, port) as sentinel:
        sentinel.execute_command("SENTINEL", "REMOVE", "beta")  # behind the control plane's back
    wait_until(lambda: _watched_by_all(server, "beta"), 10, what="beta monitored again")
    # Its file lost with it (a new disk): it starts watching nothing, and both groups join it again.
    # (The file goes first: the exit wakes the groups, which start it again at once.)
    key = f"{SHARED}/shared-3"
    Path(server.data_dir / "nodes" / key / "sentinel.conf").unlink()
    os.kill(_shared_pids(server)[key], signal.SIGKILL)
    wait_until(
        lambda: set(_masters(server, server.shared_sentinel_ports()[2])) == {"alpha", "beta"}, 15, what="rejoined"
    )
    wait_until(lambda: _watched_by_all(server, "alpha") and _watched_by_all(server, "beta"), 15, what="its peers")
    _kill_primary_and_wait(server, client, "alpha")


def test_a_deleted_group_leaves_every_sentinel_and_the_other_stays_watched(server: ServerProcess, client: Any) -> None:
    pids = _shared_pids(server)
    client.delete_replication_group(ReplicationGroupId="alpha")
    wait_until(
        lambda: all("alpha" not in _masters(server, p) for p in server.shared_sentinel_ports()),
        15,
        what="alpha forgotten",
    )
    assert _watched_by_all(server, "beta")
    assert _shared_pids(server) == pids  # the Sentinels are the host's: they stay, untouched


def test_a_group_with_sentinels_of_its_own_moves_to_the_shared_ones_without_a_gap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An earlier version's group (three Sentinels of its own, as ``CACHEFLEET_SHARED_SENTINELS=off``
    still makes them) is watched by the shared Sentinels first and then loses its own: sampled all
    along, at least three Sentinels watch its primary; afterwards the shared ones list only each
    other, and a failover works."""
    server = ServerProcess(tmp_path / "cf", "--resync-interval", "600")
    try:
        monkeypatch.setenv("CACHEFLEET_SHARED_SENTINELS", "off")
        server.start()
        client = server.client()
        create_multi_az_groups(client, "older", description="per-group sentinels")
        own = [k for k in server.node_pids() if k.startswith("rg.older/sentinel-")]
        assert len(own) == 3
        own_ports = [int((server.data_dir / "nodes" / k / "port").read_text()) for k in own]
        server.stop()
        monkeypatch.delenv("CACHEFLEET_SHARED_SENTINELS")
        watching: list[int] = []

        def sample() -> bool:
            shared = server.shared_sentinel_ports() if (server.data_dir / "nodes" / SHARED).exists() else []
            watching.append(sum("older" in _masters(server, p) for p in [*own_ports, *shared]))
            return len(shared) == 3 and not any(
                k.startswith("rg.older/") and "sentinel" in k for k in server.node_pids()
            )

        server.start()
        client = server.client()  # the server listens on a new port
        wait_until(sample, 20, interval=0.02, what="its own Sentinels replaced by the shared ones")
        assert min(watching) >= 3, watching
        wait_until(lambda: _watched_by_all(server, "older"), 20, what="the shared Sentinels to forget the old ones")
        for port in server.shared_sentinel_ports():
            assert int(_masters(server, port)["older"]["num-other-sentinels"]) == 2
        _kill_primary_and_wait(server, client, "older")
    finally:
        server.cleanup()


def _set_watches(server: ServerProcess, index: int, group_id: str) -> bool:
    """The three Sentinels of shared set ``index`` watch ``group_id`` and nothing else, with both
    replicas and both peers listed."""
    ports = [
        int((server.data_dir / "nodes" / SHARED / f"shared-{3 * (index - 1) + i}" / "port").read_text())
        for i in (1, 2, 3)
    ]
    for port in ports:
        masters = _masters(server, port)
        m = masters.get(group_id)
        if set(masters) != {group_id} or m is None or int(m["num-slaves"]) != 2 or int(m["num-other-sentinels"]) != 2:
            return False
    return True


def test_groups_beyond_a_sets_size_are_watched_by_the_next_set(tmp_path: Path) -> None:
    """With one group a set: each group has three Sentinels that watch it alone; a failover in the
    second set moves its endpoint (the set's own reconfig script); a deleted group's set takes the
    next group before a third set starts."""
    server = ServerProcess(tmp_path / "cf", "--resync-interval", "600", "--sentinel-set-size", "1")
    try:
        server.start()
        client = server.client()
        create_multi_az_groups(client, "alpha")  # one after the other: groups created at once may share a set
        create_multi_az_groups(client, "beta")
        assert sorted(_shared_pids(server)) == [f"{SHARED}/shared-{i}" for i in range(1, 7)]
        wait_until(lambda: _set_watches(server, 1, "alpha") and _set_watches(server, 2, "beta"), 10, what="two sets")
        alpha_primary = _primary_of(client, "alpha")
        _kill_primary_and_wait(server, client, "beta")
        assert _primary_of(client, "alpha") == alpha_primary
        client.delete_replication_group(ReplicationGroupId="alpha")
        client.get_waiter("replication_group_deleted").wait(ReplicationGroupId="alpha", WaiterConfig=FAST_WAIT)
        create_multi_az_groups(client, "gamma")
        wait_until(lambda: _set_watches(server, 1, "gamma"), 10, what="gamma on the first set")
        assert _set_watches(server, 2, "beta")
        assert len(_shared_pids(server)) == 6
    finally:
        server.cleanup()


PROXIES = "host.endpoints"


def _proxy_groups(server: ServerProcess, proxy: str) -> set[str]:
    """The groups whose endpoints the host's proxy ``proxy`` serves, from its config."""
    conf = (server.data_dir / "nodes" / PROXIES / proxy / "haproxy.cfg").read_text()
    prefix = "frontend fe_primary."
    return {line.removeprefix(prefix) for line in conf.splitlines() if line.startswith(prefix)}


def _flipped_by_script(server: ServerProcess, group_id: str) -> bool:
    """A shared Sentinel's reconfig script flipped the group's primary backend in its proxy."""
    logs = (server.data_dir / "nodes" / SHARED).glob("shared-*/node.log")
    return any(f"is the primary in be_primary.{group_id}," in log.read_text(errors="replace") for log in logs)


def test_groups_beyond_a_proxys_size_are_served_by_the_next_proxy(tmp_path: Path) -> None:
    """With one group a proxy: two HAProxy processes serve one group each; the shared Sentinels' one
    script flips the second proxy's group there, and the first proxy's clients are untouched; a proxy
    stops with its last group and starts again for the next; after a restart the server still knows
    which proxy serves which group."""
    server = ServerProcess(tmp_path / "cf", "--resync-interval", "600", "--endpoint-proxy-size", "1")
    try:
        server.start()
        client = server.client()
        create_multi_az_groups(client, "alpha")  # one after the other, in that order
        # The Sentinels' script as an earlier version wrote it, which knew the first proxy only:
        # beta's joining brings it up to date, without restarting them.
        sentinels = _shared_pids(server)
        for key in sentinels:
            script = server.data_dir / "nodes" / key / RECONFIG_SCRIPT
            first = server.data_dir / "nodes" / PROXIES / "haproxy" / "admin.sock"
            backends = (f"be_primary.{sentinel.SCRIPT_GROUP}",)
            script.write_text(sentinel.shared_reconfig_script(sys.executable, first, backends))
        create_multi_az_groups(client, "beta")
        assert _shared_pids(server) == sentinels
        proxies = sorted(k for k in server.node_pids() if k.startswith(f"{PROXIES}/"))
        assert proxies == [f"{PROXIES}/haproxy", f"{PROXIES}/haproxy-2"]
        assert (_proxy_groups(server, "haproxy"), _proxy_groups(server, "haproxy-2")) == ({"alpha"}, {"beta"})
        wait_until(lambda: _watched_by_all(server, "beta"), 15, what="beta watched")
        held = _connect(_endpoint(client, "alpha"))
        held_id = held.client_id()
        try:
            _kill_primary_and_wait(server, client, "beta")
            wait_until(lambda: _flipped_by_script(server, "beta"), 10, what="the script's flip in the second proxy")
            assert held.client_id() == held_id  # the same socket, retries off: never cut
            assert held.set("alpha", "untouched")
        finally:
            held.close()
        client.delete_replication_group(ReplicationGroupId="alpha")
        client.get_waiter("replication_group_deleted").wait(ReplicationGroupId="alpha", WaiterConfig=FAST_WAIT)
        wait_until(lambda: f"{PROXIES}/haproxy" not in server.node_pids(), 10, what="the first proxy to stop")
        create_multi_az_groups(client, "gamma")
        assert _proxy_groups(server, "haproxy") == {"gamma"}
        server.stop()
        server.start()
        client = server.client()  # the server listens on a new port
        create_multi_az_groups(client, "delta")
        assert _proxy_groups(server, "haproxy-3") == {"delta"}
        assert (_proxy_groups(server, "haproxy"), _proxy_groups(server, "haproxy-2")) == ({"gamma"}, {"beta"})
    finally:
        server.cleanup()
