"""``cachefleet kms``: the KMS keys this installation manages (``DIR/keys/``), for ``KmsKeyId``.

Keys are made and listed on this machine, next to the installation key that seals them; the server
reads the list on every ``KmsKeyId`` it is given, so a new key is usable at once. ``decrypt-file``
opens a sealed export (``CopySnapshot TargetBucket``) or snapshot file into a plain RDB.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.table import Table

from cachefleet.cli import render
from cachefleet.cli.context import CliState, pass_state, stdout
from cachefleet.cli.errors import CliError, ServerNotFound
from cachefleet.cli.options import data_dir_option, json_option
from cachefleet.model.errors import InvalidKMSKey
from cachefleet.model.kms import is_alias
from cachefleet.settings import DEFAULT_ACCOUNT, DEFAULT_REGION, default_data_dir
from cachefleet.store.keys import InstallationKey, Keyring, KmsKeys, MissingInstallationKey, SealError
from cachefleet.store.sealed import unseal_file
from cachefleet.store.snapshots import SnapshotFileError, write_file


def _keys(state: CliState) -> tuple[Path, KmsKeys]:
    data_dir = state.data_dir or default_data_dir()
    try:
        installation = InstallationKey.load(data_dir / "keys", create=False)
    except MissingInstallationKey:
        raise ServerNotFound(f"No installation key in {data_dir / 'keys'}: start the server once.") from None
    region = state.region or _server_region(data_dir)
    return data_dir, KmsKeys(data_dir / "keys", installation, region, DEFAULT_ACCOUNT)


def _server_region(data_dir: Path) -> str:
    import json  # noqa: PLC0415

    try:
        return str(json.loads((data_dir / "server.json").read_text()).get("region") or DEFAULT_REGION)
    except (OSError, ValueError):
        return DEFAULT_REGION


@click.group("kms")
def kms() -> None:
    """KMS keys this installation manages (for KmsKeyId), and opening sealed files."""


@kms.command("list")
@data_dir_option
@json_option
@pass_state
def list_keys(state: CliState) -> None:
    """The managed keys, with the ARNs KmsKeyId accepts."""
    _, keys = _keys(state)
    managed = keys.all()
    if state.json:
        found = [
            {"KeyId": k.key_id, "KeyArn": keys.arn(k), "Aliases": list(k.aliases), "CreationDate": k.created_at}
            for k in managed
        ]
        click.echo(render.to_json({"Keys": found}))
        return
    table = Table(title="KMS keys", title_justify="left")
    for column in ("Key id", "ARN", "Aliases", "Created"):
        table.add_column(column, overflow="fold")
    for key in managed:
        table.add_row(key.key_id, keys.arn(key), ", ".join(key.aliases) or "-", key.created_at)
    stdout().print(table)


@kms.command("create-key")
@click.option("--alias", help="An alias for the key (alias/NAME).")
@data_dir_option
@json_option
@pass_state
def create_key(state: CliState, alias: str | None) -> None:
    """Make a new key; KmsKeyId can name it by id, ARN or alias at once."""
    if alias is not None and not is_alias(alias):
        raise click.BadParameter(
            "expected alias/NAME (letters, digits, / _ -; not alias/aws/...)", param_hint="--alias"
        )
    _, keys = _keys(state)
    try:
        key = keys.create(datetime.now(UTC), alias)
    except InvalidKMSKey as exc:
        raise CliError(exc.message) from None
    result = {"KeyId": key.key_id, "KeyArn": keys.arn(key), "Aliases": list(key.aliases)}
    if state.json:
        click.echo(render.to_json(result))
    else:
        stdout().print(f"created {result['KeyArn']}" + (f" ({alias})" if alias else ""), markup=False)


@kms.command("decrypt-file")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("dest", type=click.Path(dir_okay=False, path_type=Path))
@data_dir_option
@pass_state
def decrypt_file(state: CliState, source: Path, dest: Path) -> None:
    """Write the plain RDB of the sealed SOURCE (an export or a snapshot file) to DEST (mode 0600)."""
    data_dir, keys = _keys(state)
    installation = InstallationKey.load(data_dir / "keys", create=False)  # _keys has checked it exists
    if dest.exists():
        raise CliError(f"{dest} exists; choose another name.")
    try:
        stored = write_file(dest, unseal_file(source, Keyring(installation, keys)), durable=True)
    except (SnapshotFileError, SealError) as exc:
        raise CliError(f"{source} cannot be opened: {exc}") from None
    os.chmod(dest, 0o600)
    stdout().print(f"wrote {dest} ({stored.size} bytes)", markup=False)
