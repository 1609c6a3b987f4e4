"""Endpoints as kernel DNAT: the host's one nftables table, ``table ip cachefleet``.

An endpoint is an ``(address, port)`` that nothing listens on. A new TCP connection to it is
rewritten to one of its targets (the node(s) behind it) in the ``prerouting`` hook (clients on other
machines) and the ``output`` hook (clients on this machine); the kernel's connection tracking then
keeps every later packet of that connection on the same target. The table:

    map endpoints  { ipv4_addr . inet_service : verdict }    endpoint -> goto its own chain
    set keys       { ipv4_addr . inet_service }              every endpoint, for masquerade
    chain ep_<a>_<b>_<c>_<d>_<port>                          one rule: dnat to the target, or to
                                                             ``numgen inc mod N map {...}`` (spread)
    chain prerouting / output (nat hooks): ip daddr . tcp dport vmap @endpoints
    chain postrouting (nat hook): DNATed to another machine (not lo) -> masquerade

Why a verdict map and a chain per endpoint rather than one ``endpoint : target`` map: every
operation is then a batch of commands that are idempotent whatever is programmed now (``add chain``,
``flush chain``, ``add rule``, ``add element`` with the same verdict), so no operation reads the
table first and two writers (the control plane and Sentinel's reconfig script) cannot act on a stale
read. A map element cannot be replaced blindly: ``add`` of an existing key with other data fails.
Each operation is one nftables transaction (all or nothing; new connections see the old or the new
target, never none). Nothing outside ``table ip cachefleet`` is read or written.

Masquerade: a connection DNATed to a node on another host must come back through this host, so its
source becomes this host's address (kube-proxy does the same); the node then sees the endpoint
host's address as the client's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cachefleet.endpoints.base import Address
from cachefleet.endpoints.nft import Nft, NftError

FAMILY = "ip"
TABLE = "cachefleet"
ENDPOINTS = "endpoints"
KEYS = "keys"
CHAIN_PREFIX = "ep_"
_QUAL = f"{FAMILY} {TABLE}"
# Base chain priorities: dstnat (-100) for DNAT, srcnat (100) for masquerade, as iptables' nat table.
_NAT_CHAINS = (("prerouting", "dstnat"), ("output", "-100"), ("postrouting", "srcnat"))


def chain_name(endpoint: Address) -> str:
    """The endpoint's own chain: ``ep_10_0_0_5_6379``."""
    return CHAIN_PREFIX + endpoint.host.replace(".", "_") + f"_{endpoint.port}"


def _key(endpoint: Address) -> str:
    return f"{endpoint.host} . {endpoint.port}"


def render_ensure() -> str:
    """The table, its map, set and hooked chains, with the hooked chains' rules written anew.

    Endpoint chains and elements are left as they are, so this re-adopts a table that outlived its
    process. Flushing and re-adding the three fixed rules happens in the same transaction: no packet
    ever sees the hooks empty.
    """
    lines = [
        f"add table {_QUAL}",
        f"add map {_QUAL} {ENDPOINTS} {{ type ipv4_addr . inet_service : verdict; }}",
        f"add set {_QUAL} {KEYS} {{ type ipv4_addr . inet_service; }}",
    ]
    for name, priority in _NAT_CHAINS:
        lines.append(f"add chain {_QUAL} {name} {{ type nat hook {name} priority {priority}; policy accept; }}")
        lines.append(f"flush chain {_QUAL} {name}")
    lines += [
        f"add rule {_QUAL} prerouting ip daddr . tcp dport vmap @{ENDPOINTS}",
        f"add rule {_QUAL} output ip daddr . tcp dport vmap @{ENDPOINTS}",
        # `ct original ... proto-dst` needs the protocol named first to have a type.
        f'add rule {_QUAL} postrouting meta l4proto tcp ct status dnat oifname != "lo"'
        f" ct original ip daddr . ct original proto-dst @{KEYS} masquerade",
    ]
    return "\n".join(lines) + "\n"


def _normalise(targets: Sequence[Address]) -> tuple[Address, ...]:
    unique = tuple(sorted(set(targets)))
    if not unique:
        raise ValueError("an endpoint needs at least one target (remove it instead)")
    return unique


def _dnat(targets: tuple[Address, ...]) -> str:
    if len(targets) == 1:
        return f"meta l4proto tcp dnat ip to {targets[0]}"
    spread = ", ".join(f"{i} : {t.host} . {t.port}" for i, t in enumerate(targets))
    return f"meta l4proto tcp dnat ip to numgen inc mod {len(targets)} map {{ {spread} }}"


def render_set(endpoint: Address, targets: Sequence[Address]) -> str:
    """Point ``endpoint`` at ``targets``: new connections go to the one target, or round-robin over
    several (``numgen inc``). Replaces whatever the endpoint had."""
    chain = chain_name(endpoint)
    return (
        "\n".join(
            [
                f"add chain {_QUAL} {chain}",
                f"flush chain {_QUAL} {chain}",
                f"add rule {_QUAL} {chain} {_dnat(_normalise(targets))}",
                f"add element {_QUAL} {ENDPOINTS} {{ {_key(endpoint)} : goto {chain} }}",
                f"add element {_QUAL} {KEYS} {{ {_key(endpoint)} }}",
            ]
        )
        + "\n"
    )


