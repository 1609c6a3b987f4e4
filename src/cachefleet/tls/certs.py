"""Certificates of one installation: its CA, the leaf certificates it issues, and when to renew them.

Pure: every function takes the time it should take for "now" and returns bytes or values; nothing
here reads or writes a file (``tls.files`` does). Keys are EC P-256 (small, fast handshakes; what
Redis, HAProxy and every client we test accept).

A leaf's PEM holds its private key and then its certificate, in one file: Redis's ``tls-cert-file``
and ``tls-key-file`` may name the same file (OpenSSL picks the block it needs), so one rename
replaces both at once and a reload never sees a new certificate with an old key.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Issued a little in the past, so a peer whose clock is slightly behind ours accepts a fresh one; a
# tenth of the validity at most, so that short test validities are not mostly backdating.
BACKDATE = dt.timedelta(minutes=5)
# Renew once less than this part of a certificate's validity remains.
RENEW_FRACTION = 1 / 3
_DNS_NAME = re.compile(r"(?=.{1,253}$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(?:\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*")


# The control plane's certificate names it so (client authentication only): what host agents accept.
CONTROL_PLANE_NAME = "cachefleet control plane"


class Role(StrEnum):
    """What a certificate is for; it decides the extended key usages."""

    NODE = "node"  # redis-server: serves clients, and is a client of its primary (replication)
    SENTINEL = "sentinel"  # serves the control plane, and connects to nodes and to its peers
    ENDPOINT = "endpoint"  # a proxy that terminates TLS, and re-encrypts towards the nodes
    AGENT = "agent"  # a host agent: serves the control plane, and calls it back
    CONTROL_PLANE = "control-plane"  # the control plane's identity towards nodes and agents (client only)


# Certificates used both ways (replication, Sentinel links, agents) carry both usages.
_USAGES: dict[Role, tuple[x509.ObjectIdentifier, ...]] = {
    Role.NODE: (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH),
    Role.SENTINEL: (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH),
    Role.ENDPOINT: (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH),
    Role.AGENT: (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH),
    Role.CONTROL_PLANE: (ExtendedKeyUsageOID.CLIENT_AUTH,),
}


@dataclass(frozen=True)
class Identity:
    """Who a leaf certificate names: a common name, and the addresses clients are given for it.

    ``ips`` and ``dns_names`` become the subject alternative names that clients check the peer
    against (a client connecting to ``127.0.0.1`` needs an IP SAN of ``127.0.0.1``; one given a
    host name needs that name as a DNS SAN). A server role needs at least one of them.
    """

    common_name: str
    role: Role
    ips: tuple[str, ...] = ()
    dns_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.common_name or len(self.common_name) > 64:
            raise ValueError(f"a common name has 1-64 characters: {self.common_name!r}")
        for ip in self.ips:
            ipaddress.ip_address(ip)  # raises ValueError for a non-address
        for name in self.dns_names:
            if not _DNS_NAME.fullmatch(name):
                raise ValueError(f"not a DNS name: {name!r}")
        if self.role is not Role.CONTROL_PLANE and not (self.ips or self.dns_names):
            raise ValueError(f"a {self.role} certificate must name at least one address")

    @classmethod
    def naming(cls, common_name: str, role: Role, addresses: Iterable[str]) -> Identity:
        """An identity naming each address the way clients check it: an IP address as an IP SAN,
        anything else as a DNS SAN."""
        ordered = sorted(set(addresses))
        ips = tuple(a for a in ordered if _is_ip(a))
        names = tuple(a for a in ordered if not _is_ip(a))
        return cls(common_name, role, ips=ips, dns_names=names)

    def alternative_names(self) -> frozenset[str]:
        """The SANs as comparable text (``ip:...``, ``dns:...``), for ``renewal_due``."""
        return frozenset(
            [f"ip:{ipaddress.ip_address(ip)}" for ip in self.ips] + [f"dns:{n.lower()}" for n in self.dns_names]
        )


# The control plane's identity towards nodes and agents (client authentication only): host agents
# obey only a certificate that names it and has exactly this role's usages.
CONTROL_PLANE = Identity("cachefleet control plane", Role.CONTROL_PLANE)


def usages(role: Role) -> frozenset[x509.ObjectIdentifier]:
    """The extended key usages a certificate of ``role`` carries."""
    return frozenset(_USAGES[role])


@dataclass(frozen=True)
class Authority:
    """The installation's CA: its certificate and its private key."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return _key_pem(self.key)


def new_authority(name: str, now: dt.datetime, validity: dt.timedelta) -> Authority:
    """A self-signed CA named ``name``, valid from ``now`` (back-dated a little) for ``validity``."""
    _check_time(now)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - backdate(validity))
        .not_valid_after(now + validity)
        # path_length 0: the CA signs leaves only, never another CA.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(certificate, key)


