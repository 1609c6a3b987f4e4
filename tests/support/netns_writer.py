"""A bounded writer for outage measurements, run as its own process (inside a client namespace).

    python netns_writer.py HOST PORT SECONDS

Every ``--interval`` it sends ``SET w:<i> <i>`` and ``GET who`` in one pipeline (one round trip) on
one redis-py connection with no retries and 0.3 s timeouts, and records when each write started and
ended (CLOCK_MONOTONIC, which the test process shares), whether it was acknowledged, and which server
(``who``) answered or which error it got. After an error the next write reconnects. It prints
``writing`` once the first write is acknowledged, and at the end (or on SIGTERM) one JSON object:
``{"ops": [[start, end, ok, who_or_error], ...]}``.

It imports nothing of cachefleet (it runs with the venv's interpreter, from a file path).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from types import FrameType

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


class _Stop(Exception):
    pass


def _stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("seconds", type=float)
    parser.add_argument("--interval", type=float, default=0.005)
    parser.add_argument("--timeout", type=float, default=0.3)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _stop)
    client = redis.Redis(
        host=args.host,
        port=args.port,
        socket_timeout=args.timeout,
        socket_connect_timeout=args.timeout,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )
    ops: list[tuple[float, float, bool, str]] = []
    deadline = time.monotonic() + args.seconds
    i = 0
    try:
        while time.monotonic() < deadline:
            i += 1
            start = time.monotonic()
            try:
                pipe = client.pipeline(transaction=False)
                pipe.set(f"w:{i}", i)
                pipe.get("who")
                _, who = pipe.execute()
                ops.append((start, time.monotonic(), True, str(who)))
                if len(ops) == 1:
                    print("writing", flush=True)  # the caller waits for this line
            except (redis.RedisError, OSError) as exc:
                ops.append((start, time.monotonic(), False, f"{type(exc).__name__}: {exc}"))
                client.connection_pool.disconnect()
            time.sleep(args.interval)
    except _Stop:
        pass
    json.dump({"ops": ops}, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
