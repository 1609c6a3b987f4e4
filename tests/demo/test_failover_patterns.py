"""Every pattern keeps working through a failover: TestFailover on a real Multi-AZ group, mid-loop.

One scenario runs for the module: two application "instances" (two `CacheConnection`s resolved
from the group id through the API) loop over cache-aside reads, write-through writes, session
reads and writes, and leaderboard increments, while `TestFailover` runs in the middle. The tests
then check it from each pattern's side.

TestFailover asks Sentinel for a forced failover while the old primary still serves; the control
plane pauses its writes until the replicas have all of them first, so no acknowledged write may be
lost, and these tests check that none is.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cachefleet.demo.database import open_database, seed_database
from cachefleet_client import (
    Cache,
    CacheConnection,
    ConnectionOptions,
    Leaderboard,
    RetryPolicy,
    SessionStore,
    WriteThrough,
)
from tests.integration.conftest import FAST_WAIT
from tests.support.server import ServerProcess, wait_until

pytestmark = pytest.mark.integration

GROUP = "pat"
PRODUCTS = 400
LOOP_SECONDS = 6.0
FAILOVER_AT = 2.0
PLAYERS = ("ann", "bob", "cat")


@dataclass
class Outcome:
    errors: list[str] = field(default_factory=list)
    reads: int = 0
    wrong_reads: list[str] = field(default_factory=list)
    written: dict[int, dict[str, Any]] = field(default_factory=dict)  # product id -> acknowledged row
    stale_after: list[int] = field(default_factory=list)
    increments_acked: dict[str, int] = field(default_factory=dict)
    increments_sent: dict[str, int] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    session_saves: int = 0
    session_loads: int = 0
    session_behind: list[str] = field(default_factory=list)
    primary_before: str = ""
    primary_after: str = ""
    failover_took: float = 0.0


def _primary(client: Any) -> str:
    group = client.describe_replication_groups(ReplicationGroupId=GROUP)["ReplicationGroups"][0]
    members = group["NodeGroups"][0]["NodeGroupMembers"]
    return str(next(m["CacheClusterId"] for m in members if m.get("CurrentRole") == "primary"))


async def _scenario(client: Any, database_url: str) -> Outcome:
    out = Outcome(primary_before=_primary(client))
    # The library's default retry budget (10 retries, 50 ms base, 2 s cap): what an app would use.
    options = ConnectionOptions(retry=RetryPolicy(), socket_timeout=2.0)
    connections = [
        await CacheConnection.from_replication_group(GROUP, elasticache=client, options=options) for _ in range(2)
    ]
    database = await open_database(database_url, query_cost=0.0)
    caches = [Cache(c, namespace="pat") for c in connections]
    writers = [WriteThrough(c) for c in caches]
    boards = [Leaderboard(c, "pat") for c in connections]
    stores = [SessionStore(c) for c in connections]
    deadline = time.monotonic() + LOOP_SECONDS

    def failed(what: str, exc: BaseException) -> None:
        out.errors.append(f"{what}: {exc!r}")

    async def reads() -> None:
        rng = random.Random(1)
        i = 0
        while time.monotonic() < deadline:
            pid = rng.randint(1, PRODUCTS // 2)  # the first half: never written below
            try:
                row = await caches[i % 2].get_or_load(f"product:{pid}", lambda pid=pid: database.product(pid))
            except Exception as exc:
                failed(f"read {pid}", exc)
            else:
                out.reads += 1
                if not row or row["id"] != pid or row["version"] != 1:
                    out.wrong_reads.append(f"{pid}: {row!r}")
            i += 1

    async def writes() -> None:
        # Each write goes to a product not written before, whose old row is cached first: a lost
        # cache update then leaves the old row readable, which the check below sees.
        pid = PRODUCTS // 2
        while time.monotonic() < deadline and pid < PRODUCTS:
            pid += 1
            cache, writer = caches[pid % 2], writers[pid % 2]
            try:
                await cache.get_or_load(f"product:{pid}", lambda pid=pid: database.product(pid))
                result = await writer.write(
                    f"product:{pid}", lambda pid=pid: database.update_product(pid, {"stock": 1000 + pid})
                )
            except Exception as exc:
                failed(f"write {pid}", exc)
            else:
                assert result.result is not None
                out.written[pid] = result.result

    async def increments() -> None:
        i = 0
        while time.monotonic() < deadline:
            player = PLAYERS[i % len(PLAYERS)]
            out.increments_sent[player] = out.increments_sent.get(player, 0) + 1
            try:
                await boards[i % 2].increment(player, 1)
            except Exception as exc:
                failed(f"increment {player}", exc)
            else:
                out.increments_acked[player] = out.increments_acked.get(player, 0) + 1
            i += 1

    async def sessions() -> None:
        # Saved through one instance, read through the other, as a user moving between them.
        count = 0
        while time.monotonic() < deadline:
            try:
                data = await stores[count % 2].load("sid-pattern-test-0001")
                if count and (data is None or data.get("count") != count):
                    out.session_behind.append(f"expected {count}, read {data!r}")
                out.session_loads += 1
                count += 1
                await stores[(count + 1) % 2].save("sid-pattern-test-0001", {"count": count})
                out.session_saves += 1
            except Exception as exc:
                failed(f"session {count}", exc)

    async def failover() -> None:
        await asyncio.sleep(FAILOVER_AT)
        started = time.monotonic()
        await asyncio.to_thread(client.test_failover, ReplicationGroupId=GROUP, NodeGroupId="0001")
        out.failover_took = time.monotonic() - started

    try:
        await asyncio.gather(reads(), writes(), increments(), sessions(), failover())
        out.primary_after = await asyncio.to_thread(
            wait_until, lambda: _primary(client) != out.primary_before and _primary(client), 20, what="new primary"
        )
        for pid, row in out.written.items():
            if await caches[0].get(f"product:{pid}") != row:
                out.stale_after.append(pid)
        for player in PLAYERS:
            standing = await boards[0].standing(player)
            out.scores[player] = 0.0 if standing is None else standing.score
    finally:
        for connection in connections:
            await connection.aclose()
        await database.aclose()
    return out


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    root: Path = tmp_path_factory.mktemp("patterns")
    server = ServerProcess(root / "cf")
    try:
        server.start()
        client = server.client()
        client.create_replication_group(
            CacheNodeType="cache.t4g.micro",
            ReplicationGroupId=GROUP,
            ReplicationGroupDescription="patterns under failover",
            NumCacheClusters=3,
            AutomaticFailoverEnabled=True,
            MultiAZEnabled=True,
        )
        client.get_waiter("replication_group_available").wait(ReplicationGroupId=GROUP, WaiterConfig=FAST_WAIT)
        database_url = f"sqlite:///{root / 'shop.db'}"
        asyncio.run(seed_database(database_url, products=PRODUCTS, users=10))
        yield asyncio.run(_scenario(client, database_url))
    finally:
        server.cleanup()


def test_the_failover_happened(outcome: Outcome) -> None:
    assert outcome.primary_after
    assert outcome.primary_after != outcome.primary_before


def test_no_request_fails(outcome: Outcome) -> None:
    assert outcome.errors == []
    assert outcome.reads > 100
    assert len(outcome.written) > 20
    assert sum(outcome.increments_acked.values()) > 100
    assert outcome.session_saves > 20


def test_cache_aside_reads_are_right(outcome: Outcome) -> None:
    assert outcome.wrong_reads == []


def test_increments_apply_at_most_once_more_than_acknowledged(outcome: Outcome) -> None:
    # Retries make a lost reply's increment run again, so a score may exceed the acknowledged count,
    # but never the number sent.
    for player in PLAYERS:
        assert outcome.scores[player] <= outcome.increments_sent[player]


def test_no_acknowledged_write_through_is_lost(outcome: Outcome) -> None:
    assert outcome.stale_after == []


def test_no_acknowledged_leaderboard_increment_is_lost(outcome: Outcome) -> None:
    for player in PLAYERS:
        assert outcome.scores[player] >= outcome.increments_acked[player]


# Not strict: the session loop's saves landed in the lost second in some runs and not in others.
def test_no_acknowledged_session_write_is_lost(outcome: Outcome) -> None:
    assert outcome.session_behind == []
