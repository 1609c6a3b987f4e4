"""Pure parts of a Memcached node: its command line, its size from the node type, live parameters,
and the configuration endpoint's framing and config file."""

from __future__ import annotations

from pathlib import Path

import pytest

from cachefleet.engines import config_endpoint as ce
from cachefleet.engines import memcached, nodetypes

DEFAULTS = {"binding_protocol": "auto", "max_item_size": "1048576", "slab_automove": "1"}


def _argv(**changes: object) -> list[str]:
    config = memcached.NodeConfig(port=11211, bind="127.0.0.1", memory_mb=512, threads=2, parameters=DEFAULTS)
    fields = {**config.__dict__, **changes}
    return list(memcached.node_argv("memcached", memcached.NodeConfig(**fields)))  # type: ignore[arg-type]


def _flag(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_threads_memory_and_parameters_on_the_command_line() -> None:
    argv = _argv()
    assert (_flag(argv, "-p"), _flag(argv, "-l"), _flag(argv, "-m"), _flag(argv, "-t")) == (
        "11211",
        "127.0.0.1",
        "512",
        "2",
    )
    assert _flag(argv, "-B") == "auto"
    assert _flag(argv, "-I") == "1048576"
    assert "slab_automove=1" in _flag(argv, "-o")


def test_authentication_replaces_the_protocol_choice() -> None:
    ascii_auth = _argv(auth=memcached.ASCII_AUTH)
    assert "-B" not in ascii_auth  # -Y forces ASCII, -S binary: memcached refuses -B auto with either
    assert _flag(ascii_auth, "-Y") == memcached.AUTH_FILE
    sasl = _argv(auth=memcached.SASL_AUTH)
    assert "-S" in sasl
    assert "-B" not in sasl


def test_tls_adds_the_certificate_options() -> None:
    argv = _argv(tls=("/n/node.crt", "/n/node.key"))
    assert "-Z" in argv
    assert _flag(argv, "-o").endswith(",ssl_chain_cert=/n/node.crt,ssl_key=/n/node.key")


@pytest.mark.parametrize(
    ("node_type", "memory_mb", "threads"),
    [
        ("cache.t4g.micro", 512, 2),
        ("cache.t2.micro", 568, 1),
        ("cache.m5.large", 6533, 2),
        ("cache.m5.xlarge", 13240, 4),
        ("cache.r6g.4xlarge", 108349, 16),
        ("cache.m4.10xlarge", 158351, 40),
    ],
)
def test_node_resources_follow_the_node_type(node_type: str, memory_mb: int, threads: int) -> None:
    assert memcached.node_resources(node_type, {}) == (memory_mb, threads)


def test_connections_overhead_comes_off_the_item_memory() -> None:
    assert memcached.node_resources("cache.t4g.micro", {"memcached_connections_overhead": "100"}) == (412, 2)


def test_every_node_type_has_its_vcpus() -> None:
    assert set(nodetypes.VCPUS) == set(nodetypes.NODE_TYPES)


def test_live_commands_only_for_settings_that_differ() -> None:
    settings = {"slab_automove": "1", "lru_crawler": "yes"}
    assert memcached.live_commands({"slab_automove": "1", "lru_crawler": "1"}, settings) == ()
    assert memcached.live_commands({"slab_automove": "2", "lru_crawler": "0"}, settings) == (
        "slabs automove 2",
        "lru_crawler disable",
    )
    assert memcached.live_commands({"slab_automove": "0"}, {}) == ()  # nothing reported: nothing to compare


def test_sasl_start_script_builds_the_sasldb_then_becomes_memcached() -> None:
    script = memcached.sasl_start_script(["/usr/bin/memcached", "-S", "-p", "1"])
    assert script.startswith("#!/bin/sh\n")
    assert "saslpasswd2 -p -a memcached -c" in script
    assert script.rstrip().endswith("exec /usr/bin/memcached -S -p 1")
    assert memcached.auth_lines([("default", "tok"), ("admin", "pw")]) == "default:tok\nadmin:pw\n"


def test_config_response_matches_the_documented_example() -> None:
    members = [
        ce.Member("myCluster.pc4ldq.0001.use1.cache.amazonaws.com", "10.82.235.120", 11211),
        ce.Member("myCluster.pc4ldq.0002.use1.cache.amazonaws.com", "10.80.249.27", 11211),
    ]
    answer = ce.config_response(12, members)
    assert answer.startswith(b"CONFIG cluster 0 136\r\n12\nmyCluster.pc4ldq.0001.use1.cache.amazonaws.com|")
    assert answer.endswith(b"|10.80.249.27|11211\n\r\nEND\r\n")
    assert ce.parse_config_response(answer) == (12, tuple(members))
    assert ce.config_response(1, []) == b"CONFIG cluster 0 3\r\n1\n\n\r\nEND\r\n"


def test_server_config_round_trips_through_its_file() -> None:
    endpoint = ce.Endpoint(
        "c",
        "127.0.0.1",
        1,
        4,
        (ce.Member("h", "127.0.0.1", 2),),
        tls_cert="/c.crt",
        tls_key="/c.key",
        upstream_ca="/ca.pem",
        auth=ce.Auth(ce.ASCII_AUTH, (("default", "t"),)),
    )
    config = ce.ServerConfig((endpoint,))
    assert ce.ServerConfig.from_json(config.to_json()) == config
    assert ce.argv("/py", Path("/n/endpoint.json")) == ("/py", "-m", ce.MODULE, "/n/endpoint.json")
