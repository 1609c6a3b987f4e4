"""Sentinel's events, followed as they happen: a role change wakes the group it concerns at once.

A group's pass tells which Sentinels it observed running for which master (``follow``); one
subscriber per Sentinel address (an asyncio task) holds a pub/sub connection to it and, for each
event that names a followed master (``engines.sentinel_events``), wakes that master's owner on the
reconciler's queue, as ``control.exits`` does for a process exit. One Sentinel watching many
groups' masters has still one subscriber, which wakes each group by its master's name.

The connection is made as the probes make theirs: TLS or plain text as the Sentinel last answered
(``Links``), with the installation's Sentinel password. A lost connection (the Sentinel exited, or
restarted on a renewed certificate) is made again with backoff; events sent meanwhile are lost, so
every successful subscription wakes the Sentinel's groups once to look for themselves. What is still
missed (an event between a pass and its subscription, a Sentinel that cannot be reached) is found
by the periodic resync.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from cachefleet.control.actions import ResourceKey
from cachefleet.control.security import Links
from cachefleet.engines import resp, sentinel_events, subscription

log = logging.getLogger(__name__)

Address = tuple[str, int]

FIRST_RETRY = 0.1  # seconds before the first reconnection; doubled up to MAX_RETRY
MAX_RETRY = 5.0
_LOST = (OSError, TimeoutError, resp.ProtocolError, resp.ReplyError)


def retry_delay(attempt: int) -> float:
    """Pure: the wait before reconnection ``attempt`` (1, 2, ...): 0.1 s doubling up to 5 s."""
    return min(FIRST_RETRY * 2.0 ** min(max(0, attempt - 1), 16), MAX_RETRY)


class SentinelWatch:
    def __init__(self, wake: Callable[[ResourceKey], None], links: Links, password: str | None) -> None:
        self._wake = wake
        self._links = links
        self._password = password
        self._followed: dict[ResourceKey, tuple[str, frozenset[Address]]] = {}  # owner -> master, Sentinels
        self._masters: dict[Address, dict[str, ResourceKey]] = {}  # Sentinel -> master name -> owner
        self._subscribers: dict[Address, asyncio.Task[None]] = {}

    def follow(self, owner: ResourceKey, master: str, sentinels: Iterable[Address]) -> None:
        """Wake ``owner`` on events about ``master`` from ``sentinels`` (replacing what it followed
        before; none: it follows nothing any more). From the event loop's thread."""
        wanted = frozenset(sentinels)
        before = self._followed.get(owner)
        if before == (master, wanted):
            return
        if before is not None:
            for address in before[1] - (wanted if before[0] == master else frozenset()):
                self._drop(address, before[0], owner)
        if not wanted:
            self._followed.pop(owner, None)
            return
        self._followed[owner] = (master, wanted)
        for address in wanted:
            self._masters.setdefault(address, {})[master] = owner
            if address not in self._subscribers:
                self._subscribers[address] = asyncio.get_running_loop().create_task(self._subscribe(address))

    def following(self) -> int:
        """How many Sentinels have a subscriber."""
        return len(self._subscribers)

    def _drop(self, address: Address, master: str, owner: ResourceKey) -> None:
        masters = self._masters.get(address, {})
        if masters.get(master) == owner:
            del masters[master]
        if not masters:
            self._masters.pop(address, None)
            task = self._subscribers.pop(address, None)
            if task is not None:
                task.cancel()

    async def close(self) -> None:
        tasks = list(self._subscribers.values())
        self._subscribers.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _subscribe(self, address: Address) -> None:
        attempt = 0
        while True:
            try:
                subscribed = await self._connect(address)
            except _LOST as exc:
                attempt += 1
                log.debug("sentinel %s:%d: no subscription (%s), again in %.1f s", *address, exc, retry_delay(attempt))
                await asyncio.sleep(retry_delay(attempt))
                continue
            attempt = 0
            try:
                # Whatever happened before (or while disconnected) was not heard: look once.
                self._wake_all(address)
                await self._listen(address, subscribed)
            except _LOST as exc:
                log.debug("sentinel %s:%d: subscription lost (%s)", *address, exc)
            finally:
                await subscribed.close()
            attempt += 1
            await asyncio.sleep(retry_delay(attempt))

    async def _connect(self, address: Address) -> subscription.Subscription:
        host, port = address
        password = self._password

        return await self._links.reach(
            host,
            port,
            lambda tls: subscription.subscribe(
                host,
                port,
                channels=sentinel_events.CHANNELS,
                patterns=sentinel_events.PATTERNS,
                password=password,
                tls=tls,
            ),
        )

    async def _listen(self, address: Address, subscribed: subscription.Subscription) -> None:
        async for reply in subscribed.replies():
            message = sentinel_events.push(reply)
            if message is None:
                continue
            event = sentinel_events.parse(*message)
            owner = self._masters.get(address, {}).get(event.master or "")
            if owner is not None:
                log.debug("sentinel %s:%d: %s %s", *address, *message)
                self._wake(owner)
            elif event.master is None:
                log.debug("sentinel %s:%d: %s %r concerns no master", *address, *message)

    def _wake_all(self, address: Address) -> None:
        for owner in list(self._masters.get(address, {}).values()):
            self._wake(owner)
