"""Cache security end to end, as a user meets it: boto3 against a real server, redis-py with
``ssl=True``/``ssl_ca_certs`` and ``redis-cli --tls --cacert`` against the nodes it runs.

One server for the module, and its groups shared by the tests in file order (each test says what it
leaves behind): ``tok`` (TLS ``required``, an AUTH token, three members with automatic failover),
``rbac`` (TLS and a user group), a standalone TLS cluster, and a plain group for the refusals. The
engine-level tests (tests/integration/test_*_engines.py) cover the rendered configs in depth; these
check what the control plane does with them: rotation under a client loop that never stops, ACLs
kept through a failover, a node replacement and a replica added, RBAC changes reaching the nodes
before the user kinds say ``active``, every refusal with AWS's code, and, at the end, no secret in
any file of the data dir or in the log, and nothing listening beyond the configured address.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from botocore.exceptions import ClientError
from redis.backoff import NoBackoff
from redis.retry import Retry
from tests.support.engines import REDIS_CLI, children, secrets_in_files
from tests.support.server import ServerProcess, wait_until

from cachefleet.model.acl import password_hash

pytestmark = pytest.mark.integration

ADDRESS = "127.0.0.1"
TOKEN1 = "MARKERtok1-" + secrets.token_hex(8)
TOKEN2 = "MARKERtok2-" + secrets.token_hex(8)
TOKEN3 = "MARKERtok3-" + secrets.token_hex(8)
SOLO1 = "MARKERsolo1-" + secrets.token_hex(8)
SOLO2 = "MARKERsolo2-" + secrets.token_hex(8)
APP1 = "MARKERapp1-" + secrets.token_hex(8)
APP2 = "MARKERapp2-" + secrets.token_hex(8)
READER = "MARKERread-" + secrets.token_hex(8)
SECRETS = [TOKEN1, TOKEN2, TOKEN3, SOLO1, SOLO2, APP1, APP2, READER]
WAIT = {"Delay": 1, "MaxAttempts": 60}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("security") / "cf")
    try:
        process.start()
        yield process
    finally:
        process.cleanup()


@pytest.fixture(scope="module")
def ec(server: ServerProcess) -> Any:
    return server.client()


@pytest.fixture(scope="module")
def ca(server: ServerProcess) -> str:
    return str(server.data_dir / "ca.pem")


def _available(ec: Any, group_id: str) -> dict[str, Any]:
    """Wait until the group is ``available`` with nothing pending; its description."""

    def settled() -> dict[str, Any] | None:
        group = _group(ec, group_id)
        return group if group["Status"] == "available" and not group["PendingModifiedValues"] else None

    found: dict[str, Any] = wait_until(settled, 60, interval=0.2, what=f"{group_id} available")
    return found


def _group(ec: Any, group_id: str) -> dict[str, Any]:
    (found,) = ec.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"]
    return dict(found)


def _primary_endpoint(ec: Any, group_id: str) -> int:
    return int(_group(ec, group_id)["NodeGroups"][0]["PrimaryEndpoint"]["Port"])


def _member_ports(ec: Any, group_id: str) -> dict[str, int]:
    members = _group(ec, group_id)["NodeGroups"][0]["NodeGroupMembers"]
    return {m["CacheClusterId"]: int(m["ReadEndpoint"]["Port"]) for m in members if "ReadEndpoint" in m}


def _primary_member(ec: Any, group_id: str) -> str:
    members = _group(ec, group_id)["NodeGroups"][0]["NodeGroupMembers"]
    return next(m["CacheClusterId"] for m in members if m.get("CurrentRole") == "primary")


# Every client ``_tls`` made, closed when its test ends: a one-shot client left to the garbage
# collector closed its socket at some later test's expense (a ResourceWarning, an error there).
_opened: list[redis.Redis] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _opened:
        _opened.pop().close()


def _tls(port: int, ca: str, **auth: Any) -> redis.Redis:
    """A redis-py client over TLS that verifies the node's certificate and the address it names;
    no retries, so that every failure shows."""
    client = redis.Redis(
        host=ADDRESS,
        port=port,
        ssl=True,
        ssl_ca_certs=ca,
        socket_timeout=3,
        socket_connect_timeout=3,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
        **auth,
    )
    _opened.append(client)
    return client


def _accepted(port: int, ca: str, **auth: Any) -> bool:
    client = _tls(port, ca, **auth)
    try:
        return bool(client.ping())
    except redis.AuthenticationError:
        return False
    finally:
        client.close()


def _on(port: int, ca: str, command: Callable[[redis.Redis], Any], **auth: Any) -> Any:
    """``command`` on a client that is closed afterwards, failed or not: a client left open whose
    command raised (READONLY during a failover) is kept alive by the traceback, and its socket is
    only reclaimed later by the garbage collector, with a ResourceWarning in whichever test runs then."""
    with _tls(port, ca, **auth) as client:
        return command(client)


def _works(command: Callable[[], Any]) -> bool:
    """Whether ``command`` succeeds now (a node restarting or a failover in progress: not yet)."""
    try:
        return bool(command())
    except redis.RedisError:
        return False


def _error(call: Callable[..., Any], **params: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as caught:
        call(**params)
    response = caught.value.response
    text = str(response)
    for secret in SECRETS:
        assert secret not in text
        assert password_hash(secret) not in text
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def _cli(
    port: int, ca: str, *args: str, password: str | None = None, tls: bool = True
) -> subprocess.CompletedProcess[str]:
    command = [REDIS_CLI, "-h", ADDRESS, "-p", str(port)]
    if tls:
        command += ["--tls", "--cacert", ca]
    env = {**os.environ}
    if password is not None:
        env["REDISCLI_AUTH"] = password  # redis-cli's own way, kept off the command line
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=10, env=env, check=False)


@dataclass
class Loop:
    """A client that never stops: one authenticated TLS connection writing and reading, and a second
    that connects anew for every command with whichever token is valid now (``token``)."""

    port: int
    ca: str
    token: str
    stop: threading.Event = field(default_factory=threading.Event)
    done: int = 0
    reconnects: int = 0
    errors: list[str] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        self.threads = [threading.Thread(target=self._kept), threading.Thread(target=self._fresh)]
        for thread in self.threads:
            thread.start()

    def _kept(self) -> None:
        client = _tls(self.port, self.ca, password=self.token)
        try:
            while not self.stop.is_set():
                try:
                    client.set("loop:kept", self.done)
                    assert client.get("loop:kept") == str(self.done)
                    self.done += 1
                except (redis.RedisError, AssertionError) as exc:
                    self.errors.append(f"kept: {exc!r}")
                    time.sleep(0.01)
        finally:
            client.close()

    def _fresh(self) -> None:
        while not self.stop.is_set():
            client = _tls(self.port, self.ca, password=self.token)
            try:
                client.incr("loop:fresh")
                self.reconnects += 1
            except redis.RedisError as exc:
                self.errors.append(f"fresh: {exc!r}")
                time.sleep(0.01)
            finally:
                client.close()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)


# -- a TLS group with an AUTH token ------------------------------------------------------------


@pytest.fixture(scope="module")
def tok(ec: Any) -> str:
    ec.create_replication_group(
        ReplicationGroupId="tok",
        ReplicationGroupDescription="TLS and AUTH",
        CacheNodeType="cache.t4g.micro",
        NumCacheClusters=3,
        AutomaticFailoverEnabled=True,
        TransitEncryptionEnabled=True,
        AuthToken=TOKEN1,
    )
    _available(ec, "tok")
    return "tok"


def test_describe_shows_tls_and_the_token_enabled_never_the_token(ec: Any, tok: str) -> None:
    group = _group(ec, tok)
    assert (group["TransitEncryptionEnabled"], group["TransitEncryptionMode"]) == (True, "required")
    assert group["AuthTokenEnabled"] is True
    assert "AuthTokenLastModifiedDate" in group
    assert group["PendingModifiedValues"] == {}
    members = ec.describe_cache_clusters(ShowCacheNodeInfo=True)["CacheClusters"]
    for member in (m for m in members if m.get("ReplicationGroupId") == tok):
        assert (member["AuthTokenEnabled"], member["TransitEncryptionEnabled"]) == (True, True)
        assert member["TransitEncryptionMode"] == "required"
    answers = str(ec.describe_replication_groups()) + str(members)
    assert TOKEN1 not in answers
    assert password_hash(TOKEN1) not in answers


def test_clients_with_tls_and_the_token_and_what_is_refused(ec: Any, tok: str, ca: str) -> None:
    port = _primary_endpoint(ec, tok)
    client = _tls(port, ca, password=TOKEN1)
    assert client.set("greeting", "hello")
    reader = int(_group(ec, tok)["NodeGroups"][0]["ReaderEndpoint"]["Port"])
    wait_until(
        lambda: _works(lambda: _on(reader, ca, lambda c: c.get("greeting") == "hello", password=TOKEN1)),
        10,
        what="the reader endpoint",
    )
    for node_port in _member_ports(ec, tok).values():  # every node directly, as its ReadEndpoint
        assert _tls(node_port, ca, password=TOKEN1).ping()

    done = _cli(port, ca, "GET", "greeting", password=TOKEN1)
    assert (done.returncode, done.stdout.strip()) == (0, "hello"), done.stderr
    assert "NOAUTH" in _cli(port, ca, "GET", "greeting").stdout  # no password
    wrong = _cli(port, ca, "GET", "greeting", password=TOKEN2)
    assert "WRONGPASS" in wrong.stdout + wrong.stderr
    plain = _cli(port, ca, "PING", password=TOKEN1, tls=False)  # plain text on a TLS-only endpoint
    assert "PONG" not in plain.stdout

    for target in (port, *_member_ports(ec, tok).values()):  # required: no plain text anywhere
        with pytest.raises(redis.ConnectionError):
            redis.Redis(host=ADDRESS, port=target, socket_timeout=2, retry=Retry(NoBackoff(), 0)).ping()
    with pytest.raises(redis.AuthenticationError):
        _tls(port, ca, password=TOKEN2).ping()
    with pytest.raises(redis.AuthenticationError):
        _tls(port, ca).get("greeting")  # no password: NOAUTH

    restricted: list[tuple[Any, ...]] = [
        ("CONFIG", "GET", "maxmemory"),
        ("CONFIG", "SET", "maxmemory", "1"),
        ("SHUTDOWN",),
        ("REPLICAOF", "NO", "ONE"),
        ("SLAVEOF", "NO", "ONE"),
        ("DEBUG", "SLEEP", "0"),
        ("MODULE", "LIST"),
        ("SAVE",),
        ("BGSAVE",),
        ("BGREWRITEAOF",),
        ("ACL", "SETUSER", "intruder", "on", "nopass", "+@all"),
        ("ACL", "LIST"),
        ("ACL", "USERS"),
        ("MONITOR",),
        ("FAILOVER",),
    ]
    for command in restricted:
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.execute_command(*command)
    assert client.execute_command("ACL", "WHOAMI") == "default"
    # The control plane's own users are not the application's to log in as.
    for internal in ("cachefleet-admin", "cachefleet-repl", "cachefleet-sentinel", "cachefleet-check"):
        with pytest.raises(redis.AuthenticationError):
            _tls(port, ca, username=internal, password=TOKEN1).ping()
    client.close()


def test_token_rotation_under_a_client_loop_then_set_refuses_the_old_token(ec: Any, tok: str, ca: str) -> None:
    port = _primary_endpoint(ec, tok)
    before = _group(ec, tok)["AuthTokenLastModifiedDate"]
    loop = Loop(port, ca, TOKEN1)
    loop.start()
    try:
        time.sleep(0.3)
        answer = ec.modify_replication_group(
            ReplicationGroupId=tok, AuthToken=TOKEN2, AuthTokenUpdateStrategy="ROTATE", ApplyImmediately=True
        )["ReplicationGroup"]
        assert answer["Status"] == "modifying"
        assert answer["PendingModifiedValues"] == {"AuthTokenStatus": "ROTATING"}
        _available(ec, tok)
        for node_port in (port, *_member_ports(ec, tok).values()):
            assert _accepted(node_port, ca, password=TOKEN1)
            assert _accepted(node_port, ca, password=TOKEN2)
        loop.token = TOKEN2  # the clients move over while both are valid
        time.sleep(0.3)
        answer = ec.modify_replication_group(
            ReplicationGroupId=tok, AuthToken=TOKEN2, AuthTokenUpdateStrategy="SET", ApplyImmediately=True
        )["ReplicationGroup"]
        assert answer["PendingModifiedValues"] == {"AuthTokenStatus": "SETTING"}
        group = _available(ec, tok)
        time.sleep(0.3)
    finally:
        loop.finish()
    assert loop.errors == []
    assert loop.done > 100
    assert loop.reconnects > 20
    for node_port in (port, *_member_ports(ec, tok).values()):
        assert not _accepted(node_port, ca, password=TOKEN1)
        assert _accepted(node_port, ca, password=TOKEN2)
    assert group["AuthTokenLastModifiedDate"] > before
    assert group["AuthTokenEnabled"] is True


def test_acls_kept_through_a_failover(ec: Any, tok: str, ca: str) -> None:
    old = _primary_member(ec, tok)
    ec.test_failover(ReplicationGroupId=tok, NodeGroupId="0001")
    wait_until(lambda: _primary_member(ec, tok) != old, 30, interval=0.2, what="a new primary")
    new = _primary_member(ec, tok)
    node = _member_ports(ec, tok)[new]
    assert not _accepted(node, ca, password=TOKEN1)
    endpoint = _primary_endpoint(ec, tok)
    wait_until(
        lambda: _works(lambda: _on(endpoint, ca, lambda c: c.set("after", "failover"), password=TOKEN2)),
        15,
        what="writes",
    )
    assert _on(node, ca, lambda c: c.get("after"), password=TOKEN2) == "failover"
    with pytest.raises(redis.exceptions.NoPermissionError):
        _on(node, ca, lambda c: c.config_get("maxmemory"), password=TOKEN2)
    _available(ec, tok)


def test_acls_kept_through_a_node_replacement_and_on_a_replica_added(
    server: ServerProcess, ec: Any, tok: str, ca: str
) -> None:
    primary = _primary_member(ec, tok)
    lost = next(m for m in _member_ports(ec, tok) if m != primary)
    port = _member_ports(ec, tok)[lost]
    # Its directory, config and certificate gone, then the node: in this order, so that the exit
    # (which wakes the group at once) cannot restart it in the directory before it is removed.
    pid = server.member_pids()[f"{lost}/0001"]
    shutil.rmtree(server.data_dir / "nodes" / lost)
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: _works(lambda: _accepted(port, ca, password=TOKEN2)), 30, interval=0.2, what="the replacement")
    assert not _accepted(port, ca, password=TOKEN1)
    _available(ec, tok)

    ec.increase_replica_count(ReplicationGroupId=tok, NewReplicaCount=3, ApplyImmediately=True)
    _available(ec, tok)
    added = max(_member_ports(ec, tok))
    added_port = _member_ports(ec, tok)[added]
    assert _accepted(added_port, ca, password=TOKEN2)
    assert not _accepted(added_port, ca, password=TOKEN1)
    assert _tls(added_port, ca, password=TOKEN2).get("after") == "failover"  # synced over TLS


# -- RBAC --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rbac(ec: Any) -> str:
    ec.create_user(UserId="app", UserName="app", Engine="redis", AccessString="on ~app:* &* +@all", Passwords=[APP1])
    ec.create_user(
        UserId="locked", UserName="default", Engine="redis", AccessString="off -@all", NoPasswordRequired=True
    )
    ec.create_user_group(UserGroupId="shop", Engine="redis", UserIds=["locked", "app"])
    ec.create_replication_group(
        ReplicationGroupId="rbac",
        ReplicationGroupDescription="TLS and RBAC",
        CacheNodeType="cache.t4g.micro",
        NumCacheClusters=2,
        TransitEncryptionEnabled=True,
        UserGroupIds=["shop"],
    )
    _available(ec, "rbac")
    return "rbac"


def _user_status(ec: Any, user_id: str) -> str:
    return str(ec.describe_users(UserId=user_id)["Users"][0]["Status"])


def _user_group(ec: Any, group_id: str) -> dict[str, Any]:
    return dict(ec.describe_user_groups(UserGroupId=group_id)["UserGroups"][0])


def test_users_of_the_user_group_on_every_node(ec: Any, rbac: str, ca: str) -> None:
    group = _group(ec, rbac)
    assert group["UserGroupIds"] == ["shop"]
    assert group["AuthTokenEnabled"] is False
    assert _user_group(ec, "shop")["ReplicationGroups"] == ["rbac"]
    port = _primary_endpoint(ec, rbac)
    app = _tls(port, ca, username="app", password=APP1)
    assert app.set("app:1", "x")
    with pytest.raises(redis.exceptions.NoPermissionError):
        app.set("other:1", "x")  # outside its key pattern
    with pytest.raises(redis.exceptions.NoPermissionError):
        app.config_get("maxmemory")  # +@all never grants a restricted command
    with pytest.raises(redis.AuthenticationError):
        _tls(port, ca).get("app:1")  # the group's default user is off
    with pytest.raises(redis.AuthenticationError):
        _tls(port, ca, username="app", password=APP2).ping()
    done = _cli(port, ca, "--user", "app", "GET", "app:1", password=APP1)
    assert done.stdout.strip() == "x", done.stderr
    app.close()
    code = _error(ec.delete_user_group, UserGroupId="shop")
    assert code == ("InvalidUserGroupState", 400)


def test_a_user_and_a_user_group_change_reach_the_nodes_before_active(ec: Any, rbac: str, ca: str) -> None:
    port = _primary_endpoint(ec, rbac)
    kept = _tls(port, ca, username="app", password=APP1)
    assert kept.ping()
    assert ec.modify_user(UserId="app", Passwords=[APP2])["Status"] == "modifying"
    wait_until(lambda: _user_status(ec, "app") == "active", 20, interval=0.1, what="the user active")
    for node_port in (port, *_member_ports(ec, rbac).values()):  # active means every node has it
        assert not _accepted(node_port, ca, username="app", password=APP1)
        assert _accepted(node_port, ca, username="app", password=APP2)
    assert kept.get("app:1") == "x"  # an authenticated connection stays open
    kept.close()

    ec.create_user(UserId="reader", UserName="reader", Engine="redis", AccessString="on ~* +@read", Passwords=[READER])
    answer = ec.modify_user_group(UserGroupId="shop", UserIdsToAdd=["reader"])
    assert answer["Status"] == "modifying"
    wait_until(lambda: _user_group(ec, "shop")["Status"] == "active", 20, interval=0.1, what="the group active")
    for node_port in _member_ports(ec, rbac).values():
        reader = _tls(node_port, ca, username="reader", password=READER)
        assert reader.get("app:1") == "x"
        with pytest.raises(redis.exceptions.NoPermissionError):
            reader.set("app:1", "y")
        reader.close()


def test_a_group_restored_from_a_snapshot_has_its_users_from_the_start(ec: Any, rbac: str, ca: str) -> None:
    ec.create_snapshot(ReplicationGroupId=rbac, SnapshotName="rbac-saved")
    wait_until(
        lambda: ec.describe_snapshots(SnapshotName="rbac-saved")["Snapshots"][0]["SnapshotStatus"] == "available",
        30,
        interval=0.2,
        what="the snapshot",
    )
    ec.create_replication_group(
        ReplicationGroupId="restored",
        ReplicationGroupDescription="restored with TLS and RBAC",
        SnapshotName="rbac-saved",
        NumCacheClusters=2,
        TransitEncryptionEnabled=True,
        UserGroupIds=["shop"],
    )
    _available(ec, "restored")
    for port in (_primary_endpoint(ec, "restored"), *_member_ports(ec, "restored").values()):
        app = _tls(port, ca, username="app", password=APP2)
        assert app.get("app:1") == "x"  # the data, and the users, on every node
        app.close()
        with pytest.raises(redis.AuthenticationError):
            _tls(port, ca).get("app:1")


def test_a_token_group_moves_to_rbac_with_delete(ec: Any, tok: str, rbac: str, ca: str) -> None:
    answer = ec.modify_replication_group(
        ReplicationGroupId=tok, UserGroupIdsToAdd=["shop"], AuthTokenUpdateStrategy="DELETE", ApplyImmediately=True
    )["ReplicationGroup"]
    assert answer["PendingModifiedValues"]["UserGroups"] == {"UserGroupIdsToAdd": ["shop"], "UserGroupIdsToRemove": []}
    group = _available(ec, tok)
    assert (group["UserGroupIds"], group["AuthTokenEnabled"]) == (["shop"], False)
    port = _primary_endpoint(ec, tok)
    assert not _accepted(port, ca, password=TOKEN2)
    assert _accepted(port, ca, username="app", password=APP2)
    assert sorted(_user_group(ec, "shop")["ReplicationGroups"]) == ["rbac", "restored", "tok"]


# -- a standalone TLS cluster ------------------------------------------------------------------


def test_a_standalone_cluster_with_tls_and_a_rotated_token(ec: Any, ca: str) -> None:
    ec.create_cache_cluster(
        CacheClusterId="solo", Engine="redis", CacheNodeType="cache.t4g.micro", TransitEncryptionEnabled=True,
        AuthToken=SOLO1,
    )  # fmt: skip
    ec.get_waiter("cache_cluster_available").wait(CacheClusterId="solo", WaiterConfig=WAIT)
    (cluster,) = ec.describe_cache_clusters(CacheClusterId="solo", ShowCacheNodeInfo=True)["CacheClusters"]
    assert (cluster["TransitEncryptionEnabled"], cluster["AuthTokenEnabled"]) == (True, True)
    port = int(cluster["CacheNodes"][0]["Endpoint"]["Port"])
    assert _accepted(port, ca, password=SOLO1)
    answer = ec.modify_cache_cluster(CacheClusterId="solo", AuthToken=SOLO2, AuthTokenUpdateStrategy="ROTATE")
    assert answer["CacheCluster"]["PendingModifiedValues"] == {"AuthTokenStatus": "ROTATING"}
    wait_until(lambda: _accepted(port, ca, password=SOLO2), 20, interval=0.1, what="the new token")
    assert _accepted(port, ca, password=SOLO1)
    # The node takes the new token a pass before the cluster records it: as on AWS, the next change
    # waits for the cluster to be available again (it was refused as modifying in a parallel run).
    ec.get_waiter("cache_cluster_available").wait(CacheClusterId="solo", WaiterConfig=WAIT)
    ec.modify_cache_cluster(CacheClusterId="solo", AuthToken=SOLO2, AuthTokenUpdateStrategy="SET")
    wait_until(lambda: not _accepted(port, ca, password=SOLO1), 20, interval=0.1, what="the old token refused")
    wait_until(
        lambda: not ec.describe_cache_clusters(CacheClusterId="solo")["CacheClusters"][0]["PendingModifiedValues"],
        20,
        what="nothing pending",
    )


# -- every refusal with AWS's code, nothing changed --------------------------------------------


def test_every_rule_answered_with_awss_code(ec: Any, tok: str, rbac: str) -> None:
    ec.create_replication_group(
        ReplicationGroupId="open", ReplicationGroupDescription="no TLS", CacheNodeType="cache.t4g.micro"
    )
    ec.create_user_group(UserGroupId="other", Engine="redis", UserIds=["locked"])
    _available(ec, "open")
    base = {"ReplicationGroupDescription": "x", "CacheNodeType": "cache.t4g.micro"}
    tls = {**base, "TransitEncryptionEnabled": True}
    preferred = {**tls, "TransitEncryptionMode": "preferred"}
    combination, value = ("InvalidParameterCombination", 400), ("InvalidParameterValue", 400)
    not_found = ("UserGroupNotFound", 404)
    creates: list[tuple[dict[str, Any], tuple[str, int]]] = [
        ({**base, "AuthToken": TOKEN3}, combination),  # a token needs TLS
        ({**preferred, "AuthToken": TOKEN3}, combination),  # and TLS required
        ({**tls, "AuthToken": "short-token"}, value),  # 16-128 characters
        ({**tls, "AuthToken": "x" * 129}, value),
        ({**tls, "AuthToken": TOKEN3 + "@"}, value),
        ({**tls, "AuthToken": TOKEN3 + "*"}, value),  # not one of the create-time specials
        ({**tls, "AuthToken": TOKEN3 + " x"}, value),
        ({**base, "TransitEncryptionMode": "required"}, combination),  # a mode needs TLS enabled
        ({**tls, "TransitEncryptionMode": "sometimes"}, value),
        ({**tls, "UserGroupIds": ["shop"], "AuthToken": TOKEN3}, combination),  # one or the other
        ({**tls, "UserGroupIds": ["shop", "other"]}, value),  # one user group
        ({**tls, "UserGroupIds": ["nope"]}, not_found),
        ({**base, "UserGroupIds": ["shop"]}, combination),  # RBAC needs TLS
        ({**preferred, "UserGroupIds": ["shop"]}, combination),  # required
    ]
    modifies: list[tuple[str, dict[str, Any], tuple[str, int]]] = [
        ("open", {"AuthToken": TOKEN3}, combination),
        ("open", {"TransitEncryptionEnabled": True}, combination),  # preferred first
        ("open", {"TransitEncryptionMode": "required"}, combination),
        ("rbac", {"AuthToken": TOKEN3}, combination),  # a user group, no token
        ("rbac", {"TransitEncryptionMode": "preferred"}, combination),  # access control keeps its TLS
        ("rbac", {"UserGroupIdsToAdd": ["other"]}, value),  # one user group
        ("rbac", {"UserGroupIdsToRemove": ["other"]}, value),  # not associated
        ("open", {"UserGroupIdsToAdd": ["nope"]}, not_found),
        ("rbac", {"AuthTokenUpdateStrategy": "DELETE"}, value),  # no token to delete
        ("rbac", {"AuthToken": TOKEN3, "AuthTokenUpdateStrategy": "ROLL"}, value),
    ]
    node = {"CacheNodeType": "cache.t4g.micro", "AuthToken": TOKEN3}
    set_solo = {"CacheClusterId": "solo", "AuthToken": TOKEN3, "AuthTokenUpdateStrategy": "SET"}
    clusters: list[tuple[Callable[..., Any], dict[str, Any], tuple[str, int]]] = [
        (ec.modify_cache_cluster, {"CacheClusterId": "tok-001", "AuthToken": TOKEN3}, combination),  # a member
        (ec.modify_cache_cluster, set_solo, value),  # no rotation to end
        (ec.modify_cache_cluster, {"CacheClusterId": "solo", "AuthTokenUpdateStrategy": "DELETE"}, combination),
        (ec.create_cache_cluster, {**node, "CacheClusterId": "mc", "Engine": "memcached"}, combination),
        (ec.create_cache_cluster, {**node, "CacheClusterId": "plain"}, combination),  # no TLS
    ]
    before = ec.describe_replication_groups()["ReplicationGroups"], ec.describe_cache_clusters()["CacheClusters"]
    for params, expected in creates:
        group_id = f"bad-{secrets.token_hex(3)}"
        assert _error(ec.create_replication_group, ReplicationGroupId=group_id, **params) == expected, params
    for group_id, params, expected in modifies:
        assert _error(ec.modify_replication_group, ReplicationGroupId=group_id, **params) == expected, params
    for call, params, expected in clusters:
        assert _error(call, **params) == expected, params
    after = ec.describe_replication_groups()["ReplicationGroups"], ec.describe_cache_clusters()["CacheClusters"]
    assert [g["ReplicationGroupId"] for g in after[0]] == [g["ReplicationGroupId"] for g in before[0]]
    assert [c["CacheClusterId"] for c in after[1]] == [c["CacheClusterId"] for c in before[1]]
    assert _group(ec, "rbac")["UserGroupIds"] == ["shop"]


# -- what the product leaves on disk and on the network ------------------------------------------


def test_no_secret_in_any_file_or_log_and_nothing_listens_elsewhere(server: ServerProcess) -> None:
    # Every file under the data dir (state.db and its WAL, node configs, ACL lines, certificates,
    # Sentinel and HAProxy configs, node logs) and the server's log, which lives there too.
    assert (server.data_dir / "server.log").is_file()
    assert secrets_in_files(server.data_dir, SECRETS) == []
    listening = _listening(server)
    assert len(listening) > 10, listening  # the control plane, nodes, Sentinels, endpoints
    assert {address for address, _ in listening} == {ADDRESS}, listening


def _listening(server: ServerProcess) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN held by the server or one of its processes
    (HAProxy's workers, children of their master, included)."""
    pids = [*server.processes_under_data_dir(), *([server.process.pid] if server.process else [])]
    pids += [child for pid in pids for child in children(pid)]
    inodes: set[str] = set()
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        for fd in fd_dir.iterdir() if fd_dir.exists() else []:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found: set[tuple[str, int]] = set()
    for table, family in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 6)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A: LISTEN
                continue
            address, port = fields[1].split(":")
            found.add((_address(address, family), int(port, 16)))
    return found


def _address(text: str, family: int) -> str:
    if family == 4:
        return ".".join(str(int(text[i : i + 2], 16)) for i in (6, 4, 2, 0))
    return text  # IPv6 listeners would show here as they are: none is expected
