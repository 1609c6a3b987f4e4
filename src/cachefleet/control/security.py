"""The control plane's side of cache security: its own secrets, how it reaches processes that may speak
TLS, what each process is rendered with, and which ACL users each group's nodes must run.

The executor calls the small functions here when it renders a node, a Sentinel or an endpoint, so
that whatever starts a process (a new group, a replacement, a reboot, a restore, a failover's
aftermath) starts it with the group's users and TLS; ``planners.security`` keeps running processes
converged on them (docs/security.md).

- ``Keys``: the installation's internal secrets (the replication, Sentinel and health-check users,
  the Sentinels' password), its CA, and how long leaves live. The secrets are the product's own,
  kept in the store; nothing here ever holds a customer's token or password, only their hashes.
- ``Links``: how each process answers now (TLS or plain text), learnt from the last exchange that
  worked: a node's transport changes live when its group moves between TLS modes.
- Certificates: a leaf PEM (``TLS_FILE``, 0600, key and certificate) beside each TLS process, and a
  small non-secret ``TLS_INFO`` saying when it is due for renewal and what it names, which the
  observer reads on every pass without touching the key.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from cachefleet.engines import acl, resp
from cachefleet.engines.redis import NodeTls
from cachefleet.engines.resp import ClientTls
from cachefleet.model import iam_token
from cachefleet.model.acl import password_hash
from cachefleet.model.auth_token import TokenState
from cachefleet.model.nodes import NodeKey
from cachefleet.model.security import Security
from cachefleet.model.specs import CacheClusterSpec
from cachefleet.model.transit import TransitMode
from cachefleet.model.users import DEFAULT_USER, DEFAULT_USER_ID, AuthenticationType, User
from cachefleet.store.kinds import GROUPS, USER_GROUPS, USERS
from cachefleet.store.sqlite import Store
from cachefleet.tls import certs

TLS_FILE = "tls.pem"  # a TLS process's key and certificate (one PEM, so one rename replaces both)
TLS_INFO = "tls.json"  # beside it: whether the process runs with TLS, what the leaf names, when to renew
IAM_USERS_KEY = "iam_users_key"  # the store's name for the secret IAM users' ACL passwords derive from
PLAIN_SLOT = "plain"  # a node's plain-text port in TLS ``preferred`` mode (its main port is then TLS)
CA_FILE = "ca.pem"  # the installation's CA beside a TLS process on a host other than the control plane's

Address = tuple[str, int]
T = TypeVar("T")


@dataclass(frozen=True)
class Keys:
    """The installation's security material, built once (``wiring``) and shared by observer and executor."""

    internal: acl.InternalUsers
    sentinel_password: str  # every Sentinel's requirepass (and what peers send each other)
    ca_file: Path
    authority: certs.Authority
    leaf_validity: dt.timedelta

    @property
    def client_tls(self) -> ClientTls:
        """How the control plane verifies a TLS node or Sentinel (no client certificate: they ask none)."""
        return ClientTls(ca_file=self.ca_file)

    def __repr__(self) -> str:
        return f"Keys(ca_file={self.ca_file!r}, secrets=<hidden>)"


