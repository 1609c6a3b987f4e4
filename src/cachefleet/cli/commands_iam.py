"""``cachefleet iam``: users, access keys and policies, through the server's IAM API (as ``aws iam``).

Signed with the installation's root key from ``DIR/credentials`` (or ``--profile``), so every verb
is what boto3's IAM client would do; nothing here reads the server's tables.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import click
from rich.table import Table

from cachefleet.cli import render
from cachefleet.cli.connection import ConnectionOptions, Endpoint, collect, resolve
from cachefleet.cli.context import CliState, pass_state, stdout
from cachefleet.cli.groups import noun
from cachefleet.cli.options import client_options


def service_client(state: CliState, service: str) -> Any:
    """A boto3 client of ``service`` (iam, sts) for the server the options name."""
    import boto3  # noqa: PLC0415 (as in connection.make_client: only verbs that call pay for boto3)
    from botocore.config import Config  # noqa: PLC0415

    endpoint = _endpoint(state)
    return boto3.session.Session(
        aws_access_key_id=endpoint.access_key_id,
        aws_secret_access_key=endpoint.secret_access_key,
        region_name=endpoint.region,
    ).client(
        service,
        endpoint_url=endpoint.url,
        config=Config(connect_timeout=5, read_timeout=60, retries={"mode": "standard", "total_max_attempts": 1}),
    )


def _emit(state: CliState, result: dict[str, Any], text: str) -> None:
    if state.json:
        click.echo(render.to_json(result))
    else:
        stdout().print(text, markup=False, soft_wrap=True)


def _table(title: str, columns: list[str], rows: list[list[str]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    return table


def _document(source: str) -> str:
    """A policy document from a file, ``-`` (stdin), or given inline as JSON."""
    if source == "-":
        return sys.stdin.read()
    if source.lstrip().startswith("{"):
        return source
    return Path(source).read_text()


@click.group("iam")
def iam() -> None:
    """IAM users, access keys and policies of this installation (the AWS IAM API)."""


@iam.command("whoami")
@client_options
@pass_state
def whoami(state: CliState) -> None:
    """Who the credentials in use are (STS GetCallerIdentity)."""
    result = service_client(state, "sts").get_caller_identity()
    _emit(state, result, f"{result['Arn']} (account {result['Account']}, id {result['UserId']})")


@iam.command("redis-token")
@click.argument("group_id", metavar="GROUP")
@click.argument("user_id", metavar="USER")
@client_options
@pass_state
def redis_token(state: CliState, group_id: str, user_id: str) -> None:
    """An IAM authentication token for Redis, valid 15 minutes, signed with the credentials in use
    (--profile): send it as USER's password to the IAM endpoint (redis_iam_endpoint in server.json),
    e.g. redis-cli --tls --cacert ca.pem -h HOST -p PORT --user USER -a TOKEN."""
    endpoint = _endpoint(state)
    token = connect_token(endpoint, group_id, user_id)
    result = {
        "ReplicationGroupId": group_id,
        "UserId": user_id,
        "Token": token,
        "Endpoint": endpoint.redis_iam_endpoint,
    }
    _emit(state, result, token)


def _endpoint(state: CliState) -> Endpoint:
    return resolve(
        ConnectionOptions(data_dir=state.data_dir, endpoint_url=state.endpoint_url, profile=state.profile,
                          region=state.region)
    )  # fmt: skip


def connect_token(endpoint: Endpoint, group_id: str, user_id: str) -> str:
    """The token as AWS documents it: a SigV4-presigned connect request for the group, 900 seconds."""
    import botocore.session  # noqa: PLC0415 (only this verb pays for botocore)
    from botocore.credentials import Credentials  # noqa: PLC0415
    from botocore.model import ServiceId  # noqa: PLC0415
    from botocore.signers import RequestSigner  # noqa: PLC0415

    credentials = Credentials(endpoint.access_key_id, endpoint.secret_access_key)
    emitter = botocore.session.get_session().get_component("event_emitter")
    signer = RequestSigner(ServiceId("elasticache"), endpoint.region, "elasticache", "v4", credentials, emitter)
    url = f"https://{group_id}/?{urlencode({'Action': 'connect', 'User': user_id})}"
    request = {"method": "GET", "url": url, "body": {}, "headers": {}, "context": {}}
    signed: str = signer.generate_presigned_url(
        request, operation_name="connect", expires_in=900, region_name=endpoint.region
    )
    return signed.removeprefix("https://")


# Users


@noun("user")
def user() -> None:
    """Create, list, describe and delete IAM users."""


@user.command("create")
@click.argument("name")
@click.option("--path", default="/", show_default=True, help="The user's path (part of its ARN).")
@client_options
@pass_state
def user_create(state: CliState, name: str, path: str) -> None:
    """Create the user NAME (with no access key and no permission yet)."""
    result = service_client(state, "iam").create_user(UserName=name, Path=path)
    _emit(state, result, f"created {result['User']['Arn']}")


@user.command("list")
@client_options
@pass_state
def user_list(state: CliState) -> None:
    """List the users."""
    users = collect_iam(service_client(state, "iam").list_users, "Users")
    if state.json:
        click.echo(render.to_json({"Users": users}))
        return
    rows = [[u["UserName"], u["UserId"], u["Arn"], str(u["CreateDate"])] for u in users]
    stdout().print(_table("Users", ["Name", "Id", "ARN", "Created"], rows))


@user.command("describe")
@click.argument("name")
@client_options
@pass_state
def user_describe(state: CliState, name: str) -> None:
    """A user, its access keys, its policies and groups."""
    client = service_client(state, "iam")
    found = client.get_user(UserName=name)["User"]
    keys = client.list_access_keys(UserName=name)["AccessKeyMetadata"]
    inline = client.list_user_policies(UserName=name)["PolicyNames"]
    attached = client.list_attached_user_policies(UserName=name)["AttachedPolicies"]
    groups = client.list_groups_for_user(UserName=name)["Groups"]
    result = {"User": found, "AccessKeys": keys, "InlinePolicies": inline, "AttachedPolicies": attached,
              "Groups": groups}  # fmt: skip
    lines = [
        f"{found['Arn']} (id {found['UserId']}, created {found['CreateDate']})",
        "access keys: " + (", ".join(f"{k['AccessKeyId']} {k['Status']}" for k in keys) or "none"),
        "inline policies: " + (", ".join(inline) or "none"),
        "attached policies: " + (", ".join(p["PolicyArn"] for p in attached) or "none"),
        "groups: " + (", ".join(g["GroupName"] for g in groups) or "none"),
    ]
    _emit(state, result, "\n".join(lines))


@user.command("delete")
@click.argument("name")
@click.option("--force", is_flag=True, help="First delete its keys and inline policies, detach its policies, "
              "and take it out of its groups (IAM refuses otherwise).")  # fmt: skip
@client_options
@pass_state
def user_delete(state: CliState, name: str, force: bool) -> None:
    """Delete the user NAME."""
    client = service_client(state, "iam")
    if force:
        for key in client.list_access_keys(UserName=name)["AccessKeyMetadata"]:
            client.delete_access_key(UserName=name, AccessKeyId=key["AccessKeyId"])
        for policy in client.list_user_policies(UserName=name)["PolicyNames"]:
            client.delete_user_policy(UserName=name, PolicyName=policy)
        for attached in client.list_attached_user_policies(UserName=name)["AttachedPolicies"]:
            client.detach_user_policy(UserName=name, PolicyArn=attached["PolicyArn"])
        for group in client.list_groups_for_user(UserName=name)["Groups"]:
            client.remove_user_from_group(UserName=name, GroupName=group["GroupName"])
    result = client.delete_user(UserName=name)
    _emit(state, result, f"deleted user {name}")


# Access keys


@noun("key")
def key() -> None:
    """Create, list, (de)activate and delete access keys."""


@key.command("create")
@click.argument("user_name", metavar="USER")
@client_options
@pass_state
def key_create(state: CliState, user_name: str) -> None:
    """A new access key for USER. Its secret is shown this once: keep it."""
    result = service_client(state, "iam").create_access_key(UserName=user_name)
    made = result["AccessKey"]
    _emit(
        state,
        result,
        f"aws_access_key_id = {made['AccessKeyId']}\naws_secret_access_key = {made['SecretAccessKey']}\n"
        "(the secret is not shown again)",
    )


@key.command("list")
@click.argument("user_name", metavar="USER", required=False)
@client_options
@pass_state
def key_list(state: CliState, user_name: str | None) -> None:
    """USER's access keys (the root identity's without USER)."""
    params = {"UserName": user_name} if user_name else {}
    keys = collect_iam(service_client(state, "iam").list_access_keys, "AccessKeyMetadata", **params)
    if state.json:
        click.echo(render.to_json({"AccessKeyMetadata": keys}))
        return
    rows = [[k["AccessKeyId"], k["Status"], str(k["CreateDate"])] for k in keys]
    stdout().print(_table(f"Access keys of {user_name or 'root'}", ["Access key id", "Status", "Created"], rows))


def _set_status(state: CliState, user_name: str, key_id: str, status: str) -> None:
    result = service_client(state, "iam").update_access_key(UserName=user_name, AccessKeyId=key_id, Status=status)
    _emit(state, result, f"{key_id} is {status}")


@key.command("deactivate")
@click.argument("user_name", metavar="USER")
@click.argument("key_id", metavar="KEY")
@client_options
@pass_state
def key_deactivate(state: CliState, user_name: str, key_id: str) -> None:
    """Refuse every request signed with KEY from now on (it can be activated again)."""
    _set_status(state, user_name, key_id, "Inactive")


@key.command("activate")
@click.argument("user_name", metavar="USER")
@click.argument("key_id", metavar="KEY")
@client_options
@pass_state
def key_activate(state: CliState, user_name: str, key_id: str) -> None:
    """Accept requests signed with KEY again."""
    _set_status(state, user_name, key_id, "Active")


@key.command("delete")
@click.argument("user_name", metavar="USER")
@click.argument("key_id", metavar="KEY")
@client_options
@pass_state
def key_delete(state: CliState, user_name: str, key_id: str) -> None:
    """Delete KEY for good."""
    result = service_client(state, "iam").delete_access_key(UserName=user_name, AccessKeyId=key_id)
    _emit(state, result, f"deleted {key_id}")


# Policies


@noun("policy")
def policy() -> None:
    """Inline and managed policies, and their attachment to users."""


@policy.command("put")
@click.argument("user_name", metavar="USER")
@click.argument("name")
@click.argument("document", metavar="DOCUMENT")
@client_options
@pass_state
def policy_put(state: CliState, user_name: str, name: str, document: str) -> None:
    """Set USER's inline policy NAME to DOCUMENT (a file, - for stdin, or JSON text)."""
    result = service_client(state, "iam").put_user_policy(
        UserName=user_name, PolicyName=name, PolicyDocument=_document(document)
    )
    _emit(state, result, f"{user_name}: inline policy {name} set")


