"""RemoteHost without an agent: its cache of the agent's events, its error mapping, and that a pass's
lookups make no request per node (httpx's MockTransport stands in for the agent)."""

from __future__ import annotations

import hashlib
import json
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest

from cachefleet.hosts import agent_api as api
from cachefleet.hosts.agent_api import ErrorCode, Event, EventKind
from cachefleet.hosts.base import PortRequest, ProcessSpec, RestartPolicy
from cachefleet.hosts.remote import NodeCache, RemoteHost
from cachefleet.model.errors import Fatal, InsufficientCacheClusterCapacity, Retry
from cachefleet.model.nodes import node_key

A = node_key("orders-001", "0001")
B = node_key("orders-002", "0001")


def snapshot(seq: int = 10, epoch: str = "e1") -> dict[str, Any]:
    return {
        "epoch": epoch,
        "seq": seq,
        "nodes": [
            {"cluster": A.cluster_id, "node": A.node_id, "ports": {"port": 31001}, "pid": 100},
            {"cluster": B.cluster_id, "node": B.node_id, "ports": {"port": 31002}, "pid": None},
        ],
    }


def event(seq: int, kind: str, key: Any = A, **fields: Any) -> Event:
    return Event(seq, kind, key, 0.0, fields)


def test_cache_follows_events_in_order() -> None:
    cache = NodeCache()
    cache.load(snapshot())
    cache.apply(event(11, EventKind.EXITED, pid=100, expected=False))
    assert cache.get(A).pid is None  # type: ignore[union-attr]
    cache.apply(event(12, EventKind.RESTARTED, pid=101))
    cache.apply(event(13, EventKind.PORTS, B, ports={"reader": 31003}))
    assert cache.get(A).pid == 101  # type: ignore[union-attr]
    assert cache.get(B).ports == {"port": 31002, "reader": 31003}  # type: ignore[union-attr]
    cache.apply(event(14, EventKind.REMOVED, B))
    assert cache.get(B) is None
    assert cache.position() == ("e1", 14)


def test_cache_ignores_events_its_own_later_answer_accounts_for() -> None:
    cache = NodeCache()
    cache.load(snapshot())
    # This driver stopped A; the agent answered at seq 15. An older event arriving afterwards (the
    # node's restart at seq 12) must not bring the PID back.
    cache.note(A, 15, lambda e: setattr(e, "pid", None))
    cache.apply(event(12, EventKind.RESTARTED, pid=101))
    assert cache.get(A).pid is None  # type: ignore[union-attr]
    cache.apply(event(16, EventKind.STARTED, pid=102))
    assert cache.get(A).pid == 102  # type: ignore[union-attr]


def test_cache_does_not_resurrect_a_removed_node() -> None:
    cache = NodeCache()
    cache.load(snapshot())
    cache.forget(A, 20)
    cache.apply(event(19, EventKind.STARTED, pid=103))
    assert cache.get(A) is None
    cache.apply(event(21, EventKind.PORTS, ports={"port": 31009}))
    assert cache.get(A) is not None


def test_files_event_drops_cached_text() -> None:
    cache = NodeCache()
    cache.load(snapshot())
    cache.remember_file(A, "parameters.json", "{}")
    cache.apply(event(11, EventKind.FILES, names=["parameters.json"]))
    assert "parameters.json" not in cache.get(A).files  # type: ignore[union-attr]


