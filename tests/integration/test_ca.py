"""The server makes the installation's CA at its first start, and ``cachefleet ca`` prints it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest
from cryptography import x509
from tests.support.server import ServerProcess

pytestmark = pytest.mark.integration


def test_the_server_makes_one_ca_and_the_cli_prints_it(server: ServerProcess) -> None:
    ca = server.data_dir / "ca.pem"
    key = server.data_dir / "tls" / "ca.key"
    assert stat.S_IMODE(os.stat(ca).st_mode) == 0o644
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(key.parent).st_mode) == 0o700
    first = ca.read_bytes()
    certificate = x509.load_pem_x509_certificate(first)
    assert certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    done = subprocess.run(
        [sys.executable, "-m", "cachefleet", "ca", "--data-dir", str(server.data_dir)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.encode() == first
    # A restart keeps the same CA: certificates issued before stay valid.
    server.stop()
    server.start()
    assert ca.read_bytes() == first
