"""Hypothesis strategies for hostile requests, built from botocore's service models.

Everything here is pure data: forms shaped by an operation's input shape (with values an attacker
would pick: control characters, non-characters, lone surrogates, markup, digit strings past
Python's int() limit, odd list indices), headers, SigV4 claims and output-shaped results. The fuzz
tests feed them to the in-process app, the SigV4 verifier and the XML writer. Nothing here knows an
operation by name, so another service's model (``targets.py``) is fuzzed with the same code; a
later parser (an IAM policy document, say) adds its own strategy beside these (``json_values``).
"""

from __future__ import annotations

import functools
import string
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import botocore.serialize
from hypothesis import strategies as st

from cachefleet.protocol.service import OperationModel, Shape

# Characters and fragments that broke, or could break, a parser or an XML answer.
NASTY = (
    "\x00",
    "\x01",
    "\x08",
    "\x0b",
    "\x0c",
    "\x1b",
    "\x1f",
    "\x7f",
    "\x85",
    "\ufffe",
    "\uffff",
    "\ud800",
    "\udfff",
    "\ufeff",
    "\u202e",
    "\r",
    "\r\n",
    "\n",
    "\t",
    "&",
    "&amp;",
    "<",
    ">",
    "]]>",
    "<![CDATA[",
    '"',
    "'",
    "%",
    "%ZZ",
    "%ff",
    "+",
    "=",
    ".",
    "..",
    "/",
    "-",
    " ",
    "é",
    "\U0001f600",
    "\U0010ffff",
)
_INVALID_IN_XML = (
    *(chr(c) for c in range(0x20) if chr(c) not in "\t\n\r"),
    "\ud800",
    "\udbff",
    "\udc00",
    "\udfff",
    "\ufffe",
    "\uffff",
)
_SERIALIZER = botocore.serialize.create_serializer("query", include_validation=False)


@functools.cache
def huge_numbers() -> st.SearchStrategy[str]:
    """Digit strings around and past Python's int() conversion limit (4300 digits), and friends."""
    digits = st.integers(min_value=1, max_value=12_000)
    return st.one_of(
        digits.map(lambda n: "9" * n),
        digits.map(lambda n: "-" + "1" * n),
        digits.map(lambda n: "0" * n + "7"),
        digits.map(lambda n: "1" * n + ".5e" + "9" * 5),
        st.sampled_from(
            ["2147483648", "-2147483649", "9223372036854775808", "1e309", "nan", "inf", "0x10", "\u0661\u0662"]
        ),
    )


@functools.cache
def text(pool: tuple[str, ...] = ()) -> st.SearchStrategy[str]:
    """A string a client may send: mostly a plausible one (``pool``), else anything, else nasty."""
    fragments = st.sampled_from(NASTY) | st.text(max_size=3) | (st.sampled_from(pool) if pool else st.nothing())
    hostile = st.one_of(
        st.text(st.characters(codec=None, exclude_categories=()), max_size=30),
        # Control characters, non-characters and lone surrogates, which st.text rarely draws.
        st.text(st.sampled_from(_INVALID_IN_XML) | st.characters(), min_size=1, max_size=5),
        st.lists(fragments, max_size=8).map("".join),
        huge_numbers(),
    )
    if not pool:
        return hostile
    # Plausible values reach the handlers' deeper paths; hostile ones test the edge.
    plausible = st.sampled_from(pool)
    return st.integers(0, 9).flatmap(lambda roll: plausible if roll < 6 else hostile)


# Forms shaped by an operation's input


Likely = Callable[[str], bool]  # is a member path one the operation implements (so, worth sending often)?
Hints = Mapping[str, tuple[str, ...]]  # plausible values by member name


@st.composite
def value_for(
    draw: st.DrawFn,
    shape: Shape,
    pool: tuple[str, ...],
    *,
    likely: Likely,
    path: str = "",
    hints: Hints | None = None,
) -> Any:
    """A value of ``shape`` as a caller's code would pass it to botocore: typed where the serializer
    needs a type, and a hostile string wherever the wire carries text anyway."""
    kind = shape.type_name
    depth = path.count(".")
    if kind == "structure":
        return draw(params_for(shape, pool, likely=likely, prefix=path, hints=hints))
    if kind == "list":
        items = value_for(shape.member, pool, likely=likely, path=path, hints=hints)
        return draw(st.lists(items, max_size=3 if depth < 2 else 1))
    if kind == "map":
        keys = value_for(shape.key, pool, likely=likely, path=path, hints=hints)
        values = value_for(shape.value, pool, likely=likely, path=path, hints=hints)
        return draw(st.dictionaries(keys, values, max_size=2))
    if kind == "boolean":
        return draw(st.booleans())
    if kind in ("integer", "long"):
        return draw(_integers(pool))
    if kind in ("double", "float"):
        return draw(st.floats(allow_nan=False, allow_infinity=False))
    if kind == "timestamp":
        return draw(st.datetimes(timezones=st.just(UTC)))
    if kind == "blob":
        return draw(st.binary(max_size=20))
    plausible = tuple(getattr(shape, "enum", [])) + (hints or {}).get(path.rpartition(".")[2], ())
    return draw(text(plausible or pool))


