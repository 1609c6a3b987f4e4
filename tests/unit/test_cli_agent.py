"""``cachefleet agent``'s command line, refused before anything starts."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from cachefleet.cli.main import main


def test_a_wildcard_listen_needs_the_hosts_address(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["agent", "--data-dir", str(tmp_path), "--listen", "0.0.0.0:7443", "--zone", "a"])
    assert result.exit_code == 64
    assert "give this host's --address" in result.output
    assert not any(tmp_path.iterdir())


def test_listen_and_zone_are_required(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["agent", "--data-dir", str(tmp_path), "--listen", "nonsense"])
    assert result.exit_code == 64
    assert "expected HOST:PORT" in result.output