class FakeAgent:
    """Answers like an agent, counting requests by path."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.answers: dict[tuple[str, str], httpx.Response] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        key = (request.method, request.url.path)
        if key in self.answers:
            return self.answers[key]
        if key == ("GET", "/v1/nodes"):
            return httpx.Response(200, json=snapshot())
        if key == ("GET", "/v1/info"):
            info = {"nodes_root": "/srv/agent/nodes", "address": "10.0.0.11", "zone": "us-east-1b", "host_id": "host-1"}
            return httpx.Response(200, json=info)
        return httpx.Response(404, json=api.error_body(ErrorCode.NOT_FOUND, "no route"))


def remote(agent: FakeAgent, **options: Any) -> RemoteHost:
    # No follower thread: these tests move the cache by hand (``invalidate``) and count requests.
    transport = httpx.MockTransport(agent)
    return RemoteHost(
        "https://10.0.0.11:7443", ssl.create_default_context(), follow_events=False, transport=transport, **options
    )


def test_a_pass_of_lookups_costs_one_request_not_one_per_node() -> None:
    agent = FakeAgent()
    host = remote(agent)
    for _ in range(3):
        assert host.pid(A) == 100
        assert host.pid(B) is None
        assert host.port_of(A) == 31001
        assert host.nodes() == [A, B]
    assert agent.requests == [("GET", "/v1/nodes")]
    host.cache.invalidate()  # the follower lost the agent: the next lookup reads again
    assert host.pid(A) == 100
    assert agent.requests.count(("GET", "/v1/nodes")) == 2


def test_the_hosts_identity_and_node_directories_come_from_its_info_once() -> None:
    agent = FakeAgent()
    host = remote(agent)
    assert (host.address, host.zone, host.host_id) == ("10.0.0.11", "us-east-1b", "host-1")
    assert host.node_dir(A) == Path("/srv/agent/nodes/orders-001/0001")
    with pytest.raises(ValueError, match="invalid name"):
        host.node_dir(node_key("../etc", "0001"))
    assert agent.requests == [("GET", "/v1/info")]


def test_cached_files_are_read_once_and_written_through() -> None:
    agent = FakeAgent()
    path = api.node_path(A, "files", "parameters.json")
    agent.answers[("GET", path)] = httpx.Response(200, text='{"a": 1}')
    started = {"pid": 100, "seq": 11, "epoch": "e1"}
    agent.answers[("POST", api.node_path(A, "start"))] = httpx.Response(200, json=started)
    host = remote(agent, cached_files=("parameters.json",))
    assert host.read_file(A, "parameters.json") == '{"a": 1}'
    assert host.read_file(A, "parameters.json") == '{"a": 1}'
    assert agent.requests.count(("GET", path)) == 1
    host.start(A, ProcessSpec(argv=("redis-server",), files={"parameters.json": '{"a": 2}'}))
    assert host.read_file(A, "parameters.json") == '{"a": 2}'
    assert agent.requests.count(("GET", path)) == 1
    # A file not named as cached (Sentinel rewrites its own config) is read every time.
    conf = api.node_path(A, "files", "sentinel.conf")
    agent.answers[("GET", conf)] = httpx.Response(200, text="port 1")
    host.read_file(A, "sentinel.conf")
    host.read_file(A, "sentinel.conf")
    assert agent.requests.count(("GET", conf)) == 2


def test_the_spec_goes_over_the_wire_with_its_restart_policy() -> None:
    agent = FakeAgent()
    sent: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/start"):
            sent.append(json.loads(request.content))
            return httpx.Response(200, json={"pid": 7, "seq": 1, "epoch": "e1"})
        return agent(request)

    host = RemoteHost(
        "https://10.0.0.11:7443",
        ssl.create_default_context(),
        follow_events=False,
        transport=httpx.MockTransport(handler),
    )
    policy = RestartPolicy("orders", (("10.0.0.12", 26379),), "10.0.0.11", 2000, password="s3cret", tls=True)
    spec = ProcessSpec(argv=("redis-server", "/x/redis.conf"), files={"redis.conf": "port 1\n"}, restart=policy)
    assert host.start(A, spec) == 7
    assert api.spec_from_json(sent[0]) == spec


@pytest.mark.parametrize(
    ("response", "raised"),
    [
        (httpx.Response(403, json=api.error_body(ErrorCode.FORBIDDEN, "not the control plane")), Fatal),
        (httpx.Response(404, json=api.error_body(ErrorCode.UNKNOWN_VERSION, "v1 only", versions=["v1"])), Fatal),
        (httpx.Response(400, json=api.error_body(ErrorCode.INVALID, "invalid name")), ValueError),
        (
            httpx.Response(409, json=api.error_body(ErrorCode.CAPACITY, "no free port")),
            InsufficientCacheClusterCapacity,
        ),
        (httpx.Response(500, json=api.error_body(ErrorCode.FAILED, "see its log")), Retry),
        (httpx.Response(502, text="bad gateway"), Retry),
    ],
)
def test_agent_errors_map_to_the_control_planes(response: httpx.Response, raised: type[Exception]) -> None:
    agent = FakeAgent()
    agent.answers[("POST", "/v1/ports")] = response
    with pytest.raises(raised):
        remote(agent).allocate_ports([PortRequest(A)])


def test_an_unreachable_agent_is_retry() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    host = RemoteHost(
        "https://10.0.0.11:7443",
        ssl.create_default_context(),
        follow_events=False,
        transport=httpx.MockTransport(refuse),
    )
    with pytest.raises(Retry, match="unreachable"):
        host.pid(A)


def test_a_tls_refusal_is_fatal() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        try:
            raise ssl.SSLCertVerificationError(1, "certificate verify failed: unable to get local issuer certificate")
        except ssl.SSLError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc

    host = RemoteHost(
        "https://10.0.0.11:7443",
        ssl.create_default_context(),
        follow_events=False,
        transport=httpx.MockTransport(refuse),
    )
    with pytest.raises(Fatal, match="the installation's CA did not issue"):
        host.pid(A)


def test_a_corrupted_download_is_retry_and_leaves_nothing(tmp_path: Path) -> None:
    agent = FakeAgent()
    data = b"REDIS0011" + bytes(range(256)) * 64
    honest = api.digest_header(hashlib.sha256(data).hexdigest())
    agent.answers[("GET", api.node_path(A, "files", "dump.rdb"))] = httpx.Response(
        200, content=data[:-1] + b"X", headers={api.DIGEST_HEADER: honest, "content-length": str(len(data))}
    )
    dest = tmp_path / "copy.rdb"
    with pytest.raises(Retry, match="corrupted"):
        remote(agent).fetch_file(A, "dump.rdb", dest)
    assert list(tmp_path.iterdir()) == []


def test_digest_header_round_trip() -> None:
    digest = hashlib.sha256(b"x").hexdigest()
    assert api.digest_from_header(api.digest_header(digest)) == digest
    assert api.digest_from_header("md5=:abc:, sha-256=:" + api.digest_header(digest).split(":")[1] + ":") == digest
    assert api.digest_from_header("sha-256=:not base64!:") is None
    assert api.digest_from_header(None) is None