@functools.cache
def _integers(pool: tuple[str, ...]) -> st.SearchStrategy[Any]:
    """Integer members: small plausible numbers mostly, else any integer or hostile text."""
    small, other = st.integers(-3, 60), st.integers() | text(pool)
    return st.integers(0, 9).flatmap(lambda roll: small if roll < 6 else other)


@st.composite
def params_for(
    draw: st.DrawFn,
    shape: Shape,
    pool: tuple[str, ...],
    *,
    likely: Likely = lambda path: True,
    prefix: str = "",
    hints: Hints | None = None,
) -> dict[str, Any]:
    """Some members of a structure: required ones nearly always, implemented ones often, others
    (which the edge refuses) now and then."""
    params = {}
    for name, member in shape.members.items():
        path = f"{prefix}.{name}" if prefix else name
        chance = 9 if name in shape.required_members else (3 if likely(path) else 1)
        if draw(st.integers(0, 29)) < chance * 3:
            params[name] = draw(value_for(member, pool, likely=likely, path=path, hints=hints))
    return params


def wire_pairs(operation: OperationModel, params: dict[str, Any], version: str) -> list[tuple[str, str]]:
    """``params`` as botocore puts them on the wire (Action, Version, dotted members)."""
    body = _SERIALIZER.serialize_to_request(params, operation)["body"]
    pairs = [(str(key), str(value)) for key, value in body.items()]
    return [(k, v) for k, v in pairs if k not in ("Action", "Version")] + [
        ("Action", operation.name),
        ("Version", version),
    ]


@st.composite
def mutated(draw: st.DrawFn, pairs: list[tuple[str, str]], pool: tuple[str, ...]) -> list[tuple[str, str]]:
    """``pairs`` with what a client's own serializer would never send: values replaced by hostile
    text (booleans and timestamps included), list indices made huge, zero or negative, junk pairs
    added, a pair dropped or repeated."""
    result = list(pairs)
    for _ in range(draw(st.integers(0, 3))):
        if not result:
            break
        index = draw(st.integers(0, len(result) - 1))
        key, value = result[index]
        action = draw(st.sampled_from(["value", "index", "drop", "repeat", "junk"]))
        if action == "value":
            result[index] = (key, draw(text(pool)))
        elif action == "index":
            parts = key.split(".")
            numbered = [i for i, part in enumerate(parts) if part.isdigit()]
            if numbered:
                parts[draw(st.sampled_from(numbered))] = draw(
                    st.sampled_from(["0", "00", "-1", "1.5", "\u0661", "99999999"]) | huge_numbers()
                )
            result[index] = (".".join(parts), value)
        elif action == "drop":
            result.pop(index)
        elif action == "repeat":
            result.append((key, draw(text(pool))))
        else:
            junk_key = draw(st.one_of(text(), st.just(key + "." + draw(text(pool)))))
            result.append((junk_key, draw(text(pool))))
    return result


def encode_form(pairs: list[tuple[str, str]]) -> bytes:
    """A form body; a lone surrogate goes out as its (invalid) UTF-8 bytes, as an attacker sends it."""
    return "&".join(f"{_quote(key)}={_quote(value)}" for key, value in pairs).encode("ascii")


def _quote(text_: str) -> str:
    return quote(text_.encode("utf-8", "surrogatepass"), safe="-_.~")


# Requests as a whole: methods, headers, SigV4 claims


METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "PROPFIND", "FOO")
# Header values travel as latin-1 text: anything but CR, LF and NUL can be sent.
header_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=60) | huge_numbers()
header_names = st.text(string.ascii_letters + string.digits + "-", min_size=1, max_size=20)


@functools.cache
def http_dates() -> st.SearchStrategy[str]:
    """``Date`` header values: well-formed ones from year 1 to 9999 in any zone, and garbage."""
    zones = st.sampled_from(["GMT", "UTC", "+0000", "-0000", "+1400", "-1200", "+9999", "Z", "EST"])
    when = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 31, 23, 59, 59))
    return st.one_of(
        st.builds(lambda w, z: w.strftime("%a, %d %b %Y %H:%M:%S ") + z, when, zones),
        header_values,
    )


