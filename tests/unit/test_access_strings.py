"""Access strings as ElastiCache takes them: rules that grant, never passwords or resets; names the
engine knows. (tests/integration/test_acl_engines.py feeds the accepted ones to a real Redis.)"""

from __future__ import annotations

import pytest

from cachefleet.model.acl import (
    ALLOWED_SUBCOMMANDS,
    RESTRICTED_COMMANDS,
    CommandCatalog,
    parse_access_string,
    password_hash,
    restriction_rules,
    split_rules,
)
from cachefleet.model.errors import InvalidParameterValue

CATALOG = CommandCatalog(
    commands={
        "get": frozenset(),
        "set": frozenset(),
        "select": frozenset(),
        "config": frozenset({"get", "set"}),
        "client": frozenset({"list", "kill", "setname"}),
        "acl": frozenset({"whoami", "cat", "setuser"}),
    },
    categories=frozenset({"read", "write", "admin", "dangerous"}),
)

ACCEPTED = [
    "on ~* +@all",
    "on ~* &* +@all",
    "off ~* +@all",
    "on ~app::* -@all +@read",
    "on allkeys allchannels allcommands",
    "on resetkeys resetchannels nocommands",
    "on %R~read:* %W~write:* %RW~both:* +get +set",
    "on ~* +@all -client|kill",
    "on ~* +select|0",
    "on ~* -@all +acl|whoami",
    "on ~* -@all (~other:* +get) (~third:* +set)",
    "on ~* +@all clearselectors",
    "on ~* +@all sanitize-payload",
]


@pytest.mark.parametrize("text", ACCEPTED)
def test_accepted(text: str) -> None:
    parsed = parse_access_string(text, CATALOG)
    assert parsed.text == " ".join(text.split())
    assert parsed.enabled == ("off" not in text.split())


def test_enabled_is_the_last_of_on_and_off_and_off_without_either() -> None:
    assert parse_access_string("on off ~*", CATALOG).enabled is False
    assert parse_access_string("off on ~*", CATALOG).enabled is True
    assert parse_access_string("~* +@all", CATALOG).enabled is False


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("on >secretsecretsecret ~* +@all", "must not contain passwords"),
        ("on <secretsecretsecret ~* +@all", "must not contain passwords"),
        (f"on #{password_hash('x')} ~* +@all", "must not contain passwords"),
        (f"on !{password_hash('x')} ~* +@all", "must not contain passwords"),
        ("on nopass ~* +@all", "not in the access string"),
        ("on resetpass ~* +@all", "not in the access string"),
        ("reset on ~* +@all", "'reset' is not allowed"),
        ("on ~* +@all skip-sanitize-payload", "not allowed"),
        ("on ~* +nosuchcommand", "unknown command 'nosuchcommand'"),
        ("on ~* +config|nosuch", "unknown subcommand 'config|nosuch'"),
        ("on ~* +@nosuchcategory", "unknown command category"),
        ("on ~* +config", "'CONFIG' is a restricted command"),
        ("on ~* +config|get", "restricted command"),
        ("on ~* +acl|setuser", "restricted command"),
        ("on ~* +@", "unknown command category"),
        ("on ~* +get|", "malformed"),
        ("on ~* +", "unknown rule"),
        ("on ~", "has no pattern"),
        ("on %R~", "has no pattern"),
        ("on &", "has no pattern"),
        ("on ~* frobnicate", "unknown rule"),
        ("on ~* (~a* +get", "no closing parenthesis"),
        ("on ~* (on ~a* +get)", "not allowed inside a selector"),
        ("on ~* (~a* +nosuch)", "unknown command"),
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("on ~caf\u00e9", "printable ASCII"),
        ("on\t~*", "printable ASCII"),
        ("on ~" + "x" * 5000, "longer than"),
    ],
)
def test_refused_with_invalid_parameter_value(text: str, message: str) -> None:
    with pytest.raises(InvalidParameterValue) as caught:
        parse_access_string(text, CATALOG)
    assert message in caught.value.message
    assert "secretsecretsecret" not in caught.value.message


def test_without_a_catalog_only_the_shape_is_checked() -> None:
    assert parse_access_string("on ~* +whatever +@anything").enabled
    with pytest.raises(InvalidParameterValue, match="restricted"):
        parse_access_string("on ~* +shutdown")


def test_removing_restricted_commands_is_fine() -> None:
    parse_access_string("on ~* +@all -config -acl|setuser", CATALOG)


def test_selectors_are_one_rule_each() -> None:
    assert split_rules("on ~* (~a:* +get) -@all (~b:* +set)") == ["on", "~*", "(~a:* +get)", "-@all", "(~b:* +set)"]
    assert split_rules("on (~a:*) ~a(b") == ["on", "(~a:*)", "~a(b"]


def test_the_restrictions_take_everything_restricted_away_and_give_two_acl_subcommands_back() -> None:
    rules = restriction_rules()
    assert [r[1:] for r in rules if r.startswith("-")] == list(RESTRICTED_COMMANDS)
    assert [r[1:] for r in rules if r.startswith("+")] == list(ALLOWED_SUBCOMMANDS)
    elasticache = ("config", "shutdown", "replicaof", "slaveof", "debug", "module", "acl", "save", "bgsave", "monitor")
    assert set(elasticache) <= set(RESTRICTED_COMMANDS)


def test_password_hash_is_redis_sha256() -> None:
    # The value Redis shows for ">foobar" (sha256 of "foobar").
    assert password_hash("foobar") == "c3ab8ff13720e8ad9047dd39466b3c8974e592c2fa383d4a3960714caef0c4f2"