@policy.command("get")
@click.argument("user_name", metavar="USER")
@click.argument("name")
@client_options
@pass_state
def policy_get(state: CliState, user_name: str, name: str) -> None:
    """Print USER's inline policy NAME."""
    result = service_client(state, "iam").get_user_policy(UserName=user_name, PolicyName=name)
    _emit(state, result, json.dumps(result["PolicyDocument"], indent=2))


@policy.command("delete")
@click.argument("user_name", metavar="USER")
@click.argument("name")
@client_options
@pass_state
def policy_delete(state: CliState, user_name: str, name: str) -> None:
    """Delete USER's inline policy NAME."""
    result = service_client(state, "iam").delete_user_policy(UserName=user_name, PolicyName=name)
    _emit(state, result, f"{user_name}: inline policy {name} deleted")


@policy.command("create")
@click.argument("name")
@click.argument("document", metavar="DOCUMENT")
@click.option("--description", help="What the policy is for.")
@client_options
@pass_state
def policy_create(state: CliState, name: str, document: str, description: str | None) -> None:
    """Create the managed policy NAME from DOCUMENT (a file, - for stdin, or JSON text)."""
    params: dict[str, Any] = {"PolicyName": name, "PolicyDocument": _document(document)}
    if description:
        params["Description"] = description
    result = service_client(state, "iam").create_policy(**params)
    _emit(state, result, f"created {result['Policy']['Arn']}")


