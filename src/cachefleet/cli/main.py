"""The ``cachefleet`` command: the group, its global options, and the one place errors become exits.

Exit status: 0 done; 1 the API or a wait said no (``Error (Code): Message``); 2 no server to talk to.
No traceback reaches the user for either.
"""

from __future__ import annotations

from typing import Any, NoReturn

import click
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, ParamValidationError
from botocore.exceptions import ConnectionError as BotoConnectionError

from cachefleet.cli.commands_cluster import cluster
from cachefleet.cli.commands_demo import demo
from cachefleet.cli.commands_engines import engines
from cachefleet.cli.commands_rg import rg
from cachefleet.cli.commands_server import server
from cachefleet.cli.context import stderr
from cachefleet.cli.errors import CliError
from cachefleet.cli.options import client_options

NO_SERVER_HINT = "start it with ./run.sh, or pass --endpoint-url / --data-dir"


class _Main(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            _fail(f"Error ({error.get('Code', 'Unknown')}): {error.get('Message', '')}", 1)
        except CliError as exc:
            _fail(f"Error ({exc.code}): {exc.message}" if exc.code else exc.message, exc.exit_code)
        except ParamValidationError as exc:
            # botocore refused the request before sending it: a usage mistake, like a ClientError.
            _fail(f"Error (ParamValidation): {exc}", 1)
        except (BotoConnectionError, HTTPClientError) as exc:
            url = exc.kwargs.get("endpoint_url", "the endpoint")
            _fail(f"Error: {exc}\nNo cachefleet server found at {url}: {NO_SERVER_HINT}", 2)
        except BotoCoreError as exc:
            _fail(f"Error: {exc}", 2)


def _fail(message: str, exit_code: int) -> NoReturn:
    stderr().print(message, style="red", markup=False, soft_wrap=True)
    raise click.exceptions.Exit(exit_code)


@click.group(cls=_Main)
@client_options
@click.version_option(package_name="cachefleet")
def main() -> None:
    """A self-hosted Amazon ElastiCache.

    `cachefleet server` runs the control plane; the other verbs talk to it through the ElastiCache
    API, exactly as boto3 or the AWS CLI would, using DIR/server.json and DIR/credentials.
    """


main.add_command(server)
main.add_command(rg)
main.add_command(cluster)
main.add_command(engines)
main.add_command(demo)
