"""IAM tokens for Redis: their form (``model.iam_token``), their signature as the IAM endpoint checks
it (``api.sigv4`` on a token botocore presigned at a known time), the endpoint's reading of a
client's first commands and its certificate's renewal (``api.redis_iam``). No server, no socket."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

import botocore.session
import pytest
from botocore.credentials import Credentials
from botocore.model import ServiceId
from botocore.signers import RequestSigner

from cachefleet.api import redis_iam, sigv4
from cachefleet.model import iam_token
from cachefleet.model.errors import RequestExpired, SignatureDoesNotMatch
from cachefleet.model.iam_token import InvalidToken
from cachefleet.tls import certs

KEY = Credentials("AKIAEXAMPLEEXAMPLE01", "secret-of-the-example-key")
SIGNED_AT = datetime(2026, 12, 7, 9, 0, 0, tzinfo=UTC)


def _token(group: str = "web", user: str = "app", *, expires: int = 900, extra: str = "") -> str:
    emitter = botocore.session.get_session().get_component("event_emitter")
    signer = RequestSigner(ServiceId("elasticache"), "us-east-1", "elasticache", "v4", KEY, emitter)
    request = {
        "method": "GET",
        "url": f"http://{group}/?Action=connect&User={user}{extra}",
        "body": {},
        "headers": {},
        "context": {},
    }
    with mock.patch("botocore.auth.get_current_datetime", return_value=SIGNED_AT.replace(tzinfo=None)):
        url: str = signer.generate_presigned_url(
            request, operation_name="connect", expires_in=expires, region_name="us-east-1"
        )
    return url.removeprefix("http://")


def _verify(token: str, now: datetime, secret: str = KEY.secret_key) -> sigv4.Caller:
    claim = iam_token.parse(token)
    return sigv4.verify(
        method="GET",
        path="/",
        query=claim.query,
        headers={"host": claim.host},
        body=b"",
        secret_for=lambda key: secret if key == KEY.access_key else None,
        now=now,
        services=(iam_token.SERVICE,),
    )


def test_a_token_as_aws_documents_it() -> None:
    claim = iam_token.parse(_token("Web-1", "app"))
    assert (claim.host, claim.group_id, claim.user_id) == ("Web-1", "web-1", "app")
    assert claim.expires == timedelta(minutes=15)
    caller = _verify(_token(), SIGNED_AT + timedelta(minutes=14))
    assert (caller.access_key_id, caller.service, caller.region) == (KEY.access_key, "elasticache", "us-east-1")


def test_a_token_is_refused_after_15_minutes_and_when_forged_or_changed() -> None:
    with pytest.raises(RequestExpired):
        _verify(_token(), SIGNED_AT + timedelta(minutes=15, seconds=1))
    with pytest.raises(SignatureDoesNotMatch):
        _verify(_token(), SIGNED_AT, secret="another-secret")
    # Another user or group than the one signed: the signature covers both.
    with pytest.raises(SignatureDoesNotMatch):
        _verify(_token().replace("User=app", "User=admin"), SIGNED_AT)
    with pytest.raises(SignatureDoesNotMatch):
        _verify("other" + _token().removeprefix("web"), SIGNED_AT)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("web?Action=connect", "not of the form"),
        ("web/Action=connect", "not of the form"),
        ("9web/?Action=connect", "not a replication group id"),
        ("web/?Action=connect&User=app", "missing X-Amz-Algorithm"),
        ("x" * (iam_token.MAX_TOKEN_CHARS + 1), "longer than"),
    ],
)
def test_malformed_tokens(token: str, reason: str) -> None:
    with pytest.raises(InvalidToken, match=reason):
        iam_token.parse(token)


def test_tokens_of_another_form_are_refused() -> None:
    with pytest.raises(InvalidToken, match="X-Amz-Expires is not 1-900"):
        iam_token.parse(_token(expires=901))
    with pytest.raises(InvalidToken, match="Action is not connect"):
        iam_token.parse(_token().replace("Action=connect", "Action=describe"))
    with pytest.raises(InvalidToken, match="User given twice"):
        iam_token.parse(_token() + "&User=admin")
    with pytest.raises(InvalidToken, match="serverless"):
        iam_token.parse(_token(extra="&ResourceType=ServerlessCache"))
    with pytest.raises(InvalidToken, match="not signed for the elasticache service"):
        iam_token.parse(_token().replace("%2Felasticache%2F", "%2Fs3%2F"))


def test_upstream_passwords_are_per_user_and_per_installation() -> None:
    one = iam_token.upstream_password("installation-1", "app")
    assert one == iam_token.upstream_password("installation-1", "app")
    assert len(one) == 64
    assert one != iam_token.upstream_password("installation-1", "app2")
    assert one != iam_token.upstream_password("installation-2", "app")


def test_commands_before_auth() -> None:
    auth = b"*3\r\n$4\r\nAUTH\r\n$3\r\napp\r\n$5\r\ntoken\r\n*1\r\n$4\r\nPING\r\n"
    args, used = redis_iam.parse_command(auth) or ([], 0)
    assert (args, auth[used:]) == ([b"AUTH", b"app", b"token"], b"*1\r\n$4\r\nPING\r\n")
    for cut in range(len(auth) - 14):
        assert redis_iam.parse_command(auth[:cut]) is None  # not all there yet
    login = redis_iam.login_of(args)
    assert login is not None
    assert (login.user, login.token, login.upstream("node-pw")) == ("app", "token", [b"AUTH", b"app", b"node-pw"])
    hello = [b"HELLO", b"3", b"AUTH", b"app", b"token", b"SETNAME", b"web"]
    login = redis_iam.login_of(hello)
    assert login is not None
    assert login.upstream("node-pw") == [b"HELLO", b"3", b"AUTH", b"app", b"node-pw", b"SETNAME", b"web"]
    # AUTH without a user names nobody to check the token for; other commands are not logins.
    assert redis_iam.login_of([b"AUTH", b"token"]) is None
    assert redis_iam.login_of([b"PING"]) is None


@pytest.mark.parametrize(
    "data",
    [
        b"PING\r\n",  # inline
        b"*0\r\n",
        b"*17\r\n",
        b"*1\r\n:1\r\n",
        b"*1\r\n$-1\r\n",
        b"*1\r\n$99999\r\n",
        b"*1\r\n$4\r\nPINGxx",
        b"*" + b"1" * 40,
    ],
)
def test_what_is_not_a_command_before_auth(data: bytes) -> None:
    with pytest.raises(redis_iam.ProtocolViolation):
        redis_iam.parse_command(data)


def test_a_whole_reply_from_the_node() -> None:
    hello = b"%2\r\n$6\r\nserver\r\n$5\r\nredis\r\n$5\r\nproto\r\n:3\r\n"
    assert redis_iam._complete(hello)
    assert not redis_iam._complete(hello[:-3])
    assert redis_iam._complete(b"+OK\r\n")
    assert redis_iam._complete(b"-WRONGPASS invalid\r\n")
    assert not redis_iam._complete(b"+OK")


def test_the_endpoint_certificate_is_renewed_with_a_third_of_its_life_left(tmp_path: Path) -> None:
    now = [SIGNED_AT]
    authority = certs.new_authority("test CA", SIGNED_AT, timedelta(days=10))
    leaf = tmp_path / "redis-iam.pem"
    certificate = redis_iam.ServerCertificate(leaf, authority, "127.0.0.1", timedelta(seconds=30), lambda: now[0])
    first = leaf.read_bytes()
    assert leaf.stat().st_mode & 0o777 == 0o600
    assert certs.renewal_due(first, certificate.identity, authority, SIGNED_AT) is None  # names 127.0.0.1
    # Renewal is due with a third of the leaf's life left (certs.RENEW_FRACTION), not before.
    issued = certs.certificate_of(first)
    life = issued.not_valid_after_utc - issued.not_valid_before_utc
    assert certificate.renew_at == issued.not_valid_after_utc - life * certs.RENEW_FRACTION
    now[0] = certificate.renew_at - timedelta(seconds=1)
    certificate.refresh()
    assert leaf.read_bytes() == first
    now[0] = certificate.renew_at
    certificate.refresh()
    assert leaf.read_bytes() != first
    assert certs.renewal_due(leaf.read_bytes(), certificate.identity, authority, now[0]) is None
