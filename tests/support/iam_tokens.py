"""IAM authentication tokens for Redis, made the way AWS documents them, for tests and benches.

``ElastiCacheIAMProvider`` is the redis-py credential provider of AWS's and redis-py's samples: a
SigV4-presigned ``GET https://<replication group id>/?Action=connect&User=<user id>`` for the
service ``elasticache``, valid 900 seconds, without its scheme, made anew for every connection.
"""

from __future__ import annotations

from datetime import UTC, datetime
from unittest import mock
from urllib.parse import ParseResult, urlencode, urlunparse

import botocore.session
import redis
from botocore.credentials import Credentials
from botocore.model import ServiceId
from botocore.signers import RequestSigner

REGION = "us-east-1"


class ElastiCacheIAMProvider(redis.CredentialProvider):
    def __init__(self, user: str, group: str, credentials: Credentials, region: str = REGION) -> None:
        self.user, self.group, self.region = user, group, region
        # The session is kept: some handlers of its event emitter refer to it weakly, and once a garbage
        # collection took a session used only for its emitter, signing raised ReferenceError (seen in
        # a full run).
        self._session = botocore.session.get_session()
        emitter = self._session.get_component("event_emitter")
        self.signer = RequestSigner(ServiceId("elasticache"), region, "elasticache", "v4", credentials, emitter)

    def get_credentials(self) -> tuple[str, str]:
        query = urlencode({"Action": "connect", "User": self.user})
        url = urlunparse(ParseResult("https", self.group, "/", "", query, ""))
        signed: str = self.signer.generate_presigned_url(
            {"method": "GET", "url": url, "body": {}, "headers": {}, "context": {}},
            operation_name="connect",
            expires_in=900,
            region_name=self.region,
        )
        return self.user, signed.removeprefix("https://")


def connect_token(credentials: Credentials, group: str, user: str, signed_at: datetime | None = None) -> str:
    """One token; ``signed_at`` makes botocore sign it at another time (an expired token)."""
    provider = ElastiCacheIAMProvider(user, group, credentials)
    if signed_at is None:
        return provider.get_credentials()[1]
    # botocore reads the time as a naive UTC datetime.
    naive_utc = signed_at.astimezone(UTC).replace(tzinfo=None)
    with mock.patch("botocore.auth.get_current_datetime", return_value=naive_utc):
        return provider.get_credentials()[1]