def render_remove(endpoint: Address) -> str:
    """Remove ``endpoint``; a no-op when it is not programmed (each object is added, then deleted)."""
    chain = chain_name(endpoint)
    return (
        "\n".join(
            [
                f"add chain {_QUAL} {chain}",
                f"add element {_QUAL} {ENDPOINTS} {{ {_key(endpoint)} : goto {chain} }}",
                f"add element {_QUAL} {KEYS} {{ {_key(endpoint)} }}",
                f"delete element {_QUAL} {ENDPOINTS} {{ {_key(endpoint)} }}",
                f"delete element {_QUAL} {KEYS} {{ {_key(endpoint)} }}",
                f"flush chain {_QUAL} {chain}",
                f"delete chain {_QUAL} {chain}",
            ]
        )
        + "\n"
    )


def render_drop() -> str:
    """The whole table, gone (a no-op when it does not exist)."""
    return f"add table {_QUAL}\ndelete table {_QUAL}\n"


# -- reading what is programmed ------------------------------------------------------------------


def parse_programmed(listing: str) -> dict[Address, tuple[Address, ...]]:
    """Pure: endpoint -> targets from ``nft -j list table ip cachefleet``.

    An endpoint whose chain holds anything but one rule this module writes maps to ``()``: it is
    ours (it is in the map) but must be written again.
    """
    objects = [obj for obj in json.loads(listing).get("nftables", []) if isinstance(obj, dict)]
    chains: dict[str, tuple[Address, ...]] = {}
    rules_seen: dict[str, int] = {}
    for obj in objects:
        rule = obj.get("rule")
        if not isinstance(rule, dict) or rule.get("table") != TABLE:
            continue
        chain = str(rule.get("chain", ""))
        if chain.startswith(CHAIN_PREFIX):
            rules_seen[chain] = rules_seen.get(chain, 0) + 1
            chains[chain] = _targets_of(rule.get("expr", []))
    programmed: dict[Address, tuple[Address, ...]] = {}
    for obj in objects:
        mapping = obj.get("map")
        if not (isinstance(mapping, dict) and mapping.get("table") == TABLE and mapping.get("name") == ENDPOINTS):
            continue
        for key, verdict in mapping.get("elem", []):
            endpoint = _address(key)
            target = verdict.get("goto", {}).get("target") if isinstance(verdict, dict) else None
            if endpoint is None:
                continue
            if target != chain_name(endpoint) or rules_seen.get(str(target)) != 1:
                programmed[endpoint] = ()
            else:
                programmed[endpoint] = chains[str(target)]
    return programmed


def _address(value: Any) -> Address | None:
    if isinstance(value, dict) and isinstance(value.get("concat"), list) and len(value["concat"]) == 2:
        host, port = value["concat"]
        try:
            return Address(str(host), int(port))
        except ValueError:
            return None
    return None


def _targets_of(expr: list[Any]) -> tuple[Address, ...]:
    statements = [e for e in expr if isinstance(e, dict) and "dnat" in e]
    if len(statements) != 1:
        return ()
    dnat = statements[0]["dnat"]
    addr = dnat.get("addr")
    if isinstance(addr, str) and "port" in dnat:
        try:
            return (Address(addr, int(dnat["port"])),)
        except ValueError:
            return ()
    spread = addr.get("map", {}) if isinstance(addr, dict) else {}
    if "numgen" not in spread.get("key", {}):
        return ()
    found = [_address(value) for _, value in sorted(spread.get("data", {}).get("set", []), key=lambda e: e[0])]
    if not found or any(a is None for a in found):
        return ()
    return tuple(a for a in found if a is not None)


def enable_forwarding(path: Path = Path("/proc/sys/net/ipv4/ip_forward")) -> bool:
    """Let this host forward IPv4 (a DNAT target on another host needs it); returns whether it was
    off. It is a setting of the whole network namespace: call it only where an endpoint has a remote
    target."""
    if path.read_text().strip() == "1":
        return False
    path.write_text("1\n")
    return True


# -- the driver ------------------------------------------------------------------------------------


class DnatTable:
    """Programs ``table ip cachefleet`` in the network namespace ``nft`` acts on (root needed).

    Every method is one transaction and idempotent. The table outlives the process, as nodes do:
    ``programmed()`` reads it back so a restarted control plane or agent re-adopts it.
    """

    def __init__(self, nft: Nft) -> None:
        self.nft = nft

    def ensure(self) -> None:
        self.nft.run(render_ensure())

    def set_targets(self, endpoint: Address, targets: Sequence[Address]) -> None:
        self._apply(render_set(endpoint, targets))

    def remove(self, endpoint: Address) -> None:
        self._apply(render_remove(endpoint))

    def sync(self, desired: Mapping[Address, Sequence[Address]]) -> None:
        """Make the table hold exactly ``desired`` (endpoints not in it are removed), in one
        transaction that also rewrites the hooked chains."""
        current = self.programmed()
        batch = [render_ensure()]
        batch += [render_set(ep, targets) for ep, targets in desired.items() if current.get(ep) != _normalise(targets)]
        batch += [render_remove(ep) for ep in current if ep not in desired]
        self.nft.run("".join(batch))

    def programmed(self) -> dict[Address, tuple[Address, ...]]:
        """Endpoint -> targets as the kernel holds them now; ``{}`` when the table does not exist."""
        try:
            listing = self.nft.run(f"list table {_QUAL}", json=True)
        except NftError as exc:
            if "No such file or directory" in str(exc):
                return {}
            raise
        return parse_programmed(listing)

    def drop(self) -> None:
        """Delete the whole table (uninstall, tests)."""
        self.nft.run(render_drop())

    def _apply(self, batch: str) -> None:
        try:
            self.nft.run(batch)
        except NftError as exc:
            if "No such file or directory" not in str(exc):
                raise
            # The table (or a part of it) is gone, e.g. deleted by hand: build it in the same batch.
            self.nft.run(render_ensure() + batch)
