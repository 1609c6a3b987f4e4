"""parse_request against botocore's own query serializer as the oracle: what boto3 sends, we read back."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.model
import botocore.serialize
import pytest

from cachefleet.model.errors import InvalidAction, InvalidParameterValue, MalformedQueryString, MissingParameter
from cachefleet.protocol.query import decode_form, parse_request
from cachefleet.protocol.service import ServiceModel, load_service_model

MODEL = load_service_model()
SERIALIZER = botocore.serialize.create_serializer("query")


def form(operation: str, params: dict[str, Any], model: ServiceModel = MODEL) -> list[tuple[str, str]]:
    body = SERIALIZER.serialize_to_request(params, model.operation(operation))["body"]
    return [(key, str(value)) for key, value in body.items()]


def round_trip(operation: str, params: dict[str, Any], model: ServiceModel = MODEL) -> dict[str, Any]:
    action, parsed = parse_request(model, form(operation, params, model))
    assert action == operation
    return parsed


def test_create_replication_group_round_trips() -> None:
    params = {
        "ReplicationGroupId": "orders",
        "ReplicationGroupDescription": "orders cache",
        "NumCacheClusters": 3,
        "AutomaticFailoverEnabled": True,
        "MultiAZEnabled": False,
        "PreferredCacheClusterAZs": ["us-east-1a", "us-east-1b", "us-east-1c"],
        "Tags": [{"Key": "team", "Value": "payments"}, {"Key": "env", "Value": "prod"}],
        "SecurityGroupIds": ["sg-1"],
        "UserGroupIds": ["ug-1", "ug-2"],
        "Port": 6380,
        "Engine": "redis",
    }
    assert round_trip("CreateReplicationGroup", params) == params


def test_create_replication_group_wire_names_follow_the_model() -> None:
    pairs = dict(
        form(
            "CreateReplicationGroup",
            {
                "ReplicationGroupId": "rg",
                "ReplicationGroupDescription": "d",
                "PreferredCacheClusterAZs": ["us-east-1a"],
                "Tags": [{"Key": "k", "Value": "v"}],
                "UserGroupIds": ["ug"],
            },
        )
    )
    assert pairs["PreferredCacheClusterAZs.AvailabilityZone.1"] == "us-east-1a"
    assert pairs["Tags.Tag.1.Key"] == "k"
    assert pairs["UserGroupIds.member.1"] == "ug"


def test_nested_lists_inside_list_structures_round_trip() -> None:
    params = {
        "ReplicationGroupId": "sharded",
        "ReplicationGroupDescription": "cluster mode enabled",
        "NumNodeGroups": 2,
        "NodeGroupConfiguration": [
            {
                "NodeGroupId": "0001",
                "Slots": "0-8191",
                "ReplicaCount": 1,
                "PrimaryAvailabilityZone": "us-east-1a",
                "ReplicaAvailabilityZones": ["us-east-1b"],
            },
            {"NodeGroupId": "0002", "Slots": "8192-16383", "ReplicaAvailabilityZones": ["a", "b"]},
        ],
    }
    assert round_trip("CreateReplicationGroup", params) == params


def test_create_cache_cluster_preferred_availability_zones() -> None:
    params = {
        "CacheClusterId": "memc",
        "Engine": "memcached",
        "NumCacheNodes": 2,
        "PreferredAvailabilityZones": ["us-east-1a", "us-east-1b"],
        "AZMode": "cross-az",
    }
    assert ("PreferredAvailabilityZones.PreferredAvailabilityZone.2", "us-east-1b") in form(
        "CreateCacheCluster", params
    )
    assert round_trip("CreateCacheCluster", params) == params


def test_member_lists() -> None:
    decrease = {
        "ReplicationGroupId": "rg",
        "ApplyImmediately": True,
        "ReplicasToRemove": ["rg-002", "rg-003"],
        "ReplicaConfiguration": [
            {"NodeGroupId": "0001", "NewReplicaCount": 1, "PreferredAvailabilityZones": ["az-1"]}
        ],
    }
    assert ("ReplicasToRemove.member.1", "rg-002") in form("DecreaseReplicaCount", decrease)
    assert round_trip("DecreaseReplicaCount", decrease) == decrease
    untag = {"ResourceName": "arn:aws:elasticache:us-east-1:0:cluster:c", "TagKeys": ["a", "b"]}
    assert ("TagKeys.member.2", "b") in form("RemoveTagsFromResource", untag)
    assert round_trip("RemoveTagsFromResource", untag) == untag


def test_member_lists_nested_in_member_lists() -> None:
    params = {"Filters": [{"Name": "engine", "Values": ["redis", "valkey"]}], "MaxRecords": 50}
    assert ("Filters.member.1.Values.member.2", "valkey") in form("DescribeUsers", params)
    assert round_trip("DescribeUsers", params) == params


def test_timestamps_round_trip_as_aware_utc() -> None:
    start = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    params = {"StartTime": start, "EndTime": start + timedelta(hours=1, microseconds=250_000)}
    parsed = round_trip("DescribeEvents", params)
    assert parsed == params
    assert parsed["StartTime"].tzinfo is not None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-01-02T03:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02T03:04:05.5Z", datetime(2024, 1, 2, 3, 4, 5, 500_000, tzinfo=UTC)),
        ("2024-01-02T05:04:05+02:00", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02T03:04:05", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("1704164645", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("1704164645.5", datetime(2024, 1, 2, 3, 4, 5, 500_000, tzinfo=UTC)),
    ],
)
def test_timestamp_forms(raw: str, expected: datetime) -> None:
    _, params = parse_request(MODEL, [("Action", "DescribeEvents"), ("StartTime", raw)])
    assert params["StartTime"] == expected
    assert params["StartTime"].utcoffset() == timedelta(0)
    assert params["StartTime"].tzinfo is UTC


@pytest.mark.parametrize("raw", ["true", "TRUE", "True", "false", "FaLsE"])
def test_booleans_are_case_insensitive(raw: str) -> None:
    _, params = parse_request(
        MODEL,
        [("Action", "DecreaseReplicaCount"), ("ReplicationGroupId", "rg"), ("ApplyImmediately", raw)],
    )
    assert params["ApplyImmediately"] is (raw.lower() == "true")


@pytest.mark.parametrize(
    ("operation", "name", "raw"),
    [
        ("DescribeEvents", "MaxRecords", "abc"),
        ("DescribeEvents", "MaxRecords", "1.5"),
        ("DescribeEvents", "MaxRecords", ""),
        ("DescribeEvents", "MaxRecords", "1_000"),
        ("DescribeEvents", "MaxRecords", "99999999999"),
        ("DescribeEvents", "StartTime", "yesterday"),
        ("DescribeEvents", "StartTime", "2024-13-01T00:00:00Z"),
        ("DescribeEvents", "StartTime", "99999999999999999999"),
        ("DescribeCacheClusters", "ShowCacheNodeInfo", "yes"),
        ("DescribeCacheClusters", "ShowCacheNodeInfo", "1"),
    ],
)
def test_bad_scalars_name_the_parameter(operation: str, name: str, raw: str) -> None:
    with pytest.raises(InvalidParameterValue, match=name):
        parse_request(MODEL, [("Action", operation), (name, raw)])


def test_bad_scalar_inside_a_list_names_its_wire_path() -> None:
    pairs = [
        ("Action", "DecreaseReplicaCount"),
        ("ReplicationGroupId", "rg"),
        ("ApplyImmediately", "true"),
        ("ReplicaConfiguration.ConfigureShard.1.NodeGroupId", "0001"),
        ("ReplicaConfiguration.ConfigureShard.1.NewReplicaCount", "two"),
    ]
    with pytest.raises(
        InvalidParameterValue, match=r"ReplicaConfiguration\.ConfigureShard\.1\.NewReplicaCount"
    ):
        parse_request(MODEL, pairs)


def test_missing_action() -> None:
    with pytest.raises(MissingParameter, match=re.escape("The request must contain the parameter Action.")):
        parse_request(MODEL, [("Version", "2015-02-02")])


def test_unknown_action() -> None:
    with pytest.raises(
        InvalidAction, match=re.escape("The action Frobnicate is not valid for this web service.")
    ):
        parse_request(MODEL, [("Action", "Frobnicate")])


def test_version_absent_is_accepted_and_another_is_refused() -> None:
    assert parse_request(MODEL, [("Action", "DescribeCacheClusters")]) == ("DescribeCacheClusters", {})
    with pytest.raises(InvalidParameterValue, match="2012-11-15"):
        parse_request(MODEL, [("Action", "DescribeCacheClusters"), ("Version", "2012-11-15")])


def test_missing_required_top_level_member() -> None:
    with pytest.raises(
        MissingParameter,
        match=re.escape("The request must contain the parameter ReplicationGroupDescription."),
    ):
        parse_request(MODEL, [("Action", "CreateReplicationGroup"), ("ReplicationGroupId", "rg")])


def test_missing_required_nested_member_names_its_wire_path() -> None:
    pairs = [("Action", "DescribeUsers"), ("Filters.member.1.Name", "engine")]
    with pytest.raises(MissingParameter, match=r"Filters\.member\.1\.Values"):
        parse_request(MODEL, pairs)


def test_absent_members_are_absent_not_none() -> None:
    _, params = parse_request(MODEL, form("ModifyReplicationGroup", {"ReplicationGroupId": "rg"}))
    assert params == {"ReplicationGroupId": "rg"}


def test_an_empty_list_reads_as_absent() -> None:
    pairs = form("ModifyReplicationGroup", {"ReplicationGroupId": "rg", "SecurityGroupIds": []})
    assert ("SecurityGroupIds", "") in pairs
    assert parse_request(MODEL, pairs)[1] == {"ReplicationGroupId": "rg"}


def test_an_empty_string_is_given() -> None:
    _, params = parse_request(
        MODEL, [("Action", "ModifyReplicationGroup"), ("ReplicationGroupId", "rg"), ("SnapshotWindow", "")]
    )
    assert params == {"ReplicationGroupId": "rg", "SnapshotWindow": ""}


def test_unknown_parameters_are_ignored() -> None:
    pairs = [
        ("Action", "DescribeCacheClusters"),
        ("CacheClusterId", "c"),
        ("NoSuchThing", "x"),
        ("CacheClusterId.Deeper", "y"),
    ]
    assert parse_request(MODEL, pairs) == ("DescribeCacheClusters", {"CacheClusterId": "c"})


def test_list_elements_are_ordered_by_index_not_by_position() -> None:
    pairs = [
        ("Action", "RemoveTagsFromResource"),
        ("ResourceName", "arn"),
        ("TagKeys.member.10", "ten"),
        ("TagKeys.member.2", "two"),
        ("TagKeys.member.1", "one"),
        ("TagKeys.member.0", "ignored"),
        ("TagKeys.member.x", "ignored"),
    ]
    assert parse_request(MODEL, pairs)[1]["TagKeys"] == ["one", "two", "ten"]


# Shapes the ElastiCache model does not use (maps, flattened lists, long, double, blob, renamed
# members), checked on a small model of our own against the same botocore serializer.

SYNTHETIC = ServiceModel(
    botocore.model.ServiceModel(
        {
            "metadata": {
                "apiVersion": "2015-02-02",
                "protocol": "query",
                "xmlNamespace": "http://example.test/doc/",
                "serviceId": "Synthetic",
                "endpointPrefix": "synthetic",
                "signatureVersion": "v4",
            },
            "operations": {
                "Frob": {
                    "name": "Frob",
                    "http": {"method": "POST", "requestUri": "/"},
                    "input": {"shape": "FrobMessage"},
                }
            },
            "shapes": {
                "FrobMessage": {
                    "type": "structure",
                    "required": ["Count"],
                    "members": {
                        "Labels": {"shape": "LabelMap"},
                        "Plain": {"shape": "PlainMap"},
                        "Flat": {"shape": "FlatList"},
                        "Count": {"shape": "Long"},
                        "Ratio": {"shape": "Double"},
                        "Payload": {"shape": "Blob"},
                        "Renamed": {"shape": "String", "locationName": "OtherName"},
                    },
                },
                "LabelMap": {
                    "type": "map",
                    "key": {"shape": "String", "locationName": "Name"},
                    "value": {"shape": "String", "locationName": "Text"},
                },
                "PlainMap": {"type": "map", "key": {"shape": "String"}, "value": {"shape": "Long"}},
                "FlatList": {
                    "type": "list",
                    "member": {"shape": "String", "locationName": "Item"},
                    "flattened": True,
                },
                "Long": {"type": "long"},
                "Double": {"type": "double"},
                "Blob": {"type": "blob"},
                "String": {"type": "string"},
            },
        },
        service_name="synthetic",
    )
)


def test_maps_flattened_lists_and_other_scalars_round_trip() -> None:
    params = {
        "Labels": {"a": "1", "b": "2"},
        "Plain": {"x": 2**40},
        "Flat": ["p", "q"],
        "Count": -(2**62),
        "Ratio": 0.25,
        "Payload": b"\x00\xffbytes",
        "Renamed": "r",
    }
    pairs = dict(form("Frob", params, SYNTHETIC))
    assert pairs["Labels.entry.1.Name"] == "a"
    assert pairs["Item.2"] == "q"
    assert pairs["OtherName"] == "r"
    assert round_trip("Frob", params, SYNTHETIC) == params


def test_map_entry_without_its_value_is_missing() -> None:
    pairs = [("Action", "Frob"), ("Count", "1"), ("Labels.entry.1.Name", "a")]
    with pytest.raises(MissingParameter, match=r"Labels\.entry\.1\.Text"):
        parse_request(SYNTHETIC, pairs)


@pytest.mark.parametrize(
    ("name", "raw"),
    [("Count", "9223372036854775808"), ("Ratio", "nan"), ("Ratio", "1e999"), ("Payload", "not base64!")],
)
def test_bad_synthetic_scalars(name: str, raw: str) -> None:
    pairs = [("Action", "Frob"), ("Count", "1"), (name, raw)]
    with pytest.raises(InvalidParameterValue, match=name):
        parse_request(SYNTHETIC, pairs)


# Hostile values: checked here, whatever the handler does later


@pytest.mark.parametrize("raw", ["9" * 5000, "-" + "9" * 5000, "+" + "1" * 21, "2147483648"])
def test_integers_past_their_type_or_int_limit_are_refused_without_int(raw: str) -> None:
    with pytest.raises(InvalidParameterValue, match=r"Invalid integer value '.*for parameter MaxRecords\.$"):
        parse_request(MODEL, [("Action", "DescribeCacheClusters"), ("MaxRecords", raw)])


def test_leading_zeros_and_signs_read_as_the_number() -> None:
    for raw, value in (("0" * 5000 + "42", 42), ("-0007", -7), ("+20", 20), ("-" + "0" * 30, 0)):
        assert parse_request(MODEL, [("Action", "DescribeCacheClusters"), ("MaxRecords", raw)])[1] == {
            "MaxRecords": value
        }


@pytest.mark.parametrize("index", ["1" * 7, "9" * 5000])
def test_list_indices_of_more_than_six_digits_are_refused(index: str) -> None:
    pairs = [("Action", "RemoveTagsFromResource"), ("ResourceName", "r"), (f"TagKeys.member.{index}", "k")]
    with pytest.raises(InvalidParameterValue, match=r"Invalid list index .* for parameter TagKeys\.member\.$"):
        parse_request(MODEL, pairs)


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x1f", chr(0xD800), chr(0xDFFF), "\ufffe", "\uffff"])
def test_a_character_xml_cannot_carry_is_refused_in_any_string(char: str) -> None:
    code = re.escape(f"U+{ord(char):04X}")
    group = form("CreateReplicationGroup", {"ReplicationGroupId": "g", "ReplicationGroupDescription": f"a{char}"})
    with pytest.raises(InvalidParameterValue, match=f"ReplicationGroupDescription: the character {code} "):
        parse_request(MODEL, group)
    with pytest.raises(InvalidParameterValue, match=rf"Tags\.Tag\.1\.Value: the character {code} "):
        parse_request(
            MODEL,
            form("AddTagsToResource", {"ResourceName": "r", "Tags": [{"Key": "k", "Value": char}]}),
        )


def test_text_xml_can_carry_is_kept() -> None:
    text = "tab\there\nnew line\r\nand CR, \x7f\x85 \ue000 \ufffd \U0001f600 <&>"
    params = round_trip("CreateReplicationGroup", {"ReplicationGroupId": "g", "ReplicationGroupDescription": text})
    assert params["ReplicationGroupDescription"] == text


def test_decode_form_is_strict_utf8() -> None:
    assert decode_form(b"a=%C3%A9&b=x+y&c=") == [("a", "\u00e9"), ("b", "x y"), ("c", "")]
    for body in (b"a=%FF", b"a=%ED%A0%80", b"\xff=1"):
        with pytest.raises(MalformedQueryString):
            decode_form(body)


def test_a_long_bad_value_is_quoted_short() -> None:
    with pytest.raises(InvalidParameterValue) as caught:
        parse_request(MODEL, [("Action", "DescribeCacheClusters"), ("ShowCacheNodeInfo", "x" * 10_000)])
    assert len(caught.value.message) < 200
