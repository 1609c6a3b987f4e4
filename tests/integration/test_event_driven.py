"""The reconciler follows events; the periodic resync is a slow safety net (docs/decisions.md).

A failover that Sentinel decides on its own (no API call, no process exit) reaches Describe through
Sentinel's pub/sub events, with the resync set to 10 minutes so that nothing else can bring it. With
the events turned off (``CACHEFLEET_SENTINEL_EVENTS=off``: every event missed), a short resync finds
the same failover. A killed node healed without the resync is in test_supervision.py
(``test_a_killed_node_is_healed_at_its_exit_without_waiting_for_the_resync``).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from tests.integration.conftest import FAST_WAIT, create_multi_az_groups
from tests.support.server import ServerProcess, wait_until

pytestmark = pytest.mark.integration

GROUP = "evented"
# A failover Sentinel runs takes ~1-2.5 s here (engine recipes: promotion after its next INFO); the
# described primary follows within a pass of the first event. The bound leaves room for a loaded
# machine, and stays far below the 10-minute resync.
DESCRIBED_WITHIN_S = 10.0
# A primary that was failed over while alive is turned into a replica by Sentinel, not by us, and
# Sentinel waits four publish periods (8 s) of it still claiming master before it converts it
# (``sentinelRefreshInstanceInfo`` in Redis 7.0); then it must sync. 10 s left no room on a loaded
# machine (seen once with the suite run in parallel).
CONVERTED_WITHIN_S = 20.0


def _group(client: Any, group_id: str) -> dict[str, Any]:
    return dict(client.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0])


def _primary_of(client: Any, group_id: str) -> str:
    members = _group(client, group_id)["NodeGroups"][0]["NodeGroupMembers"]
    return next(m["CacheClusterId"] for m in members if m.get("CurrentRole") == "primary")


def _create(server: ServerProcess, group_id: str) -> Any:
    client = server.client()
    create_multi_az_groups(client, group_id, description="events")
    return client


def _sentinel_failover(server: ServerProcess, group_id: str) -> None:
    """``SENTINEL FAILOVER`` straight to the group's first Sentinel, behind the control plane's back."""
    port = int((server.data_dir / "nodes/sentinels.shared/shared-1/port").read_text())  # shared by every group
    with redis.Redis(host="127.0.0.1", port=port, password=server.sentinel_password(), socket_timeout=2) as sentinel:
        # Accepted once the Sentinel has a replica it may promote (the group is available: it has).
        wait_until(lambda: _asked(sentinel, group_id), 10, interval=0.2, what="SENTINEL FAILOVER to be accepted")


def _asked(sentinel: redis.Redis, group_id: str) -> bool:
    try:
        return bool(sentinel.execute_command("SENTINEL", "FAILOVER", group_id))
    except redis.ResponseError:
        return False


def _synced_replica(server: ServerProcess, member: str) -> bool:
    port = int((server.data_dir / f"nodes/{member}/0001/port").read_text())
    try:
        with redis.Redis(
            host="127.0.0.1", port=port, username="cachefleet-admin", password=server.admin_password(), socket_timeout=1
        ) as node:
            info = node.info("replication")
    except redis.RedisError:
        return False
    return info.get("role") == "slave" and info.get("master_link_status") == "up"


@pytest.fixture(scope="module")
def evented(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # Nothing but an event can bring a change here within the test: the resync runs every 10 minutes.
    server = ServerProcess(tmp_path_factory.mktemp("evented") / "cf", "--resync-interval", "600")
    try:
        server.start()
        _create(server, GROUP)
        yield server
    finally:
        server.cleanup()


def test_a_failover_sentinel_decides_alone_is_described_from_its_events(evented: ServerProcess) -> None:
    client = evented.client()
    old = _primary_of(client, GROUP)
    _sentinel_failover(evented, GROUP)
    wait_until(lambda: _primary_of(client, GROUP) != old, DESCRIBED_WITHIN_S, interval=0.1, what="the new primary")
    messages = [
        e["Message"] for e in client.describe_events(SourceIdentifier=GROUP, SourceType="replication-group")["Events"]
    ]
    assert any(m.startswith(f"Failover from primary node {old} to replica node") for m in messages)
    # The old primary goes on as a replica of the new one, and the group is available again.
    wait_until(
        lambda: _synced_replica(evented, old), CONVERTED_WITHIN_S, interval=0.1, what="the old primary a replica"
    )
    client.get_waiter("replication_group_available").wait(ReplicationGroupId=GROUP, WaiterConfig=FAST_WAIT)


def test_a_hung_primary_is_failed_over_and_healed_from_sentinel_events(evented: ServerProcess) -> None:
    # SIGSTOP: the primary hangs without exiting, so no pidfd fires; Sentinel's +sdown and the
    # failover's events are all the control plane gets.
    client = evented.client()
    old = _primary_of(client, GROUP)
    pid = evented.member_pids()[f"{old}/0001"]
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_until(lambda: _primary_of(client, GROUP) != old, DESCRIBED_WITHIN_S, interval=0.1, what="the new primary")
    finally:
        os.kill(pid, signal.SIGCONT)
    # Back, it is turned into a replica by Sentinel (+convert-to-slave), which wakes the group again.
    wait_until(
        lambda: _synced_replica(evented, old), CONVERTED_WITHIN_S, interval=0.1, what="the old primary a replica"
    )
    client.get_waiter("replication_group_available").wait(ReplicationGroupId=GROUP, WaiterConfig=FAST_WAIT)
    assert evented.member_pids()[f"{old}/0001"] == pid  # the same process: nothing was restarted


def test_a_failover_whose_events_are_all_missed_is_found_by_the_resync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No subscriber at all: only the resync, every 2 s here, can see the failover.
    monkeypatch.setenv("CACHEFLEET_SENTINEL_EVENTS", "off")
    server = ServerProcess(tmp_path / "cf", "--resync-interval", "2")
    try:
        server.start()
        client = _create(server, "missed")
        old = _primary_of(client, "missed")
        _sentinel_failover(server, "missed")
        wait_until(
            lambda: _primary_of(client, "missed") != old, DESCRIBED_WITHIN_S, interval=0.1, what="the new primary"
        )
        assert "Sentinel events are not followed" in (server.data_dir / "server.log").read_text()
        client.get_waiter("replication_group_available").wait(ReplicationGroupId="missed", WaiterConfig=FAST_WAIT)
    finally:
        server.cleanup()
