from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.server import ServerProcess

FAST_WAIT = {"Delay": 1, "MaxAttempts": 60}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "cf")
    try:
        process.start()
        yield process
    finally:
        process.cleanup()


@pytest.fixture
def client(server: ServerProcess) -> Any:
    return server.client()
