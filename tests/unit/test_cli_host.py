"""``cachefleet host ...`` against the real admin API in process (the app, its store, SigV4 signing).

The CLI's admin client is stood in for by one that sends each call into the in-process app, signed
as the CLI signs it; the installation CA is stood in for (tests/support/inprocess.py). An end-to-end
run against a real server and real agents is in tests/netns/test_hosts.py.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from tests.support.inprocess import InProcessApi

from cachefleet.cli.commands_host import agent_key_and_request
from cachefleet.cli.context import CliState
from cachefleet.cli.errors import AdminRefused
from cachefleet.cli.main import main
from cachefleet.model.hosts import HostState
from cachefleet.store import statuses
from cachefleet.store.kinds import HOSTS


class InProcessAdmin:
    def __init__(self, api: InProcessApi) -> None:
        self.api = api
        self.calls: list[tuple[str, str, dict[str, Any] | None]] = []

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        self.calls.append((method, path, body))
        response = self.api.admin(method, "/admin/v1/" + path, body)
        answer = response.json()
        if response.status_code != 200:
            raise AdminRefused(answer["error"]["code"], answer["error"]["message"])
        return dict(answer)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[InProcessApi]:
    server = InProcessApi(tmp_path / "cf")
    yield server
    server.close()


@pytest.fixture
def admin(api: InProcessApi) -> InProcessAdmin:
    return InProcessAdmin(api)


# Tables wide enough that rich never shortens a cell: the width of whatever runs the tests (a
# terminal, a pipe, a parallel worker) must not decide what the assertions see.
WIDE = {"COLUMNS": "200"}


def run(admin: InProcessAdmin, *args: str) -> Result:
    state = CliState(admin_factory=lambda _options: admin, poll_interval=0.001)
    return CliRunner().invoke(main, list(args), obj=state, catch_exceptions=False, env=WIDE)


def test_add_writes_the_agents_bundle_and_sends_no_key(admin: InProcessAdmin, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    result = run(admin, "host", "add", "h1", "--address", "10.0.0.11", "--zone", "us-east-1a", "--max-nodes", "4",
                 "--memory", "2", "--bundle-dir", str(bundle))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "cachefleet agent --data-dir DIR --listen 10.0.0.11:7080 --zone us-east-1a" in result.output
    ((method, path, body),) = admin.calls
    assert (method, path) == ("POST", "hosts")
    assert body is not None
    assert (body["max_nodes"], body["memory_bytes"], body["agent_port"]) == (4, 2 << 30, 7080)
    assert "PRIVATE KEY" not in json.dumps(body)  # only the signing request crosses the wire
    request = x509.load_pem_x509_csr(body["csr"].encode())
    names = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["10.0.0.11"]
    agent_pem = bundle / "tls" / "agent.pem"
    assert (bundle / "ca.pem").read_text() == "ca certificate"
    key = serialization.load_pem_private_key(agent_pem.read_bytes().split(b"certificate for")[0], None)
    assert key.public_key().public_numbers() == request.public_key().public_numbers()  # type: ignore[union-attr]
    assert agent_pem.read_bytes().endswith(b"certificate for h1 at 10.0.0.11")
    assert stat.S_IMODE(agent_pem.stat().st_mode) == 0o600


def test_list_drain_undrain_remove(admin: InProcessAdmin, api: InProcessApi, tmp_path: Path) -> None:
    run(admin, "host", "add", "h1", "--address", "10.0.0.11", "--zone", "us-east-1a", "--bundle-dir", str(tmp_path))
    listed = run(admin, "host", "list")
    assert listed.exit_code == 0
    lines = [line.split() for line in listed.output.splitlines()[1:]]
    assert [(cells[0], cells[-3]) for cells in lines] == [("local", "active"), ("h1", "joining")]
    as_json = json.loads(run(admin, "--json", "host", "describe", "h1").output)
    assert as_json["host"]["subnets"] == [{"id": "subnet-us-east-1a", "zone": "us-east-1a"}]
    current = HOSTS.get(api.store, "h1").status
    statuses.write(api.store, HOSTS, "h1", type(current)(HostState.ACTIVE))
    # Nothing runs on it: drained at once (the host kind would record it; stood in for here).
    drained = run(admin, "host", "drain", "h1", "--no-wait")
    assert "Host h1 is draining." in drained.output
    statuses.write(api.store, HOSTS, "h1", type(current)(HostState.DRAINED))
    assert "Host h1 is drained." in run(admin, "host", "drain", "h1").output
    assert "Host h1 is active." in run(admin, "host", "undrain", "h1").output
    assert "Host h1 is being removed." in run(admin, "host", "remove", "h1").output


def test_a_refusal_exits_1_with_its_code(admin: InProcessAdmin, tmp_path: Path) -> None:
    result = run(admin, "host", "add", "h1", "--address", "10.0.0.11", "--zone", "mars-1a", "--bundle-dir",
                 str(tmp_path))  # fmt: skip
    assert result.exit_code == 1
    assert "Error (InvalidParameterValue): Invalid zone mars-1a" in result.output
    assert not (tmp_path / "tls").exists()  # no bundle for a host that was not added
    assert run(admin, "host", "remove", "local").exit_code == 1
    bad = run(admin, "host", "add", "h1", "--address", "nope", "--zone", "us-east-1a", "--bundle-dir", str(tmp_path))
    assert bad.exit_code == 64


def test_the_request_names_the_address_and_the_key_is_new_each_time() -> None:
    first, request = agent_key_and_request("h1", "10.1.2.3")
    second, _ = agent_key_and_request("h1", "10.1.2.3")
    assert first != second
    assert x509.load_pem_x509_csr(request).is_signature_valid



def test_subnet_groups_and_a_group_created_in_one(admin: InProcessAdmin, api: InProcessApi, tmp_path: Path) -> None:
    for name, zone in (("h1", "us-east-1a"), ("h2", "us-east-1b")):
        run(admin, "host", "add", name, "--address", f"10.0.0.{name[-1]}1", "--zone", zone, "--bundle-dir",
            str(tmp_path / name))  # fmt: skip
        current = HOSTS.get(api.store, name).status
        statuses.write(api.store, HOSTS, name, type(current)(HostState.ACTIVE))
    state = CliState(client_factory=lambda _options: api.client(), admin_factory=lambda _options: admin)

    def cli(*args: str) -> Result:
        return CliRunner().invoke(main, list(args), obj=state, catch_exceptions=False, env=WIDE)

    created = cli("subnet-group", "create", "agents", "--subnets", "subnet-us-east-1a,subnet-us-east-1b",
                  "--description", "two agents")  # fmt: skip
    assert created.exit_code == 0, created.output
    listed = cli("subnet-group", "list").output
    assert "subnet-us-east-1a (us-east-1a), subnet-us-east-1b (us-east-1b)" in listed
    made = cli("rg", "create", "orders", "--description", "d", "--replicas", "1", "--subnet-group", "agents",
               "--no-wait")  # fmt: skip
    assert made.exit_code == 0, made.output
    member = api.client().describe_cache_clusters(CacheClusterId="orders-001")["CacheClusters"][0]
    assert member["CacheSubnetGroupName"] == "agents"
    refused = cli("subnet-group", "delete", "agents")
    assert refused.exit_code == 1
    assert "CacheSubnetGroupInUse" in refused.output
    assert cli("subnet-group", "modify", "agents", "--description", "still two").exit_code == 0
