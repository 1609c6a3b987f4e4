"""The installation's CA and its leaf certificates: what they name, what they allow, when they renew.

Certificates are checked with ``cryptography`` and with Python's own TLS stack (a handshake over a
socket pair), so "a client verifies the node" is shown, not assumed.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from cachefleet.tls import certs, files

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
NODE = certs.Identity("rg1-001", certs.Role.NODE, ips=("127.0.0.1",), dns_names=("localhost",))


@pytest.fixture(scope="module")
def authority() -> certs.Authority:
    return certs.new_authority("test CA", NOW, 3650 * DAY)


def _pem_files(tmp_path: Path, pem: bytes, authority: certs.Authority) -> tuple[Path, Path]:
    leaf, ca = tmp_path / "leaf.pem", tmp_path / "ca.pem"
    leaf.write_bytes(pem)
    ca.write_bytes(authority.certificate_pem())
    return leaf, ca


def _handshake(server_pem: Path, ca: Path, hostname: str) -> str:
    """A TLS handshake over a socket pair: the client verifies ``hostname`` against the server's
    certificate. Returns the subject CN the client saw; raises ``ssl.SSLError`` when it refuses."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(server_pem)
    client_ctx = ssl.create_default_context(cafile=str(ca))
    left, right = socket.socketpair()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            with server_ctx.wrap_socket(right, server_side=True) as tls:
                tls.recv(1)
        except (ssl.SSLError, OSError) as exc:
            errors.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client_ctx.wrap_socket(left, server_hostname=hostname) as tls:
            peer = tls.getpeercert()
            tls.sendall(b"x")
    finally:
        thread.join(5)
    subject = dict(item for rdn in peer["subject"] for item in rdn)
    return str(subject["commonName"])


def test_the_ca_is_a_p256_ca_that_signs_leaves_only(authority: certs.Authority) -> None:
    cert = authority.certificate
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert (constraints.ca, constraints.path_length) == (True, 0)
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert (usage.key_cert_sign, usage.crl_sign, usage.digital_signature) == (True, True, False)
    assert authority.key.curve.name == "secp256r1"
    assert cert.not_valid_before_utc == NOW - certs.BACKDATE


def test_a_node_certificate_names_its_addresses_and_serves_both_ways(authority: certs.Authority) -> None:
    pem = certs.issue(authority, NODE, NOW, 30 * DAY)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # key first, then the certificate
    cert = certs.certificate_of(pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    usages = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert usages == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert cert.not_valid_after_utc == NOW + 30 * DAY
    assert certs.signed_by(cert, authority)


def test_the_control_plane_certificate_is_a_client_certificate_only(authority: certs.Authority) -> None:
    identity = certs.Identity("control-plane", certs.Role.CONTROL_PLANE)
    cert = certs.certificate_of(certs.issue(authority, identity, NOW, DAY))
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)


def test_a_leaf_never_outlives_the_ca() -> None:
    short = certs.new_authority("short CA", NOW, 10 * DAY)
    cert = certs.certificate_of(certs.issue(short, NODE, NOW, 365 * DAY))
    assert cert.not_valid_after_utc == short.certificate.not_valid_after_utc


