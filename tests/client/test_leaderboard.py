from __future__ import annotations

import asyncio
import datetime as dt
import time
import zoneinfo
from typing import cast

import pytest

from cachefleet_client import DAILY, WEEKLY, CacheConnection, Leaderboard, Standing, Window

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def ts(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


async def test_ties_go_to_whoever_reached_the_score_first(connection: CacheConnection) -> None:
    board = Leaderboard(connection, "game")
    await board.submit("bob", 100)
    await board.submit("amy", 100)  # same score, later
    await board.submit("cid", 100)
    await board.submit("dan", 50)
    assert [s.player for s in await board.top(10)] == ["bob", "amy", "cid", "dan"]
    # Re-submitting the same score does not refresh the time of reaching it.
    await board.submit("bob", 100)
    assert await board.rank("bob") == 1
    # Reaching 100 by increments counts from the moment it is reached.
    await board.increment("dan", 50)
    assert [s.player for s in await board.top(10)] == ["bob", "amy", "cid", "dan"]
    await board.increment("amy", 1)
    assert [(s.player, s.score, s.rank) for s in await board.top(2)] == [("amy", 101.0, 1), ("bob", 100.0, 2)]


async def test_ties_are_exact_for_large_scores(connection: CacheConnection) -> None:
    board = Leaderboard(connection, "big")
    big = float(2**52 + 1)
    await board.submit("first", big)
    await board.submit("second", big)
    await board.submit("higher", big + 1)
    top = await board.top(3)
    assert [(s.player, s.score) for s in top] == [("higher", big + 1), ("first", big), ("second", big)]


async def test_submit_keeps_best_and_increment_accumulates(connection: CacheConnection) -> None:
    board = Leaderboard(connection, "best")
    assert await board.submit("ada", 10) == 10
    assert await board.submit("ada", 5) == 10
    assert await board.submit("ada", 12.5) == 12.5
    assert await board.increment("bob", 3) == 3
    assert await board.increment("bob", -1) == 2
    assert await board.standing("ada") == Standing("ada", 12.5, 1)
    assert await board.standing("nobody") is None
    assert await board.rank("nobody") is None
    assert await board.size() == 2


async def test_concurrent_increments_are_atomic(connection: CacheConnection) -> None:
    board = Leaderboard(connection, "clicks")
    await asyncio.gather(*[board.increment("p", 1) for _ in range(200)])
    assert await board.standing("p") == Standing("p", 200.0, 1)


async def test_top_pages_and_neighbours(connection: CacheConnection) -> None:
    board = Leaderboard(connection, "pages")
    for i in range(1, 26):  # p01 has 1 point ... p25 has 25
        await board.submit(f"p{i:02d}", i)
    assert [s.player for s in await board.top(3)] == ["p25", "p24", "p23"]
    page2 = await board.page(2, size=10)
    assert [s.rank for s in page2] == list(range(11, 21))
    assert page2[0] == Standing("p15", 15.0, 11)
    assert [s.player for s in await board.page(3, size=10)] == [f"p{i:02d}" for i in range(5, 0, -1)]
    assert await board.page(4, size=10) == []
    with pytest.raises(ValueError, match="start at 1"):
        await board.page(0)

    around = await board.around("p10", radius=2)
    assert [(s.player, s.rank) for s in around] == [("p12", 14), ("p11", 15), ("p10", 16), ("p09", 17), ("p08", 18)]
    assert [s.player for s in await board.around("p25", radius=2)] == ["p25", "p24", "p23"]
    assert [s.player for s in await board.around("p01", radius=2)] == ["p03", "p02", "p01"]
    assert await board.around("nobody") == []

    assert await board.remove("p25")
    assert not await board.remove("p25")
    assert await board.rank("p24") == 1


async def test_daily_window_keys_and_expiry(connection: CacheConnection) -> None:
    clock = Clock(ts("2030-05-14T22:00:00+00:00"))
    board = Leaderboard(connection, "daily", window=DAILY, clock=clock)
    await board.submit("ada", 10)
    zset, entries, seq = board.keys()
    assert zset == "lb:{daily:2030-05-14}"
    end_plus_one_day = int(ts("2030-05-16T00:00:00+00:00"))
    for key in (zset, entries, seq):
        assert await connection.writer.expiretime(key) == end_plus_one_day

    clock.now = ts("2030-05-15T01:00:00+00:00")  # the next day: a fresh board
    assert await board.top(5) == []
    await board.submit("bob", 3)
    assert [s.player for s in await board.top(5)] == ["bob"]
    assert [s.player for s in await board.top(5, at=ts("2030-05-14T12:00:00+00:00"))] == ["ada"]


async def test_weekly_window_with_time_zone_and_retention(connection: CacheConnection) -> None:
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    clock = Clock(ts("2030-01-06T23:30:00+01:00"))  # Sunday night in Berlin: ISO week 1 of 2030
    board = Leaderboard(connection, "weekly", window=Window("weekly", berlin), retention=0, clock=clock)
    await board.submit("ada", 1)
    assert board.keys()[0] == "lb:{weekly:2030-W01}"
    assert await connection.writer.expiretime(board.keys()[0]) == int(ts("2030-01-07T00:00:00+01:00"))
    assert WEEKLY.bounds(ts("2030-01-06T23:30:00+00:00"))[0] == "2030-W01"


async def test_past_window_expires(connection: CacheConnection) -> None:
    # A window that ended (plus retention) before now: its keys are gone at once.
    yesterday = time.time() - 2 * 86_400
    board = Leaderboard(connection, "old", window=DAILY, retention=0, clock=lambda: yesterday)
    await board.submit("ada", 1)
    assert await connection.writer.exists(*board.keys()) == 0


def test_name_may_not_contain_braces() -> None:
    with pytest.raises(ValueError, match="may not contain"):
        Leaderboard(cast(CacheConnection, None), "a{b}")