@policy.command("list")
@click.option("--scope", type=click.Choice(["All", "AWS", "Local"]), default="Local", show_default=True)
@client_options
@pass_state
def policy_list(state: CliState, scope: str) -> None:
    """List managed policies (this installation's, or AWS's too)."""
    policies = collect_iam(service_client(state, "iam").list_policies, "Policies", Scope=scope)
    if state.json:
        click.echo(render.to_json({"Policies": policies}))
        return
    rows = [[p["PolicyName"], p["Arn"], p["DefaultVersionId"], str(p["AttachmentCount"])] for p in policies]
    stdout().print(_table("Managed policies", ["Name", "ARN", "Version", "Attached"], rows))


@policy.command("attach")
@click.argument("user_name", metavar="USER")
@click.argument("arn")
@client_options
@pass_state
def policy_attach(state: CliState, user_name: str, arn: str) -> None:
    """Attach the managed policy ARN to USER."""
    result = service_client(state, "iam").attach_user_policy(UserName=user_name, PolicyArn=arn)
    _emit(state, result, f"{user_name}: {arn} attached")


@policy.command("detach")
@click.argument("user_name", metavar="USER")
@click.argument("arn")
@client_options
@pass_state
def policy_detach(state: CliState, user_name: str, arn: str) -> None:
    """Detach the managed policy ARN from USER."""
    result = service_client(state, "iam").detach_user_policy(UserName=user_name, PolicyArn=arn)
    _emit(state, result, f"{user_name}: {arn} detached")


def collect_iam(call: Any, key: str, **params: Any) -> list[dict[str, Any]]:
    """Every page of an IAM List call (``Marker`` while ``IsTruncated``)."""
    return collect(lambda **p: _untruncated(call(**p)), key, **params)


def _untruncated(page: dict[str, Any]) -> dict[str, Any]:
    # IAM pages say IsTruncated; collect() follows Marker only, which IAM also sets then.
    return page if page.get("IsTruncated") else {k: v for k, v in page.items() if k != "Marker"}


for _noun in (user, key, policy):
    iam.add_command(_noun)
