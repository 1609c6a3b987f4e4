"""The agent's event log: what happened to its nodes, numbered, for the control plane's long polls.

Events live in memory only, the last ``capacity`` of them. ``epoch`` names this run of the agent: a
reader that sees another epoch, or asks for events older than the oldest kept (``after`` returns
None), has missed some and reads the whole state again (``GET /v1/nodes``) before following on.
Everything here runs on the agent's event loop.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from cachefleet.hosts.agent_api import Event
from cachefleet.model.nodes import NodeKey

CAPACITY = 10_000


class EventLog:
    def __init__(self, capacity: int = CAPACITY, clock: Callable[[], float] = time.time) -> None:
        self.epoch = secrets.token_hex(8)
        self._events: deque[Event] = deque(maxlen=capacity)
        self._seq = 0
        self._clock = clock
        self._wakeup: asyncio.Future[None] | None = None
        self._closed = False

    @property
    def last_seq(self) -> int:
        return self._seq

    def emit(self, kind: str, node: NodeKey, **fields: Any) -> Event:
        self._seq += 1
        event = Event(self._seq, kind, node, self._clock(), fields)
        self._events.append(event)
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)
        self._wakeup = None
        return event

    def close(self) -> None:
        """The agent is stopping: every long poll answers now (with what it has), none waits again."""
        self._closed = True
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    def after(self, seq: int) -> list[Event] | None:
        """The events numbered above ``seq``; None when some of them are no longer kept."""
        if seq >= self._seq:
            return []
        oldest = self._events[0].seq if self._events else self._seq + 1
        if seq < oldest - 1:
            return None
        return [event for event in self._events if event.seq > seq]

    async def wait_after(self, seq: int, timeout: float) -> list[Event] | None:  # noqa: ASYNC109
        """``after(seq)``, waiting up to ``timeout`` seconds for the first new event if there is none yet."""
        found = self.after(seq)
        if found != [] or timeout <= 0 or self._closed:
            return found
        if self._wakeup is None or self._wakeup.done():
            self._wakeup = asyncio.get_running_loop().create_future()
        # Shielded: one waiter that times out must not cancel the future the others wait on.
        try:
            await asyncio.wait_for(asyncio.shield(self._wakeup), timeout)
        except TimeoutError:
            return []
        return self.after(seq)