def test_python_clients_verify_the_node_by_ip_and_by_name(authority: certs.Authority, tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    live = certs.new_authority("live CA", now, 10 * DAY)
    leaf, ca = _pem_files(tmp_path, certs.issue(live, NODE, now, DAY), live)
    assert _handshake(leaf, ca, "127.0.0.1") == "rg1-001"
    assert _handshake(leaf, ca, "localhost") == "rg1-001"
    with pytest.raises(ssl.SSLCertVerificationError, match="match"):
        _handshake(leaf, ca, "10.0.0.9")
    other = certs.new_authority("another CA", now, 10 * DAY)
    (tmp_path / "other.pem").write_bytes(other.certificate_pem())
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        _handshake(leaf, tmp_path / "other.pem", "127.0.0.1")


def test_identities_refuse_what_cannot_be_a_san() -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        certs.Identity("n", certs.Role.NODE, ips=("example.com",))
    with pytest.raises(ValueError, match="not a DNS name"):
        certs.Identity("n", certs.Role.NODE, dns_names=("bad name",))
    with pytest.raises(ValueError, match="must name at least one address"):
        certs.Identity("n", certs.Role.ENDPOINT)
    with pytest.raises(ValueError, match="aware"):
        certs.issue(certs.new_authority("x", NOW, DAY), NODE, NOW.replace(tzinfo=None), DAY)


def test_an_identity_naming_addresses_puts_ips_and_names_where_clients_check_them() -> None:
    named = certs.Identity.naming("e", certs.Role.ENDPOINT, ["cache.example", "10.0.0.2", "127.0.0.1", "10.0.0.2"])
    assert (named.ips, named.dns_names) == (("10.0.0.2", "127.0.0.1"), ("cache.example",))


@pytest.mark.parametrize(
    ("age", "due"),
    [
        (dt.timedelta(0), None),
        (19 * DAY, None),  # 11 of 30 days left: more than a third
        (21 * DAY, "less than a third"),  # 9 of 30 days left
        (31 * DAY, "expired"),
    ],
)
def test_renewal_is_due_with_less_than_a_third_left(
    authority: certs.Authority, age: dt.timedelta, due: str | None
) -> None:
    pem = certs.issue(authority, NODE, NOW, 30 * DAY)
    reason = certs.renewal_due(pem, NODE, authority, NOW + age - certs.BACKDATE)
    if due is None:
        assert reason is None
    else:
        assert reason is not None
        assert due in reason


def test_short_test_validities_renew_after_two_thirds_too(authority: certs.Authority) -> None:
    # A minute-long certificate is backdated by a tenth of it, not five minutes.
    pem = certs.issue(authority, NODE, NOW, dt.timedelta(seconds=60))
    assert certs.certificate_of(pem).not_valid_before_utc == NOW - dt.timedelta(seconds=6)
    assert certs.renewal_due(pem, NODE, authority, NOW + dt.timedelta(seconds=30)) is None
    assert certs.renewal_due(pem, NODE, authority, NOW + dt.timedelta(seconds=45)) is not None


def test_renewal_is_due_when_the_certificate_no_longer_fits(authority: certs.Authority) -> None:
    pem = certs.issue(authority, NODE, NOW, 30 * DAY)
    moved = certs.Identity("rg1-001", certs.Role.NODE, ips=("127.0.0.2",), dns_names=("localhost",))
    assert certs.renewal_due(pem, moved, authority, NOW) == "it names other addresses"
    as_endpoint = certs.Identity("rg1-001", certs.Role.CONTROL_PLANE)
    assert certs.renewal_due(certs.issue(authority, as_endpoint, NOW, DAY), NODE, authority, NOW) is not None
    foreign = certs.new_authority("foreign", NOW, DAY)
    assert certs.renewal_due(certs.issue(foreign, NODE, NOW, DAY), NODE, authority, NOW) == (
        "not signed by the installation's CA"
    )
    assert certs.renewal_due(None, NODE, authority, NOW) == "no certificate yet"
    assert certs.renewal_due(b"garbage", NODE, authority, NOW) == "the certificate file cannot be read"
    # The same addresses given in another order and case are the same identity.
    same = certs.Identity("rg1-001", certs.Role.NODE, ips=("127.0.0.1",), dns_names=("LOCALHOST",))
    assert certs.renewal_due(pem, same, authority, NOW) is None


def test_the_installation_ca_files_and_modes(tmp_path: Path) -> None:
    made = files.ensure_authority(tmp_path, NOW, files.Validity())
    assert stat.S_IMODE(os.stat(files.ca_path(tmp_path)).st_mode) == 0o644
    assert stat.S_IMODE(os.stat(files.ca_key_path(tmp_path)).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / files.TLS_DIR).st_mode) == 0o700
    assert files.ca_path(tmp_path) == tmp_path / "ca.pem"
    assert b"PRIVATE KEY" not in files.ca_path(tmp_path).read_bytes()
    # A second call finds the same CA rather than making another.
    again = files.ensure_authority(tmp_path, NOW + DAY, files.Validity())
    assert again.certificate == made.certificate
    # Half a CA is an installation problem, not a reason to start a new one.
    files.ca_key_path(tmp_path).unlink()
    with pytest.raises(FileNotFoundError):
        files.ensure_authority(tmp_path, NOW, files.Validity())


def test_renew_writes_a_new_file_only_when_due(tmp_path: Path) -> None:
    validity = files.Validity(leaf=30 * DAY)
    authority = files.ensure_authority(tmp_path, NOW, validity)
    leaf = tmp_path / "node.pem"
    assert files.renew(leaf, NODE, authority, NOW, validity) == "no certificate yet"
    assert stat.S_IMODE(os.stat(leaf).st_mode) == 0o600
    first = leaf.read_bytes()
    assert files.renew(leaf, NODE, authority, NOW + 10 * DAY, validity) is None
    assert leaf.read_bytes() == first
    reason = files.renew(leaf, NODE, authority, NOW + 25 * DAY, validity)
    assert reason is not None
    assert "less than a third" in reason
    renewed = leaf.read_bytes()
    assert renewed != first
    assert certs.certificate_of(renewed).not_valid_after_utc == NOW + 55 * DAY
    assert not list(tmp_path.glob(".*.tmp"))


def test_validity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        files.Validity(leaf=dt.timedelta(0))
