"""Floating endpoint addresses (VIPs): a /32 on one host's interface, announced by gratuitous ARP.

On a multi-host installation an endpoint's address lives on the host that serves it (the primary's
host for the primary endpoint) and DNATs to the local node. Moving it is two steps: add the /32 on
the new host, then broadcast a gratuitous ARP so that machines which cached the old host's MAC for
the address update it at once. Without the announcement a client measured no recovery in 7 s
(stale ARP entry); with it, a 0.21 s gap (`docs/decisions.md`).

Every address added here carries the label ``<interface>:cf``, and only addresses with that label
are listed or removed: an address someone else configured is never touched. Adding and removing use
the ``ip`` program (about 2 ms each); the announcement is sent from Python on an AF_PACKET socket
(no ``arping``, no wait). All of it needs CAP_NET_ADMIN / CAP_NET_RAW in the host's namespace.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import struct
import subprocess
from dataclasses import dataclass

from cachefleet.endpoints.base import DataPathError, tool

LABEL_SUFFIX = ":cf"
_ETH_P_ARP = 0x0806
_ETH_P_IP = 0x0800
_IFNAMSIZ = 15  # usable characters of an interface name or an address label
_BROADCAST = b"\xff" * 6
_TIMEOUT = 10.0


class VipError(DataPathError):
    """``ip`` refused, or the address is configured on the interface by someone else."""


@dataclass(frozen=True, order=True)
class Vip:
    address: str
    interface: str


def label(interface: str) -> str:
    """The address label that marks a VIP as ours on ``interface``."""
    text = interface + LABEL_SUFFIX
    if not interface or len(text) > _IFNAMSIZ:
        raise VipError(f"interface name {interface!r} leaves no room for the label suffix {LABEL_SUFFIX!r}")
    return text


def _checked(address: str) -> str:
    try:
        return str(ipaddress.IPv4Address(address))
    except ValueError as exc:
        raise VipError(f"not an IPv4 address: {address!r}") from exc


def parse_addresses(ip_json: str) -> list[tuple[Vip, str]]:
    """Pure: every IPv4 address in ``ip -j -4 addr show`` output with its label, the label being
    ``""`` for an address that is not a /32 (a VIP is always one)."""
    found = []
    for link in json.loads(ip_json or "[]"):
        for info in link.get("addr_info", []):
            if info.get("family") == "inet":
                text = str(info.get("label", "")) if info.get("prefixlen") == 32 else ""
                found.append((Vip(str(info["local"]), str(link["ifname"])), text))
    return found


def parse_ours(ip_json: str) -> list[Vip]:
    """Pure: the VIPs this module added (a /32 labelled ``<interface>:cf``), sorted."""
    return sorted(vip for vip, text in parse_addresses(ip_json) if text == vip.interface + LABEL_SUFFIX)


def _ip(*args: str) -> str:
    try:
        binary = tool("ip")
    except DataPathError as exc:
        raise VipError(str(exc)) from exc
    try:
        done = subprocess.run([binary, *args], capture_output=True, text=True, timeout=_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise VipError(f"ip {' '.join(args)}: {exc}") from exc
    if done.returncode != 0:
        raise VipError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def _on(interface: str) -> list[tuple[Vip, str]]:
    return parse_addresses(_ip("-j", "-4", "addr", "show", "dev", interface))


def ours(interface: str | None = None) -> list[Vip]:
    """The VIPs we hold now, on ``interface`` or on every interface."""
    return parse_ours(_ip("-j", "-4", "addr", "show", *(["dev", interface] if interface else [])))


def add(address: str, interface: str) -> bool:
    """Hold ``address``/32 on ``interface``; returns False when it was already ours there.

    Raises ``VipError`` when the address is on the interface without our label (someone else's).
    Announce it afterwards (``announce``): adding alone does not move clients that cached the old MAC.
    """
    address = _checked(address)
    mark = label(interface)
    for vip, text in _on(interface):
        if vip.address == address:
            if text != mark:
                raise VipError(f"{address} is already on {interface} and is not ours (label {text!r})")
            return False
    _ip("-4", "addr", "add", f"{address}/32", "dev", interface, "label", mark)
    return True


def remove(address: str, interface: str) -> bool:
    """Stop holding ``address`` on ``interface``; returns False when we did not hold it (an address
    there without our label is left alone)."""
    address = _checked(address)
    mark = label(interface)
    if not any(vip.address == address and text == mark for vip, text in _on(interface)):
        return False
    _ip("-4", "addr", "del", f"{address}/32", "dev", interface)
    return True


# -- gratuitous ARP ------------------------------------------------------------------------------


def garp_frames(mac: bytes, address: str) -> tuple[bytes, bytes]:
    """Pure: the two broadcast Ethernet frames that announce ``address`` at ``mac``: an ARP request
    (RFC 5227 announcement: target hardware address zero) and an ARP reply, as keepalived and
    ``arping -U`` / ``-A`` send them; receivers differ in which one they honour."""
    if len(mac) != 6:
        raise ValueError(f"a MAC address is 6 bytes, not {len(mac)}")
    ip = socket.inet_aton(_checked(address))
    ether = _BROADCAST + mac + struct.pack("!H", _ETH_P_ARP)
    frames = []
    for operation, target_mac in ((1, b"\x00" * 6), (2, _BROADCAST)):
        arp = struct.pack("!HHBBH", 1, _ETH_P_IP, 6, 4, operation) + mac + ip + target_mac + ip
        frames.append((ether + arp).ljust(60, b"\x00"))  # Ethernet's minimum frame, without the FCS
    return frames[0], frames[1]


def announce(address: str, interface: str, count: int = 1) -> None:
    """Broadcast ``count`` rounds of gratuitous ARP for ``address`` on ``interface``.

    The frames leave within about 50 us. The socket is opened with protocol 0, so it never joins
    the receive path: binding a receiving AF_PACKET socket, and closing any, waits for an RCU grace
    period (8 to 16 ms here). The close still does, after the frames are out.
    """
    try:
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0) as sock:
            sock.bind((interface, 0))
            mac = sock.getsockname()[4]  # the interface's hardware address, in this socket's namespace
            frames = garp_frames(mac, address)
            for _ in range(count):
                for frame in frames:
                    sock.send(frame)
    except OSError as exc:
        raise VipError(f"gratuitous ARP for {address} on {interface}: {exc}") from exc
