"""The control plane's own identity on the engines: an internal ACL user, never an application's."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Credentials:
    """The internal ACL user that the control plane, Sentinel and HAProxy's checks log in as.

    Its password lives in the state database and in the 0600 config files of the nodes.
    """

    user: str
    password: str

    def __repr__(self) -> str:
        return f"Credentials(user={self.user!r}, password=<hidden>)"
