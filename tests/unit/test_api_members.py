"""Every input member accounted for: declarations checked against botocore's model, and for every
implemented operation and every member it does not implement, a real boto3 request that carries it
is refused with InvalidParameterValue naming it, and changes nothing (generated from the model)."""

from __future__ import annotations

import importlib.util
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from tests.support.inprocess import InProcessApi

from cachefleet.api.app import elasticache_api
from cachefleet.api.handlers import OPERATIONS
from cachefleet.api.inputs import Inputs, Member, Treatment, implemented, not_yet, refused, stored
from cachefleet.model.errors import InvalidParameterValue
from cachefleet.protocol.service import Shape, load_service_model

MODEL = load_service_model()
ROOT = Path(__file__).resolve().parents[2]


def _refusals() -> list[tuple[str, str, Member]]:
    cases = []
    for name, operation in sorted(OPERATIONS.items()):
        for path, member in operation.inputs.table(MODEL.operation(name).input_shape):
            if member.refused:
                cases.append((name, path, member))
    return cases


REFUSALS = _refusals()


# Building a request from the model


def example(shape: Shape, *, avoid: object = None) -> Any:
    """A value of ``shape`` that botocore accepts and that is not ``avoid``."""
    kind = shape.type_name
    if kind == "structure":
        # The required members; an empty structure would read as not given, so at least one.
        names = shape.required_members or list(shape.members)[:1]
        return {name: example(shape.members[name]) for name in names}
    if kind == "list":
        return [example(shape.member)]
    if kind == "boolean":
        return avoid is not True
    if kind in ("integer", "long"):
        return 2 if avoid != 2 else 3
    if kind == "timestamp":
        return "2024-01-01T00:00:00Z"
    enum = [value for value in getattr(shape, "enum", []) if value != avoid]
    return enum[0] if enum else "x-value"


def with_member(shape: Shape, path: str, *, avoid: object) -> dict[str, Any]:
    """The required members of ``shape``, and ``path`` (``Parent.Child`` nests) given a value."""
    params = {name: example(shape.members[name]) for name in shape.required_members}
    name, _, rest = path.partition(".")
    member = shape.members[name]
    if not rest:
        params[name] = example(member, avoid=avoid)
        return params
    structure = member.member if member.type_name == "list" else member
    inner = with_member(structure, rest, avoid=avoid)
    params[name] = [inner] if member.type_name == "list" else inner
    return params


def dump(api: InProcessApi) -> list[str]:
    """The whole state database, as SQL, read through a connection of its own."""
    with sqlite3.connect(api.ctx.settings.data_dir / "state.db") as db:
        return list(db.iterdump())


def snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessApi]:
    server = InProcessApi(tmp_path_factory.mktemp("members"))
    yield server
    server.close()


# The declarations


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_declarations_name_only_members_of_the_input_shape(name: str) -> None:
    assert OPERATIONS[name].inputs.problems(MODEL.operation(name).input_shape) == []


def test_every_operation_is_an_operation_of_the_model() -> None:
    assert set(OPERATIONS) <= MODEL.operation_names


def test_a_declared_member_the_shape_lacks_is_reported() -> None:
    inputs = Inputs(implemented("CacheClusterId", "NoSuchMember", "Tags.Colour"))
    shape = MODEL.operation("CreateCacheCluster").input_shape
    assert inputs.problems(shape) == [
        "NoSuchMember is not a member of the input shape",
        "Tags.Colour is not a member of the input shape",
    ]


def test_an_accepted_value_must_fit_the_member() -> None:
    inputs = Inputs(not_yet("TransitEncryptionEnabled", accepted="no"), stored("Port", note="n"))
    shape = MODEL.operation("CreateCacheCluster").input_shape
    assert inputs.problems(shape) == ["TransitEncryptionEnabled: the accepted value 'no' is not a boolean"]


