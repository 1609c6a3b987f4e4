"""``cachefleet ca``: the installation's CA certificate, which TLS clients verify caches against.

Self-contained on purpose: it reads ``DIR/ca.pem`` and needs no server (the file is world-readable,
the CA key next to it is not, and this never touches the key).
"""

from __future__ import annotations

from pathlib import Path

import click

from cachefleet.settings import default_data_dir
from cachefleet.tls import files


@click.command("ca")
@click.option(
    "--data-dir",
    "data_dir_option",
    type=click.Path(file_okay=False, path_type=Path, resolve_path=True),
    help="The installation's data directory [default: $CACHEFLEET_HOME or ~/.cachefleet].",
)
@click.option("--path", "path_only", is_flag=True, help="Print the file's path instead of the certificate.")
@click.pass_context
def ca(ctx: click.Context, data_dir_option: Path | None, path_only: bool) -> None:
    """Print the CA certificate (PEM) that node and endpoint certificates chain to.

    Use it as the trust anchor of TLS clients: `redis-cli --tls --cacert <(cachefleet ca)`, or
    redis-py's `ssl_ca_certs=$(cachefleet ca --path)`.
    """
    # A --data-dir given before the verb lands on the invocation's shared state object, if any.
    data_dir = data_dir_option or getattr(ctx.obj, "data_dir", None) or default_data_dir()
    path = files.ca_path(data_dir)
    try:
        pem = path.read_text()
    except FileNotFoundError:
        raise click.ClickException(
            f"No CA yet at {path}: the server creates it when it first starts (./run.sh)."
        ) from None
    except OSError as exc:
        raise click.ClickException(f"Cannot read {path}: {exc.strerror}") from None
    click.echo(str(path) if path_only else pem, nl=path_only)
