"""Settings for every test process."""

from __future__ import annotations

import signal

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # Some tests end the CLI they start with SIGINT (Ctrl-C ends `events --follow` and the demo). A
    # shell without job control starts background commands with SIGINT ignored, and an ignored signal
    # stays ignored across fork and exec: those children would never see it (a suite started with `&`
    # failed two such tests every run). A handler, unlike SIG_IGN, is reset to the default on exec.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
