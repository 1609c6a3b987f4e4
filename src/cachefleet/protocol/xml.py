"""Encode a handler's result, or an error, as the XML body of an AWS Query response.

The last step of a request: the handler returns a plain mapping keyed by the output shape's member
names, and this module walks the shape to name every element as the service model does. A key the
shape does not know is a bug in the handler, so it fails loudly here instead of vanishing on the
wire. Bytes out, no I/O.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree as ET

from cachefleet.protocol.service import API_VERSION, ServiceModel, Shape
from cachefleet.protocol.text import xml_safe

XML_NAMESPACE = f"http://elasticache.amazonaws.com/doc/{API_VERSION}/"


class ShapeError(ValueError):
    """A result does not fit the operation's output shape: a handler bug, never a client error."""

    def __str__(self) -> str:
        # KeyError's __str__ would repr the message; keep it readable for both bases.
        return str(self.args[0]) if self.args else ""


class UnknownMemberError(ShapeError, KeyError):
    """A result key that is not a member of its shape."""


def serialize_result(
    model: ServiceModel, operation_name: str, result: Mapping[str, Any] | None, request_id: str
) -> bytes:
    shape = model.operation(operation_name).output_shape
    root = ET.Element(f"{operation_name}Response", xmlns=model.xml_namespace)
    if shape is not None:
        wrapper_name: str = shape.serialization.get("resultWrapper", f"{operation_name}Result")
        wrapper = ET.SubElement(root, wrapper_name)
        _fill_structure(wrapper, shape, result or {}, operation_name)
    elif result:
        raise UnknownMemberError(f"{operation_name} has no output, but the result has keys {sorted(result)}")
    metadata = ET.SubElement(root, "ResponseMetadata")
    ET.SubElement(metadata, "RequestId").text = xml_safe(request_id)
    return _document(root)


def serialize_error(
    code: str, message: str, sender_fault: bool, request_id: str, namespace: str = XML_NAMESPACE
) -> bytes:
    root = ET.Element("ErrorResponse", xmlns=namespace)
    error = ET.SubElement(root, "Error")
    ET.SubElement(error, "Type").text = "Sender" if sender_fault else "Receiver"
    ET.SubElement(error, "Code").text = xml_safe(code)
    ET.SubElement(error, "Message").text = xml_safe(message)
    ET.SubElement(root, "RequestId").text = xml_safe(request_id)
    return _document(root)


def _document(root: ET.Element) -> bytes:
    # A raw CR in text would come back as LF; tags and the one attribute never hold one.
    return ET.tostring(root, encoding="unicode").replace("\r", "&#13;").encode()


def _fill_structure(parent: ET.Element, shape: Shape, value: Any, path: str) -> None:
    if not isinstance(value, Mapping):
        raise ShapeError(f"{path}: expected a mapping for {shape.name}, got {type(value).__name__}")
    members = shape.members
    for name, item in value.items():
        if name not in members:
            raise UnknownMemberError(
                f"{path}: {name!r} is not a member of {shape.name} (members: {', '.join(members)})"
            )
        if item is not None:
            _add_member(parent, members[name], name, item, f"{path}.{name}")


def _add_member(parent: ET.Element, shape: Shape, name: str, value: Any, path: str) -> None:
    if shape.type_name == "list" and shape.serialization.get("flattened"):
        # Flattened lists repeat their element directly in the parent, named like botocore expects.
        tag: str = shape.member.serialization.get("name") or shape.serialization.get("name", name)
        for index, item in enumerate(_sequence(value, path)):
            _add_value(parent, tag, shape.member, item, f"{path}[{index}]")
        return
    if shape.type_name == "map" and shape.serialization.get("flattened"):
        _fill_map_entries(parent, shape.serialization.get("name", name), shape, value, path)
        return
    _add_value(parent, shape.serialization.get("name", name), shape, value, path)


def _add_value(parent: ET.Element, tag: str, shape: Shape, value: Any, path: str) -> None:
    element = ET.SubElement(parent, tag)
    kind = shape.type_name
    if kind == "structure":
        _fill_structure(element, shape, value, path)
    elif kind == "list":
        item_tag: str = shape.member.serialization.get("name", "member")
        for index, item in enumerate(_sequence(value, path)):
            _add_value(element, item_tag, shape.member, item, f"{path}[{index}]")
    elif kind == "map":
        _fill_map_entries(element, "entry", shape, value, path)
    else:
        element.text = _scalar_text(kind, value, path)


def _fill_map_entries(parent: ET.Element, entry_tag: str, shape: Shape, value: Any, path: str) -> None:
    if not isinstance(value, Mapping):
        raise ShapeError(f"{path}: expected a mapping for {shape.name}, got {type(value).__name__}")
    key_tag: str = shape.key.serialization.get("name", "key")
    value_tag: str = shape.value.serialization.get("name", "value")
    for key, item in value.items():
        entry = ET.SubElement(parent, entry_tag)
        _add_value(entry, key_tag, shape.key, key, f"{path}.key")
        _add_value(entry, value_tag, shape.value, item, f"{path}[{key!r}]")


def _sequence(value: Any, path: str) -> Sequence[Any]:
    # A str is a Sequence too, and would otherwise become one element per character.
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise ShapeError(f"{path}: expected a list, got {type(value).__name__}")
    if any(item is None for item in value):
        raise ShapeError(f"{path}: a list element is None")
    return value


def _scalar_text(kind: str, value: Any, path: str) -> str:
    if kind == "boolean":
        if isinstance(value, bool):
            return "true" if value else "false"
    elif kind in ("integer", "long"):
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
    elif kind in ("double", "float"):
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return repr(float(value))
    elif kind == "timestamp":
        return _timestamp_text(value, path)
    elif kind == "blob":
        if isinstance(value, bytes):
            return base64.b64encode(value).decode("ascii")
    elif isinstance(value, str):
        # StrEnum members land here too; str() of a plain str subclass keeps its value.
        return xml_safe(str.__str__(value))
    raise ShapeError(f"{path}: {type(value).__name__} {value!r} does not fit a {kind} member")


def _timestamp_text(value: Any, path: str) -> str:
    # Naive datetimes are refused: guessing their zone would shift every timestamp we report.
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ShapeError(f"{path}: timestamps must be timezone-aware datetimes, got {value!r}")
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
