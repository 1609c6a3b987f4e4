"""Leaderboards on Redis sorted sets, with exact first-come tie-breaking and time windows.

Tie-breaking: among equal scores, whoever reached the score first ranks higher. Packing time
into the score (`score * 2**k + (MAX_TS - ts)`) spends bits of the double's 53-bit mantissa and
limits the score range, so instead the score stays the sorted-set score, exact, and the tie is
carried in the *member name*. Redis orders equal scores by member bytes (reversed in ZREVRANGE),
so each player is stored as `<15-digit (10**15 - seq)>:<player>`, where `seq` is a per-board
counter incremented inside the same script that changes the score. The first to reach a score
got the smaller `seq`, hence the larger prefix, hence the better rank. The order is decided by
the Redis server, so clocks of different app instances do not matter. A hash maps each player to
its current member name.

Keys of board `name` in window `label` share one hash tag, so one script can touch all of them
in cluster mode: `lb:{name:label}` (sorted set), `...:entries` (hash), `...:seq` (counter).

Time windows (`DAILY`, `WEEKLY`, ISO weeks from Monday, in a chosen time zone): the clock picks
the window; each write sets the keys to expire at the window's end plus `retention` (by default
one more window length, so the previous window stays readable). Pass `at=` to read another window.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, cast

from .connection import CacheConnection

__all__ = ["DAILY", "WEEKLY", "Leaderboard", "Standing", "Window"]

_PREFIX_LEN = 16  # 15 digits and ':'

# KEYS: zset, entries, seq. ARGV: player, score, mode ('best' | 'incr'), expire-at ms (0: none).
_SUBMIT = """
local old = redis.call('HGET', KEYS[2], ARGV[1])
local new = tonumber(ARGV[2])
if old then
  local current = tonumber(redis.call('ZSCORE', KEYS[1], old))
  if ARGV[3] == 'incr' then new = current + new end
  if (ARGV[3] == 'best' and new <= current) or new == current then
    return {0, redis.call('ZSCORE', KEYS[1], old)}
  end
  redis.call('ZREM', KEYS[1], old)
end
local seq = redis.call('INCR', KEYS[3])
local entry = string.format('%015.0f', 1e15 - seq) .. ':' .. ARGV[1]
redis.call('ZADD', KEYS[1], new, entry)
redis.call('HSET', KEYS[2], ARGV[1], entry)
local score = redis.call('ZSCORE', KEYS[1], entry)
if ARGV[4] ~= '0' then
  for i = 1, 3 do redis.call('PEXPIREAT', KEYS[i], ARGV[4]) end
