"""What every answer to a hostile request must be: no 5xx, and XML that botocore's parser reads."""

from __future__ import annotations

from typing import Any

import botocore.parsers

from cachefleet.protocol.service import ServiceModel

_PARSER = botocore.parsers.create_parser("query")


def check_answer(model: ServiceModel, operation: str | None, response: Any, method: str = "POST") -> dict[str, Any]:
    """The parsed answer; fails the test on a 5xx, a missing request id, or a body botocore cannot read."""
    status = response.status_code
    assert status < 500, f"HTTP {status}: {response.text[:500]}"
    assert response.headers.get("x-amzn-requestid"), "no x-amzn-RequestId header"
    if method == "HEAD":
        return {}
    ok = status < 300
    shape = model.operation(operation).output_shape if ok and operation else None
    # botocore raises ResponseParserError for anything that is not the XML it expects.
    parsed: dict[str, Any] = _PARSER.parse(
        {"body": response.content, "headers": dict(response.headers), "status_code": status}, shape
    )
    if not ok:
        error = parsed.get("Error", {})
        assert error.get("Code"), f"error without a Code: {response.text[:500]}"
        assert error.get("Message"), f"error without a Message: {response.text[:500]}"
    assert parsed["ResponseMetadata"].get("RequestId"), f"no RequestId in the body: {response.text[:500]}"
    return parsed
