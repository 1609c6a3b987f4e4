"""Arbitrary forms, shaped by each operation's input and then mangled, signed and sent into the app:
never a 5xx, always XML that botocore reads (an error with a Code, or the operation's output)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz import strategies as fz
from tests.fuzz.conftest import FIGURES, FuzzServer
from tests.fuzz.oracle import check_answer
from tests.fuzz.targets import ELASTICACHE, IAM, STS, Target

FORM = "application/x-www-form-urlencoded"


@st.composite
def forms(draw: st.DrawFn) -> tuple[Target, str, list[tuple[str, str]]]:
    # ElastiCache most often; IAM and STS (the other services on the same POST /) the rest.
    target = draw(st.sampled_from((ELASTICACHE, ELASTICACHE, IAM, STS)))
    name = draw(st.sampled_from(target.operations))
    operation = target.model.operation(name)
    likely = lambda path: target.implements(name, path)  # noqa: E731
    params = draw(fz.params_for(operation.input_shape, target.pool, likely=likely, hints=target.hints))
    version = target.model.api_version if draw(st.integers(0, 9)) else draw(fz.text())
    pairs = fz.wire_pairs(operation, params, version)
    if draw(st.integers(0, 3)) == 0:
        pairs = draw(fz.mutated(pairs, target.pool))
    return target, name, pairs


@given(form=forms(), as_get=st.booleans(), as_user=st.booleans())
def test_forms_never_get_a_5xx_and_always_parse(
    fuzz_server: FuzzServer, form: Any, as_get: bool, as_user: bool
) -> None:
    target, name, pairs = form
    body = fz.encode_form(pairs)
    api = fuzz_server.api
    # As the root identity, or as an IAM user whose policies are evaluated on every call.
    signer = {"service": target.service, **({"key": fuzz_server.user_key} if as_user else {})}
    if as_get:
        query = body.decode()
        headers = api.sign("GET", f"http://testserver/?{query}", b"", {}, **signer)
        response = fuzz_server.send("GET", query=query, headers=headers)
    else:
        headers = api.sign("POST", "http://testserver/", body, {"Content-Type": FORM}, **signer)
        response = fuzz_server.send("POST", body=body, headers=headers)
    check_answer(target.model, name, response)
    FIGURES[f"{target.service}.status.{response.status_code}"] += 1  # how deep the fuzz reached
    fuzz_server.heal()


@given(body=st.binary(max_size=300) | st.lists(st.tuples(fz.text(), fz.text()), max_size=6).map(fz.encode_form))
def test_raw_bodies_never_get_a_5xx(fuzz_server: FuzzServer, body: bytes) -> None:
    headers = fuzz_server.api.sign("POST", "http://testserver/", body, {"Content-Type": FORM})
    check_answer(ELASTICACHE.model, None, fuzz_server.send("POST", body=body, headers=headers))