end
return {1, score}
"""
# KEYS: zset, entries. ARGV: player, radius. Returns {start, member, score, member, score, ...}.
_AROUND = """
local entry = redis.call('HGET', KEYS[2], ARGV[1])
if not entry then return false end
local rank = redis.call('ZREVRANK', KEYS[1], entry)
local start = math.max(0, rank - tonumber(ARGV[2]))
local rows = redis.call('ZREVRANGE', KEYS[1], start, rank + tonumber(ARGV[2]), 'WITHSCORES')
table.insert(rows, 1, start)
return rows
"""
# KEYS: zset, entries. ARGV: player.
_REMOVE = """
local entry = redis.call('HGET', KEYS[2], ARGV[1])
if not entry then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
return redis.call('ZREM', KEYS[1], entry)
"""


@dataclass(frozen=True, slots=True)
class Window:
    """A calendar window: "daily" or "weekly" (ISO weeks, Monday 00:00) in time zone `tz`."""

    kind: Literal["daily", "weekly"]
    tz: dt.tzinfo = dt.UTC

    def bounds(self, now: float) -> tuple[str, float, float]:
        """(label, start, end) of the window holding unix time `now`."""
        day = dt.datetime.fromtimestamp(now, self.tz).date()
        if self.kind == "daily":
            first, label, length = day, day.isoformat(), 1
        else:
            first = day - dt.timedelta(days=day.weekday())
            year, week, _ = day.isocalendar()
            label, length = f"{year}-W{week:02d}", 7
        start = dt.datetime.combine(first, dt.time(), self.tz)
        end = dt.datetime.combine(first + dt.timedelta(days=length), dt.time(), self.tz)
        return label, start.timestamp(), end.timestamp()


DAILY = Window("daily")
WEEKLY = Window("weekly")


@dataclass(frozen=True, slots=True)
class Standing:
    player: str
    score: float
    rank: int  # 1-based


class Leaderboard:
    def __init__(
        self,
        connection: CacheConnection,
        name: str,
        *,
        window: Window | None = None,
        retention: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if any(c in name for c in "{}"):
            raise ValueError("a leaderboard name may not contain '{' or '}'")
        self.connection = connection
        self.name = name
        self.window = window
        self.retention = retention
        self._clock = clock
        writer = connection.writer
        self._submit = writer.register_script(_SUBMIT)
        self._around = writer.register_script(_AROUND)
        self._remove = writer.register_script(_REMOVE)

    def keys(self, at: float | None = None) -> tuple[str, str, str]:
        """(sorted set, entries hash, sequence) keys of the window holding `at` (default: now)."""
        label = "all" if self.window is None else self.window.bounds(self._now(at))[0]
        base = f"lb:{{{self.name}:{label}}}"
        return base, base + ":entries", base + ":seq"

    def expires_at(self, at: float | None = None) -> float | None:
        """When the keys of the window holding `at` expire (None without a window)."""
        if self.window is None:
            return None
        _, start, end = self.window.bounds(self._now(at))
        return end + (end - start if self.retention is None else self.retention)

    def _now(self, at: float | None) -> float:
        return self._clock() if at is None else at

    # Writes

    async def submit(self, player: str, score: float) -> float:
        """Record `score` if it beats the player's best; returns the player's (new) best."""
        return await self._write(player, score, "best")

    async def increment(self, player: str, delta: float) -> float:
        """Add `delta` to the player's score (from 0); returns the new score."""
        return await self._write(player, delta, "incr")

    async def _write(self, player: str, value: float, mode: str) -> float:
        now = self._clock()
        expires = self.expires_at(now)
        expire_ms = 0 if expires is None else int(expires * 1000)
        result = await self._submit(keys=list(self.keys(now)), args=[player, repr(float(value)), mode, expire_ms])
        return float(cast(list[Any], result)[1])

    async def remove(self, player: str, *, at: float | None = None) -> bool:
        zset, entries, _ = self.keys(at)
        return bool(await self._remove(keys=[zset, entries], args=[player]))

    # Reads

    async def standing(self, player: str, *, at: float | None = None) -> Standing | None:
        """The player's score and 1-based rank, or None if the player has no score."""
        rows = await self.around(player, 0, at=at)
        return rows[0] if rows else None

    async def rank(self, player: str, *, at: float | None = None) -> int | None:
        found = await self.standing(player, at=at)
        return None if found is None else found.rank

    async def top(self, n: int, *, at: float | None = None) -> list[Standing]:
        return await self._range(0, n - 1, at)

    async def page(self, number: int, size: int = 10, *, at: float | None = None) -> list[Standing]:
        """Page `number` (1-based) of `size` standings."""
        if number < 1 or size < 1:
            raise ValueError("page numbers and sizes start at 1")
        start = (number - 1) * size
        return await self._range(start, start + size - 1, at)

    async def around(self, player: str, radius: int = 2, *, at: float | None = None) -> list[Standing]:
        """Up to `radius` standings either side of the player, the player included."""
        zset, entries, _ = self.keys(at)
        rows = await self._around(keys=[zset, entries], args=[player, radius])
        if not rows:
            return []
        start, *flat = cast(list[Any], rows)
        return [_standing(flat[i], float(flat[i + 1]), int(start) + i // 2 + 1) for i in range(0, len(flat), 2)]

    async def size(self, *, at: float | None = None) -> int:
        return int(await self.connection.reader.zcard(self.keys(at)[0]))

    async def _range(self, start: int, stop: int, at: float | None) -> list[Standing]:
        if stop < start:
            return []
        raw = await self.connection.reader.zrevrange(self.keys(at)[0], start, stop, withscores=True)
        rows = cast(list[tuple[bytes, float]], raw)
        return [_standing(member, score, start + i + 1) for i, (member, score) in enumerate(rows)]


def _standing(member: bytes | str, score: float, rank: int) -> Standing:
    text = member.decode() if isinstance(member, bytes) else member
    return Standing(text[_PREFIX_LEN:], score, rank)
