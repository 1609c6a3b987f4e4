"""``cachefleet ca``: prints the installation's CA certificate, or says where it will come from."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from click.testing import CliRunner
from cryptography import x509

from cachefleet.cli.main import main
from cachefleet.tls import files

NOW = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def test_ca_prints_the_certificate_and_never_the_key(tmp_path: Path) -> None:
    authority = files.ensure_authority(tmp_path, NOW, files.Validity())
    result = CliRunner().invoke(main, ["ca", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert x509.load_pem_x509_certificate(result.output.encode()) == authority.certificate
    assert "PRIVATE KEY" not in result.output


def test_ca_path_and_the_global_data_dir_option(tmp_path: Path) -> None:
    files.ensure_authority(tmp_path, NOW, files.Validity())
    result = CliRunner().invoke(main, ["--data-dir", str(tmp_path), "ca", "--path"])
    assert result.exit_code == 0, result.output
    assert result.output == f"{tmp_path / 'ca.pem'}\n"


def test_ca_without_a_ca_says_who_makes_it(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["ca", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "No CA yet" in result.output
    assert "the server creates it" in result.output
    assert "Traceback" not in result.output
