"""The control plane's side of security, in memory: the planner step that keeps running processes on
their group's users and TLS, what the executor renders, how processes are reached, and the user
kinds waiting for the nodes (no engine runs; the engine-level and server tests run them)."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import replace
from pathlib import Path

import pytest
from tests.support.fakes import ADDRESS, AZS, CREDENTIALS, KEYS, NOW, Fleet, fake_proxy, master

from cachefleet.control.actions import (
    AllocatePort,
    EndpointInputs,
    RenewCertificate,
    RestartSentinel,
    SetTransport,
    StartEndpoint,
    StartNode,
    StartSentinel,
    SyncAcl,
)
from cachefleet.control.execute import REDIS_CONF, SENTINEL_CONF, Executor, Tools
from cachefleet.control.kinds.users import nodes_have
from cachefleet.control.observe import NodeObservation, SentinelObservation
from cachefleet.control.planners import security as step
from cachefleet.control.security import (
    PLAIN_SLOT,
    TLS_FILE,
    TLS_INFO,
    CertificateInfo,
    Links,
    identity,
    leaf_files,
    wanted_users,
)
from cachefleet.engines import acl, redis
from cachefleet.engines.haproxy import CONFIG_FILE
from cachefleet.engines.installed import EngineBinary
from cachefleet.engines.redis import NodeTls
from cachefleet.engines.resp import ClientTls, ProtocolError
from cachefleet.model.auth_token import TokenState
from cachefleet.model.errors import Retry
from cachefleet.model.hosts import LOCAL_HOST
from cachefleet.model.lifecycle import Event
from cachefleet.model.nodes import PROXY_KEY, Placement, endpoint_key, member_key, node_key, sentinel_keys
from cachefleet.model.security import Security
from cachefleet.model.status import GroupState, UserGroupState
from cachefleet.model.transit import OFF, Transit, TransitMode
from cachefleet.model.users import User, UserGroup
from cachefleet.store import statuses
from cachefleet.store.kinds import GROUPS, USER_GROUPS, USERS
from cachefleet.tls.certs import Role

KEY = node_key("g-001", "0001")
AT = Placement(LOCAL_HOST, ADDRESS, AZS[0])
PREFERRED = Transit(True, TransitMode.PREFERRED)
REQUIRED = Transit(True, TransitMode.REQUIRED)
TOKENS = TokenState(("a" * 64,), open_access=False)
USERS_NOW = tuple(acl.application_users(TOKENS, None))


def _wanted(mode: TransitMode | None = None, users: tuple[acl.AclUser, ...] = USERS_NOW) -> step.Wanted:
    return step.Wanted(users=users, mode=mode, endpoint=ADDRESS)


def _node(
    port: int = 30001,
    *,
    listening: tuple[int, int] | None = None,
    users: tuple[str, ...] | None = None,
    plain: int | None = None,
    certificate: CertificateInfo | None = None,
) -> NodeObservation:
    """A running node; ``listening`` its (port, tls-port) as CONFIG GET says."""
    config = None if listening is None else {"port": str(listening[0]), "tls-port": str(listening[1])}
    observed = replace(master(config=config), acl_users=users)
    return NodeObservation(port, 1234, redis=observed, plain_port=plain, certificate=certificate)


def _good_leaf(key: dt.datetime = NOW) -> CertificateInfo:
    info = CertificateInfo.from_text(leaf_files(KEYS, identity(KEY, ADDRESS, Role.NODE), key)[TLS_INFO])
    assert info is not None
    return info


def test_a_node_with_another_set_of_users_gets_them_live_then_is_in_sync() -> None:
    wanted = _wanted()
    stale = ("default", "cachefleet-admin", acl.marker(acl.application_users(TokenState(), None)))
    taken = step.nodes({KEY: _node(listening=(30001, 0), users=stale)}, {KEY: AT}, wanted, NOW)
    assert taken.actions == (SyncAcl(KEY, AT, USERS_NOW, stale),)
    assert not taken.in_sync
    assert taken.transport  # the ports are right: Sentinels need not wait
    current = ("default", "cachefleet-admin", wanted.marker)
    assert step.nodes({KEY: _node(listening=(30001, 0), users=current)}, {KEY: AT}, wanted, NOW) == step.Step(
        (), True, True
    )


def test_a_node_that_does_not_run_waits_for_its_start() -> None:
    taken = step.nodes({KEY: NodeObservation(30001, None)}, {KEY: AT}, _wanted(), NOW)
    assert (taken.actions, taken.in_sync) == ((), False)


def test_preferred_allocates_a_plain_port_first_even_before_the_node_starts() -> None:
    taken = step.nodes({KEY: NodeObservation(30001, None)}, {KEY: AT}, _wanted(TransitMode.PREFERRED), NOW)
    assert taken.actions == (AllocatePort(KEY, AT, PLAIN_SLOT),)
    assert not taken.transport


@pytest.mark.parametrize(
    ("mode", "listening", "plain", "moves"),
    [
        (None, (30001, 0), None, False),
        (TransitMode.PREFERRED, (30001, 0), 30002, True),  # off -> preferred
        (TransitMode.PREFERRED, (30002, 30001), 30002, False),
        (TransitMode.REQUIRED, (30002, 30001), 30002, True),  # preferred -> required
        (TransitMode.REQUIRED, (0, 30001), None, False),
        (None, (30002, 30001), 30002, True),  # preferred -> off
    ],
)
def test_a_node_listening_as_another_mode_moves_live(
    mode: TransitMode | None, listening: tuple[int, int], plain: int | None, moves: bool
) -> None:
    wanted = _wanted(mode)
    observed = _node(listening=listening, users=(wanted.marker,), plain=plain, certificate=_good_leaf())
    taken = step.nodes({KEY: observed}, {KEY: AT}, wanted, NOW)
    expected = SetTransport(KEY, AT, (("port", str(listening[0])), ("tls-port", str(listening[1]))))
    assert (expected in taken.actions) == moves
    assert taken.transport != moves


def test_a_tls_node_renews_its_certificate_when_a_third_of_its_life_is_left_or_its_names_changed() -> None:
    wanted = _wanted(TransitMode.REQUIRED)
    leaf = _good_leaf()
    assert leaf.renew_at is not None

    def renews(info: CertificateInfo | None, when: dt.datetime) -> bool:
        observed = _node(listening=(0, 30001), users=(wanted.marker,), certificate=info)
        return RenewCertificate(KEY, AT) in step.nodes({KEY: observed}, {KEY: AT}, wanted, when).actions

    assert not renews(leaf, NOW)
    assert not renews(leaf, leaf.renew_at - dt.timedelta(seconds=1))
    assert renews(leaf, leaf.renew_at)
    assert renews(replace(leaf, names=("ip:10.0.0.9",)), NOW)  # clients are given another address now
    assert renews(None, NOW)  # no info file


def test_sentinels_follow_the_nodes_tls_all_at_once_and_renew_one_at_a_time() -> None:
    keys = sentinel_keys("g")
    plain = {k: SentinelObservation(26000 + i, 10 + i, certificate=CertificateInfo(False)) for i, k in enumerate(keys)}
    wanted, primary = _wanted(TransitMode.REQUIRED), (ADDRESS, 30001)

    def restarts(observed: dict[object, SentinelObservation], **flags: bool) -> tuple[object, ...]:
        return step.sentinels(observed, {k: AT for k in observed}, wanted, "g", primary, now=NOW, **flags)  # type: ignore[arg-type]

    assert restarts(plain, nodes_moved=False, healthy=True) == ()  # nodes first
    assert restarts(plain, nodes_moved=True, healthy=False) == tuple(RestartSentinel(k, AT, "g", primary) for k in keys)
    leaf = replace(_good_leaf(), names=tuple(sorted(identity(keys[0], ADDRESS, Role.SENTINEL).alternative_names())))
    current = {k: SentinelObservation(26000 + i, 10 + i, certificate=leaf) for i, k in enumerate(keys)}
    assert restarts(current, nodes_moved=True, healthy=True) == ()
    assert leaf.renew_at is not None
    due = {k: replace(s, certificate=replace(leaf, renew_at=NOW)) for k, s in current.items()}
    assert restarts(due, nodes_moved=True, healthy=True) == (RestartSentinel(keys[0], AT, "g", primary),)
    assert restarts(due, nodes_moved=True, healthy=False) == ()  # not while a Sentinel is away


def test_an_expired_sentinel_is_restarted_at_once_even_while_the_group_is_not_healthy() -> None:
    # Under load a renewal took longer than the third of a leaf's life left: one leaf expired, that
    # Sentinel could no longer be reached, the group was never healthy again, and none was renewed.
    keys = sentinel_keys("g")
    wanted, primary = _wanted(TransitMode.REQUIRED), (ADDRESS, 30001)
    leaf = replace(_good_leaf(), names=tuple(sorted(identity(keys[0], ADDRESS, Role.SENTINEL).alternative_names())))
    assert leaf.expires_at is not None
    observed = {k: SentinelObservation(26000 + i, 10 + i, certificate=leaf) for i, k in enumerate(keys)}
    observed[keys[2]] = replace(observed[keys[2]], certificate=replace(leaf, expires_at=NOW))
    placed = {k: AT for k in keys}
    taken = step.sentinels(observed, placed, wanted, "g", primary, nodes_moved=True, healthy=False, now=NOW)
    assert taken == (RestartSentinel(keys[2], AT, "g", primary),)
    old_file = {k: replace(s, certificate=replace(leaf, expires_at=None)) for k, s in observed.items()}
    assert step.sentinels(old_file, placed, wanted, "g", primary, nodes_moved=True, healthy=False, now=NOW) == ()


def test_a_leaf_info_file_records_its_end_and_reads_back() -> None:
    info = _good_leaf()
    assert info.expires_at is not None
    assert info.renew_at is not None
    assert info.renew_at < info.expires_at
    assert CertificateInfo.from_text(info.to_text()) == info
    assert not info.expired(info.expires_at - dt.timedelta(seconds=1))
    assert info.expired(info.expires_at)
    assert not replace(info, expires_at=None).expired(NOW + dt.timedelta(days=3650))


def test_transport_values_release_a_port_before_the_other_binds_it() -> None:
    node_tls = NodeTls(30001, TransitMode.PREFERRED, Path("/n/tls.pem"), Path("/ca.pem"))
    to_tls = redis.transport_values(30002, node_tls, {"port": "30001", "tls-port": "0"})
    assert [n for n, _ in to_tls][-2:] == ["port", "tls-port"]
    assert ("tls-replication", "yes") in to_tls
    back = redis.transport_values(30001, None, {"port": "30002", "tls-port": "30001"})
    assert back == (("tls-replication", "no"), ("tls-port", "0"), ("port", "30001"))
    required = replace(node_tls, mode=TransitMode.REQUIRED)
    assert redis.transport_values(0, required, {"port": "30002", "tls-port": "30001"})[-1] == ("port", "0")


def test_the_marker_says_which_users_a_node_has() -> None:
    marker = acl.marker(USERS_NOW)
    assert marker.startswith(acl.MARKER_PREFIX)
    assert acl.marker_of(["default", marker, "cachefleet-admin"]) == marker
    assert acl.marker_of(["default"]) is None
    commands = acl.marker_commands(marker, ["default", "cachefleet-acl-old", marker])
    assert commands == [
        ("ACL", "SETUSER", marker, "reset", *acl.MARKER_RULES),
        ("ACL", "DELUSER", "cachefleet-acl-old"),
    ]
    # A node renders the marker of the users it starts with.
    config = redis.RedisNodeConfig(
        port=30001, bind=ADDRESS, data_dir=Path("/n"), maxmemory_bytes=1, admin_user="cachefleet-admin",
        admin_password="x", application=USERS_NOW,
    )  # fmt: skip
    assert f"user {marker} off resetpass" in redis.render_config(config)


def test_links_remember_what_answered_and_try_plain_text_first_when_unknown() -> None:
    tls = ClientTls(Path("/ca.pem"))
    links = Links(tls)
    assert links.options(ADDRESS, 1) == (None, tls)
    tried: list[ClientTls | None] = []

    async def attempt(option: ClientTls | None) -> str:
        tried.append(option)
        if option is None:
            raise ProtocolError("reset")  # plain text on a TLS port
        return "answer"

    assert asyncio.run(links.reach(ADDRESS, 1, attempt)) == "answer"
    assert tried == [None, tls]
    assert links.tls_for(ADDRESS, 1) is tls
    assert links.options(ADDRESS, 1) == (tls, None)
    links.record(ADDRESS, 1, tls=False)
    assert links.tls_for(ADDRESS, 1) is None


def test_a_plain_attempt_that_times_out_is_not_tried_again_over_tls() -> None:
    links = Links(ClientTls(Path("/ca.pem")))
    tried: list[ClientTls | None] = []

    async def attempt(option: ClientTls | None) -> str:
        tried.append(option)
        raise TimeoutError("no answer")  # a host out of reach: TLS would only wait as long again

    with pytest.raises(TimeoutError):
        asyncio.run(links.reach(ADDRESS, 1, attempt))
    assert tried == [None]


def test_links_do_not_try_the_other_transport_when_nothing_listens() -> None:
    # A refused connection says nothing of the transport; trying TLS next would race a plain-text
    # process that starts listening meanwhile, and wait out the whole timeout for its answer.
    tls = ClientTls(Path("/ca.pem"))
    links = Links(tls)
    tried: list[ClientTls | None] = []

    async def attempt(option: ClientTls | None) -> str:
        tried.append(option)
        raise ConnectionRefusedError(111, "Connection refused")

    with pytest.raises(ConnectionRefusedError):
        asyncio.run(links.reach(ADDRESS, 1, attempt))
    assert tried == [None]
    assert links.options(ADDRESS, 1) == (None, tls)  # still unknown


def _executor(fleet: Fleet) -> Executor:
    tools = Tools(sentinel="/usr/bin/redis-sentinel", haproxy="/usr/sbin/haproxy", python="/usr/bin/python3")
    return Executor(
        store=fleet.store,
        hosts=fleet.hosts,
        engines=(EngineBinary("redis", "7.0.15", "/usr/bin/redis-server"),),
        credentials=CREDENTIALS,
        tools=tools,
        keys=KEYS,
        links=Links(KEYS.client_tls),
        clock=lambda: NOW,
        proxy=fake_proxy(fleet.hosts),
    )


def test_a_tls_group_renders_its_nodes_sentinels_and_endpoint_with_tls_users_and_passwords() -> None:
    fleet = Fleet()
    fleet.group(failover=True, running=False, security=Security(transit=REQUIRED, tokens=TOKENS))
    key, sentinel, endpoint = member_key("g-001"), sentinel_keys("g")[0], endpoint_key("g")
    port = fleet.host.allocate_port(key, ())
    for other in (sentinel, endpoint):
        fleet.host.allocate_port(other, ())
    fleet.host.allocate_port(endpoint, (), "reader")
    inputs = EndpointInputs(((ADDRESS, port),), (ADDRESS, port), tls="required")
    run = _executor(fleet).run
    asyncio.run(
        run(
            [StartNode(key, AT), StartSentinel(sentinel, AT, "g", (ADDRESS, port)), StartEndpoint(endpoint, AT, inputs)]
        )
    )
    conf = fleet.host.file_now(key, REDIS_CONF) or ""
    assert f"tls-port {port}" in conf
    assert "\nport 0\n" in conf  # required: no plain-text port
    assert f"#{'a' * 64}" in conf  # the token's hash, never a token
    assert "user cachefleet-repl on" in conf
    assert "masteruser cachefleet-repl" in conf
    assert f"user {acl.marker(USERS_NOW)} off" in conf
    assert "BEGIN CERTIFICATE" in (fleet.host.file_now(key, TLS_FILE) or "")
    info = CertificateInfo.from_text(fleet.host.file_now(key, TLS_INFO))
    assert info is not None
    assert (info.tls, info.names) == (True, ("ip:127.0.0.1",))
    sentinel_conf = fleet.host.file_now(sentinel, SENTINEL_CONF) or ""
    assert 'requirepass "sentinels-secret"' in sentinel_conf
    assert "sentinel auth-user g cachefleet-sentinel" in sentinel_conf
    assert "tls-replication yes" in sentinel_conf
    proxy_conf = fleet.host.file_now(PROXY_KEY, CONFIG_FILE) or ""  # the host's endpoint proxy
    assert "tcp-check connect ssl" in proxy_conf
    assert "cachefleet-check" in proxy_conf
    assert "cachefleet-admin" not in proxy_conf  # health checks never log in as the admin


def test_a_node_keeps_a_good_leaf_across_restarts_and_a_plain_group_sentinel_still_has_a_password() -> None:
    fleet = Fleet()
    fleet.group(failover=True, running=False, security=Security(transit=REQUIRED))
    key = member_key("g-001")
    fleet.host.allocate_port(key, ())
    executor = _executor(fleet)
    asyncio.run(executor.run([StartNode(key, AT)]))
    first = fleet.host.file_now(key, TLS_FILE)
    asyncio.run(fleet.host.stop(key))
    asyncio.run(executor.run([StartNode(key, AT)]))
    assert fleet.host.file_now(key, TLS_FILE) == first  # not due: the same leaf

    plain = Fleet()
    plain.group("p", failover=True, running=False)
    sentinel = sentinel_keys("p")[0]
    plain.host.allocate_port(sentinel, ())
    asyncio.run(_executor(plain).run([StartSentinel(sentinel, AT, "p", (ADDRESS, 30001))]))
    assert 'requirepass "sentinels-secret"' in (plain.host.file_now(sentinel, SENTINEL_CONF) or "")
    assert CertificateInfo.from_text(plain.host.file_now(sentinel, TLS_INFO)) == CertificateInfo(False)


def test_a_preferred_node_waits_for_its_plain_port() -> None:
    fleet = Fleet()
    fleet.group(running=False, security=Security(transit=PREFERRED))
    key = member_key("g-002")
    fleet.host.allocate_port(key, ())
    with pytest.raises(Retry, match="plain-text port"):
        asyncio.run(_executor(fleet).run([StartNode(key, AT)]))
    fleet.host.allocate_port(key, (), PLAIN_SLOT)
    asyncio.run(_executor(fleet).run([StartNode(key, AT)]))
    plain = fleet.host.port_now(key, PLAIN_SLOT)
    assert f"\nport {plain}\n" in (fleet.host.file_now(key, REDIS_CONF) or "")


def test_the_group_records_the_security_its_nodes_run() -> None:
    fleet = Fleet()
    spec = fleet.group()
    wanted = tuple(acl.application_users(TokenState(), None))
    for member in spec.members:  # every node reports the marker of the wanted users
        port = fleet.host.port_now(member_key(member))
        assert port is not None
        fleet.probes.redis_by_port[port] = replace(fleet.probes.redis_by_port[port], acl_users=(acl.marker(wanted),))
    GROUPS.put_spec(fleet.store, "g", replace(spec, security=Security(version=3)))
    plan = asyncio.run(fleet.plan(GROUPS.name, "g"))
    assert plan is not None
    status = plan.statuses[(GROUPS.name, "g")]
    assert (status.security_done, status.acl_fingerprint) == (3, acl.fingerprint(wanted))  # type: ignore[attr-defined]

    stale = fleet.host.port_now(member_key(spec.members[1]))
    assert stale is not None
    fleet.probes.redis_by_port[stale] = replace(fleet.probes.redis_by_port[stale], acl_users=("cachefleet-acl-old",))
    plan = asyncio.run(fleet.plan(GROUPS.name, "g"))
    assert plan is not None
    assert (
        SyncAcl(member_key(spec.members[1]), Placement(LOCAL_HOST, ADDRESS, AZS[1]), wanted, ("cachefleet-acl-old",))
        in plan.actions
    )
    assert plan.statuses[(GROUPS.name, "g")].security_done == 0  # type: ignore[attr-defined]


def test_user_kinds_wait_until_every_group_using_them_has_the_users() -> None:
    fleet = Fleet()
    statuses.create(fleet.store, USERS, "app", User("app", "app", "redis", "on ~* +@all", ("b" * 64,)))
    statuses.create(fleet.store, USERS, "locked", User("locked", "default", "redis", "off -@all"))
    statuses.create(fleet.store, USER_GROUPS, "team", UserGroup("team", "redis", ("locked", "app")))
    fleet.group(security=Security(transit=REQUIRED, user_group_ids=("team",)))
    assert not nodes_have(fleet.services, {"team"})
    assert (GROUPS.name, "g") in fleet.woken
    assert asyncio.run(fleet.kinds[USER_GROUPS.name].work("team")) is not None  # type: ignore[union-attr]
    assert USER_GROUPS.get(fleet.store, "team").status.status is UserGroupState.CREATING
    wanted = wanted_users(fleet.store, GROUPS.get(fleet.store, "g").spec.security)
    assert [u.name for u in wanted] == ["default", "app"]
    fleet.with_status(GROUPS.name, "g", acl_fingerprint=acl.fingerprint(wanted))
    assert asyncio.run(fleet.kinds[USER_GROUPS.name].work("team")) is None  # type: ignore[union-attr]
    assert USER_GROUPS.get(fleet.store, "team").status.status is UserGroupState.ACTIVE
    # A group being deleted is not waited for.
    USERS.put_spec(fleet.store, "app", User("app", "app", "redis", "on ~* +get", ("c" * 64,)))
    statuses.change(fleet.store, USERS, "app", Event.MODIFY)
    assert not nodes_have(fleet.services, {"team"})
    fleet.with_status(GROUPS.name, "g", status=GroupState.DELETING)
    assert nodes_have(fleet.services, {"team"})


def test_a_user_group_without_its_default_user_locks_clients_out() -> None:
    fleet = Fleet()
    statuses.create(fleet.store, USERS, "app", User("app", "app", "redis", "on ~* +@all", ("b" * 64,)))
    statuses.create(fleet.store, USER_GROUPS, "team", UserGroup("team", "redis", ("app",)))
    users = wanted_users(fleet.store, Security(transit=REQUIRED, user_group_ids=("team",)))
    assert (users[0].name, users[0].enabled) == ("default", False)
    assert wanted_users(fleet.store, Security(transit=OFF)) == tuple(acl.application_users(TokenState(), None))


def test_the_next_renewal_is_when_the_first_leaf_comes_due_so_the_loop_looks_again_then() -> None:
    leaf = _good_leaf()
    assert leaf.renew_at is not None
    assert leaf.expires_at is not None
    sooner = replace(leaf, renew_at=NOW + dt.timedelta(seconds=20), expires_at=NOW + dt.timedelta(seconds=30))
    assert step.next_renewal([leaf, sooner, None], NOW) == 20.0
    assert step.next_renewal([leaf], NOW) == (leaf.renew_at - NOW).total_seconds()
    # Due already (its renewal waits for the group's health): looked at again each second, not in a loop.
    assert step.next_renewal([sooner], NOW + dt.timedelta(seconds=25)) == step.DUE_REVISIT_S
    # No TLS, or no leaf with dates: nothing comes due.
    assert step.next_renewal([CertificateInfo(False), None, CertificateInfo(True)], NOW) is None
    assert step.next_renewal([], NOW) is None
