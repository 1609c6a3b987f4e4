"""LocalHost's node file transfers: whole files in and out, with their digest, never a reserved name."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from cachefleet.hosts.local import LocalHost
from cachefleet.model.nodes import node_key

KEY = node_key("orders-001", "0001")


def test_files_go_in_and_out_with_their_digest(tmp_path: Path) -> None:
    host = LocalHost(tmp_path / "nodes", (31000, 31010))
    source = tmp_path / "in.rdb"
    source.write_bytes(b"REDIS0011" + bytes(range(256)) * 5000)
    digest = host.put_file(KEY, "dump.rdb", source)
    assert digest.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert digest.size == source.stat().st_size
    landed = host.node_dir(KEY) / "dump.rdb"
    assert landed.stat().st_mode & 0o777 == 0o600
    assert host.fetch_file(KEY, "dump.rdb", tmp_path / "out.rdb") == digest
    assert (tmp_path / "out.rdb").read_bytes() == source.read_bytes()
    assert sorted(p.name for p in host.node_dir(KEY).iterdir()) == ["dump.rdb"]


def test_reserved_and_missing_names(tmp_path: Path) -> None:
    host = LocalHost(tmp_path / "nodes", (31000, 31010))
    source = tmp_path / "x"
    source.write_text("1\n")
    for name in ("pid", "port", "port-reader", "node.log", "../x", ".hidden"):
        with pytest.raises(ValueError, match=r"kept by the host|invalid node file name"):
            host.put_file(KEY, name, source)
    with pytest.raises(FileNotFoundError):
        host.fetch_file(KEY, "dump.rdb", tmp_path / "out")
    assert not (tmp_path / "out").exists()
