"""The IAM policy engine: parsing (what IAM refuses as malformed) and evaluation (AWS's order)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cachefleet.model.errors import MalformedPolicyDocument
from cachefleet.model.patterns import RequestContext, arn_like, context, string_like, substitute
from cachefleet.model.policy import (
    Decision,
    Verdict,
    authorize,
    denial_message,
    document_size,
    evaluate,
    parse_policy,
)

RG = "arn:aws:elasticache:us-east-1:000000000000:replicationgroup:orders"
PROD = "arn:aws:elasticache:us-east-1:000000000000:replicationgroup:prod-1"
CREATE = "elasticache:CreateReplicationGroup"
DESCRIBE = "elasticache:DescribeReplicationGroups"
NOBODY = context({})


def policy(*statements: dict[str, Any], version: str = "2012-10-17") -> Any:
    return parse_policy(json.dumps({"Version": version, "Statement": list(statements)}))


def allow(action: Any = "*", resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: Any = "*", resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def decide(pol: Any, action: str = CREATE, resource: str = RG, ctx: RequestContext = NOBODY) -> Decision:
    return evaluate([pol], action, resource, ctx)


# Parsing


def doc(statement: str, version: str = "2012-10-17") -> str:
    return f'{{"Version": "{version}", "Statement": {statement}}}'


def cond(condition: str) -> str:
    return doc(f'{{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {condition}}}')


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ("not json", "Syntax errors"),
        ("[]", "Syntax errors"),
        ('{"Version": "2012-10-17"}', "Missing required field Statement"),
        (doc("[]"), "at least one statement"),
        (doc("{}", version="2020-01-01"), "policy version"),
        (doc('{"Action": "*", "Resource": "*"}'), "Missing required field Effect"),
        (doc('{"Effect": "allow", "Action": "*", "Resource": "*"}'), "Invalid effect"),
        (doc('{"Effect": "Allow", "Resource": "*"}'), "must contain actions"),
        (doc('{"Effect": "Allow", "Action": "*"}'), "must contain resources"),
        (doc('{"Effect": "Allow", "Action": "*", "NotAction": "*", "Resource": "*"}'), "both Action and NotAction"),
        (doc('{"Effect": "Allow", "Action": "describe", "Resource": "*"}'), "vendor"),
        (doc('{"Effect": "Allow", "Action": "ec2:Run Instances", "Resource": "*"}'), "not valid"),
        (doc('{"Effect": "Allow", "Action": [], "Resource": "*"}'), "non-empty"),
        (doc('{"Effect": "Allow", "Action": "*", "Resource": "orders"}'), "ARN format"),
        (doc('{"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3"}'), "ARN format"),
        (doc('{"Effect": "Allow", "Action": "*", "Resource": "*", "Principal": "*"}'), "principal"),
        (doc('{"Effect": "Allow", "Action": "*", "Resource": "*", "Foo": 1}'), "unknown field Foo"),
        (
            doc(
                '[{"Sid": "a", "Effect": "Allow", "Action": "*", "Resource": "*"}, {"Sid": "a", "Effect": "Deny", '
                '"Action": "*", "Resource": "*"}]'
            ),
            "unique",
        ),
        (doc('{"Sid": "a b", "Effect": "Allow", "Action": "*", "Resource": "*"}'), "alpha-numeric"),
        ('{"Version": "2012-10-17", "Version": "2012-10-17", "Statement": {}}', "more than once"),
        (cond('{"StringEqualz": {"aws:username": "bob"}}'), "Invalid Condition type"),
        (cond('{"NumericLessThan": {"elasticache:NumNodeGroups": "many"}}'), "cannot compare"),
        (cond('{"IpAddress": {"aws:SourceIp": "10.0.0.0/33"}}'), "cannot compare"),
        (cond('{"StringEquals": {"username": "bob"}}'), "vendor"),
        (cond('{"StringEquals": {"aws:username": []}}'), "empty list"),
        (cond('{"StringEquals": {"aws:username": null}}'), "strings, numbers or booleans"),
        (cond('{"Null": {"aws:username": "maybe"}}'), "true or false"),
        (cond('{"NullIfExists": {"aws:username": "true"}}'), "Invalid Condition type"),
        (cond('{"ForSomeValues:StringEquals": {"aws:TagKeys": "a"}}'), "Invalid Condition type"),
        (cond('{"StringEquals": {"aws:username": NaN}}'), "Syntax errors"),
        (cond('{"StringEquals": "bob"}'), "must map condition keys"),
        (cond('"StringEquals"'), "object of operators"),
        ("[" * 100_000 + "]" * 100_000, "Syntax errors"),
    ],
)
def test_malformed_documents_are_refused_with_a_reason(document: str, fragment: str) -> None:
    with pytest.raises(MalformedPolicyDocument) as raised:
        parse_policy(document)
    assert fragment in raised.value.message


def test_a_single_statement_object_and_a_missing_version_are_accepted() -> None:
    parsed = parse_policy('{"Statement": {"Effect": "Allow", "Action": "elasticache:*", "Resource": "*"}}')
    assert parsed.version == "2008-10-17"
    assert len(parsed.statements) == 1


def test_document_size_ignores_whitespace() -> None:
    assert document_size('{ "a" :\n\t"b" }') == len('{"a":"b"}')


# Evaluation order


def test_nothing_allowed_is_an_implicit_deny() -> None:
    assert decide(policy(allow("elasticache:Describe*"))) is Decision.IMPLICIT_DENY
    assert evaluate([], CREATE, RG, NOBODY) is Decision.IMPLICIT_DENY


def test_an_explicit_deny_beats_an_allow_in_any_policy() -> None:
    everything = policy(allow())
    no_create = policy(deny(CREATE))
    assert evaluate([everything], CREATE, RG, NOBODY) is Decision.ALLOW
    assert evaluate([everything, no_create], CREATE, RG, NOBODY) is Decision.EXPLICIT_DENY
    assert evaluate([no_create, everything], CREATE, RG, NOBODY) is Decision.EXPLICIT_DENY
    assert evaluate([everything, no_create], DESCRIBE, RG, NOBODY) is Decision.ALLOW


def test_action_names_match_case_insensitively_with_wildcards() -> None:
    assert decide(policy(allow("ElastiCache:describe*")), DESCRIBE) is Decision.ALLOW
    assert decide(policy(allow("elasticache:Describe?eplicationGroups")), DESCRIBE) is Decision.ALLOW
    assert decide(policy(allow("elasticache:*Group")), CREATE) is Decision.ALLOW
    assert decide(policy(allow("elasticache:Describe*")), CREATE) is Decision.IMPLICIT_DENY
    assert decide(policy(allow("iam:*")), CREATE) is Decision.IMPLICIT_DENY
    assert decide(policy(allow(["iam:*", "elasticache:Create*"])), CREATE) is Decision.ALLOW


def test_not_action_allows_everything_but_the_named_actions() -> None:
    pol = policy({"Effect": "Allow", "NotAction": "elasticache:Delete*", "Resource": "*"})
    assert decide(pol, CREATE) is Decision.ALLOW
    assert decide(pol, "elasticache:DeleteReplicationGroup") is Decision.IMPLICIT_DENY
    deny_all_but_describe = policy(allow(), {"Effect": "Deny", "NotAction": "elasticache:Describe*", "Resource": "*"})
    assert decide(deny_all_but_describe, DESCRIBE) is Decision.ALLOW
    assert decide(deny_all_but_describe, CREATE) is Decision.EXPLICIT_DENY


def test_resource_wildcards_stay_inside_their_arn_segment() -> None:
    pol = policy(allow(CREATE, "arn:aws:elasticache:*:*:replicationgroup:prod-*"))
    assert decide(pol, CREATE, PROD) is Decision.ALLOW
    assert decide(pol, CREATE, RG) is Decision.IMPLICIT_DENY
    # A wildcard in the region segment does not swallow the account and resource type.
    assert not arn_like(
        "arn:aws:elasticache:*:replicationgroup:x", "arn:aws:elasticache:us-east-1:0:replicationgroup:x"
    )
    assert arn_like("arn:aws:elasticache:us-east-?:*:*", PROD)
    assert arn_like("arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket/a/b:c")
    # Resource ARNs are case-sensitive.
    assert decide(policy(allow(CREATE, RG.replace("orders", "Orders"))), CREATE, RG) is Decision.IMPLICIT_DENY
    assert decide(policy(allow(CREATE, "*")), CREATE, "*") is Decision.ALLOW


def test_not_resource_excludes_the_named_resources() -> None:
    pol = policy({"Effect": "Allow", "Action": "elasticache:*", "NotResource": "arn:aws:elasticache:*:*:*:prod-*"})
    assert decide(pol, CREATE, RG) is Decision.ALLOW
    assert decide(pol, CREATE, PROD) is Decision.IMPLICIT_DENY


def test_every_resource_of_a_call_must_be_allowed() -> None:
    pg = "arn:aws:elasticache:us-east-1:000000000000:parametergroup:safe"
    only_groups = policy(allow(CREATE, "arn:aws:elasticache:*:*:replicationgroup:*"))
    verdict = authorize([only_groups], CREATE, [RG, pg], lambda _: NOBODY)
    assert verdict == Verdict(Decision.IMPLICIT_DENY, pg)
    both = policy(
        allow(CREATE, ["arn:aws:elasticache:*:*:replicationgroup:*", "arn:aws:elasticache:*:*:parametergroup:*"])
    )
    assert authorize([both], CREATE, [RG, pg], lambda _: NOBODY).allowed
    denied_pg = policy(allow(), deny(CREATE, pg))
    assert authorize([denied_pg], CREATE, [RG, pg], lambda _: NOBODY) == Verdict(Decision.EXPLICIT_DENY, pg)


def test_the_denial_message_is_awss() -> None:
    user = "arn:aws:iam::000000000000:user/bob"
    assert denial_message(user, CREATE, Verdict(Decision.IMPLICIT_DENY, RG)) == (
        f"User: {user} is not authorized to perform: {CREATE} on resource: {RG} "
        f"because no identity-based policy allows the {CREATE} action"
    )
    assert denial_message(user, CREATE, Verdict(Decision.EXPLICIT_DENY, RG)).endswith(
        "with an explicit deny in an identity-based policy"
    )


# Conditions


def when(condition: dict[str, Any], ctx: dict[str, Any], version: str = "2012-10-17") -> bool:
    pol = policy(allow(Condition=condition), version=version)
    return decide(pol, ctx=context(ctx)) is Decision.ALLOW


def test_string_operators() -> None:
    assert when({"StringEquals": {"aws:username": ["alice", "bob"]}}, {"aws:username": "bob"})
    assert not when({"StringEquals": {"aws:username": "bob"}}, {"aws:username": "Bob"})
    assert when({"StringEqualsIgnoreCase": {"aws:username": "bob"}}, {"aws:username": "Bob"})
    assert when({"StringNotEquals": {"aws:username": ["alice", "carol"]}}, {"aws:username": "bob"})
    assert not when({"StringNotEquals": {"aws:username": ["alice", "bob"]}}, {"aws:username": "bob"})
    assert when({"StringLike": {"aws:username": "b?b*"}}, {"aws:username": "bobby"})
    assert not when({"StringNotLike": {"aws:username": "b*"}}, {"aws:username": "bobby"})
    # Condition key names are case-insensitive; values are compared as strings.
    assert when({"StringEquals": {"AWS:UserName": "bob"}}, {"aws:username": "bob"})
    assert when({"StringEquals": {"elasticache:NumNodeGroups": 2}}, {"elasticache:NumNodeGroups": "2"})


def test_several_keys_and_operators_must_all_hold() -> None:
    condition = {
        "StringEquals": {"aws:username": "bob", "elasticache:EngineType": "redis"},
        "Bool": {"elasticache:AtRestEncryptionEnabled": True},
    }
    full = {"aws:username": "bob", "elasticache:EngineType": "redis", "elasticache:AtRestEncryptionEnabled": "true"}
    assert when(condition, full)
    assert not when(condition, {**full, "elasticache:EngineType": "valkey"})
    assert not when(condition, {**full, "elasticache:AtRestEncryptionEnabled": "false"})


def test_numeric_and_date_operators() -> None:
    assert when({"NumericLessThanEquals": {"elasticache:NumNodeGroups": "3"}}, {"elasticache:NumNodeGroups": "3"})
    assert not when({"NumericLessThan": {"elasticache:NumNodeGroups": "3"}}, {"elasticache:NumNodeGroups": "3"})
    assert when({"NumericGreaterThan": {"elasticache:NumNodeGroups": "2.5"}}, {"elasticache:NumNodeGroups": "3"})
    assert when({"NumericNotEquals": {"elasticache:NumNodeGroups": ["1", "2"]}}, {"elasticache:NumNodeGroups": "3"})
    assert not when({"NumericEquals": {"elasticache:NumNodeGroups": "3"}}, {"elasticache:NumNodeGroups": "three"})
    now = {"aws:CurrentTime": "2026-03-01T12:00:00Z", "aws:EpochTime": "1772366400"}
    assert when({"DateLessThan": {"aws:CurrentTime": "2026-04-01T00:00:00Z"}}, now)
    assert not when({"DateGreaterThan": {"aws:CurrentTime": "2026-04-01"}}, now)
    assert when({"DateGreaterThanEquals": {"aws:EpochTime": "2026-03-01T12:00:00Z"}}, now)
    assert when({"DateEquals": {"aws:CurrentTime": "1772366400"}}, now)


def test_bool_ip_arn_and_binary_operators() -> None:
    assert when({"Bool": {"aws:SecureTransport": "false"}}, {"aws:SecureTransport": "False"})
    assert when({"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "127.0.0.0/8"]}}, {"aws:SourceIp": "127.0.0.1"})
    assert not when({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, {"aws:SourceIp": "127.0.0.1"})
    assert when({"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, {"aws:SourceIp": "127.0.0.1"})
    assert not when({"IpAddress": {"aws:SourceIp": "::1/128"}}, {"aws:SourceIp": "127.0.0.1"})
    assert when(
        {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/ops/*"}},
        {"aws:PrincipalArn": "arn:aws:iam::000000000000:user/ops/bob"},
    )
    assert not when(
        {"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/*"}},
        {"aws:PrincipalArn": "arn:aws:iam::000000000000:user/bob"},
    )
    assert when({"BinaryEquals": {"aws:Binary": "QUJD"}}, {"aws:Binary": "QUJD"})


def test_a_missing_key_fails_positive_operators_and_passes_negated_ones() -> None:
    assert not when({"StringEquals": {"aws:username": "bob"}}, {})
    assert when({"StringNotEquals": {"aws:username": "bob"}}, {})
    assert not when({"NumericLessThan": {"elasticache:NumNodeGroups": "3"}}, {})
    assert when({"StringEqualsIfExists": {"elasticache:CacheNodeType": "cache.t4g.micro"}}, {})
    assert not when(
        {"StringEqualsIfExists": {"elasticache:CacheNodeType": "cache.t4g.micro"}},
        {"elasticache:CacheNodeType": "cache.r7g.large"},
    )
    assert when({"Null": {"aws:RequestTag/team": "true"}}, {})
    assert not when({"Null": {"aws:RequestTag/team": "false"}}, {})
    assert when({"Null": {"aws:RequestTag/team": "false"}}, {"aws:RequestTag/team": "web"})


def test_set_qualifiers_on_multi_valued_keys() -> None:
    allowed = {"ForAllValues:StringEquals": {"aws:TagKeys": ["team", "env"]}}
    assert when(allowed, {"aws:TagKeys": ["team"]})
    assert when(allowed, {"aws:TagKeys": ["team", "env"]})
    assert not when(allowed, {"aws:TagKeys": ["team", "owner"]})
    assert when(allowed, {})  # ForAllValues holds for an absent key
    required = {"ForAnyValue:StringEquals": {"aws:TagKeys": "team"}}
    assert when(required, {"aws:TagKeys": ["owner", "team"]})
    assert not when(required, {"aws:TagKeys": ["owner"]})
    assert not when(required, {})
    assert when({"ForAnyValue:StringNotEquals": {"aws:TagKeys": "team"}}, {"aws:TagKeys": ["team", "x"]})
    assert not when({"ForAnyValue:StringNotEquals": {"aws:TagKeys": "team"}}, {"aws:TagKeys": ["team"]})
    assert when({"ForAllValues:StringLike": {"aws:TagKeys": "app-*"}}, {"aws:TagKeys": ["app-a", "app-b"]})


def test_resource_tags_are_looked_up_only_when_a_condition_asks() -> None:
    asked: list[str] = []

    def lookup(key: str) -> tuple[str, ...] | None:
        asked.append(key)
        return ("web",) if key == "aws:resourcetag/team" else None

    tagged = policy(allow(Condition={"StringEquals": {"aws:ResourceTag/Team": "web"}}))
    assert evaluate([tagged], CREATE, RG, RequestContext({}, lookup)) is Decision.ALLOW
    assert asked == ["aws:resourcetag/team"]
    asked.clear()
    assert evaluate([policy(allow())], CREATE, RG, RequestContext({}, lookup)) is Decision.ALLOW
    assert asked == []


def test_policy_variables_in_resources_and_conditions() -> None:
    own = policy(allow("elasticache:*", "arn:aws:elasticache:*:*:replicationgroup:${aws:username}-*"))
    bob = context({"aws:username": "bob"})
    assert decide(own, CREATE, "arn:aws:elasticache:us-east-1:0:replicationgroup:bob-cache", bob) is Decision.ALLOW
    assert (
        decide(own, CREATE, "arn:aws:elasticache:us-east-1:0:replicationgroup:eve-cache", bob) is Decision.IMPLICIT_DENY
    )
    # No value for the variable: the pattern matches nothing (root has no aws:username).
    assert (
        decide(own, CREATE, "arn:aws:elasticache:us-east-1:0:replicationgroup:-cache", NOBODY) is Decision.IMPLICIT_DENY
    )
    assert when(
        {"StringEquals": {"aws:RequestTag/owner": "${aws:username}"}},
        {"aws:username": "bob", "aws:RequestTag/owner": "bob"},
    )
    # Version 2008-10-17 has no variables: the text is literal.
    assert not when(
        {"StringEquals": {"aws:RequestTag/owner": "${aws:username}"}},
        {"aws:username": "bob", "aws:RequestTag/owner": "bob"},
        version="2008-10-17",
    )


def test_substituted_values_are_literal_not_wildcards() -> None:
    ctx = context({"aws:username": "a*"})
    pattern = substitute("arn:aws:s3:::home/${aws:username}/x", ctx)
    assert pattern is not None
    assert arn_like(pattern, "arn:aws:s3:::home/a*/x")
    assert not arn_like(pattern, "arn:aws:s3:::home/abc/x")
    star = substitute("prefix-${*}", None)
    assert star is not None
    assert string_like(star, "prefix-*")
    assert not string_like(star, "prefix-x")
    assert substitute("${aws:missing, 'none'}", None) == "\x00n\x00o\x00n\x00e"
    assert substitute("${aws:missing}", None) is None