def load_authority(certificate_pem: bytes, key_pem: bytes) -> Authority:
    """The CA from its PEM files; raises ``ValueError`` when they do not belong together."""
    certificate = x509.load_pem_x509_certificate(certificate_pem)
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key is not an EC key")
    if certificate.public_key() != key.public_key():
        raise ValueError("the CA key does not match the CA certificate")
    return Authority(certificate, key)


def issue(authority: Authority, identity: Identity, now: dt.datetime, validity: dt.timedelta) -> bytes:
    """A new key and a certificate for ``identity`` signed by ``authority``, as one PEM (key first).

    The certificate never outlives the CA: a longer ``validity`` is cut at the CA's own end.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = _certify(authority, key.public_key(), identity, now, validity)
    return _key_pem(key) + certificate.public_bytes(serialization.Encoding.PEM)


def sign_request(authority: Authority, request_pem: bytes, identity: Identity, now: dt.datetime,
                 validity: dt.timedelta) -> bytes:  # fmt: skip
    """A certificate for the key of a signing request (made where the key stays: a host agent's, by
    ``cachefleet host add``), naming ``identity``, not what the request asks for. The request's own
    signature must hold (its maker has the key); ``ValueError`` otherwise."""
    request = x509.load_pem_x509_csr(request_pem)
    if not request.is_signature_valid:
        raise ValueError("the signing request's signature does not verify")
    public = request.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise ValueError("the signing request's key is not an EC key")
    return _certify(authority, public, identity, now, validity).public_bytes(serialization.Encoding.PEM)


def _certify(
    authority: Authority,
    public: ec.EllipticCurvePublicKey,
    identity: Identity,
    now: dt.datetime,
    validity: dt.timedelta,
) -> x509.Certificate:
    _check_time(now)
    ca_public = authority.key.public_key()
    names: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in identity.ips]
    names += [x509.DNSName(name) for name in identity.dns_names]
    not_after = min(now + validity, authority.certificate.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity.common_name)]))
        .issuer_name(authority.certificate.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - backdate(validity))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(_USAGES[identity.role])), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_public), critical=False)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(authority.key, hashes.SHA256())


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """A CA signs certificates (and CRLs); a leaf signs handshakes (ECDHE with an ECDSA key)."""
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def backdate(validity: dt.timedelta) -> dt.timedelta:
    return min(BACKDATE, validity / 10)


def certificate_of(pem: bytes) -> x509.Certificate:
    """The certificate in a leaf PEM (key + certificate) or in a certificate-only PEM."""
    return x509.load_pem_x509_certificate(_certificate_block(pem))


def renewal_due(pem: bytes | None, identity: Identity, authority: Authority, now: dt.datetime) -> str | None:
    """Why the leaf ``pem`` must be replaced by a new one for ``identity``, or None when it is fine.

    A missing or unreadable file, a certificate the CA did not sign, one naming other addresses or
    another role, and one with less than a third of its validity left are all due. Renewing at a
    third leaves two thirds of a period (four months of a year) to notice a renewal that fails.
    """
    _check_time(now)
    if pem is None:
        return "no certificate yet"
    try:
        certificate = certificate_of(pem)
    except ValueError:
        return "the certificate file cannot be read"
    if not signed_by(certificate, authority):
        return "not signed by the installation's CA"
    if _alternative_names(certificate) != identity.alternative_names():
        return "it names other addresses"
    if _usages(certificate) != frozenset(_USAGES[identity.role]):
        return "it was issued for another role"
    start, end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    if now >= end:
        return "expired"
    if end - now < (end - start) * RENEW_FRACTION:
        return f"expires at {end.isoformat()}, less than a third of its validity left"
    return None


def signed_by(certificate: x509.Certificate, authority: Authority) -> bool:
    if certificate.issuer != authority.certificate.subject:
        return False
    try:
        certificate.verify_directly_issued_by(authority.certificate)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _alternative_names(certificate: x509.Certificate) -> frozenset[str]:
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return frozenset()
    ips = [f"ip:{ip}" for ip in san.get_values_for_type(x509.IPAddress)]
    return frozenset(ips + [f"dns:{n.lower()}" for n in san.get_values_for_type(x509.DNSName)])


def _usages(certificate: x509.Certificate) -> frozenset[x509.ObjectIdentifier]:
    try:
        return frozenset(certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return frozenset()


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


_BEGIN_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"


def _certificate_block(pem: bytes) -> bytes:
    start = pem.find(_BEGIN_CERTIFICATE)
    if start < 0:
        raise ValueError("no certificate in the PEM data")
    return pem[start:]


def _check_time(now: dt.datetime) -> None:
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
