"""What every bench script needs: waiting with a deadline, free loopback ports, stopping by PID.

Benches run from the repository root with ``PYTHONPATH=.``, as ``bench/<name>.py``.
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import time
from collections.abc import Callable
from types import FrameType

from cachefleet.engines.installed import MissingBinary, require_binaries

LOOPBACK = "127.0.0.1"


def ratio_summary(
    times: dict[str, list[float]], target: float
) -> dict[str, float | int | bool]:
    """Medians, minima and maxima of two sides' timings (cachefleet first), and the ratio of the
    medians against ``target``: the summary every side-by-side bench prints and emits as JSON."""
    ours, theirs = times.values()
    ratio = statistics.median(ours) / statistics.median(theirs)
    summary: dict[str, float | int | bool] = {"trials": len(ours)}
    for stat in ("median", "min", "max"):
        pick = statistics.median if stat == "median" else min if stat == "min" else max
        for name, values in times.items():
            summary[f"{name}_{stat}_s"] = round(pick(values), 4)
    summary.update({"ratio": round(ratio, 3), "target_ratio": target, "target_met": ratio <= target})
    return summary


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 60.0, interval: float = 0.05) -> None:
    """Poll ``predicate`` every ``interval``; raise, naming ``what``, once ``timeout`` has passed."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def binaries(*names: str) -> dict[str, str]:
    """Absolute paths of ``names`` (PATH, then the system directories); exits naming the Debian packages."""
    try:
        return require_binaries(*names)
    except MissingBinary as exc:
        raise SystemExit(str(exc)) from exc


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


# -- CPU from /proc (ticks of 1/CLK_TCK s, 10 ms here) -------------------------------------------

_TICK = 1.0 / os.sysconf("SC_CLK_TCK")


def machine_busy() -> float:
    """Seconds of CPU the whole machine has spent not idle (nor waiting for I/O) since boot."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    return (sum(values) - values[3] - values[4]) * _TICK


def process_cpu(pid: int) -> float:
    """Seconds of CPU (user + system) the process ``pid`` has spent so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * _TICK
