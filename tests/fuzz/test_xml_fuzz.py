"""The XML writer under arbitrary text: every answer parses with botocore's own parser and reads
back as written (characters XML cannot carry come back as U+FFFD, a CR comes back as a CR)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import botocore.parsers
from hypothesis import given
from hypothesis import strategies as st

from cachefleet.protocol.service import Shape
from cachefleet.protocol.text import xml_safe
from cachefleet.protocol.xml import serialize_error, serialize_result
from tests.fuzz import strategies as fz
from tests.fuzz.conftest import record
from tests.fuzz.targets import TARGETS, Target

PARSER = botocore.parsers.create_parser("query")
REQUEST_ID = "7f1b2d2e-0000-4000-8000-000000000000"


def parse(body: bytes, status: int, shape: Shape | None) -> dict[str, Any]:
    parsed: dict[str, Any] = PARSER.parse({"body": body, "headers": {}, "status_code": status}, shape)
    return parsed


@given(code=fz.text(), message=fz.text(), sender=st.booleans())
def test_any_error_text_parses_and_reads_back(code: str, message: str, sender: bool) -> None:
    started = time.monotonic()
    body = serialize_error(code, message, sender, REQUEST_ID)
    error = parse(body, 400, None)["Error"]
    record("xml", None, time.monotonic() - started)
    # botocore reads an empty element as None.
    assert (error["Code"] or "") == xml_safe(code)
    assert (error["Message"] or "") == xml_safe(message)
    assert error["Type"] == ("Sender" if sender else "Receiver")


@st.composite
def results(draw: st.DrawFn) -> tuple[Target, str, Any]:
    target = draw(st.sampled_from(TARGETS))
    name = draw(st.sampled_from(target.operations))
    shape = target.model.operation(name).output_shape
    return target, name, (draw(fz.result_for(shape)) if shape is not None else None)


@given(result=results())
def test_any_result_parses_and_reads_back(result: tuple[Target, str, Any]) -> None:
    target, name, value = result
    started = time.monotonic()
    shape = target.model.operation(name).output_shape
    parsed = parse(serialize_result(target.model, name, value, REQUEST_ID), 200, shape)
    record("xml", None, time.monotonic() - started)
    parsed.pop("ResponseMetadata")
    assert parsed == expected(shape, value) if shape is not None else parsed == {}


def expected(shape: Shape, value: Any) -> Any:
    """What botocore reads back for ``value`` written as ``shape``."""
    kind = shape.type_name
    if kind == "structure":
        return {name: expected(shape.members[name], item) for name, item in value.items()}
    if kind == "list":
        return [expected(shape.member, item) for item in value]
    if kind == "map":
        return {expected(shape.key, k): expected(shape.value, v) for k, v in value.items()}
    if kind == "string":
        return xml_safe(value)
    if kind == "timestamp":
        assert isinstance(value, datetime)
        return value.replace(microsecond=value.microsecond // 1000 * 1000)
    if kind in ("double", "float"):
        return float(value)
    return value
