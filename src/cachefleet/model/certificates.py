"""The installation's CA as the reconciler uses it: a seam, so the control plane does not depend on
how certificates are made (the ``tls`` module makes them; tests pass a throwaway CA)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol


class Certificates(Protocol):
    @property
    def ca_file(self) -> Path:
        """The CA certificate clients trust (``DIR/ca.pem``)."""
        ...

    def leaf(self, names: Sequence[str]) -> tuple[str, str]:
        """A server certificate (chain PEM) and its key (PEM) naming ``names``."""
        ...
