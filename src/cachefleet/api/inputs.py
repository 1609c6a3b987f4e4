"""What each operation does with each member of its input shape, declared next to its handler.

Every operation of the registry (``api/handlers/__init__.py``) carries an ``Inputs`` declaration:
which members it implements, which it stores and echoes as ElastiCache does (settings that mean
nothing on one host, such as security groups or a maintenance window), which it ignores because
ElastiCache documents them as unused, which later versions will build, and which it refuses for
good. The API edge calls ``Inputs.refuse`` after parsing and before
the handler runs, so a request that asks for anything this version does not do is answered
``InvalidParameterValue`` naming the member, and nothing changes. A member the declaration does
not name is refused as not implemented.

Declarations are checked against botocore's input shapes by ``problems`` (a test runs it for every
operation): a declared member that the shape lacks is a bug. ``docs/api-members.md`` is the table
of every treatment, written from these declarations by ``scripts/api_members.py``.

A member path is its name, or ``Parent.Child`` for a member of a structure (a list of structures
is looked through: ``ReplicaConfiguration.PreferredOutpostArns`` is that member of every item).
A nested member takes its parent's treatment unless it is declared itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cachefleet.model.errors import InvalidParameterValue
from cachefleet.protocol.service import Shape


class Treatment(StrEnum):
    IMPLEMENTED = "implemented"  # the operation does with it what ElastiCache does
    STORED = "stored"  # kept and shown as ElastiCache shows it; drives nothing on this host
    IGNORED = "ignored"  # accepted with no effect, as ElastiCache documents it (deprecated members)
    NOT_YET = "not yet"  # refused: a later version builds it
    REFUSED = "refused"  # refused: it cannot mean anything here


_NO_VALUE = object()


@dataclass(frozen=True)
class Member:
    treatment: Treatment
    note: str = ""
    # For a refused member: the one value that asks for nothing this version lacks (e.g.
    # TransitEncryptionEnabled=false), which is accepted so that tools sending it explicitly work.
    accepted: object = _NO_VALUE

    @property
    def refused(self) -> bool:
        return self.treatment in (Treatment.NOT_YET, Treatment.REFUSED)

    def accepts(self, value: Any) -> bool:
        return self.accepted is not _NO_VALUE and type(value) is type(self.accepted) and value == self.accepted

    @property
    def accepted_text(self) -> str | None:
        """The accepted value as the wire spells it, or None when no value is accepted."""
        return None if self.accepted is _NO_VALUE else _text(self.accepted)

    def refusal(self, path: str) -> str:
        only = f" (only {self.accepted_text} is accepted)" if self.accepted_text is not None else ""
        if self.treatment is Treatment.NOT_YET:
            return f"The parameter {path} is not supported by this cachefleet version yet{only}."
        return f"The parameter {path} is not supported by cachefleet{only}: {self.note}."


UNDECLARED = Member(Treatment.REFUSED, "not implemented")

# Why members are refused for good, shared by the operations that have them.
WHY_EC2_CLASSIC = (
    "cache security groups belong to EC2-Classic, which ElastiCache no longer offers (use SecurityGroupIds)"
)
WHY_OUTPOSTS = "there are no AWS Outposts here"
WHY_LOG_DELIVERY = (
    "engine logs stay in each node's directory; there is no CloudWatch Logs or Kinesis Data Firehose to deliver to"
)
WHY_IPV4 = "nodes listen on IPv4 addresses only"
WHY_GLOBAL = "one server is one region, so there are no global datastores"
WHY_SERVERLESS = "there are no serverless caches here"
WHY_DATA_TIERING = "data tiering needs r6gd node types, which are not offered here"
WHY_DURABILITY = "the durability log of Valkey 9 and later is not offered here"

Entry = tuple[str, Member]


def implemented(*paths: str, note: str = "") -> tuple[Entry, ...]:
    return tuple((path, Member(Treatment.IMPLEMENTED, note)) for path in paths)


def stored(*paths: str, note: str = "") -> tuple[Entry, ...]:
    return tuple((path, Member(Treatment.STORED, note)) for path in paths)


def ignored(*paths: str, note: str) -> tuple[Entry, ...]:
    return tuple((path, Member(Treatment.IGNORED, note)) for path in paths)


def not_yet(*paths: str, note: str = "", accepted: object = _NO_VALUE) -> tuple[Entry, ...]:
    return tuple((path, Member(Treatment.NOT_YET, note, accepted)) for path in paths)


def refused(*paths: str, why: str, accepted: object = _NO_VALUE) -> tuple[Entry, ...]:
    return tuple((path, Member(Treatment.REFUSED, why, accepted)) for path in paths)


# Declarations several operations share (validate.stored_settings reads the stored ones).

STORED_SETTINGS = (
    *stored("SecurityGroupIds", note="shown as SecurityGroups, status `active` (a group's on each member)"),
    *stored("PreferredMaintenanceWindow", note="shown; nothing waits for it"),
    *stored("NotificationTopicArn", note="shown as NotificationConfiguration; nothing is sent"),
    *stored("AutoMinorVersionUpgrade", note="shown; versions change only when asked"),
)
NO_CLASSIC_SECURITY_GROUPS_OR_LOG_DELIVERY = (
    *refused("CacheSecurityGroupNames", why=WHY_EC2_CLASSIC),
    *refused("LogDeliveryConfigurations", why=WHY_LOG_DELIVERY),
)
ON_ONE_HOST = (
    *implemented("CacheSubnetGroupName", note="the subnets (sets of hosts, one AZ each) its nodes may run on"),
    *implemented("Port", note="checked and kept; every node gets its own port from the server's range"),
)


class Inputs:
    """One operation's declaration: member path -> treatment."""

    def __init__(self, *groups: Iterable[Entry]) -> None:
        members: dict[str, Member] = {}
        for path, member in (entry for group in groups for entry in group):
            if path in members:
                raise ValueError(f"input member {path} is declared twice")
            members[path] = member
        self.members: Mapping[str, Member] = members

    def member(self, path: str) -> Member:
        """The treatment of ``path``: its own declaration, else its nearest declared parent's."""
        while True:
            if path in self.members:
                return self.members[path]
            if "." not in path:
                return UNDECLARED
            path = path.rpartition(".")[0]

    def refuse(self, params: Mapping[str, Any]) -> None:
        """Raise ``InvalidParameterValue`` for the first member of ``params`` this operation refuses."""
        for path, value in _walk(params, ""):
            member = self.member(path)
            if member.refused and not member.accepts(value):
                raise InvalidParameterValue(member.refusal(path))

    def problems(self, shape: Shape | None) -> list[str]:
        """Declared paths that ``shape`` (an operation's input shape) lacks, and other mistakes."""
        found = []
        for path, member in self.members.items():
            target = _resolve(shape, path)
            if target is None:
                found.append(f"{path} is not a member of the input shape")
            elif member.accepted is not _NO_VALUE and not member.refused:
                found.append(f"{path}: only a refused member names an accepted value")
            elif member.accepted is not _NO_VALUE and not _fits(target, member.accepted):
                found.append(f"{path}: the accepted value {member.accepted!r} is not a {target.type_name}")
            elif member.refused and not member.note and member.treatment is Treatment.REFUSED:
                found.append(f"{path}: a refused member says why")
        return found

    def table(self, shape: Shape | None) -> list[tuple[str, Member]]:
        """Every member path of ``shape`` down to the declared ones, each with its treatment."""
        rows = []
        for path in _paths(shape, ""):
            declared = path in self.members
            if declared or "." not in path:
                rows.append((path, self.member(path)))
        return rows


