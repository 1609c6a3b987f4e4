import pytest

from cachefleet_client import JsonCodec, MsgpackCodec

VALUE = {"id": 7, "name": "Zoë", "tags": ["a", "b"], "score": 1.5, "none": None}


@pytest.mark.parametrize("codec", [JsonCodec(), MsgpackCodec()], ids=["json", "msgpack"])
def test_round_trip(codec: JsonCodec | MsgpackCodec) -> None:
    data = codec.encode(VALUE)
    assert isinstance(data, bytes)
    assert codec.decode(data) == VALUE


def test_json_is_compact_utf8() -> None:
    assert JsonCodec().encode({"a": "é"}) == '{"a":"é"}'.encode()


def test_json_default_hook() -> None:
    codec = JsonCodec(default=sorted)
    assert codec.decode(codec.encode({"s": {3, 1, 2}})) == {"s": [1, 2, 3]}
