"""Rendering and reading back the host's DNAT table (pure; the kernel side is in
tests/integration/test_endpoints_netns.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cachefleet.endpoints import conntrack
from cachefleet.endpoints.base import Address, DataPathError, tool
from cachefleet.endpoints.dnat import chain_name, parse_programmed, render_ensure, render_remove, render_set

EP = Address("10.0.0.1", 6379)

# `nft -j list table ip cachefleet` after set_targets of 6379 (one target), 6380 (two) and 6381,
# whose chain then got a rule by hand (nftables 1.0.6 on this machine).
LISTING = (Path(__file__).parent.parent / "support" / "data" / "nft-listing.json").read_text()


def test_every_command_names_only_our_table() -> None:
    batches = [render_ensure(), render_set(EP, [Address("10.0.0.2", 7000)]), render_remove(EP)]
    for line in "".join(batches).splitlines():
        assert " ip cachefleet " in f"{line} ", line


def test_one_target_and_a_spread() -> None:
    one = render_set(EP, [Address("10.0.0.2", 7000)])
    assert "add rule ip cachefleet ep_10_0_0_1_6379 meta l4proto tcp dnat ip to 10.0.0.2:7000" in one
    assert "add element ip cachefleet endpoints { 10.0.0.1 . 6379 : goto ep_10_0_0_1_6379 }" in one
    spread = render_set(EP, [Address("10.0.0.3", 7000), Address("10.0.0.2", 7000), Address("10.0.0.3", 7000)])
    assert "numgen inc mod 2 map { 0 : 10.0.0.2 . 7000, 1 : 10.0.0.3 . 7000 }" in spread  # sorted, no repeats


def test_set_and_remove_are_blind_idempotent_batches() -> None:
    """Every object a batch deletes it first adds, and a chain's rule is written after a flush, so a
    batch applies whatever the table holds now."""
    for batch in (render_set(EP, [Address("10.0.0.2", 7000)]), render_remove(EP)):
        lines = batch.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("delete "):
                obj = line.removeprefix("delete ")
                assert any(earlier.startswith("add " + obj.split(" {")[0]) for earlier in lines[:i]), line
            if line.startswith("add rule"):
                assert lines[i - 1].startswith("flush chain"), line


def test_no_target_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one target"):
        render_set(EP, [])


def test_the_hooks_are_rewritten_in_the_same_batch_as_their_flush() -> None:
    lines = render_ensure().splitlines()
    for hook in ("prerouting", "output", "postrouting"):
        flush = lines.index(f"flush chain ip cachefleet {hook}")
        assert any(line.startswith(f"add rule ip cachefleet {hook} ") for line in lines[flush:])


def test_reading_back_what_the_kernel_holds() -> None:
    assert parse_programmed(LISTING) == {
        EP: (Address("10.0.0.2", 7000),),
        Address("10.0.0.1", 6380): (Address("10.0.0.2", 7000), Address("10.0.0.3", 7000)),
        Address("10.0.0.1", 6381): (),  # a rule we did not write: ours, to be written again
    }
    assert parse_programmed('{"nftables": []}') == {}


def test_chain_names_and_addresses() -> None:
    assert chain_name(Address("192.168.10.200", 65535)) == "ep_192_168_10_200_65535"
    assert Address.parse("10.0.0.5:6379") == Address("10.0.0.5", 6379)
    assert str(Address("10.0.0.5", 6379)) == "10.0.0.5:6379"
    for bad in ("10.0.0.5", "host:6379", "10.0.0.5:0", "10.0.0.5:70000", "010.0.0.5:1", "10.0.0.5; flush ruleset:1"):
        with pytest.raises(ValueError, match=r"HOST:PORT|IPv4|TCP port"):
            Address.parse(bad)


def test_conntrack_arguments_and_counts() -> None:
    assert conntrack.argv(EP, Address("10.0.0.2", 7000)) == [
        "conntrack", "-D", "-p", "tcp", "--orig-dst", "10.0.0.1", "--orig-port-dst", "6379",
        "--reply-src", "10.0.0.2", "--reply-port-src", "7000",
    ]  # fmt: skip
    assert conntrack.argv(EP, None)[-2:] == ["--orig-port-dst", "6379"]
    assert conntrack.parse_deleted(1, "conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.\n") == 0
    assert conntrack.parse_deleted(0, "conntrack v1.4.7 (conntrack-tools): 12 flow entries have been deleted.\n") == 12
    with pytest.raises(conntrack.ConntrackError, match="exited 1"):
        conntrack.parse_deleted(1, "conntrack v1.4.7 (conntrack-tools): Operation not permitted\n")


def test_tools_are_found_outside_path_or_named_with_their_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert tool("nft") == "/usr/sbin/nft"  # Debian's place, outside a normal user's PATH
    with pytest.raises(DataPathError, match=r"not-installed not found \(Debian package not-installed\)"):
        tool("not-installed")
