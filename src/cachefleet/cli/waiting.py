"""Waiting for a resource to reach a status, like ``aws elasticache wait``, while showing progress.

The API answers at once (``creating``, ``deleting``) and the reconciler does the work later, so a
CLI that should feel synchronous polls Describe until the status it wants, or until the resource is
gone (``None``) when deleting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager

from botocore.exceptions import ClientError
from rich.console import Console

from cachefleet.cli.errors import WaitFailed, WaitTimedOut

Poll = Callable[[], str | None]
Show = Callable[[str | None], None]


def until_gone(read: Callable[[], str], not_found: str) -> Poll:
    """A poll from ``read`` (a Describe call returning the status) that says ``None`` once the API
    answers with the ``not_found`` error code, as it does when a deletion has finished."""

    def poll() -> str | None:
        try:
            return read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == not_found:
                return None
            raise

    return poll


def wait_for(
    poll: Poll,
    *,
    label: str,
    target: str | None,
    failed: Collection[str] = (),
    timeout: float,
    interval: float,
    show: Show,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Poll until ``target``; ``None`` as target means "until it no longer exists"."""
    deadline = clock() + timeout
    while True:
        status = poll()
        show(status)
        if status == target:
            return
        if status is None:
            raise WaitFailed(f"{label} disappeared while waiting for it to be {target}")
        if status in failed:
            raise WaitFailed(f"{label} is {status}")
        if clock() >= deadline:
            wanted = "deleted" if target is None else target
            raise WaitTimedOut(f"{label} is still {status} after {timeout:g} s (waiting for {wanted})")
        sleep(interval)


def wait_showing(
    poll: Poll,
    *,
    label: str,
    target: str | None,
    failed: Collection[str] = (),
    timeout: float,
    interval: float,
    quiet: bool = False,
) -> None:
    """``wait_for`` with its progress on stderr, so stdout keeps only the result."""
    console = Console(stderr=True, highlight=False)
    with progress(console, label, quiet=quiet) as show:
        wait_for(poll, label=label, target=target, failed=failed, timeout=timeout, interval=interval, show=show)


@contextmanager
def progress(console: Console, label: str, *, quiet: bool = False) -> Iterator[Show]:
    """A spinner on a terminal; elsewhere (logs, CI) one line per status change, unless quiet."""

    def describe(status: str | None) -> str:
        return f"{label}: {status or 'deleted'}"

    if console.is_terminal:
        with console.status(describe("...")) as spinner:
            yield lambda status: spinner.update(describe(status))
        return

    shown = False
    previous: str | None = None

    def show(status: str | None) -> None:
        nonlocal shown, previous
        if quiet or (shown and status == previous):
            return
        console.print(describe(status), markup=False)
        shown, previous = True, status

    yield show
