"""Progress of the demo on stderr: a spinner on a terminal, one line per step elsewhere."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console

__all__ = ["Narrator"]


class Narrator:
    def __init__(self, console: Console | None = None, *, quiet: bool = False) -> None:
        self.console = console if console is not None else Console(stderr=True, highlight=False)
        self.quiet = quiet

    def note(self, text: str, *, style: str | None = None) -> None:
        if not self.quiet:
            self.console.print(text, style=style, markup=False, soft_wrap=True)

    def warn(self, text: str) -> None:
        self.console.print(text, style="yellow", markup=False, soft_wrap=True)

    @contextmanager
    def step(self, label: str) -> Iterator[Callable[[str | None], None]]:
        """Yields `show(detail)`; prints `label ... done in N s` at the end."""
        started = time.monotonic()
        shown: list[str | None] = []

        def line(detail: str | None) -> str:
            return f"{label}: {detail}" if detail else f"{label} ..."

        if self.console.is_terminal and not self.quiet:
            with self.console.status(line(None)) as spinner:
                yield lambda detail: spinner.update(line(detail))
        else:
            self.note(line(None), style="dim")

            def show(detail: str | None) -> None:
                if detail and (not shown or shown[-1] != detail):
                    shown.append(detail)
                    self.note(line(detail), style="dim")

            yield show
        self.note(f"{label}: done in {time.monotonic() - started:.1f} s", style="green")
