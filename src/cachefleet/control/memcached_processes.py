"""What a Memcached cluster's processes run: its nodes and its configuration endpoint. Pure rendering.

A node's size comes from its node type (item memory and one worker thread per vCPU, as ElastiCache
sizes ``max_cache_memory`` and ``num_threads``) and its flags from the ``memcached1.6`` parameter
group. The cluster's ``Security`` (``model.security``, as for Redis) decides the rest. With TLS
every process speaks it with a leaf of the installation's CA issued as for Redis nodes
(``control.security.leaf_files``), naming the address clients are given. With an AuthToken every
process requires authentication: memcached's ASCII authentication, or SASL PLAIN over the binary
protocol when the parameter group's ``binding_protocol`` is ``binary`` (docs/memcached.md). The
users are ``default`` (the token, opened from the spec's sealed copy: memcached checks passwords as
given, so its files hold it, 0600 beside the node) and the control plane's own.
"""

from __future__ import annotations

import ipaddress
import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cachefleet.control import security
from cachefleet.control.actions import DiscoveryInputs
from cachefleet.control.observe import DISCOVERY_INPUTS, PARAMETERS_FILE
from cachefleet.engines import config_endpoint, memcached
from cachefleet.hosts.base import ProcessSpec
from cachefleet.model.credentials import Credentials
from cachefleet.model.errors import Fatal
from cachefleet.model.nodes import NodeKey
from cachefleet.model.specs import CacheClusterSpec
from cachefleet.store.keys import Sealer
from cachefleet.tls.certs import Role

APPLICATION_USER = "default"  # the user an AuthToken authenticates, as Redis's AUTH <token> does


@dataclass(frozen=True)
class Secrets:
    """What a Memcached process is rendered with besides its spec: the control plane's own user, the
    installation's CA (``control.security.Keys``), the key that opens a sealed AuthToken, and now
    (when its leaf is issued)."""

    credentials: Credentials
    keys: security.Keys
    sealer: Sealer | None
    now: datetime

    def __repr__(self) -> str:
        return "Secrets(<hidden>)"


def auth_mechanism(spec: CacheClusterSpec, values: Mapping[str, str]) -> str | None:
    """None without an AuthToken; SASL with ``binding_protocol`` ``binary``, else ASCII authentication."""
    if not spec.security.tokens.enabled:
        return None
    return memcached.SASL_AUTH if values.get("binding_protocol") == "binary" else memcached.ASCII_AUTH


def users(spec: CacheClusterSpec, secrets: Secrets) -> tuple[tuple[str, str], ...]:
    """The users every process of the cluster takes: ``default`` with the AuthToken, and ours."""
    if not spec.security.tokens.enabled:
        return ()
    if spec.sealed_token is None or secrets.sealer is None:
        raise Fatal(f"cache cluster {spec.id} has an AuthToken this server cannot open")
    token = secrets.sealer.open(spec.sealed_token)
    return ((APPLICATION_USER, token), (secrets.credentials.user, secrets.credentials.password))


def node_process(
    spec: CacheClusterSpec,
    node: NodeKey,
    *,
    binary: str,
    node_dir: Path,
    port: int,
    address: str,
    values: Mapping[str, str],
    secrets: Secrets,
) -> ProcessSpec:
    memory_mb, threads = memcached.node_resources(spec.node_type, values)
    # What the node starts with, kept beside it: a later change that needs a reboot shows as pending.
    files = {PARAMETERS_FILE: json.dumps(dict(values), sort_keys=True)}
    tls = None
    if spec.security.tls:
        files.update(_leaf(node, address, secrets))
        pem = str(node_dir / security.TLS_FILE)  # key and certificate in one file, as for Redis
        tls = (pem, pem)
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
    lines = memcached.auth_lines(users(spec, secrets))
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
    node: NodeKey,
    inputs: DiscoveryInputs,
    *,
    python: str,
    node_dir: Path,
    port: int,
    address: str,
    values: Mapping[str, str],
    secrets: Secrets,
) -> ProcessSpec:
    """The configuration endpoint of one cluster: its file, and the command that serves it."""
    ip = _ip(address)
    files = {DISCOVERY_INPUTS: inputs.to_json()}
    tls_cert = tls_key = upstream_ca = None
    if spec.security.tls:
        files.update(_leaf(node, address, secrets))
        tls_cert = tls_key = str(node_dir / security.TLS_FILE)
        upstream_ca = str(secrets.keys.ca_file)
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
        auth=None if mechanism is None else config_endpoint.Auth(mechanism, users(spec, secrets)),
    )
    files[config_endpoint.CONFIG_FILE] = config_endpoint.ServerConfig((endpoint,)).to_json()
    return ProcessSpec(argv=config_endpoint.argv(python, node_dir / config_endpoint.CONFIG_FILE), files=files)


def access(
    spec: CacheClusterSpec, values: Mapping[str, str], credentials: Credentials, ca_file: Path | None
) -> memcached.Access:
    """How the control plane reaches the cluster's nodes (its probes, its live parameter changes)."""
    tls = None
    if spec.security.tls:
        if ca_file is None:
            raise Fatal("in-transit encryption needs the installation's CA, which this server has not")
        tls = ssl.create_default_context(cafile=str(ca_file))
    mechanism = auth_mechanism(spec, values)
    if mechanism is None:
        return memcached.Access(tls=tls)
    return memcached.Access(tls=tls, auth=mechanism, user=credentials.user, password=credentials.password)


def _leaf(node: NodeKey, address: str, secrets: Secrets) -> dict[str, str]:
    """A new leaf at every start (a restart renews it), issued as for Redis nodes."""
    who = security.identity(node, address, Role.NODE)
    return security.leaf_files(secrets.keys, who, secrets.now)


def _ip(address: str) -> str:
    """The IP of ``address`` for discovery's ``host|ip|port``; empty (the pipes stay) for a name."""
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return ""