# -- certificates --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CertificateInfo:
    """What ``TLS_INFO`` says of a process: whether it was started with TLS and, if so, what its leaf
    names (``certs.Identity.alternative_names``), from when it is due for renewal and when it expires."""

    tls: bool
    names: tuple[str, ...] = ()
    renew_at: dt.datetime | None = None
    expires_at: dt.datetime | None = None  # None in files written before it was recorded

    def to_text(self) -> str:
        return json.dumps(
            {
                "tls": self.tls,
                "names": list(self.names),
                "renew_at": self.renew_at.isoformat() if self.renew_at else None,
                "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            }
        )

    @classmethod
    def from_text(cls, text: str | None) -> CertificateInfo | None:
        """None for a missing or unreadable file (a process started before this file existed)."""
        if text is None:
            return None
        try:
            data = json.loads(text)
            renew, expires = data.get("renew_at"), data.get("expires_at")
            return cls(
                bool(data["tls"]),
                tuple(data.get("names", ())),
                dt.datetime.fromisoformat(renew) if renew else None,
                dt.datetime.fromisoformat(expires) if expires else None,
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    def due(self, identity: certs.Identity, now: dt.datetime) -> bool:
        """The leaf must be replaced: it names other addresses, or a third of its life is left."""
        if self.renew_at is None:
            return True
        return frozenset(self.names) != identity.alternative_names() or now >= self.renew_at

    def expired(self, now: dt.datetime) -> bool:
        """Past the leaf's end: peers and the control plane refuse it (unknown for an old file)."""
        return self.expires_at is not None and now >= self.expires_at


PLAIN = CertificateInfo(tls=False)


def identity(key: NodeKey, address: str, role: certs.Role, *, endpoints: Iterable[str] = ()) -> certs.Identity:
    """Who a process's leaf names: its own address and that of every endpoint passing TLS through to it
    (clients check the address they connected to). An IP address is an IP SAN, a name a DNS SAN."""
    return certs.Identity.naming(f"{key.cluster_id}/{key.node_id}"[:64], role, [address, *endpoints])


def leaf_files(keys: Keys, who: certs.Identity, now: dt.datetime) -> dict[str, str]:
    """A new leaf for ``who`` and its info file, as node files (the host writes them 0600)."""
    pem = certs.issue(keys.authority, who, now, keys.leaf_validity)
    issued = certs.certificate_of(pem)
    start, end = issued.not_valid_before_utc, issued.not_valid_after_utc
    renew_at = end - (end - start) * certs.RENEW_FRACTION
    info = CertificateInfo(True, tuple(sorted(who.alternative_names())), renew_at, end)
    return {TLS_FILE: pem.decode(), TLS_INFO: info.to_text()}


def current_or_new_leaf(keys: Keys, who: certs.Identity, info_text: str | None, now: dt.datetime) -> dict[str, str]:
    """The leaf files to write when a TLS process starts: none when its leaf is still good (the file
    stays), else a new leaf."""
    info = CertificateInfo.from_text(info_text)
    if info is not None and info.tls and not info.due(who, now):
        return {}
    return leaf_files(keys, who, now)


def node_tls(security: Security, port: int, node_dir: Path, keys: Keys, ca_file: Path | None = None) -> NodeTls | None:
    """A node's TLS directives: on its main port, which is then its only port (``required``) or
    one of two (``preferred``, the plain one in ``PLAIN_SLOT``). ``ca_file``: where the node's host
    keeps the CA (the control plane's own file by default)."""
    mode = security.transit.mode
    if mode is None:
        return None
    return NodeTls(port=port, mode=mode, cert_file=node_dir / TLS_FILE, ca_file=ca_file or keys.ca_file)


def plain_port_needed(security: Security) -> bool:
    return security.transit.mode is TransitMode.PREFERRED


# -- which users a node runs ---------------------------------------------------------------------


def security_of(store: Store, cluster: CacheClusterSpec) -> Security:
    """A node's security: its group's for a member, its own for a standalone cluster."""
    if cluster.replication_group_id:
        group = GROUPS.find(store, cluster.replication_group_id)
        if group is not None:
            return group.spec.security
    return cluster.security


def wanted_users(store: Store, security: Security) -> tuple[acl.AclUser, ...]:
    """The application ACL users every node of a group runs: the user group's users under RBAC
    (a user being deleted has left the group's spec already), else ``default`` with the tokens."""
    if not security.user_group_ids:
        return tuple(acl.application_users(security.tokens, None))
    members: list[User] = []
    for group_id in security.user_group_ids:
        group = USER_GROUPS.find(store, group_id)
        if group is None:
            continue
        for user_id in group.spec.user_ids:
            if user_id == DEFAULT_USER_ID:
                members.append(DEFAULT_USER)
            elif (user := USERS.find(store, user_id)) is not None:
                members.append(_with_iam_password(store, user.spec))
    if not any(m.user_name == "default" for m in members):
        # A user group always has a default user; should the store ever lack it, lock clients out
        # rather than let them in as an unrestricted default.
        locked = acl.AclUser("default", False, (), True, acl.DEFAULT_RULES)
        return (locked, *(acl.rbac_user(m) for m in members))
    return tuple(acl.application_users(TokenState(), members))


def iam_users_key(store: Store) -> str:
    """The installation secret the ACL passwords of IAM users derive from (``model.iam_token``): the
    product's own, made once; only the IAM endpoint (``api/redis_iam.py``) logs in with them."""
    return store.secret(IAM_USERS_KEY, lambda: secrets.token_hex(32))


def _with_iam_password(store: Store, user: User) -> User:
    """An IAM user as the nodes run it: a password user whose one password only the IAM endpoint knows."""
    if user.authentication is not AuthenticationType.IAM:
        return user
    derived = iam_token.upstream_password(iam_users_key(store), user.user_id)
    return replace(user, authentication=AuthenticationType.PASSWORD, password_hashes=(password_hash(derived),))


def groups_using(store: Store, user_group_id: str) -> list[str]:
    """The replication groups (and standalone clusters) whose spec names this user group."""
    return sorted(g.spec.id for g in GROUPS.all(store) if user_group_id in g.spec.security.user_group_ids)


# -- reaching processes ----------------------------------------------------------------------------

# A plain-text client on a TLS port is reset at once; a TLS client on a plain-text port waits for a
# handshake that never comes. These mean "the other transport, perhaps".
_TRANSPORT_ERRORS = (OSError, TimeoutError, resp.ProtocolError, ssl.SSLError)


class Links:
    """How the control plane reaches each Redis node and Sentinel: TLS or plain text, per address.

    What worked last is tried first. Unknown, plain text comes first (a wrong guess then fails in a
    millisecond rather than after a timeout). The executor records a change it makes itself (a live
    move between TLS modes, a Sentinel restarted with TLS) so that the next exchange is right at once.
    """

    def __init__(self, tls: ClientTls) -> None:
        self._tls = tls
        self._known: dict[Address, bool] = {}

    def tls_for(self, address: str, port: int) -> ClientTls | None:
        """The transport to use now: the one that last worked, else plain text."""
        return self._tls if self._known.get((address, port), False) else None

    def record(self, address: str, port: int, *, tls: bool) -> None:
        self._known[(address, port)] = tls

    def forget(self, address: str, port: int) -> None:
        self._known.pop((address, port), None)

    def options(self, address: str, port: int) -> Sequence[ClientTls | None]:
        known = self._known.get((address, port))
        if known is None:
            return (None, self._tls)
        return (self._tls, None) if known else (None, self._tls)

    async def reach(self, address: str, port: int, attempt: Callable[[ClientTls | None], Awaitable[T]]) -> T:
        """``attempt`` over each transport in turn until one connects; raises the last failure."""
        failure: BaseException | None = None
        for option in self.options(address, port):
            try:
                result = await attempt(option)
            except ConnectionRefusedError:
                # Nothing listens, whatever the transport. Trying the other one would race a process
                # that is just starting: a TLS hello sent to a plain-text port gets no answer (Redis
                # waits for the end of an inline command) until the whole timeout has passed.
                raise
            except _TRANSPORT_ERRORS as exc:
                failure = exc
                if option is None and isinstance(exc, TimeoutError):
                    # Plain text to a TLS port is reset at once: a plain attempt that timed out met a
                    # host that is not there (cut off, or its link down), and TLS would only wait again.
                    break
                continue
            self.record(address, port, tls=option is not None)
            return result
        assert failure is not None
        raise failure
