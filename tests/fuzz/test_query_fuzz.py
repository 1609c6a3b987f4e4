"""Arbitrary forms, shaped by each operation's input and then mangled, signed and sent into the app:
never a 5xx, always XML that botocore reads (an error with a Code, or the operation's output)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz import strategies as fz
from tests.fuzz.conftest import FuzzServer
from tests.fuzz.oracle import check_answer
from tests.fuzz.targets import ELASTICACHE

FORM = "application/x-www-form-urlencoded"


@st.composite
def forms(draw: st.DrawFn) -> tuple[str, list[tuple[str, str]]]:
    target = ELASTICACHE
    name = draw(st.sampled_from(target.operations))
    operation = target.model.operation(name)
    likely = lambda path: target.implements(name, path)  # noqa: E731
    params = draw(fz.params_for(operation.input_shape, target.pool, likely=likely, hints=target.hints))
    version = target.model.api_version if draw(st.integers(0, 9)) else draw(fz.text())
    pairs = fz.wire_pairs(operation, params, version)
    if draw(st.integers(0, 3)) == 0:
        pairs = draw(fz.mutated(pairs, target.pool))
    return name, pairs


@given(form=forms(), as_get=st.booleans())
def test_forms_never_get_a_5xx_and_always_parse(fuzz_server: FuzzServer, form: Any, as_get: bool) -> None:
    name, pairs = form
    body = fz.encode_form(pairs)
    api = fuzz_server.api
    if as_get:
        query = body.decode()
        headers = api.sign("GET", f"http://testserver/?{query}", b"", {})
        response = fuzz_server.send("GET", query=query, headers=headers)
    else:
        headers = api.sign("POST", "http://testserver/", body, {"Content-Type": FORM})
        response = fuzz_server.send("POST", body=body, headers=headers)
    check_answer(ELASTICACHE.model, name, response)
    fuzz_server.heal()


@given(body=st.binary(max_size=300) | st.lists(st.tuples(fz.text(), fz.text()), max_size=6).map(fz.encode_form))
def test_raw_bodies_never_get_a_5xx(fuzz_server: FuzzServer, body: bytes) -> None:
    headers = fuzz_server.api.sign("POST", "http://testserver/", body, {"Content-Type": FORM})
    check_answer(ELASTICACHE.model, None, fuzz_server.send("POST", body=body, headers=headers))
