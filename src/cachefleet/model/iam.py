"""IAM identities of one account: who signed a request, their names, ids and ARNs.

The account's root identity is the admin key of ``DIR/credentials``: every action is allowed to it,
and it has no policies. IAM users get exactly what their policies (inline, attached managed, and
those of their groups) allow. Names, ids and ARNs follow IAM's forms so that tools which parse them
(Terraform, the AWS CLI) read them unchanged. Pure.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

from cachefleet.model.errors import InvalidInput, ValidationError
from cachefleet.model.policy import Policy

ROOT = "Root"
IAM_USER = "IAMUser"

# IAM's id prefixes: users AIDA, groups AGPA, managed policies ANPA, access keys AKIA.
USER_ID_PREFIX = "AIDA"
GROUP_ID_PREFIX = "AGPA"
POLICY_ID_PREFIX = "ANPA"
ACCESS_KEY_PREFIX = "AKIA"
_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_SECRET_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

_NAME = re.compile(r"[A-Za-z0-9_+=,.@-]+")
_PATH = re.compile(r"/|/[\x21-\x7e]+/")
_POLICY_PATH = re.compile(r"((/[A-Za-z0-9.,+@=_-]+)*)/")
_POLICY_ARN = re.compile(r"arn:aws:iam::(aws|[0-9]{12}):policy(/(?:[\x21-\x7e]*/)?)([A-Za-z0-9_+=,.@-]+)")

# IAM's quotas, with the names its LimitExceeded messages use.
MAX_ACCESS_KEYS_PER_USER = 2
MAX_ATTACHED_POLICIES = 10
MAX_POLICY_VERSIONS = 5
MAX_USERS = 5000
MAX_GROUPS = 300
MAX_GROUPS_PER_USER = 10
MAX_MANAGED_POLICIES = 1500
USER_INLINE_POLICY_BYTES = 2048  # all of a user's inline policies together, whitespace not counted
GROUP_INLINE_POLICY_BYTES = 5120
MANAGED_POLICY_BYTES = 6144

Random = Callable[[str, int], str]  # (alphabet, length) -> random string


def new_id(prefix: str, random: Random) -> str:
    """A user, group or policy id (21 characters) or an access key id (20)."""
    length = 16 if prefix == ACCESS_KEY_PREFIX else 17
    return prefix + random(_ID_ALPHABET, length)


def new_secret(random: Random) -> str:
    return random(_SECRET_ALPHABET, 40)


def check_name(param: str, value: str, max_length: int = 64) -> str:
    if not 1 <= len(value) <= max_length or not _NAME.fullmatch(value):
        raise ValidationError(
            f"1 validation error detected: Value '{value[:128]}' at '{_camel(param)}' failed to satisfy "
            f"constraint: Member must have length between 1 and {max_length} and match the pattern [\\w+=,.@-]+"
        )
    return value


def check_path(param: str, value: str, *, policy: bool = False) -> str:
    pattern = _POLICY_PATH if policy else _PATH
    if not 1 <= len(value) <= 512 or not pattern.fullmatch(value):
        raise ValidationError(
            f"1 validation error detected: Value '{value[:128]}' at '{_camel(param)}' failed to satisfy "
            "constraint: Member must begin and end with / and contain only printable ASCII characters"
        )
    return value


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


# ARNs


def root_arn(account: str) -> str:
    return f"arn:aws:iam::{account}:root"


def user_arn(account: str, path: str, name: str) -> str:
    return f"arn:aws:iam::{account}:user{path}{name}"


def group_arn(account: str, path: str, name: str) -> str:
    return f"arn:aws:iam::{account}:group{path}{name}"


def policy_arn(account: str, path: str, name: str) -> str:
    return f"arn:aws:iam::{account}:policy{path}{name}"


@dataclass(frozen=True)
class PolicyArn:
    account: str  # "aws" for AWS managed policies
    path: str
    name: str


def parse_policy_arn(text: str) -> PolicyArn:
    match = _POLICY_ARN.fullmatch(text)
    if match is None:
        raise InvalidInput(f"ARN {text[:2048]} is not valid.")
    return PolicyArn(match.group(1), match.group(2), match.group(3))


# Who signed


@dataclass(frozen=True)
class Principal:
    """The identity behind one access key, with everything authorization needs."""

    account: str
    kind: str  # ROOT or IAM_USER
    arn: str
    user_id: str  # AIDA... for a user; the account id for root
    access_key_id: str
    user_name: str | None = None
    policies: tuple[Policy, ...] = ()
    tags: tuple[tuple[str, str], ...] = ()

    @property
    def is_root(self) -> bool:
        return self.kind == ROOT

    @functools.cached_property
    def context_keys(self) -> dict[str, tuple[str, ...]]:
        """``condition_keys`` as a policy's context holds them: lowercased names, tuple values."""
        return {k.lower(): (v,) if isinstance(v, str) else tuple(v) for k, v in self.condition_keys().items()}

    def condition_keys(self) -> dict[str, str | tuple[str, ...]]:
        """The global condition keys about the caller (``aws:username`` only for users)."""
        keys: dict[str, str | tuple[str, ...]] = {
            "aws:userid": self.user_id,
            "aws:PrincipalArn": self.arn,
            "aws:PrincipalAccount": self.account,
            "aws:PrincipalType": "Account" if self.is_root else "User",
        }
        if self.user_name is not None:
            keys["aws:username"] = self.user_name
        for key, value in self.tags:
            keys[f"aws:PrincipalTag/{key}"] = value
        if self.tags:
            keys["aws:PrincipalTagKeys"] = tuple(k for k, _ in self.tags)
        return keys


def root_principal(account: str, access_key_id: str) -> Principal:
    return Principal(account=account, kind=ROOT, arn=root_arn(account), user_id=account, access_key_id=access_key_id)


# AWS managed policies that make sense here, under the ARNs AWS gives them. Their documents are
# this installation's reading of AWS's (only the actions cachefleet serves).

AWS_MANAGED_POLICIES: dict[str, tuple[str, str]] = {
    "AdministratorAccess": (
        "Provides full access to AWS services and resources.",
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}',
    ),
    "AmazonElastiCacheFullAccess": (
        "Provides full access to Amazon ElastiCache.",
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"elasticache:*","Resource":"*"}]}',
    ),
    "AmazonElastiCacheReadOnlyAccess": (
        "Provides read only access to Amazon ElastiCache.",
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
        '"Action":["elasticache:Describe*","elasticache:List*"],"Resource":"*"}]}',
    ),
    "IAMFullAccess": (
        "Provides full access to IAM.",
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:*","Resource":"*"}]}',
    ),
    "IAMReadOnlyAccess": (
        "Provides read only access to IAM.",
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iam:Get*","iam:List*"],"Resource":"*"}]}',
    ),
}
