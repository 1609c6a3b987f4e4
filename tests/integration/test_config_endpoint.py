"""The configuration endpoint process in front of three real memcached nodes.

One module-scoped trio of nodes and one endpoint process serve every test here; tests that change
membership or kill a node restore what they changed (or run last in the module).
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from tests.support.memcached import BIND, Processes, accepting, exchange, free_port, reload
from tests.support.server import is_alive, wait_until

from cachefleet.engines import config_endpoint as ce

pytestmark = pytest.mark.integration


@dataclass
class Trio:
    processes: Processes
    ports: list[int]
    config: ce.ServerConfig
    path: Path
    pid: int

    @property
    def endpoint(self) -> ce.Endpoint:
        return self.config.endpoints[0]

    def serve(self, config: ce.ServerConfig) -> None:
        self.config = config
        reload(self.path, config, self.pid)


def _config(port: int) -> bytes:
    return exchange(port, b"config get cluster\r\n")


def _version(port: int) -> int:
    return int(_config(port).split(b"\r\n")[1].split(b"\n")[0])


def _members(ports: list[int]) -> tuple[ce.Member, ...]:
    return tuple(ce.Member(BIND, BIND, p) for p in ports)


@pytest.fixture(scope="module")
def trio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trio]:
    processes = Processes(tmp_path_factory.mktemp("cfg"))
    try:
        ports = [processes.memcached() for _ in range(3)]
        endpoint = ce.Endpoint(name="mc", bind=BIND, port=free_port(), version=1, members=_members(ports))
        config = ce.ServerConfig((endpoint,))
        path, pid = processes.endpoint(config)
        yield Trio(processes, ports, config, path, pid)
    finally:
        processes.stop_all()


def test_config_get_cluster_is_framed_byte_for_byte(trio: Trio) -> None:
    a, b, c = trio.ports
    nodes = f"127.0.0.1|127.0.0.1|{a} 127.0.0.1|127.0.0.1|{b} 127.0.0.1|127.0.0.1|{c}"
    body = f"1\n{nodes}\n".encode()
    expected = b"CONFIG cluster 0 " + str(len(body)).encode() + b"\r\n" + body + b"\r\nEND\r\n"
    assert exchange(trio.endpoint.port, b"config get cluster\r\n") == expected
    # The legacy key answers the same payload as a VALUE.
    legacy = exchange(trio.endpoint.port, b"get AmazonElastiCache:cluster\r\n")
    assert legacy == b"VALUE AmazonElastiCache:cluster 0 " + str(len(body)).encode() + b"\r\n" + body + b"\r\nEND\r\n"


def test_other_commands_reach_a_node_in_order(trio: Trio) -> None:
    request = (
        b"set greeting 0 0 5\r\nhello\r\n"
        b"get greeting\r\n"
        b"config get cluster\r\n"
        b"ms meta 2 T0\r\nhi\r\n"
        b"mg meta v\r\n"
        b"mn\r\n"
    )
    answer = exchange(trio.endpoint.port, request, until=b"MN\r\n")
    config = exchange(trio.endpoint.port, b"config get cluster\r\n")
    assert answer == b"STORED\r\nVALUE greeting 0 5\r\nhello\r\nEND\r\n" + config + b"HD\r\nVA 2\r\nhi\r\nMN\r\n"
    # It really is on a node (each connection may go to another one; exactly one holds it).
    holders = [p for p in trio.ports if b"hello" in exchange(p, b"get greeting\r\n")]
    assert len(holders) == 1


def test_a_value_with_protocol_bytes_inside_is_relayed_whole(trio: Trio) -> None:
    tricky = b"END\r\nMN\r\nVALUE x 0 1\r\n"
    request = b"set tricky 0 0 %d\r\n%s\r\nget tricky\r\nconfig get cluster\r\n" % (len(tricky), tricky)
    config = exchange(trio.endpoint.port, b"config get cluster\r\n")
    answer = exchange(trio.endpoint.port, request, until=config)
    assert answer == b"STORED\r\nVALUE tricky 0 %d\r\n%s\r\nEND\r\n" % (len(tricky), tricky) + config


def test_binary_protocol_is_forwarded_and_answers_config_get(trio: Trio) -> None:
    header = struct.Struct(">BBHBBHIIQ")
    version = header.pack(0x80, 0x0B, 0, 0, 0, 0, 0, 7, 0)
    config_get = header.pack(0x80, 0x60, 7, 0, 0, 0, 7, 8, 0) + b"cluster"
    with socket.create_connection((BIND, trio.endpoint.port), timeout=2) as conn:
        conn.sendall(version + config_get)
        frames = []
        data = b""
        while len(frames) < 2:
            data += conn.recv(65536)
            while len(data) >= 24 and len(data) >= 24 + header.unpack_from(data)[6]:
                size = 24 + header.unpack_from(data)[6]
                frames.append(data[:size])
                data = data[size:]
    (magic, opcode, _, _, _, status, _, opaque, _) = header.unpack_from(frames[0])
    assert (magic, opcode, status, opaque) == (0x81, 0x0B, 0, 7)
    assert frames[0][24:].startswith(b"1.6")  # the node's own version
    (magic, opcode, _, extras, _, status, _, opaque, _) = header.unpack_from(frames[1])
    assert (magic, opcode, status, opaque) == (0x81, 0x60, 0, 8)
    assert frames[1][24 + extras :] == ce.payload(1, _members(trio.ports))


def test_membership_and_version_change_on_reload_without_restart(trio: Trio) -> None:
    extra = trio.processes.memcached()
    before = trio.endpoint
    try:
        trio.serve(
            replace(trio.config, endpoints=(replace(before, version=2, members=_members([*trio.ports, extra])),))
        )
        answer = wait_until(
            lambda: (a := exchange(before.port, b"config get cluster\r\n")).split(b"\r\n")[1].startswith(b"2\n") and a,
            10,
            what="the reloaded config",
        )
        assert f"|{extra}\n".encode() in answer
        assert is_alive(trio.pid)  # the same process, reloaded in place
    finally:
        trio.serve(replace(trio.config, endpoints=(replace(before, version=3),)))
        trio.processes.kill(trio.processes.pid_on(extra))
    assert _version(before.port) == 3


def test_one_process_serves_several_endpoints(trio: Trio) -> None:
    other = ce.Endpoint(name="other", bind=BIND, port=free_port(), version=7, members=_members(trio.ports[:1]))
    first = trio.endpoint
    trio.serve(ce.ServerConfig((first, other)))
    try:
        wait_until(lambda: accepting(other.port), 10, what="the second listener")
        assert (
            exchange(other.port, b"config get cluster\r\n").split(b"\r\n")[1]
            == f"7\n127.0.0.1|127.0.0.1|{trio.ports[0]}\n".encode()
        )
        assert exchange(first.port, b"config get cluster\r\n") == ce.config_response(first.version, first.members)
    finally:
        trio.serve(ce.ServerConfig((first,)))
    wait_until(lambda: not accepting(other.port), 10, what="the second listener to close")


def test_keeps_answering_and_forwarding_with_a_node_killed(trio: Trio) -> None:
    """Last in the module: one node stays dead."""
    trio.processes.kill(trio.processes.pid_on(trio.ports[0]))
    assert not accepting(trio.ports[0])
    assert exchange(trio.endpoint.port, b"config get cluster\r\n").startswith(b"CONFIG cluster 0 ")
    # Every new connection is forwarded to a live node, whichever one is next in turn.
    for i in range(6):
        assert exchange(trio.endpoint.port, b"set k%d 0 0 1\r\nv\r\n" % i, until=b"\r\n") == b"STORED\r\n"
