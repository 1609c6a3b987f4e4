"""What every bench script needs: waiting with a deadline, free loopback ports, stopping by PID.

Benches run from the repository root with ``PYTHONPATH=.``, as ``bench/<name>.py``.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Callable
from types import FrameType

LOOPBACK = "127.0.0.1"


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 60.0, interval: float = 0.05) -> None:
    """Poll ``predicate`` every ``interval``; raise, naming ``what``, once ``timeout`` has passed."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    """A loopback port the kernel says is free now (chosen at run time, never fixed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def stop_process(process: subprocess.Popen[bytes], wait: float = 5.0) -> None:
    """SIGTERM by PID, then SIGKILL; Popen has not reaped it, so the PID is still ours."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(wait)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(wait)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def unwind_on_sigterm() -> None:
    """Turn SIGTERM into the same unwinding as Ctrl-C, so every finally block stops its processes."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
