"""IAM authentication for Redis end to end: a real server, a real TLS group with a user group, IAM
identities made with boto3, and redis-py connecting with tokens made exactly as AWS documents them
(``ElastiCacheIAMProvider`` is the credential provider of redis-py's and AWS's samples).

One server and one group for the module (a single node: the endpoint's work does not depend on
replicas). The server runs with IAM connections limited to a few seconds, so that the 12-hour
limit is seen to close a connection; every other test finishes its connection well within it.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from botocore.credentials import Credentials
from redis.backoff import NoBackoff
from redis.retry import Retry
from tests.support.engines import REDIS_CLI
from tests.support.iam_tokens import ElastiCacheIAMProvider, connect_token
from tests.support.server import ServerProcess, wait_until

pytestmark = pytest.mark.integration

ADDRESS = "127.0.0.1"
REGION = "us-east-1"
GROUP = "iamrg"
IAM_USER = "app-iam"  # an ElastiCache user with AuthenticationMode iam (UserId == UserName)
PASSWORD_USER = "app-pw"
PASSWORD = "MARKERpw-" + secrets.token_hex(8)
LIFETIME = 4  # seconds an IAM connection lives in this module's server (12 hours by default)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(
        tmp_path_factory.mktemp("redis-iam") / "cf", "--redis-iam-connection-lifetime", str(LIFETIME)
    )
    try:
        process.start()
        yield process
    finally:
        process.cleanup()


class Setup:
    """What the module's tests share: the group's endpoints, the CA, and IAM keys of each kind."""

    def __init__(self, server: ServerProcess) -> None:
        self.ca = str(server.data_dir / "ca.pem")
        host, _, port = json.loads((server.data_dir / "server.json").read_text())["redis_iam_endpoint"].rpartition(":")
        self.iam_endpoint = host, int(port)
        ec, iam = server.client(), server.client("iam")
        ec.create_user(
            UserId=IAM_USER,
            UserName=IAM_USER,
            Engine="redis",
            AccessString="on ~* +@all",
            AuthenticationMode={"Type": "iam"},
        )
        ec.create_user(
            UserId=PASSWORD_USER,
            UserName=PASSWORD_USER,
            Engine="redis",
            AccessString="on ~* +@all",
            Passwords=[PASSWORD],
        )
        # An IAM user of no user group of this group.
        ec.create_user(
            UserId="outsider",
            UserName="outsider",
            Engine="redis",
            AccessString="on ~* +@all",
            AuthenticationMode={"Type": "iam"},
        )
        # The group's default user is off: only named users get in.
        ec.create_user(
            UserId="locked-default",
            UserName="default",
            Engine="redis",
            AccessString="off ~* +@all",
            NoPasswordRequired=True,
        )
        ec.create_user_group(
            UserGroupId="iam-users", Engine="redis", UserIds=["locked-default", IAM_USER, PASSWORD_USER]
        )
        ec.create_replication_group(
            ReplicationGroupId=GROUP,
            ReplicationGroupDescription="IAM auth",
            CacheNodeType="cache.t4g.micro",
            NumCacheClusters=1,
            TransitEncryptionEnabled=True,
            UserGroupIds=["iam-users"],
        )
        group_arn = f"arn:aws:elasticache:{REGION}:000000000000:replicationgroup:{GROUP}"
        user_arn = f"arn:aws:elasticache:{REGION}:000000000000:user:{IAM_USER}"
        connect = {"Effect": "Allow", "Action": "elasticache:Connect", "Resource": [group_arn, user_arn]}
        self.root = Credentials(*server.credentials())
        self.allowed = self._identity(iam, "alice", connect)
        # Connect on the group only, not on the user: AWS asks for both.
        self.group_only = self._identity(iam, "carol", {**connect, "Resource": group_arn})
        self.not_allowed = self._identity(
            iam, "bob", {"Effect": "Allow", "Action": "elasticache:Describe*", "Resource": "*"}
        )
        self.inactive = self._identity(iam, "alice", None)
        iam.update_access_key(UserName="alice", AccessKeyId=self.inactive.access_key, Status="Inactive")
        wait_until(lambda: self._available(ec), 90, interval=0.5, what=f"{GROUP} available")
        (group,) = ec.describe_replication_groups(ReplicationGroupId=GROUP)["ReplicationGroups"]
        self.primary_endpoint = ADDRESS, int(group["NodeGroups"][0]["PrimaryEndpoint"]["Port"])

    @staticmethod
    def _identity(iam: Any, name: str, statement: dict[str, Any] | None) -> Credentials:
        if statement is not None:
            iam.create_user(UserName=name)
            document = {"Version": "2012-10-17", "Statement": [statement]}
            iam.put_user_policy(UserName=name, PolicyName="redis", PolicyDocument=json.dumps(document))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return Credentials(key["AccessKeyId"], key["SecretAccessKey"])

    @staticmethod
    def _available(ec: Any) -> bool:
        (group,) = ec.describe_replication_groups(ReplicationGroupId=GROUP)["ReplicationGroups"]
        return bool(group["Status"] == "available" and not group["PendingModifiedValues"])

    def redis(self, endpoint: tuple[str, int], **auth: Any) -> redis.Redis:
        return redis.Redis(
            host=endpoint[0],
            port=endpoint[1],
            ssl=True,
            ssl_ca_certs=self.ca,
            socket_timeout=5,
            socket_connect_timeout=5,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
            **auth,
        )


@pytest.fixture(scope="module")
def setup(server: ServerProcess) -> Setup:
    return Setup(server)


def _token(credentials: Credentials, user: str = IAM_USER, signed_at: datetime | None = None) -> str:
    return connect_token(credentials, GROUP, user, signed_at)


def test_a_valid_token_connects_as_the_iam_user(setup: Setup) -> None:
    client = setup.redis(setup.iam_endpoint, credential_provider=ElastiCacheIAMProvider(IAM_USER, GROUP, setup.allowed))
    assert client.acl_whoami() == IAM_USER
    assert client.set("iam:greeting", "hello")
    pipe = client.pipeline(transaction=True)
    pipe.incr("iam:n").incr("iam:n")
    assert pipe.execute() == [1, 2]
    client.close()
    # RESP3: HELLO 3 AUTH <user> <token> is answered with the node's HELLO map.
    resp3 = setup.redis(setup.iam_endpoint, protocol=3, username=IAM_USER, password=_token(setup.allowed))
    assert resp3.get("iam:greeting") == "hello"
    assert resp3.acl_whoami() == IAM_USER
    resp3.close()


def test_the_nodes_do_not_take_tokens_and_the_iam_endpoint_takes_nothing_else(setup: Setup) -> None:
    # The group's own endpoint is unchanged: a token is not a password there, a password user gets in.
    with pytest.raises(redis.AuthenticationError):
        setup.redis(setup.primary_endpoint, username=IAM_USER, password=_token(setup.allowed)).ping()
    direct = setup.redis(setup.primary_endpoint, username=PASSWORD_USER, password=PASSWORD)
    assert direct.get("iam:greeting") == "hello"
    direct.close()
    # The IAM endpoint takes tokens only, and nothing before AUTH.
    with pytest.raises(redis.AuthenticationError):
        setup.redis(setup.iam_endpoint, username=PASSWORD_USER, password=PASSWORD).ping()
    with pytest.raises(redis.AuthenticationError, match="Authentication required"):
        setup.redis(setup.iam_endpoint).ping()


# Each refusal, and the reason the server logs for it (the client only hears WRONGPASS).
REFUSALS = {
    "expired": "RequestExpired",
    "forged": "SignatureDoesNotMatch",
    "without-connect": "AccessDenied: User: arn:aws:iam::000000000000:user/bob is not authorized to perform: "
    "elasticache:Connect",
    "connect-on-group-only": "AccessDenied: User: arn:aws:iam::000000000000:user/carol",
    "inactive-key": "InvalidClientTokenId",
    "another-user": f"the token is for user '{IAM_USER}', AUTH names '{PASSWORD_USER}'",
    # Signed with the root key (allowed everything): what is checked after the policy.
    "a-password-user": f"user {PASSWORD_USER} does not exist or does not use IAM authentication",
    "outside-the-user-group": f"user outsider is not in the user group of {GROUP}",
    "another-group": "replication group nosuchgroup has no primary endpoint",
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refused_tokens(server: ServerProcess, setup: Setup, case: str) -> None:
    user = IAM_USER
    if case == "expired":
        token = _token(setup.allowed, signed_at=datetime.now(UTC) - timedelta(seconds=901))
    elif case == "forged":
        token = _token(Credentials(setup.allowed.access_key, "not-" + setup.allowed.secret_key))
    elif case == "without-connect":
        token = _token(setup.not_allowed)
    elif case == "connect-on-group-only":
        token = _token(setup.group_only)
    elif case == "inactive-key":
        token = _token(setup.inactive)
    elif case == "another-user":  # a good token, sent for another user than it names
        token, user = _token(setup.allowed), PASSWORD_USER
    elif case == "a-password-user":
        token, user = _token(setup.root, PASSWORD_USER), PASSWORD_USER
    elif case == "outside-the-user-group":
        token, user = _token(setup.root, "outsider"), "outsider"
    else:
        token = connect_token(setup.root, "nosuchgroup", IAM_USER)
    client = setup.redis(setup.iam_endpoint, username=user, password=token)
    with pytest.raises(redis.AuthenticationError, match="invalid username-password pair or user is disabled"):
        client.ping()
    reasons = [line for line in server.log_tail(20).splitlines() if "refused" in line]
    assert REFUSALS[case] in reasons[-1]
    assert token not in server.log_tail(200)


def test_connections_end_at_their_lifetime(setup: Setup) -> None:
    # One connection, not a pool: a pool would reconnect by itself with the (still valid) token.
    connection = redis.SSLConnection(
        host=setup.iam_endpoint[0],
        port=setup.iam_endpoint[1],
        ssl_ca_certs=setup.ca,
        username=IAM_USER,
        password=_token(setup.allowed),
        socket_timeout=5,
        retry=Retry(NoBackoff(), 0),
    )
    connection.connect()
    connected = time.monotonic()
    assert _ping(connection) == b"PONG"
    time.sleep(max(0.0, connected + LIFETIME + 1 - time.monotonic()))
    with pytest.raises(redis.ConnectionError):
        _ping(connection)
    connection.disconnect()
    # A new connection with a token is served again.
    again = setup.redis(setup.iam_endpoint, username=IAM_USER, password=_token(setup.allowed))
    assert again.get("iam:greeting") == "hello"
    again.close()


def _ping(connection: redis.Connection) -> Any:
    connection.send_command("PING")
    return connection.read_response()


def test_a_token_from_the_cli_with_redis_cli(server: ServerProcess, setup: Setup) -> None:
    from click.testing import CliRunner  # noqa: PLC0415

    from cachefleet.cli.main import main  # noqa: PLC0415

    made = CliRunner().invoke(
        main, ["iam", "redis-token", GROUP, IAM_USER, "--json", "--data-dir", str(server.data_dir)]
    )
    assert made.exit_code == 0, made.output
    answer = json.loads(made.output)
    host, _, port = answer["Endpoint"].rpartition(":")
    assert (host, int(port)) == setup.iam_endpoint
    argv = [REDIS_CLI, "--tls", "--cacert", setup.ca, "-h", host, "-p", port, "--user", IAM_USER]
    argv += ["-a", answer["Token"], "--no-auth-warning", "ACL", "WHOAMI"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert done.stdout.strip() == IAM_USER, done.stderr
