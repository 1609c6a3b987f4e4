"""A keyed work queue: each key is queued once, handled by one worker at a time, requeued on demand.

A key put while a worker holds it is remembered and handed out again when that worker is done, so
no change is lost and no resource is ever reconciled twice at once. A key holds at most one timer
(``put_later``): the earliest wins, so a resource looked at often does not pile up timers.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class KeyedQueue(Generic[K]):
    def __init__(self) -> None:
        self._ready: deque[K] = deque()
        self._queued: set[K] = set()
        self._active: set[K] = set()
        self._dirty: set[K] = set()
        self._wakeup = asyncio.Event()
        self._timers: dict[K, asyncio.TimerHandle] = {}

    def put(self, key: K) -> None:
        if key in self._active:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._ready.append(key)
            self._wakeup.set()

    def put_later(self, key: K, delay: float) -> None:
        """Put ``key`` after ``delay`` seconds, unless it already has a timer that fires no later."""
        loop = asyncio.get_running_loop()
        timer = self._timers.get(key)
        if timer is not None:
            if timer.when() <= loop.time() + delay:
                return
            timer.cancel()
        self._timers[key] = loop.call_later(delay, self._fire, key)

    def _fire(self, key: K) -> None:
        del self._timers[key]
        self.put(key)

    def timers(self) -> int:
        return len(self._timers)

    async def get(self) -> K:
        while not self._ready:
            self._wakeup.clear()
            await self._wakeup.wait()
        key = self._ready.popleft()
        self._queued.discard(key)
        self._active.add(key)
        return key

    def done(self, key: K) -> None:
        self._active.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.put(key)

    def __len__(self) -> int:
        return len(self._ready)
