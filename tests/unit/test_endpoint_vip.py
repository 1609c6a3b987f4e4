"""Floating addresses and fencing, the pure parts: which addresses are ours, the gratuitous ARP
frames, and when a host must let its addresses go (the kernel side is in
tests/integration/test_endpoints_netns.py)."""

from __future__ import annotations

import json
import socket
import struct

import pytest

from cachefleet.endpoints import vip
from cachefleet.endpoints.fencing import Fence

# `ip -j -4 addr show` with 10.9.0.5/32 labelled v0:cf (ours), 10.9.0.6/32 unlabelled and
# 10.9.0.7/24 labelled v0:cf (not a /32, so not a VIP), trimmed (iproute2 6.1 on this machine).
IP_JSON = json.dumps(
    [
        {
            "ifindex": 7,
            "ifname": "v0",
            "addr_info": [
                {"family": "inet", "local": "10.9.0.5", "prefixlen": 32, "label": "v0:cf"},
                {"family": "inet", "local": "10.9.0.6", "prefixlen": 32, "label": "v0"},
                {"family": "inet", "local": "10.9.0.7", "prefixlen": 24, "label": "v0:cf"},
            ],
        },
        {"ifindex": 1, "ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8}]},
    ]
)


def test_only_labelled_slash_32s_are_ours() -> None:
    assert vip.parse_ours(IP_JSON) == [vip.Vip("10.9.0.5", "v0")]
    assert vip.parse_ours("") == []
    # every address is seen (so that adding one held by someone else is refused), unlabelled or not
    assert [v.address for v, _ in vip.parse_addresses(IP_JSON)] == ["10.9.0.5", "10.9.0.6", "10.9.0.7", "127.0.0.1"]


def test_the_label_fits_an_interface_name() -> None:
    assert vip.label("eth0") == "eth0:cf"
    with pytest.raises(vip.VipError, match="no room"):
        vip.label("a-very-long-if")


def test_gratuitous_arp_frames() -> None:
    mac = bytes.fromhex("52e34f5424cf")
    request, reply = vip.garp_frames(mac, "10.231.0.200")
    for frame, operation, target_mac in ((request, 1, b"\0" * 6), (reply, 2, b"\xff" * 6)):
        assert len(frame) == 60
        assert frame[:6] == b"\xff" * 6
        assert frame[6:12] == mac
        assert frame[12:14] == b"\x08\x06"
        assert struct.unpack("!HHBBH", frame[14:22]) == (1, 0x0800, 6, 4, operation)
        sha, spa, tha, tpa = frame[22:28], frame[28:32], frame[32:38], frame[38:42]
        assert (sha, tha) == (mac, target_mac)
        assert spa == tpa == socket.inet_aton("10.231.0.200")  # sender and target IP alike: gratuitous
    with pytest.raises(vip.VipError, match="IPv4"):
        vip.garp_frames(mac, "not-an-address")


def test_fence_holds_while_a_majority_answers_and_for_the_grace_after() -> None:
    fence = Fence(sentinels=3, grace=1.0)
    assert fence.majority == 2
    assert fence.observe(reachable=3, now=0.0)
    assert fence.observe(reachable=2, now=0.5)
    assert fence.observe(reachable=1, now=1.4)  # 0.9 s without a majority: within the grace
    assert not fence.observe(reachable=1, now=1.6)
    assert not fence.observe(reachable=0, now=5.0)
    assert fence.observe(reachable=2, now=6.0)  # back; re-adding a VIP is the follower's call


def test_a_fence_that_never_saw_a_majority_holds_nothing() -> None:
    fence = Fence(sentinels=3, grace=1.0)
    assert not fence.observe(reachable=1, now=0.0)
    assert not fence.may_hold(now=0.0)
    with pytest.raises(ValueError, match="at least one sentinel"):
        Fence(sentinels=0, grace=1.0)
