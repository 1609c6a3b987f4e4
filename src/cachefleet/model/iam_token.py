"""IAM authentication tokens for Redis, read before anything in them is trusted. Pure.

A client makes its token as AWS documents it: a SigV4-presigned ``GET`` of
``http://<replication group id>/?Action=connect&User=<user id>`` for the service ``elasticache``,
valid 900 seconds, with the leading ``http://`` removed, and sends it as the password of
``AUTH <user id> <token>`` (or ``HELLO 3 AUTH ...``). ``parse`` checks the token's form only; the
signature, the key and the ``elasticache:Connect`` permission are checked by the caller
(``api/redis_iam.py``) with the same SigV4 verification and policy evaluation as API calls.

``upstream_password`` is the secret the control plane gives an IAM user in the nodes' ACLs (as a
hash, like every password): derived from an installation secret and the user id, never shown, so
only the IAM endpoint can log in as that user.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import unquote

# AWS's tokens are valid 15 minutes; a token signed for longer is refused rather than honoured.
MAX_TOKEN_LIFETIME = timedelta(seconds=900)
# An IAM-authenticated connection is closed after 12 hours, as ElastiCache does.
CONNECTION_LIFETIME = timedelta(hours=12)
# A real token is about 600 characters (longer with an STS session token); more is not a token.
MAX_TOKEN_CHARS = 8192
ACTION = "connect"
SERVICE = "elasticache"
# What ElastiCache answers to any refused AUTH: a client learns nothing about why.
REFUSAL = "WRONGPASS invalid username-password pair or user is disabled."

_GROUP_ID = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,39}")
_REQUIRED = ("Action", "User", "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires")


class InvalidToken(ValueError):
    """Not a token of the documented form (the reason is for the log, never for the client)."""


@dataclass(frozen=True)
class ConnectToken:
    """What a token claims, before its signature is checked."""

    host: str  # as signed: the replication group id
    user_id: str
    query: str  # as sent (still percent-encoded), for the signature check
    expires: timedelta

    @property
    def group_id(self) -> str:
        return self.host.lower()


def parse(token: str) -> ConnectToken:
    """The claim of a token; ``InvalidToken`` when it is not one of the documented form."""
    if len(token) > MAX_TOKEN_CHARS:
        raise InvalidToken(f"longer than {MAX_TOKEN_CHARS} characters")
    host, slash, rest = token.partition("/")
    if not slash or not rest.startswith("?"):
        raise InvalidToken("not of the form <replication group id>/?<presigned query>")
    if not _GROUP_ID.fullmatch(host):
        raise InvalidToken("the host is not a replication group id")
    query = rest[1:]
    params: dict[str, str] = {}
    for part in query.split("&"):
        name, _, value = part.partition("=")
        name = unquote(name)
        if name in params:
            raise InvalidToken(f"{name} given twice")
        params[name] = unquote(value)
    missing = [name for name in _REQUIRED if not params.get(name)]
    if missing:
        raise InvalidToken(f"missing {', '.join(missing)}")
    if params["Action"] != ACTION:
        raise InvalidToken(f"Action is not {ACTION}")
    if "ResourceType" in params:
        raise InvalidToken("ResourceType names a serverless cache, which this server does not have")
    raw = params["X-Amz-Expires"]
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6):
        raise InvalidToken("X-Amz-Expires is not a number of seconds")
    expires = timedelta(seconds=int(raw))
    if not timedelta(seconds=1) <= expires <= MAX_TOKEN_LIFETIME:
        raise InvalidToken(f"X-Amz-Expires is not 1-{int(MAX_TOKEN_LIFETIME.total_seconds())} seconds")
    scope = params["X-Amz-Credential"].split("/")
    if len(scope) != 5 or scope[3] != SERVICE:
        raise InvalidToken(f"not signed for the {SERVICE} service")
    return ConnectToken(host=host, user_id=params["User"], query=query, expires=expires)


def upstream_password(key: str, user_id: str) -> str:
    """The password an IAM user has in the nodes' ACLs (64 hex characters, derived, never stored)."""
    return hmac.new(key.encode(), f"iam-user:{user_id}".encode(), hashlib.sha256).hexdigest()