def _walk(value: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, Any]]:
    """(path, value) of every member given, parents before their children."""
    for name, item in value.items():
        path = f"{prefix}{name}"
        yield path, item
        items = item if isinstance(item, list) else [item]
        for element in items:
            if isinstance(element, Mapping):
                yield from _walk(element, f"{path}.")


def _structure(shape: Shape) -> Shape | None:
    """The structure a member holds, looking through a list; None for a scalar or a map."""
    while shape is not None and shape.type_name == "list":
        shape = shape.member
    return shape if shape is not None and shape.type_name == "structure" else None


def _resolve(shape: Shape | None, path: str) -> Shape | None:
    current = shape
    for name in path.split("."):
        structure = _structure(current) if current is not None else None
        if structure is None or name not in structure.members:
            return None
        current = structure.members[name]
    return current


def _paths(shape: Shape | None, prefix: str) -> Iterator[str]:
    structure = _structure(shape) if shape is not None else None
    if structure is None:
        return
    for name, member in structure.members.items():
        path = f"{prefix}{name}"
        yield path
        # Recursive shapes (none in the ElastiCache input shapes) would need a depth limit here.
        yield from _paths(member, f"{path}.")


def _fits(shape: Shape, value: object) -> bool:
    kinds: dict[str, type] = {"boolean": bool, "integer": int, "long": int, "string": str}
    expected = kinds.get(shape.type_name)
    return expected is not None and type(value) is expected


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
