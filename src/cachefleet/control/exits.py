"""Process exits, noticed the moment they happen: the resource a process serves is woken at once.

One pidfd per process (``os.pidfd_open``), read by the event loop: it becomes readable when the
process exits, also for a process that is not our child (a node adopted after a control-plane
restart), without polling. A pass registers the processes it observed running; a process already
watched costs one dictionary lookup. The periodic resync still looks at everything, for what sends
no signal (a Sentinel failover without a process exit, a certificate coming due).

A pidfd names one process for its whole life, so a recycled PID is never mistaken for it; the PID
passed in must be the resource's own (the host checks it against the process's command line).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable

from cachefleet.control.actions import ResourceKey

log = logging.getLogger(__name__)


class ExitWatch:
    def __init__(self, wake: Callable[[ResourceKey], None]) -> None:
        self._wake = wake
        # pid -> (pidfd, the resources it serves: a shared Sentinel serves every group it watches)
        self._watched: dict[int, tuple[int, set[ResourceKey]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def watch(self, owner: ResourceKey, pids: Iterable[int]) -> None:
        """Wake ``owner`` when any of ``pids`` exits (with every other owner that watches it); from the
        event loop's thread."""
        for pid in pids:
            known = self._watched.get(pid)
            if known is not None:
                known[1].add(owner)
                continue
            try:
                fd = os.pidfd_open(pid)
            except ProcessLookupError:
                self._wake(owner)  # gone already: the pass that saw it running is out of date
                continue
            except OSError as exc:  # no pidfd here (an old kernel): the resync still heals
                log.debug("no pidfd for %d: %s", pid, exc)
                continue
            self._loop = self._loop or asyncio.get_running_loop()
            self._watched[pid] = (fd, {owner})
            self._loop.add_reader(fd, self._exited, pid)

    def watching(self) -> int:
        return len(self._watched)

    def _exited(self, pid: int) -> None:
        fd, owners = self._watched.pop(pid)
        self._release(fd)
        for owner in owners:
            self._wake(owner)

    def close(self) -> None:
        for fd, _ in self._watched.values():
            self._release(fd)
        self._watched.clear()

    def _release(self, fd: int) -> None:
        if self._loop is not None:
            self._loop.remove_reader(fd)
        os.close(fd)
