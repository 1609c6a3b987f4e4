"""serialize_result / serialize_error against botocore's own query response parser as the oracle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from xml.etree import ElementTree as ET

import botocore.model
import botocore.parsers
import pytest

from cachefleet.protocol.service import ServiceModel, load_service_model
from cachefleet.protocol.xml import XML_NAMESPACE, ShapeError, serialize_error, serialize_result

MODEL = load_service_model()
REQUEST_ID = "6f1c2a58-7f3e-4d7a-9c1b-3e1f0d2b8a11"
CREATED = datetime(2024, 3, 4, 5, 6, 7, 123_000, tzinfo=UTC)


def botocore_reads(body: bytes, operation: str, model: ServiceModel = MODEL, status: int = 200) -> Any:
    parser = botocore.parsers.create_parser("query")
    shape = model.operation(operation).output_shape
    return parser.parse({"body": body, "headers": {}, "status_code": status}, shape)


def round_trip(operation: str, result: dict[str, Any], model: ServiceModel = MODEL) -> dict[str, Any]:
    parsed = botocore_reads(serialize_result(model, operation, result, REQUEST_ID), operation, model)
    assert parsed.pop("ResponseMetadata")["RequestId"] == REQUEST_ID
    return dict(parsed)


def endpoint(host: str, port: int) -> dict[str, Any]:
    return {"Address": host, "Port": port}


def test_describe_replication_groups_round_trips() -> None:
    group = {
        "ReplicationGroupId": "orders",
        "Description": "orders cache",
        "Status": "available",
        "PendingModifiedValues": {
            "PrimaryClusterId": "orders-002",
            "LogDeliveryConfigurations": [{"LogType": "slow-log", "DestinationType": "cloudwatch-logs"}],
        },
        "MemberClusters": ["orders-001", "orders-002"],
        "NodeGroups": [
            {
                "NodeGroupId": "0001",
                "Status": "available",
                "PrimaryEndpoint": endpoint("orders.example.internal", 6379),
                "ReaderEndpoint": endpoint("orders-ro.example.internal", 6379),
                "NodeGroupMembers": [
                    {
                        "CacheClusterId": "orders-001",
                        "CacheNodeId": "0001",
                        "ReadEndpoint": endpoint("orders-001.example.internal", 6379),
                        "PreferredAvailabilityZone": "us-east-1a",
                        "CurrentRole": "primary",
                    },
                    {
                        "CacheClusterId": "orders-002",
                        "CacheNodeId": "0001",
                        "ReadEndpoint": endpoint("orders-002.example.internal", 6379),
                        "PreferredAvailabilityZone": "us-east-1b",
                        "CurrentRole": "replica",
                    },
                ],
            }
        ],
        "AutomaticFailover": "enabled",
        "MultiAZ": "enabled",
        "SnapshotRetentionLimit": 0,
        "ClusterEnabled": False,
        "CacheNodeType": "cache.t3.micro",
        "AuthTokenEnabled": False,
        "TransitEncryptionEnabled": False,
        "AtRestEncryptionEnabled": False,
        "ARN": "arn:aws:elasticache:us-east-1:000000000000:replicationgroup:orders",
        "UserGroupIds": [],
        "LogDeliveryConfigurations": [],
        "ReplicationGroupCreateTime": CREATED,
        "Engine": "redis",
    }
    result = {"Marker": "next-page", "ReplicationGroups": [group]}
    assert round_trip("DescribeReplicationGroups", result) == result


def test_list_and_member_element_names_follow_the_model() -> None:
    body = serialize_result(
        MODEL,
        "DescribeReplicationGroups",
        {
            "ReplicationGroups": [
                {
                    "ReplicationGroupId": "rg",
                    "MemberClusters": ["rg-001"],
                    "NodeGroups": [
                        {"NodeGroupId": "0001", "NodeGroupMembers": [{"CacheClusterId": "rg-001"}]}
                    ],
                    "PendingModifiedValues": {"LogDeliveryConfigurations": [{"LogType": "slow-log"}]},
                    "UserGroupIds": ["ug"],
                }
            ]
        },
        REQUEST_ID,
    )
    root = ET.fromstring(body)
    ns = {"ec": XML_NAMESPACE}
    assert root.tag == f"{{{XML_NAMESPACE}}}DescribeReplicationGroupsResponse"
    group = root.find("ec:DescribeReplicationGroupsResult/ec:ReplicationGroups/ec:ReplicationGroup", ns)
    assert group is not None
    assert group.find("ec:MemberClusters/ec:ClusterId", ns) is not None
    assert group.find("ec:NodeGroups/ec:NodeGroup/ec:NodeGroupMembers/ec:NodeGroupMember", ns) is not None
    assert group.find("ec:PendingModifiedValues/ec:PendingLogDeliveryConfiguration/ec:member", ns) is not None
    assert group.find("ec:UserGroupIds/ec:member", ns) is not None
    assert root.findtext("ec:ResponseMetadata/ec:RequestId", namespaces=ns) == REQUEST_ID


def test_describe_cache_clusters_with_nodes_and_timestamps() -> None:
    offset = timezone(timedelta(hours=2))
    cluster = {
        "CacheClusterId": "memc",
        "ConfigurationEndpoint": endpoint("memc.cfg.example.internal", 11211),
        "CacheNodeType": "cache.t3.micro",
        "Engine": "memcached",
        "EngineVersion": "1.6.22",
        "CacheClusterStatus": "available",
        "NumCacheNodes": 2,
        "PreferredAvailabilityZone": "Multiple",
        "CacheClusterCreateTime": CREATED,
        "CacheSecurityGroups": [],
        "CacheParameterGroup": {
            "CacheParameterGroupName": "default.memcached1.6",
            "ParameterApplyStatus": "in-sync",
            "CacheNodeIdsToReboot": ["0002"],
        },
        "CacheNodes": [
            {
                "CacheNodeId": f"000{index}",
                "CacheNodeStatus": "available",
                "CacheNodeCreateTime": datetime(2024, 3, 4, 7, 6, 7, tzinfo=offset),
                "Endpoint": endpoint(f"memc.000{index}.example.internal", 11211),
                "ParameterGroupStatus": "in-sync",
                "CustomerAvailabilityZone": "us-east-1a",
            }
            for index in (1, 2)
        ],
        "SecurityGroups": [{"SecurityGroupId": "sg-1", "Status": "active"}],
        "AutoMinorVersionUpgrade": True,
    }
    parsed = round_trip("DescribeCacheClusters", {"CacheClusters": [cluster]})
    assert parsed == {"CacheClusters": [cluster]}
    node_time = parsed["CacheClusters"][0]["CacheNodes"][0]["CacheNodeCreateTime"]
    assert node_time.utcoffset() == timedelta(0)
    assert node_time == datetime(2024, 3, 4, 5, 6, 7, tzinfo=UTC)


def test_timestamps_are_iso_8601_utc_with_z() -> None:
    body = serialize_result(
        MODEL,
        "DescribeCacheClusters",
        {"CacheClusters": [{"CacheClusterId": "c", "CacheClusterCreateTime": CREATED}]},
        REQUEST_ID,
    )
    assert b"<CacheClusterCreateTime>2024-03-04T05:06:07.123Z</CacheClusterCreateTime>" in body


def test_list_tags_escapes_text() -> None:
    tags = {"TagList": [{"Key": "a<b>&c", "Value": "\"quoted\" 'single' ]]>"}, {"Key": "empty", "Value": ""}]}
    assert round_trip("ListTagsForResource", tags) == tags


def test_operation_without_output_has_only_metadata() -> None:
    body = serialize_result(MODEL, "DeleteCacheParameterGroup", None, REQUEST_ID)
    root = ET.fromstring(body)
    assert [child.tag for child in root] == [f"{{{XML_NAMESPACE}}}ResponseMetadata"]
    assert round_trip("DeleteCacheParameterGroup", {}) == {}


def test_error_round_trip() -> None:
    body = serialize_error("CacheClusterNotFound", "CacheCluster nope not found.", True, REQUEST_ID)
    parsed = botocore_reads(body, "DescribeCacheClusters", status=404)
    assert parsed["Error"] == {
        "Type": "Sender",
        "Code": "CacheClusterNotFound",
        "Message": "CacheCluster nope not found.",
    }
    assert parsed["ResponseMetadata"]["RequestId"] == REQUEST_ID


def test_internal_error_is_a_receiver_fault() -> None:
    body = serialize_error("InternalFailure", "<oops> & more", False, REQUEST_ID)
    parsed = botocore_reads(body, "DescribeCacheClusters", status=500)
    assert parsed["Error"]["Type"] == "Receiver"
    assert parsed["Error"]["Message"] == "<oops> & more"


@pytest.mark.parametrize(
    ("operation", "result", "message"),
    [
        ("DescribeCacheClusters", {"CacheClusterz": []}, "CacheClusterz"),
        ("DescribeCacheClusters", {"CacheClusters": [{"CacheClusterId": "c", "Oops": 1}]}, "Oops"),
        ("DeleteCacheParameterGroup", {"Anything": "x"}, "Anything"),
    ],
)
def test_unknown_keys_raise(operation: str, result: dict[str, Any], message: str) -> None:
    with pytest.raises(KeyError, match=message):
        serialize_result(MODEL, operation, result, REQUEST_ID)
    with pytest.raises(ValueError, match=message):
        serialize_result(MODEL, operation, result, REQUEST_ID)


@pytest.mark.parametrize(
    "cluster",
    [
        {"NumCacheNodes": "2"},
        {"NumCacheNodes": True},
        {"AutoMinorVersionUpgrade": "true"},
        {"CacheClusterCreateTime": datetime(2024, 1, 1)},  # naive on purpose
        {"CacheClusterCreateTime": "2024-01-01T00:00:00Z"},
        {"CacheNodes": {"CacheNodeId": "0001"}},
        {"CacheNodes": [None]},
        {"ConfigurationEndpoint": "host:6379"},
        {"CacheClusterId": 7},
    ],
)
def test_values_of_the_wrong_type_raise(cluster: dict[str, Any]) -> None:
    with pytest.raises(ShapeError):
        serialize_result(MODEL, "DescribeCacheClusters", {"CacheClusters": [cluster]}, REQUEST_ID)


def test_none_values_are_omitted() -> None:
    cluster = {"CacheClusterId": "c", "ConfigurationEndpoint": None, "EngineVersion": None}
    parsed = round_trip("DescribeCacheClusters", {"CacheClusters": [cluster], "Marker": None})
    assert parsed == {"CacheClusters": [{"CacheClusterId": "c"}]}


# Shapes the ElastiCache model does not use, checked on a small model of our own.

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
                    "output": {"shape": "FrobResult", "resultWrapper": "FrobResult"},
                }
            },
            "shapes": {
                "FrobResult": {
                    "type": "structure",
                    "members": {
                        "Labels": {"shape": "LabelMap"},
                        "FlatMap": {"shape": "FlatMap"},
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
                "FlatMap": {
                    "type": "map",
                    "key": {"shape": "String"},
                    "value": {"shape": "Long"},
                    "flattened": True,
                },
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


def test_maps_flattened_shapes_and_other_scalars_round_trip() -> None:
    result = {
        "Labels": {"a": "1", "b": "2"},
        "FlatMap": {"x": 2**40, "y": -1},
        "Flat": ["p", "q"],
        "Count": 2**62,
        "Ratio": 0.25,
        "Payload": b"\x00\xffbytes",
        "Renamed": "r",
    }
    body = serialize_result(SYNTHETIC, "Frob", result, REQUEST_ID)
    assert b"<Item>p</Item><Item>q</Item>" in body
    assert b"<Labels><entry><Name>a</Name><Text>1</Text></entry>" in body
    assert b"<OtherName>r</OtherName>" in body
    assert round_trip("Frob", result, SYNTHETIC) == result


# Text XML cannot carry never reaches the wire


UNCARRIABLE = "a\x00b\x01c\x1f" + chr(0xD800) + "\ufffe\uffff" + "d"


def test_an_error_message_quoting_what_xml_cannot_carry_still_parses() -> None:
    body = serialize_error("InvalidAction", f"The action {UNCARRIABLE} is not valid.", True, REQUEST_ID)
    ET.fromstring(body)  # well-formed, and encoded: a lone surrogate would fail .encode()
    message = botocore_reads(body, "DescribeCacheClusters", status=400)["Error"]["Message"]
    assert message == "The action a\ufffdb\ufffdc\ufffd\ufffd\ufffd\ufffdd is not valid."


def test_a_stored_value_xml_cannot_carry_comes_back_replaced() -> None:
    tags = round_trip("ListTagsForResource", {"TagList": [{"Key": UNCARRIABLE, "Value": "v\x0b"}]})
    assert tags == {"TagList": [{"Key": "a\ufffdb\ufffdc\ufffd\ufffd\ufffd\ufffdd", "Value": "v\ufffd"}]}


def test_a_carriage_return_survives_the_parsers_line_end_normalisation() -> None:
    body = serialize_result(MODEL, "ListTagsForResource", {"TagList": [{"Key": "k", "Value": "a\r\nb\rc"}]}, "r")
    assert b"&#13;" in body
    assert round_trip("ListTagsForResource", {"TagList": [{"Key": "k", "Value": "a\r\nb\rc"}]}) == {
        "TagList": [{"Key": "k", "Value": "a\r\nb\rc"}]
    }


def test_errors_take_the_namespace_of_the_service_that_answers() -> None:
    body = serialize_error("NoSuchEntity", "m", True, REQUEST_ID, "https://iam.amazonaws.com/doc/2010-05-08/")
    assert ET.fromstring(body).tag == "{https://iam.amazonaws.com/doc/2010-05-08/}ErrorResponse"
