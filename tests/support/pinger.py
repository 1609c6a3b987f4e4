"""A background PING over held connections: what a test shows "their connections untouched" with."""

from __future__ import annotations

import threading
import time

import redis
from redis.exceptions import RedisError


class Pinger:
    """PINGs every held connection in turn until finished, counting successes and failures."""

    def __init__(self, connections: list[redis.Redis], interval: float = 0.005) -> None:
        self.connections = connections
        self.interval = interval
        self.ok = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for index, connection in enumerate(self.connections):
                try:
                    connection.ping()
                    self.ok += 1
                except RedisError as exc:
                    self.errors.append(f"connection {index}: {exc!r} at {time.monotonic():.3f}")
            time.sleep(self.interval)

    def finish(self) -> None:
        self._stop.set()
        self._thread.join(10)