@functools.cache
def amz_dates() -> st.SearchStrategy[str]:
    """``X-Amz-Date`` values: ISO basic stamps from year 1 to 9999 (near now, often), and garbage."""
    now = datetime.now(UTC).replace(tzinfo=None)
    near = st.timedeltas(min_value=-timedelta(days=30), max_value=timedelta(days=30)).map(lambda d: now + d)
    far = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59))
    stamps = st.one_of(near, far).map(lambda w: w.strftime("%Y%m%dT%H%M%SZ"))
    return st.one_of(stamps, header_values)


@functools.cache
def credentials(key_id: str, services: tuple[str, ...]) -> st.SearchStrategy[str]:
    """``Credential`` values: the real key with a date, region and service, or parts of garbage."""
    date = st.one_of(amz_dates().map(lambda s: s[:8]), text())
    region = st.one_of(st.just("us-east-1"), text())
    service = st.one_of(st.sampled_from(services), text())
    key = st.one_of(st.just(key_id), text())
    terminator = st.one_of(st.just("aws4_request"), text())
    parts = st.tuples(key, date, region, service, terminator).map("/".join)
    return st.one_of(parts, text())


@st.composite
def authorization(draw: st.DrawFn, key_id: str, services: tuple[str, ...]) -> str:
    """An Authorization header: well-formed with a forged signature, or broken in one of its parts."""
    credential = draw(credentials(key_id, services))
    signed = draw(st.one_of(st.just("host;x-amz-date"), st.just("content-type;host;x-amz-date"), text()))
    signature = draw(st.one_of(st.text("0123456789abcdef", min_size=64, max_size=64), text()))
    algorithm = draw(st.one_of(st.just("AWS4-HMAC-SHA256"), text()))
    separator = draw(st.sampled_from([", ", ",", " ", ";"]))
    fields = [f"Credential={credential}", f"SignedHeaders={signed}", f"Signature={signature}"]
    return f"{algorithm} " + separator.join(draw(st.permutations(fields)))


@st.composite
def presigned_query(draw: st.DrawFn, key_id: str, services: tuple[str, ...]) -> list[tuple[str, str]]:
    """The X-Amz-* parameters of a presigned URL, each plausible or hostile."""
    pairs = [
        ("X-Amz-Algorithm", draw(st.one_of(st.just("AWS4-HMAC-SHA256"), text()))),
        ("X-Amz-Credential", draw(credentials(key_id, services))),
        ("X-Amz-Date", draw(amz_dates())),
        ("X-Amz-Expires", draw(st.one_of(st.integers(-10, 10**7).map(str), huge_numbers(), text()))),
        ("X-Amz-SignedHeaders", draw(st.one_of(st.just("host"), text()))),
        ("X-Amz-Signature", draw(st.one_of(st.text("0123456789abcdef", min_size=64, max_size=64), text()))),
    ]
    return draw(st.lists(st.sampled_from(pairs), unique=True, max_size=len(pairs))) if draw(st.booleans()) else pairs


# Results shaped by an operation's output (for the XML writer)


@st.composite
def result_for(draw: st.DrawFn, shape: Shape, depth: int = 0) -> Any:
    """A handler result of ``shape``: typed as the writer requires, strings hostile."""
    kind = shape.type_name
    if kind == "structure":
        members = list(shape.members.items())
        chosen = draw(st.lists(st.sampled_from(members), unique_by=lambda m: m[0], max_size=4 if depth < 3 else 1))
        return {name: draw(result_for(member, depth + 1)) for name, member in chosen}
    if kind == "list":
        return draw(st.lists(result_for(shape.member, depth + 1), max_size=2 if depth < 3 else 0))
    if kind == "map":
        return draw(st.dictionaries(result_for(shape.key, depth + 1), result_for(shape.value, depth + 1), max_size=2))
    if kind == "boolean":
        return draw(st.booleans())
    if kind in ("integer", "long"):
        bits = 31 if kind == "integer" else 63
        return draw(st.integers(-(2**bits), 2**bits - 1))
    if kind in ("double", "float"):
        return draw(st.floats(allow_nan=False, allow_infinity=False, width=32))
    if kind == "timestamp":
        return draw(st.datetimes(min_value=datetime(1970, 1, 2), timezones=st.just(UTC)))
    if kind == "blob":
        return draw(st.binary(max_size=20))
    return draw(text())


@functools.cache
def json_values() -> st.SearchStrategy[Any]:
    """Arbitrary JSON values with hostile strings: the input of a document parser (a policy, say)."""
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), text())
    return st.recursive(
        scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text(), inner, max_size=4), max_leaves=20
    )
