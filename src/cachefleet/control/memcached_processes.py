"""What a Memcached cluster's processes run: its nodes and its configuration endpoint. Pure rendering.

A node's size comes from its node type (item memory and one worker thread per vCPU, as ElastiCache
sizes ``max_cache_memory`` and ``num_threads``) and its flags from the ``memcached1.6`` parameter
group. With ``TransitEncryptionEnabled`` every process speaks TLS with a certificate of the
installation's CA naming the address clients are given. With an ``AuthToken`` every process
requires authentication: memcached's ASCII authentication, or SASL PLAIN over the binary protocol
when the parameter group's ``binding_protocol`` is ``binary`` (docs/memcached.md). The users are
``default`` (the token) and the control plane's own.
"""

from __future__ import annotations

import ipaddress
import json
import ssl
from collections.abc import Mapping
from pathlib import Path

from cachefleet.control.actions import DiscoveryInputs
from cachefleet.control.observe import DISCOVERY_INPUTS, PARAMETERS_FILE
from cachefleet.engines import config_endpoint, memcached
from cachefleet.hosts.base import ProcessSpec
from cachefleet.model.certificates import Certificates
from cachefleet.model.credentials import Credentials
from cachefleet.model.errors import Fatal
from cachefleet.model.specs import CacheClusterSpec

APPLICATION_USER = "default"  # the user an AuthToken authenticates, as Redis's AUTH <token> does
ENDPOINT_CERT = "endpoint.crt"
ENDPOINT_KEY = "endpoint.key"


def auth_mechanism(spec: CacheClusterSpec, values: Mapping[str, str]) -> str | None:
    """None without an AuthToken; SASL with ``binding_protocol`` ``binary``, else ASCII authentication."""
    if spec.auth_token is None:
        return None
    return memcached.SASL_AUTH if values.get("binding_protocol") == "binary" else memcached.ASCII_AUTH


def users(spec: CacheClusterSpec, credentials: Credentials) -> tuple[tuple[str, str], ...]:
    if spec.auth_token is None:
        return ()
    return ((APPLICATION_USER, spec.auth_token), (credentials.user, credentials.password))


def node_process(
    spec: CacheClusterSpec,
    *,
    binary: str,
    node_dir: Path,
    port: int,
    address: str,
    values: Mapping[str, str],
    credentials: Credentials,
    certificates: Certificates | None,
) -> ProcessSpec:
    memory_mb, threads = memcached.node_resources(spec.node_type, values)
    # What the node starts with, kept beside it: a later change that needs a reboot shows as pending.
    files = {PARAMETERS_FILE: json.dumps(dict(values), sort_keys=True)}
    tls = None
    if spec.transit_encryption:
        cert, key = _leaf(certificates, address)
        files[memcached.CERT_FILE], files[memcached.KEY_FILE] = cert, key
        tls = (str(node_dir / memcached.CERT_FILE), str(node_dir / memcached.KEY_FILE))
    mechanism = auth_mechanism(spec, values)
    config = memcached.NodeConfig(
        port=port,
        bind=address,
        memory_mb=memory_mb,
        threads=threads,
        parameters=values,
        tls=tls,
        auth=mechanism,
        auth_file=str(node_dir / memcached.AUTH_FILE),
    )
    argv = memcached.node_argv(binary, config)
    lines = memcached.auth_lines(users(spec, credentials))
    if mechanism == memcached.ASCII_AUTH:
        files[memcached.AUTH_FILE] = lines
    if mechanism == memcached.SASL_AUTH:
        files[memcached.SASL_USERS] = lines
        files[memcached.SASL_CONF] = memcached.sasl_conf(str(node_dir))
        script = {memcached.START_SCRIPT: memcached.sasl_start_script(argv)}
        return ProcessSpec(argv=("/bin/sh", str(node_dir / memcached.START_SCRIPT)), files=files, scripts=script)
    return ProcessSpec(argv=argv, files=files)


def endpoint_process(
    spec: CacheClusterSpec,
    inputs: DiscoveryInputs,
    *,
    python: str,
    node_dir: Path,
    port: int,
    address: str,
    values: Mapping[str, str],
    credentials: Credentials,
    certificates: Certificates | None,
) -> ProcessSpec:
    """The configuration endpoint of one cluster: its file, and the command that serves it."""
    ip = _ip(address)
    files = {DISCOVERY_INPUTS: inputs.to_json()}
    tls_cert = tls_key = upstream_ca = None
    if spec.transit_encryption:
        cert, key = _leaf(certificates, address)
        files[ENDPOINT_CERT], files[ENDPOINT_KEY] = cert, key
        tls_cert, tls_key = str(node_dir / ENDPOINT_CERT), str(node_dir / ENDPOINT_KEY)
        upstream_ca = str(_ca(certificates))
    mechanism = auth_mechanism(spec, values)
    endpoint = config_endpoint.Endpoint(
        name=spec.id,
        bind=address,
        port=port,
        version=inputs.version,
        members=tuple(config_endpoint.Member(address, ip, p) for _, p in inputs.members),
        tls_cert=tls_cert,
        tls_key=tls_key,
        upstream_ca=upstream_ca,
        auth=None if mechanism is None else config_endpoint.Auth(mechanism, users(spec, credentials)),
    )
    files[config_endpoint.CONFIG_FILE] = config_endpoint.ServerConfig((endpoint,)).to_json()
    return ProcessSpec(argv=config_endpoint.argv(python, node_dir / config_endpoint.CONFIG_FILE), files=files)


def access(
    spec: CacheClusterSpec, values: Mapping[str, str], credentials: Credentials, certificates: Certificates | None
) -> memcached.Access:
    """How the control plane reaches the cluster's nodes (its probes, its live parameter changes)."""
    tls = None
    if spec.transit_encryption and certificates is not None:
        tls = ssl.create_default_context(cafile=str(certificates.ca_file))
    mechanism = auth_mechanism(spec, values)
    if mechanism is None:
        return memcached.Access(tls=tls)
    return memcached.Access(tls=tls, auth=mechanism, user=credentials.user, password=credentials.password)


def _leaf(certificates: Certificates | None, address: str) -> tuple[str, str]:
    return _require(certificates).leaf([address])


def _ca(certificates: Certificates | None) -> Path:
    return _require(certificates).ca_file


def _require(certificates: Certificates | None) -> Certificates:
    if certificates is None:
        raise Fatal("in-transit encryption needs the installation's CA, which this server has not")
    return certificates


def _ip(address: str) -> str:
    """The IP of ``address`` for discovery's ``host|ip|port``; empty (the pipes stay) for a name."""
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return ""