def test_a_member_is_declared_once() -> None:
    with pytest.raises(ValueError, match="Port is declared twice"):
        Inputs(implemented("Port"), stored("Port"))


def test_undeclared_members_are_refused_and_nested_ones_take_their_parents_treatment() -> None:
    inputs = Inputs(implemented("ReplicaConfiguration"), refused("ReplicaConfiguration.PreferredOutpostArns", why="w"))
    assert inputs.member("NewReplicaCount").treatment is Treatment.REFUSED
    assert inputs.member("ReplicaConfiguration.NodeGroupId").treatment is Treatment.IMPLEMENTED
    inputs.refuse({"ReplicaConfiguration": [{"NodeGroupId": "1", "NewReplicaCount": 2}]})
    with pytest.raises(InvalidParameterValue, match="The parameter NewReplicaCount is not supported"):
        inputs.refuse({"NewReplicaCount": 2})
    with pytest.raises(InvalidParameterValue, match=r"ReplicaConfiguration\.PreferredOutpostArns .*: w\.$"):
        inputs.refuse({"ReplicaConfiguration": [{"NodeGroupId": "1"}, {"PreferredOutpostArns": ["arn"]}]})


def test_an_accepted_value_passes_and_any_other_is_refused() -> None:
    inputs = Inputs(
        not_yet("TransitEncryptionEnabled", accepted=False), refused("NetworkType", why="w", accepted="ipv4")
    )
    inputs.refuse({"TransitEncryptionEnabled": False, "NetworkType": "ipv4"})
    with pytest.raises(InvalidParameterValue, match=r"TransitEncryptionEnabled .* yet \(only false is accepted\)"):
        inputs.refuse({"TransitEncryptionEnabled": True})
    with pytest.raises(InvalidParameterValue, match=r"NetworkType .*\(only ipv4 is accepted\): w"):
        inputs.refuse({"NetworkType": "IPV4"})


def test_the_members_doc_is_current() -> None:
    spec = importlib.util.spec_from_file_location("api_members", ROOT / "scripts" / "api_members.py")
    assert spec is not None
    assert spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert (ROOT / "docs" / "api-members.md").read_text() == script.render(elasticache_api()), (
        "docs/api-members.md is stale: run .venv/bin/python scripts/api_members.py"
    )


# Generated from the model: every member an operation does not implement, sent by boto3


@pytest.mark.parametrize(("operation", "path", "member"), REFUSALS, ids=[f"{c[0]}-{c[1]}" for c in REFUSALS])
def test_a_member_not_implemented_is_refused_by_name_and_changes_nothing(
    api: InProcessApi, operation: str, path: str, member: Member
) -> None:
    shape = MODEL.operation(operation).input_shape
    # Any value but the one the declaration accepts (the example avoids it).
    params = with_member(shape, path, avoid=member.accepted)
    before = dump(api)
    with pytest.raises(ClientError) as caught:
        getattr(api.client(), snake(operation))(**params)
    error, status = caught.value.response["Error"], caught.value.response["ResponseMetadata"]["HTTPStatusCode"]
    assert (error["Code"], status) == ("InvalidParameterValue", 400)
    assert error["Message"].startswith(f"The parameter {path} is not supported")
    assert dump(api) == before


def test_there_is_a_refusal_case_for_every_refused_member() -> None:
    # The generated cases cover what the issue named as drifted, among the rest.
    paths = {(operation, path) for operation, path, _ in REFUSALS}
    assert ("CreateReplicationGroup", "NodeGroupConfiguration") in paths
    assert ("ModifyReplicationGroup", "CacheNodeType") in paths
    assert ("CreateReplicationGroup", "TransitEncryptionMode") not in paths  # implemented
    assert ("IncreaseReplicaCount", "ReplicaConfiguration.PreferredOutpostArns") in paths
    assert ("ModifyReplicationGroup", "SecurityGroupIds") not in paths  # stored, shown as SecurityGroups
