"""AUTH tokens, RBAC users and hardening on real Redis nodes over TLS, applied live with no restart.

The nodes run the configs ``engines.redis`` renders (TLS required, internal users); changes go
through ``acl.sync_commands`` and ``redis.apply_acl``, as the control plane will send them. Clients
are redis-py over TLS (verifying the node's certificate and address) and raw RESP for the commands
redis-py wraps. Every test ends with a grep of every file the nodes have, for the customer secrets.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, ConnectionError, NoPermissionError, RedisError
from redis.retry import Retry as RedisRetry
from tests.support.engines import (
    BIND,
    REDIS_BINARY,
    Pki,
    RecordingHost,
    engine_host,
    internal_credentials,
    redis_node,
    secrets_in_files,
)
from tests.support.server import wait_for

from cachefleet.engines import acl, resp
from cachefleet.engines import redis as redis_engine
from cachefleet.hosts.base import NodeKey
from cachefleet.model import auth_token
from cachefleet.model.acl import RESTRICTED_COMMANDS, parse_access_string
from cachefleet.model.auth_token import NO_TOKEN
from cachefleet.model.errors import InvalidParameterValue, Retry
from cachefleet.model.transit import Transit, TransitMode
from cachefleet.model.users import Credentials, User, new_user

pytestmark = pytest.mark.integration

ADMIN, INTERNAL = internal_credentials()
TLS = Transit(True, TransitMode.REQUIRED)
# Customer secrets: a marker makes any copy of them easy to find.
T1 = "MARKERtok1-" + secrets.token_hex(8)
T2 = "MARKERtok2-" + secrets.token_hex(8)
APP_PW = "MARKERapp-" + secrets.token_hex(8)
APP_PW2 = "MARKERapp2-" + secrets.token_hex(8)
CUSTOMER_SECRETS = [T1, T2, APP_PW, APP_PW2]
# redis-py 8 opens with HELLO 3, which an unauthenticated client is refused; RESP2 clients get NOAUTH.
NOAUTH = "NOAUTH|must be called with the client already authenticated"


@dataclass
class Cluster:
    host: RecordingHost
    pki: Pki
    root: Path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("acl")
    # The grep finds a secret where there is one, in clear or in hex.
    canary = root / "canary"
    canary.write_text(f"x {T1.encode().hex()} y")
    assert secrets_in_files(root, CUSTOMER_SECRETS) == [f"{canary}: {T1[:4]}..."]
    canary.unlink()
    with engine_host(root / "nodes") as host:
        yield Cluster(host, Pki(root), root)
    assert secrets_in_files(root, CUSTOMER_SECRETS) == []


@pytest.fixture(autouse=True)
def _no_customer_secret_in_any_file(cluster: Cluster) -> Iterator[None]:
    yield
    assert secrets_in_files(cluster.root, CUSTOMER_SECRETS) == []


_counter = iter(range(1, 1000))


def start(cluster: Cluster, application: tuple[acl.AclUser, ...] | None = None, replicaof: int | None = None) -> int:
    """A new node (TLS required); returns its TLS port once it answers."""
    key = NodeKey(f"n{next(_counter)}", "0001")
    spec, _, port = redis_node(
        cluster.host,
        key,
        cluster.pki,
        admin=ADMIN,
        internal=INTERNAL,
        application=application,
        replicaof=(BIND, replicaof) if replicaof else None,
    )
    cluster.host.start(key, spec)
    wait_for(f"node {port}", lambda: observe(cluster, port) is not None)
    return port


def observe(cluster: Cluster, port: int) -> redis_engine.RedisObservation | None:
    return asyncio.run(
        redis_engine.probe(BIND, port, user=ADMIN.user, password=ADMIN.password, tls=cluster.pki.client_tls())
    )


def apply(cluster: Cluster, port: int, users: list[acl.AclUser]) -> None:
    tls = cluster.pki.client_tls()
    present = asyncio.run(redis_engine.acl_users(BIND, port, user=ADMIN.user, password=ADMIN.password, tls=tls))
    commands = acl.sync_commands(users, present)
    asyncio.run(
        redis_engine.apply_acl(BIND, port, user=ADMIN.user, password=ADMIN.password, commands=commands, tls=tls)
    )


def client(cluster: Cluster, port: int, username: str | None = None, password: str | None = None) -> redis.Redis:
    return redis.Redis(
        host=BIND,
        port=port,
        username=username,
        password=password,
        ssl=True,
        ssl_ca_certs=str(cluster.pki.ca),
        ssl_check_hostname=True,
        socket_timeout=2.0,
        socket_connect_timeout=2.0,
        retry=RedisRetry(NoBackoff(), 0),
        single_connection_client=True,
        decode_responses=True,
    )


def raw(cluster: Cluster, port: int, *commands: tuple[str, ...]) -> list[resp.Reply]:
    return asyncio.run(resp.exchange(BIND, port, list(commands), timeout=2.0, tls=cluster.pki.client_tls()))


def rbac(name: str, access: str, *passwords: str, user_id: str | None = None) -> User:
    credentials = Credentials(passwords=passwords) if passwords else Credentials(no_password_required=True)
    return new_user(
        user_id=user_id or name,
        user_name=name,
        engine="redis",
        access_string=access,
        credentials=credentials,
        existing={},
    )


# -- AUTH token rotation ------------------------------------------------------------------------


class ClientLoop:
    """Clients that never stop while tokens rotate: new connections with the token the fleet is
    told to use, and one connection authenticated once at the start and kept."""

    def __init__(self, cluster: Cluster, port: int, token: str | None, held: redis.Redis) -> None:
        self.cluster, self.port, self.token, self.held = cluster, port, token, held
        self.ops = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._fresh), threading.Thread(target=self._kept)]

    def __enter__(self) -> ClientLoop:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def _fresh(self) -> None:
        i = 0
        while not self._stop.is_set():
            i += 1
            token = self.token
            try:
                with client(self.cluster, self.port, password=token) as conn:
                    conn.set(f"fresh:{i % 50}", i)
                    assert conn.get(f"fresh:{i % 50}") == str(i)
                self.ops += 1
            except (RedisError, AssertionError) as exc:
                self.errors.append(f"fresh with {'token' if token else 'no token'}: {exc!r}")

    def _kept(self) -> None:
        i = 0
        while not self._stop.is_set():
            i += 1
            try:
                self.held.set("kept", i)
                assert self.held.get("kept") == str(i)
                self.ops += 1
            except (RedisError, AssertionError) as exc:
                self.errors.append(f"kept: {exc!r}")
            time.sleep(0.002)


def test_rotate_then_set_under_a_client_loop_that_never_stops(cluster: Cluster) -> None:
    state = auth_token.initial_state(T1, transit=TLS)
    port = start(cluster, (acl.token_default_user(state),))
    held = client(cluster, port, password=T1)
    held.ping()
    with ClientLoop(cluster, port, T1, held) as loop:
        time.sleep(0.3)
        state = auth_token.modify(state, T2, "ROTATE", transit=TLS)
        apply(cluster, port, [acl.token_default_user(state)])
        # Both tokens work now; the fleet moves to the new one.
        for token in (T1, T2):
            with client(cluster, port, password=token) as conn:
                assert conn.ping()
        loop.token = T2
        time.sleep(0.3)
        state = auth_token.modify(state, T2, "SET", transit=TLS)
        apply(cluster, port, [acl.token_default_user(state)])
        time.sleep(0.3)
    assert loop.errors == []
    assert loop.ops > 50
    # After SET the old token is refused; the connection authenticated with it stays open.
    with pytest.raises(AuthenticationError), client(cluster, port, password=T1) as conn:
        conn.ping()
    assert held.ping()
    held.close()
    assert observe(cluster, port) is not None  # no restart: the same process answers


def test_rotation_from_no_token_keeps_open_access_until_set(cluster: Cluster) -> None:
    state = NO_TOKEN
    port = start(cluster)
    anonymous = client(cluster, port)
    anonymous.ping()
    state = auth_token.modify(state, T1, "ROTATE", transit=TLS)
    apply(cluster, port, [acl.token_default_user(state)])
    with client(cluster, port) as conn:
        assert conn.ping()  # still open
    with client(cluster, port, username="default", password=T1) as conn:
        assert conn.ping()  # and the new token is accepted
    # A single-argument AUTH is an error while the default user has no password (Redis's rule).
    assert isinstance(raw(cluster, port, ("AUTH", T1))[0], resp.ReplyError)
    state = auth_token.modify(state, T1, "SET", transit=TLS)
    apply(cluster, port, [acl.token_default_user(state)])
    with pytest.raises(RedisError, match=NOAUTH), client(cluster, port) as conn:
        conn.get("x")
    with client(cluster, port, password=T1) as conn:
        assert conn.ping()
    assert anonymous.ping()  # authenticated before the SET: stays
    anonymous.close()


def test_wrong_or_missing_password_refused(cluster: Cluster) -> None:
    state = auth_token.initial_state(T1, transit=TLS)
    app = rbac("app", "on ~app:* +@all", APP_PW)
    off = rbac("parked", "off ~* +@all", APP_PW2)
    port = start(cluster, (acl.token_default_user(state), acl.rbac_user(app), acl.rbac_user(off)))
    with pytest.raises(RedisError, match=NOAUTH), client(cluster, port) as conn:
        conn.get("x")
    with pytest.raises(AuthenticationError), client(cluster, port, password=T2) as conn:
        conn.ping()
    with pytest.raises(AuthenticationError), client(cluster, port, username="app", password=APP_PW2) as conn:
        conn.ping()
    with pytest.raises(AuthenticationError), client(cluster, port, username="parked", password=APP_PW2) as conn:
        conn.ping()  # right password, but the user is off
    with pytest.raises(AuthenticationError), client(cluster, port, username="cachefleet-admin", password=T1) as conn:
        conn.ping()
    with client(cluster, port, username="app", password=APP_PW) as conn:
        assert conn.set("app:1", "v")
        with pytest.raises(NoPermissionError):
            conn.set("other:1", "v")  # outside its keys


# -- hardening ------------------------------------------------------------------------------------

# Each restricted command with harmless arguments; a NOPERM answer means ACLs refused it before it ran.
RESTRICTED_CALLS: list[tuple[str, ...]] = [
    ("CONFIG", "GET", "maxmemory"),
    ("CONFIG", "SET", "maxmemory", "1"),
    ("SHUTDOWN", "NOSAVE"),
    ("REPLICAOF", "NO", "ONE"),
    ("SLAVEOF", "NO", "ONE"),
    ("DEBUG", "SLEEP", "0"),
    ("SAVE",),
    ("BGSAVE",),
    ("BGREWRITEAOF",),
    ("SYNC",),
    ("PSYNC", "?", "-1"),
    ("REPLCONF", "listening-port", "1"),
    ("MONITOR",),
    ("MODULE", "LIST"),
    ("FAILOVER", "ABORT"),
    ("MIGRATE", "127.0.0.1", "1", "k", "0", "1"),
    ("ACL", "SETUSER", "intruder", "on", ">intruder-password", "+@all"),
    ("ACL", "DELUSER", "cachefleet-admin"),
    ("ACL", "LIST"),
    ("ACL", "USERS"),
    ("ACL", "GETUSER", "cachefleet-admin"),
    ("ACL", "SAVE"),
    ("ACL", "LOAD"),
    ("ACL", "LOG"),
    ("CLUSTER", "INFO"),
]


def test_application_users_cannot_run_what_elasticache_restricts(cluster: Cluster) -> None:
    # The default user (full access), an RBAC user with +@all, and one that grants all in a selector.
    everything = rbac("everything", "on ~* &* +@all", APP_PW)
    selector = rbac("selector", "on -@all (~* &* +@all)", APP_PW2)
    users = (acl.token_default_user(NO_TOKEN), acl.rbac_user(everything), acl.rbac_user(selector))
    port = start(cluster, users)
    assert {c[0].lower() for c in RESTRICTED_CALLS} == set(RESTRICTED_COMMANDS)
    for auth in ([], [("AUTH", "everything", APP_PW)], [("AUTH", "selector", APP_PW2)]):
        for call in RESTRICTED_CALLS:
            *_, reply = raw(cluster, port, *auth, call)
            assert isinstance(reply, resp.ReplyError), (auth[:1], call, reply)
            assert str(reply).startswith("NOPERM"), (call, reply)
        *_, whoami, cat, setget = raw(cluster, port, *auth, ("ACL", "WHOAMI"), ("ACL", "CAT"), ("SET", "k", "v"))
        assert not isinstance(whoami, resp.ReplyError)
        assert isinstance(cat, list)
        assert setget == "OK"
    assert observe(cluster, port) is not None  # still up: SHUTDOWN never ran
    assert sorted(
        asyncio.run(
            redis_engine.acl_users(BIND, port, user=ADMIN.user, password=ADMIN.password, tls=cluster.pki.client_tls())
        )
    ) == sorted(
        [
            "cachefleet-admin",
            "cachefleet-check",
            "cachefleet-repl",
            "cachefleet-sentinel",
            "default",
            "everything",
            "selector",
            acl.marker(users),  # which set of users the node runs: a user nobody can log in as
        ]
    )


def test_internal_users_can_do_their_job_and_nothing_else(cluster: Cluster) -> None:
    primary = start(cluster, (acl.token_default_user(auth_token.initial_state(T1, transit=TLS)),))
    # The replica authenticates as cachefleet-repl over TLS: the link comes up.
    replica = start(cluster, (acl.token_default_user(auth_token.initial_state(T1, transit=TLS)),), replicaof=primary)
    wait_for("the replica to link over TLS", lambda: (o := observe(cluster, replica)) is not None and o.master_link_up)
    with client(cluster, primary, password=T1) as conn:
        conn.set("replicated", "yes")
    with client(cluster, replica, password=T1) as conn:
        wait_for("the write to reach the replica", lambda: conn.get("replicated") == "yes")
    checks = {
        INTERNAL.check: (("INFO", "replication"), ("CONFIG", "GET", "maxmemory")),
        INTERNAL.replication: (("PING",), ("GET", "x")),
        INTERNAL.sentinel: (("ROLE",), ("CONFIG", "GET", "maxmemory")),
    }
    for credential, (allowed, refused) in checks.items():
        auth, ok, no = raw(cluster, primary, ("AUTH", credential.user, credential.password), allowed, refused)
        assert auth == "OK"
        assert not isinstance(ok, resp.ReplyError), (credential.user, ok)
        assert isinstance(no, resp.ReplyError), (credential.user, no)
        assert str(no).startswith("NOPERM")
    # The control plane's admin keeps every power (it is the one who sets users).
    _, config = raw(cluster, primary, ("AUTH", ADMIN.user, ADMIN.password), ("CONFIG", "GET", "maxmemory"))
    assert isinstance(config, list)


def test_rbac_users_change_live_and_their_connections_stay(cluster: Cluster) -> None:
    app = rbac("app", "on ~* &* +@all", APP_PW)
    port = start(cluster, (acl.token_default_user(NO_TOKEN), acl.rbac_user(app)))
    held = client(cluster, port, username="app", password=APP_PW)
    held.set("a", "1")
    subscriber = client(cluster, port, username="app", password=APP_PW)
    pubsub = subscriber.pubsub()
    pubsub.subscribe("news")
    wait_for("the subscription", lambda: pubsub.get_message(timeout=0.1) is not None)
    # New password and narrower keys: one ACL SETUSER ... reset, applied to a copy and swapped in.
    changed = rbac("app", "on ~a* &* +@all", APP_PW2)
    apply(cluster, port, [acl.token_default_user(NO_TOKEN), acl.rbac_user(changed)])
    assert held.get("a") == "1"  # still connected, with the new permissions
    with pytest.raises(NoPermissionError):
        held.get("b")
    with client(cluster, port) as publisher:
        assert publisher.publish("news", "hello") == 1
    wait_for("the message", lambda: (m := pubsub.get_message(timeout=0.1)) is not None and m["data"] == "hello")
    with pytest.raises(AuthenticationError), client(cluster, port, username="app", password=APP_PW) as conn:
        conn.ping()
    # A user dropped from the group is deleted, and its connections are closed (as DeleteUser does).
    apply(cluster, port, [acl.token_default_user(NO_TOKEN)])
    with pytest.raises(ConnectionError):
        held.get("a")
    held.close()
    pubsub.close()
    subscriber.close()


ACCESS_STRINGS = [
    "on ~* +@all",
    "on ~* &* +@all",
    "off ~* +@all",
    "on ~app::* -@all +@read",
    "on allkeys allchannels allcommands",
    "on resetkeys resetchannels nocommands",
    "on %R~read:* %W~write:* %RW~both:* +get +set",
    "on ~* +@all -client|kill -@dangerous",
    "on ~* +select|0",
    "on ~* -@all +acl|whoami +@connection",
    "on ~* -@all (~other:* +get) (~third:* %R~x* +set)",
    "on ~* +@all clearselectors",
    "on ~* &chan:* +@pubsub sanitize-payload",
]


def test_every_access_string_we_accept_is_taken_by_redis(cluster: Cluster) -> None:
    catalog = redis_engine.command_catalog(REDIS_BINARY)
    port = start(cluster)
    users = [acl.token_default_user(NO_TOKEN)]
    for i, text in enumerate(ACCESS_STRINGS):
        parse_access_string(text, catalog)
        users.append(acl.rbac_user(rbac(f"u{i}", text, APP_PW)))
    apply(cluster, port, users)  # one ACL SETUSER per user; Redis refuses a bad rule with an error
    for bad in ("on ~* +nosuchcommand", "on ~* +config|nosuch", "on ~* +@nosuchcategory"):
        with pytest.raises(InvalidParameterValue):
            parse_access_string(bad, catalog)
    # A real Redis would have refused those too: the catalogue matches the engine.
    with pytest.raises(Retry, match=r"Unknown command|Error in ACL SETUSER"):
        apply(cluster, port, [*users, acl.AclUser("bad", True, (), True, ("+nosuchcommand",))])


def test_a_restarted_node_has_its_users_before_its_first_client(cluster: Cluster) -> None:
    state = auth_token.initial_state(T1, transit=TLS)
    key = NodeKey("restart", "0001")
    users = (acl.token_default_user(state), acl.rbac_user(rbac("app", "on ~* +@all", APP_PW)))
    spec, _, port = redis_node(cluster.host, key, cluster.pki, admin=ADMIN, internal=INTERNAL, application=users)
    cluster.host.start(key, spec)
    wait_for("the node", lambda: observe(cluster, port) is not None)
    cluster.host.stop(key)
    cluster.host.start(key, spec)
    # The first answer of the restarted node already refuses a client without the token.
    wait_for("the node again", lambda: _first_reply(cluster, port) is not None)
    assert str(_first_reply(cluster, port)).startswith("NOAUTH")
    with client(cluster, port, username="app", password=APP_PW) as conn:
        assert conn.ping()


def _first_reply(cluster: Cluster, port: int) -> resp.Reply | None:
    try:
        return raw(cluster, port, ("GET", "x"))[0]
    except (OSError, TimeoutError, resp.ProtocolError):
        return None
