"""TLS in the rendered configs of nodes, Sentinels and the endpoint proxy (real processes read them in
tests/integration/test_tls_engines.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cachefleet.engines import haproxy, sentinel
from cachefleet.engines.redis import NodeTls, RedisNodeConfig, render_config
from cachefleet.model.transit import TransitMode

CERT = Path("/data/nodes/rg1-001/0001/tls.pem")
CA = Path("/data/ca.pem")


def _node(port: int, tls: NodeTls | None) -> list[str]:
    config = RedisNodeConfig(
        port=port,
        bind="127.0.0.1",
        data_dir=Path("/data/nodes/rg1-001/0001"),
        maxmemory_bytes=1 << 20,
        admin_user="cachefleet-admin",
        admin_password="pw",
        tls=tls,
    )
    return render_config(config).splitlines()


def test_required_mode_listens_with_tls_only_and_replicates_over_tls() -> None:
    lines = _node(0, NodeTls(21002, TransitMode.REQUIRED, CERT, CA))
    for expected in (
        "port 0",
        "tls-port 21002",
        f'tls-cert-file "{CERT}"',
        f'tls-key-file "{CERT}"',  # the same file: key and certificate in one PEM
        f'tls-ca-cert-file "{CA}"',
        "tls-auth-clients optional",
        "tls-replication yes",
    ):
        assert expected in lines


def test_preferred_mode_keeps_the_plain_port() -> None:
    lines = _node(21001, NodeTls(21002, TransitMode.PREFERRED, CERT, CA))
    assert "port 21001" in lines
    assert "tls-port 21002" in lines
    assert "tls-replication yes" in lines


def test_no_tls_no_tls_lines() -> None:
    assert not [line for line in _node(21001, None) if line.startswith("tls-")]


@pytest.mark.parametrize(
    ("port", "tls", "message"),
    [
        (21001, NodeTls(21002, TransitMode.REQUIRED, CERT, CA), "exactly when TLS is required"),
        (0, NodeTls(21002, TransitMode.PREFERRED, CERT, CA), "exactly when TLS is required"),
        (21002, NodeTls(21002, TransitMode.PREFERRED, CERT, CA), "a port of its own"),
        (0, None, "needs a plain-text port"),
    ],
)
def test_port_combinations_refused(port: int, tls: NodeTls | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _node(port, tls)


def _sentinel(**changes: object) -> list[str]:
    base: dict[str, object] = {
        "port": 26001,
        "bind": "127.0.0.1",
        "data_dir": Path("/data/nodes/rg1-sentinel/0001"),
        "master_name": "rg1",
        "primary": ("127.0.0.1", 21002),
        "quorum": 2,
        "admin_user": "cachefleet-sentinel",
        "admin_password": "node-side-secret",
        "my_id": "a" * 40,
    }
    base.update(changes)
    return sentinel.render_config(sentinel.SentinelConfig(**base)).splitlines()  # type: ignore[arg-type]


def test_sentinel_with_tls_and_a_password() -> None:
    lines = _sentinel(password="sentinel-secret", tls=sentinel.SentinelTls(CERT, CA))
    for expected in (
        "port 0",
        "tls-port 26001",
        "tls-replication yes",  # its links to nodes and peers use TLS
        f'tls-ca-cert-file "{CA}"',
        'requirepass "sentinel-secret"',
        'sentinel sentinel-pass "sentinel-secret"',
        "sentinel auth-user rg1 cachefleet-sentinel",
        'sentinel auth-pass rg1 "node-side-secret"',
        "sentinel monitor rg1 127.0.0.1 21002 2",
    ):
        assert expected in lines


def test_sentinel_without_either_is_as_before() -> None:
    lines = _sentinel()
    assert "port 26001" in lines
    assert not [line for line in lines if line.startswith(("tls-", "requirepass", "sentinel sentinel-pass"))]
    with pytest.raises(ValueError, match="cannot be empty"):
        _sentinel(password="")


def test_reconfig_script_flips_every_primary_backend() -> None:
    script = sentinel.reconfig_script("/usr/bin/python3", Path("/x/admin.sock"), ("be_primary", "be_primary_plain"))
    assert "BACKENDS = ('be_primary', 'be_primary_plain')" in script
    compile(script, "reconfig.py", "exec")
    with pytest.raises(ValueError, match="invalid backend"):
        sentinel.reconfig_script("/usr/bin/python3", Path("/x/admin.sock"), ())


NODES = (("127.0.0.1", 21002), ("127.0.0.1", 21004))


def _endpoint(tls: haproxy.EndpointTls | None) -> haproxy.EndpointConfig:
    return haproxy.EndpointConfig(
        bind="127.0.0.1",
        primary_port=22001,
        reader_port=22002,
        nodes=NODES,
        primary=NODES[0],
        admin_user="cachefleet-check",
        admin_password="check-secret",
        tls=tls,
    )


def test_required_endpoint_passes_tls_through_and_checks_over_tls() -> None:
    cfg = _endpoint(haproxy.EndpointTls(TransitMode.REQUIRED, CA))
    text = haproxy.render_config(cfg)
    lines = text.splitlines()
    assert "    mode tcp" in lines  # TLS end to end: HAProxy never decrypts
    assert " ssl " not in text.replace("tcp-check connect ssl", "")  # no TLS on the data path
    assert lines.count("    tcp-check connect ssl") == 2
    assert all(f"verify required ca-file {CA}" in line for line in lines if "default-server" in line)
    assert "    server n21002 127.0.0.1:21002" in lines
    assert "    server n21004 127.0.0.1:21004 disabled inter 200ms" in lines
    assert haproxy.primary_backends(cfg) == ("be_primary",)
    assert "check-secret" not in text


def test_preferred_endpoint_sniffs_the_first_byte_and_has_plain_backends() -> None:
    cfg = _endpoint(haproxy.EndpointTls(TransitMode.PREFERRED, CA, plain_ports=((21002, 21001), (21004, 21003))))
    lines = haproxy.render_config(cfg).splitlines()
    assert lines.count("    acl tls req.payload(0,1) -m bin 16") == 2
    assert lines.count("    tcp-request content accept if { req.len gt 0 }") == 2
    assert "    use_backend be_primary if tls" in lines
    assert "    default_backend be_primary_plain" in lines
    assert "    use_backend be_reader if tls { nbsrv(be_reader) gt 0 }" in lines
    assert "    use_backend be_reader_plain if { nbsrv(be_reader_plain) gt 0 }" in lines
    # TLS servers are checked over TLS on their TLS port, so that they outlive the plain ports (gone
    # on the way to required); plain servers in plain text on theirs.
    assert "    server n21002 127.0.0.1:21002" in lines
    assert "    server n21004 127.0.0.1:21004 disabled inter 200ms" in lines
    assert "    server n21002 127.0.0.1:21001" in lines
    assert "    server n21004 127.0.0.1:21003 disabled inter 200ms" in lines
    assert lines.count("    tcp-check connect ssl") == 2  # be_primary and be_reader
    assert lines.count("    tcp-check connect") == 2  # their plain twins
    assert sum(f"verify required ca-file {CA}" in line for line in lines if "default-server" in line) == 2
    assert haproxy.primary_backends(cfg) == ("be_primary", "be_primary_plain")


def test_endpoint_tls_combinations_refused() -> None:
    with pytest.raises(ValueError, match="every node needs its plain-text port"):
        haproxy.render_config(_endpoint(haproxy.EndpointTls(TransitMode.PREFERRED, CA, plain_ports=((21002, 1),))))
    with pytest.raises(ValueError, match="preferred only"):
        haproxy.render_config(_endpoint(haproxy.EndpointTls(TransitMode.REQUIRED, CA, plain_ports=((21002, 1),))))
    with pytest.raises(ValueError, match="absolute path"):
        haproxy.render_config(_endpoint(haproxy.EndpointTls(TransitMode.REQUIRED, Path("/a b/ca.pem"))))
