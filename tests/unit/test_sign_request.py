"""The installation CA signs a host agent's key from its request: the key never leaves the host."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cachefleet.cli.commands_host import agent_key_and_request
from cachefleet.tls import certs

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
YEAR = dt.timedelta(days=365)
AGENT = certs.Identity("cachefleet agent h1", certs.Role.AGENT, ips=("10.0.0.11",))


def test_the_certificate_is_for_the_requests_key_and_names_what_the_ca_decides() -> None:
    authority = certs.new_authority("test CA", NOW, 10 * YEAR)
    _, request_pem = agent_key_and_request("h1", "10.9.9.9")  # the request's own names are not taken
    issued = x509.load_pem_x509_certificate(certs.sign_request(authority, request_pem, AGENT, NOW, YEAR))
    request = x509.load_pem_x509_csr(request_pem)
    assert issued.public_key() == request.public_key()
    issued.verify_directly_issued_by(authority.certificate)
    names = issued.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["10.0.0.11"]
    assert issued.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "cachefleet agent h1"
    assert set(issued.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == {
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    }


def _request(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    built = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .sign(key, hashes.SHA256())
    )
    return built.public_bytes(serialization.Encoding.PEM)


def test_a_request_that_does_not_verify_or_is_not_ec_is_refused() -> None:
    authority = certs.new_authority("test CA", NOW, 10 * YEAR)
    good = x509.load_pem_x509_csr(_request(ec.generate_private_key(ec.SECP256R1())))
    der = bytearray(good.public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01  # the last byte of the signature: the request no longer proves its maker holds the key
    tampered = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(ValueError, match="signature"):
        certs.sign_request(authority, tampered, AGENT, NOW, YEAR)
    with pytest.raises(ValueError, match="not an EC key"):
        certs.sign_request(authority, _request(rsa.generate_private_key(65537, 2048)), AGENT, NOW, YEAR)
