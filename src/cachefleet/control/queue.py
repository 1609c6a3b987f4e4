"""A keyed work queue: each key is queued once, handled by one worker at a time, requeued on demand.

A key put while a worker holds it is remembered and handed out again when that worker is done, so
no change is lost and no resource is ever reconciled twice at once.
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

    def put(self, key: K) -> None:
        if key in self._active:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._ready.append(key)
            self._wakeup.set()

    def put_later(self, key: K, delay: float) -> None:
        asyncio.get_running_loop().call_later(delay, self.put, key)

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
