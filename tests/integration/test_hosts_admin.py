"""``cachefleet host add`` against a real server: the agent's bundle issued by the installation's CA.

The CLI runs as a user runs it (a subprocess finding the server through DIR/server.json and
DIR/credentials), signs its calls to the admin API with SigV4, and writes the bundle; the
certificate is then checked against the installation's CA with ``cryptography``, as the agent's TLS
stack checks it. Hosts here get no agent: tests/netns/ run real agents.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from tests.support.server import ServerProcess

pytestmark = pytest.mark.integration


def cli(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cachefleet", "--data-dir", str(server.data_dir), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_host_is_added_with_a_bundle_its_agent_can_serve_and_be_trusted_with(
    server: ServerProcess, tmp_path: Path
) -> None:
    bundle = tmp_path / "agent-h1"
    added = cli(server, "host", "add", "h1", "--address", "10.77.0.11", "--zone", "us-east-1b", "--agent-port",
                "7070", "--bundle-dir", str(bundle))  # fmt: skip
    assert added.returncode == 0, added.stderr
    ca = x509.load_pem_x509_certificate((server.data_dir / "ca.pem").read_bytes())
    assert (bundle / "ca.pem").read_bytes() == (server.data_dir / "ca.pem").read_bytes()
    pem = (bundle / "tls" / "agent.pem").read_bytes()
    assert stat.S_IMODE((bundle / "tls" / "agent.pem").stat().st_mode) == 0o600
    key = serialization.load_pem_private_key(pem, None)
    certificate = x509.load_pem_x509_certificate(pem[pem.index(b"-----BEGIN CERTIFICATE-----") :])
    certificate.verify_directly_issued_by(ca)
    assert certificate.public_key().public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["10.77.0.11"]
    usages = set(certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert usages == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    # What the control plane shows agents: this CA's, client authentication only.
    own = (server.data_dir / "tls" / "control-plane.pem").read_bytes()
    shown = x509.load_pem_x509_certificate(own[own.index(b"-----BEGIN CERTIFICATE-----") :])
    shown.verify_directly_issued_by(ca)
    assert set(shown.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == {
        ExtendedKeyUsageOID.CLIENT_AUTH
    }

    listed: dict[str, Any] = json.loads(cli(server, "host", "list", "--json").stdout)
    assert [(h["id"], h["status"], h["agent_port"]) for h in listed["hosts"]] == [
        ("local", "active", None),
        ("h1", "joining", 7070),
    ]
    # The new host's subnet is a subnet the ElastiCache API knows.
    client = server.client()
    (default,) = client.describe_cache_subnet_groups(CacheSubnetGroupName="default")["CacheSubnetGroups"]
    assert {"SubnetIdentifier": "subnet-us-east-1b", "SubnetAvailabilityZone": {"Name": "us-east-1b"},
            "SupportedNetworkTypes": ["ipv4"]} in default["Subnets"]  # fmt: skip
    client.create_cache_subnet_group(
        CacheSubnetGroupName="agents", CacheSubnetGroupDescription="d", SubnetIds=["subnet-us-east-1b"]
    )
    # Not reachable yet (no agent): it takes no node, and the API says so at once.
    with pytest.raises(client.exceptions.InsufficientCacheClusterCapacityFault):
        client.create_cache_cluster(
            CacheClusterId="c", CacheNodeType="cache.t4g.micro", Engine="memcached", CacheSubnetGroupName="agents"
        )
    removed = cli(server, "host", "remove", "h1")
    assert removed.returncode == 0, removed.stderr


def test_the_admin_api_refuses_what_is_not_the_root_identity(server: ServerProcess) -> None:
    refused = cli(server, "--profile", "nobody", "host", "list")
    assert refused.returncode == 2  # no such profile in DIR/credentials: no server to speak to as that
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(server.endpoint_url + "/admin/v1/hosts", timeout=10)
    assert caught.value.code in (400, 403)
    assert json.loads(caught.value.read())["error"]["code"] in ("MissingAuthenticationToken", "IncompleteSignature")
