"""Failures the CLI itself detects; main prints them as ``Error (code): message`` and exits."""

from __future__ import annotations


class CliError(Exception):
    # None prints the message alone, for failures that are not an API-style error code.
    code: str | None = None
    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AdminRefused(CliError):
    """The admin API (hosts) refused a call: its error code and message, as an API refusal exits."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class ServerNotFound(CliError):
    """No usable server.json or credentials: the server was never started with this data dir."""

    exit_code = 2


class NotReady(CliError):
    """The resource exists but cannot answer the question yet (no endpoint while it is created)."""

    code = "NotReady"


class WaitFailed(CliError):
    code = "WaitFailed"


class WaitTimedOut(CliError):
    """The resource did not reach the status waited for in time; the server goes on working on it."""

    code = "Timeout"
    exit_code = 3
