"""Pure helpers of the Redis engine driver: RESP2 parsing for probes, INFO fields, the seed RDB."""

from __future__ import annotations

import pytest

from cachefleet.engines import redis as redis_engine
from cachefleet.engines import resp


def test_encode_is_an_array_of_bulk_strings() -> None:
    assert resp.encode("AUTH", "admin", "pä ss") == b"*3\r\n$4\r\nAUTH\r\n$5\r\nadmin\r\n$6\r\np\xc3\xa4 ss\r\n"


def test_parse_every_reply_type_in_order() -> None:
    data = b"+OK\r\n-NOPERM no\r\n:42\r\n$5\r\nhello\r\n$-1\r\n*2\r\n$1\r\na\r\n*1\r\n:1\r\n*-1\r\n"
    ok, error, number, bulk, null, array, null_array = resp.parse(data, 7) or []
    assert (ok, number, bulk, null, array, null_array) == ("OK", 42, "hello", None, ["a", [1]], None)
    assert isinstance(error, resp.ReplyError)
    assert str(error) == "NOPERM no"


def test_a_bulk_string_may_hold_crlf() -> None:
    assert resp.parse(b"$9\r\nrole:\r\nab\r\n", 1) == ["role:\r\nab"]


@pytest.mark.parametrize(
    "data",
    [b"", b"+OK", b"$5\r\nhel", b"$5\r\nhello", b"*2\r\n:1\r\n", b"+OK\r\n"],
    ids=["nothing", "no-crlf", "short-bulk", "bulk-without-crlf", "short-array", "one-of-two"],
)
def test_parse_waits_for_more_bytes(data: bytes) -> None:
    count = 2 if data == b"+OK\r\n" else 1
    assert resp.parse(data, count) is None


def test_parse_stops_after_count_replies() -> None:
    assert resp.parse(b":1\r\n:2\r\n:3\r\n", 2) == [1, 2]


@pytest.mark.parametrize("data", [b"?what\r\n", b":x\r\n", b"$abc\r\n"], ids=["type", "integer", "length"])
def test_parse_refuses_what_is_not_resp(data: bytes) -> None:
    with pytest.raises(resp.ProtocolError):
        resp.parse(data, 1)


def test_info_fields_skips_headers_and_blank_lines() -> None:
    text = "# Replication\r\nrole:slave\r\nmaster_host:127.0.0.1\r\n\r\n# Memory\r\nused_memory:100\r\nodd\r\n"
    assert redis_engine.info_fields(text) == {"role": "slave", "master_host": "127.0.0.1", "used_memory": "100"}


def test_an_observation_from_raw_info_fields() -> None:
    fields = redis_engine.info_fields(
        "role:slave\r\nmaster_host:127.0.0.1\r\nmaster_port:7001\r\nmaster_link_status:up\r\n"
        "slave_repl_offset:17\r\nloading:0\r\nused_memory:2048\r\n"
    )
    seen = redis_engine.observation_from_info(fields)
    assert (seen.role, seen.master_host, seen.master_port, seen.master_link_up) == ("slave", "127.0.0.1", 7001, True)
    assert (seen.repl_offset, seen.loading, seen.used_memory) == (17, False, 2048)


def test_the_seed_rdb_carries_the_replication_id_and_no_keys() -> None:
    replication_id = "ab" * 20
    data = redis_engine.seed_rdb(replication_id)
    assert data.startswith(b"REDIS0009")
    assert b"\x07repl-id(" + replication_id.encode() in data  # 40 = 0x28 = "("
    assert data.endswith(b"\xff" + bytes(8))  # EOF, then a zero checksum: "not computed"


@pytest.mark.parametrize("bad", ["", "ab" * 19, "AB" * 20, "zz" * 20])
def test_the_seed_rdb_refuses_what_is_not_a_replication_id(bad: str) -> None:
    with pytest.raises(ValueError, match="replication id"):
        redis_engine.seed_rdb(bad)


def test_parse_available_takes_the_complete_replies_and_leaves_the_rest() -> None:
    pushed = b"*3\r\n$7\r\nmessage\r\n$6\r\n+sdown\r\n$3\r\nabc\r\n" + b"*3\r\n$7\r\nmess"
    replies, used = resp.parse_available(pushed)
    assert replies == [["message", "+sdown", "abc"]]
    assert pushed[used:] == b"*3\r\n$7\r\nmess"
    assert resp.parse_available(b"") == ([], 0)
