"""Redis ACL rules as ElastiCache lets customers write them: access strings, and the commands kept back.

An access string is a list of Redis ACL rules (``on ~app:* -@all +@read``). ElastiCache accepts the
rules that say what a user may do, and refuses those that would carry a password (``>pw``, ``#hash``,
``nopass``...) or wipe the user (``reset``): passwords travel separately, and are stored hashed.
Command and category names must be ones the engine knows (``CommandCatalog``, read from the installed
Redis; without one only the shape of each rule is checked).

``RESTRICTED_COMMANDS`` are the commands no application user may run, whatever its access string
says; the rendering (``engines.acl``) appends their removal to every application user's rules, in
every selector.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from cachefleet.model.errors import InvalidParameterValue

# Commands application users may not run: what ElastiCache restricts, plus replication internals
# (REPLCONF goes with SYNC/PSYNC). ACL WHOAMI and ACL CAT stay, as on ElastiCache; the other ACL
# subcommands would show or change users (internal ones included). CLUSTER is refused until cluster
# mode exists.
RESTRICTED_COMMANDS = (
    "config",
    "shutdown",
    "replicaof",
    "slaveof",
    "debug",
    "save",
    "bgsave",
    "bgrewriteaof",
    "sync",
    "psync",
    "replconf",
    "monitor",
    "module",
    "failover",
    "migrate",
    "acl",
    "cluster",
)
ALLOWED_SUBCOMMANDS = ("acl|whoami", "acl|cat")

MAX_ACCESS_STRING = 4096  # no AWS figure; long enough for any real rule list, short enough for a config line

# Rules that carry or clear passwords, or reset the user: never in an access string.
_PASSWORD_PREFIXES = (">", "<", "#", "!")
_FORBIDDEN_WORDS = {
    "nopass": "passwords are set with Passwords or NoPasswordRequired, not in the access string",
    "resetpass": "passwords are set with Passwords or NoPasswordRequired, not in the access string",
    "reset": "'reset' is not allowed in an access string",
    "skip-sanitize-payload": "'skip-sanitize-payload' is not allowed",
}
_PLAIN_WORDS = frozenset(
    {
        "on",
        "off",
        "allkeys",
        "resetkeys",
        "allchannels",
        "resetchannels",
        "allcommands",
        "nocommands",
        "clearselectors",
        "sanitize-payload",
    }
)
_KEY_PREFIXES = ("~", "%R~", "%W~", "%RW~")


@dataclass(frozen=True)
class CommandCatalog:
    """The commands (lower case, with their subcommands) and ACL categories an engine knows."""

    commands: Mapping[str, frozenset[str]]  # command -> subcommands (empty for a plain command)
    categories: frozenset[str]

    def knows(self, command: str, sub: str | None) -> bool:
        subs = self.commands.get(command)
        if subs is None:
            return False
        # A command without subcommands may take a first argument (``+select|0``), as Redis 7 allows.
        return sub is None or not subs or sub in subs


@dataclass(frozen=True)
class AccessString:
    """A validated access string: its rules as given (one token per rule, a selector as one token)."""

    rules: tuple[str, ...]
    enabled: bool = False

    @property
    def text(self) -> str:
        return " ".join(self.rules)


def parse_access_string(text: str, catalog: CommandCatalog | None = None) -> AccessString:
    """Pure: the access string's rules, or ``InvalidParameterValue`` naming the first bad rule.

    The user is enabled when the last of ``on``/``off`` is ``on`` (Redis's own reading; a string
    with neither leaves the user off, as a new Redis user is).
    """
    if not text.strip():
        raise InvalidParameterValue("Access string must not be empty.")
    if len(text) > MAX_ACCESS_STRING:
        raise InvalidParameterValue(f"Access string is longer than {MAX_ACCESS_STRING} characters.")
    if any(not (0x20 <= ord(c) < 0x7F) for c in text):
        raise InvalidParameterValue("Access string may contain printable ASCII characters only.")
    rules = tuple(split_rules(text))
    enabled = False
    for rule in rules:
        if rule.startswith("("):
            for inner in split_rules(rule[1:-1]):
                _check_rule(inner, catalog, in_selector=True)
            continue
        _check_rule(rule, catalog, in_selector=False)
        if rule in ("on", "off"):
            enabled = rule == "on"
    return AccessString(rules=rules, enabled=enabled)


def split_rules(text: str) -> list[str]:
    """Space-separated rules; a selector is one rule, from a word starting with ``(`` to the first word
    ending with ``)`` (how Redis itself merges the words of a selector)."""
    rules: list[str] = []
    selector: list[str] = []
    for word in text.split():
        if selector:
            selector.append(word)
        elif word.startswith("("):
            selector = [word]
        else:
            rules.append(word)
            continue
        if word.endswith(")"):
            rules.append(" ".join(selector))
            selector = []
    if selector:
        raise InvalidParameterValue("Invalid access string: a selector has no closing parenthesis.")
    return rules


def _check_rule(rule: str, catalog: CommandCatalog | None, *, in_selector: bool) -> None:
    lowered = rule.lower()
    if rule.startswith(_PASSWORD_PREFIXES):
        raise InvalidParameterValue("Access string must not contain passwords: use Passwords or NoPasswordRequired.")
    if lowered in _FORBIDDEN_WORDS:
        raise InvalidParameterValue(f"Invalid access string: {_FORBIDDEN_WORDS[lowered]}.")
    if lowered in _PLAIN_WORDS:
        if in_selector and lowered in ("on", "off", "clearselectors", "sanitize-payload"):
            raise InvalidParameterValue(f"Invalid access string: '{rule}' is not allowed inside a selector.")
        return
    if rule.startswith(_KEY_PREFIXES) or rule.startswith("&"):
        pattern = rule.split("~", 1)[1] if rule.startswith(_KEY_PREFIXES) else rule[1:]
        if not pattern:
            raise InvalidParameterValue(f"Invalid access string: the rule '{rule}' has no pattern.")
        return
    if rule[:1] in "+-" and len(rule) > 1:
        _check_command_rule(rule, catalog)
        return
    raise InvalidParameterValue(f"Invalid access string: unknown rule '{rule}'.")


def _check_command_rule(rule: str, catalog: CommandCatalog | None) -> None:
    sign, body = rule[0], rule[1:].lower()
    if body.startswith("@"):
        category = body[1:]
        if not category or (catalog is not None and category not in catalog.categories and category != "all"):
            raise InvalidParameterValue(f"Invalid access string: unknown command category '{body}'.")
        return
    command, bar, sub = body.partition("|")
    if not command or (bar and not sub) or "|" in sub:
        raise InvalidParameterValue(f"Invalid access string: malformed command rule '{rule}'.")
    if catalog is not None and not catalog.knows(command, sub or None):
        what = f"subcommand '{command}|{sub}'" if sub else f"command '{command}'"
        raise InvalidParameterValue(f"Invalid access string: unknown {what}.")
    if sign == "+" and command in RESTRICTED_COMMANDS and f"{command}|{sub}" not in ALLOWED_SUBCOMMANDS:
        raise InvalidParameterValue(
            f"Invalid access string: '{command.upper()}' is a restricted command and cannot be granted."
        )


def restriction_rules() -> tuple[str, ...]:
    """The rules that take the restricted commands away again (and give back the allowed subcommands)."""
    return tuple(f"-{c}" for c in RESTRICTED_COMMANDS) + tuple(f"+{s}" for s in ALLOWED_SUBCOMMANDS)


def password_hash(secret: str) -> str:
    """The SHA-256 hex digest Redis's ACLs take as ``#<hash>``: the only form a password is kept in."""
    return hashlib.sha256(secret.encode()).hexdigest()
