"""Keeping running processes on their group's access control and TLS: a planner step of its own. Pure.

Whatever starts a process renders it with the group's users and TLS (``control.security``), so a
replacement, a reboot, a restore or a replica added later has them before its first client. This
step converges the processes that already run when something changes under them:

- users (a token rotated, a user group changed, a user's password or access string modified): a
  node whose ACL marker differs gets the users live (``SyncAcl``), connections kept;
- TLS mode (off, ``preferred``, ``required``): a node whose ports are not those of the mode moves
  live (``SetTransport``), a plain-text port allocated first for ``preferred``; Sentinels that run
  with another TLS setting are restarted on a fresh config (``RestartSentinel``);
- certificates: a node's leaf that names other addresses or has a third of its life left is
  replaced live (``RenewCertificate``); a Sentinel's, by restarting it, one Sentinel at a time.

``in_sync`` says every node is known to run the wanted users and TLS mode: the reconciler then
records the security version it carried out, which ends Describe's pending values.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from cachefleet.control.actions import (
    Action,
    Address,
    AllocatePort,
    RenewCertificate,
    RestartSentinel,
    SetTransport,
    SyncAcl,
)
from cachefleet.control.observe import NodeObservation, SentinelObservation
from cachefleet.control.security import PLAIN_SLOT, CertificateInfo, identity
from cachefleet.engines import acl
from cachefleet.model.nodes import NodeKey, Placement
from cachefleet.model.transit import TransitMode
from cachefleet.tls.certs import Role


@dataclass(frozen=True)
class Wanted:
    """What every process of a group (or standalone cluster) must run."""

    users: tuple[acl.AclUser, ...] = field(repr=False)
    mode: TransitMode | None
    # The group's endpoint address: a node's certificate names it beside the node's own address
    # (clients check the address they dialled; the endpoint passes TLS through).
    endpoint: str

    @property
    def marker(self) -> str:
        return acl.marker(self.users)

    @property
    def fingerprint(self) -> str:
        return acl.fingerprint(self.users)


@dataclass(frozen=True)
class Step:
    actions: tuple[Action, ...] = ()
    in_sync: bool = True  # every node runs the wanted users and TLS mode
    transport: bool = True  # every node listens as the wanted TLS mode has it (Sentinels may follow)


def nodes(
    observed: Mapping[NodeKey, NodeObservation], placed: Mapping[NodeKey, Placement], wanted: Wanted, now: dt.datetime
) -> Step:
    """What the running Redis nodes need, each where ``placed`` says it runs; a node that is down or
    loading waits (it starts, or has started, on a config rendered with what is wanted now)."""
    actions: list[Action] = []
    in_sync = transport = True
    for key, obs in observed.items():
        node_actions, synced = _node(key, placed[key], obs, wanted, now)
        actions += node_actions
        in_sync = in_sync and synced
        transport = transport and not any(isinstance(a, SetTransport | AllocatePort) for a in node_actions)
    return Step(tuple(actions), in_sync, transport)


def _node(
    key: NodeKey, at: Placement, obs: NodeObservation, wanted: Wanted, now: dt.datetime
) -> tuple[list[Action], bool]:
    if wanted.mode is TransitMode.PREFERRED and obs.plain_port is None:
        # Before anything else: a node of a preferred group starts only once it has both ports.
        return [AllocatePort(key, at, PLAIN_SLOT)], False
    info = obs.redis
    if obs.port is None or obs.pid is None or info is None or info.loading:
        return [], False
    actions: list[Action] = []
    transport_ok = True
    if info.config is not None and "port" in info.config:
        transport_ok = _transport(info.config, obs.port, obs.plain_port, wanted.mode)
        if not transport_ok:
            current = tuple((name, info.config.get(name, "0")) for name in ("port", "tls-port"))
            actions.append(SetTransport(key, at, current))
    users_ok = True
    if info.acl_users is not None:
        users_ok = acl.marker_of(info.acl_users) == wanted.marker
        if not users_ok:
            actions.append(SyncAcl(key, at, wanted.users, info.acl_users))
    if wanted.mode is not None and transport_ok:
        who = identity(key, at.address, Role.NODE, endpoints=(wanted.endpoint,))
        if obs.certificate is None or not obs.certificate.tls or obs.certificate.due(who, now):
            actions.append(RenewCertificate(key, at))
    return actions, transport_ok and users_ok


def _transport(config: Mapping[str, str], port: int, plain_port: int | None, mode: TransitMode | None) -> bool:
    """Whether the node listens as ``mode`` wants: its main port plain (no TLS), or TLS beside a
    plain-text port (``preferred``) or alone (``required``)."""
    if mode is None:
        wanted = (port, 0)
    elif mode is TransitMode.PREFERRED:
        wanted = (plain_port or 0, port)
    else:
        wanted = (0, port)
    return (_int(config.get("port")), _int(config.get("tls-port"))) == wanted


def _int(value: str | None) -> int:
    try:
        return int(value) if value is not None else -1
    except ValueError:
        return -1


def sentinels(
    observed: Mapping[NodeKey, SentinelObservation],
    placed: Mapping[NodeKey, Placement],
    wanted: Wanted,
    group_id: str,
    primary: Address | None,
    *,
    nodes_moved: bool,
    healthy: bool,
    now: dt.datetime,
) -> tuple[Action, ...]:
    """Sentinels that run with another TLS setting are restarted together (a mixed set cannot talk to
    each other anyway), once every node listens as the mode has it (``nodes_moved``: a Sentinel
    with TLS cannot reach a plain-text node, and would take it for down); a due certificate restarts
    one Sentinel at a time, only while all of them watch the group (``healthy``), so that failover
    keeps its majority; an expired one is restarted at once."""
    if primary is None or not nodes_moved:
        return ()
    running = {k: s for k, s in observed.items() if s.pid is not None and s.port is not None}
    tls = wanted.mode is not None
    # A Sentinel started before this file existed ran without TLS.
    mismatched = [k for k, s in running.items() if (s.certificate.tls if s.certificate else False) != tls]
    if mismatched:
        return tuple(RestartSentinel(k, placed[k], group_id, primary) for k in mismatched)
    if not tls:
        return ()
    # An expired leaf is restarted at once, health or not: its peers and the control plane already
    # refuse it, so it counts for no majority, and waiting for "healthy" would wait forever (the
    # group is never healthy while a Sentinel cannot be reached). A renewal that took longer than the
    # third of a leaf's life left led there under load.
    expired = [k for k, s in running.items() if s.certificate is not None and s.certificate.expired(now)]
    if expired:
        return tuple(RestartSentinel(k, placed[k], group_id, primary) for k in expired)
    if not healthy:
        return ()
    for key, sentinel in running.items():
        info = sentinel.certificate
        if info is None or info.due(identity(key, placed[key].address, Role.SENTINEL), now):
            return (RestartSentinel(key, placed[key], group_id, primary),)
    return ()


# A leaf already due but not yet renewed (its renewal waits for the group's health) is looked at
# again this often, as every resource was before the resync slowed down.
DUE_REVISIT_S = 1.0


def next_renewal(certificates: Iterable[CertificateInfo | None], now: dt.datetime) -> float | None:
    """Seconds until the first of these leaves comes due for renewal or expires, for the reconciler
    to look again then (``Plan.revisit``); None when none of them will."""
    moments = [
        moment
        for info in certificates
        if info is not None and info.tls
        for moment in (info.renew_at, info.expires_at)
        if moment is not None
    ]
    if not moments:
        return None
    first = min(moments)
    return DUE_REVISIT_S if first <= now else (first - now).total_seconds()
