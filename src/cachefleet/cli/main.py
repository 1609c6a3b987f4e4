"""The ``cachefleet`` command: the nouns, their global options, and the one place errors become exits.

Exit status (documented in the README and in ``cachefleet --help``); no traceback reaches the user:
  0   done
  1   the API refused (``Error (Code): Message``), or what was waited for failed
  2   no server to talk to (no server.json or credentials, or nothing answers at its address)
  3   a wait timed out; the work goes on in the server
  64  the command line is wrong (click's usage errors, which click itself exits with 2)
  130 interrupted with Ctrl-C while waiting; the work goes on in the server
"""

from __future__ import annotations

from typing import Any, NoReturn

import click
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, ParamValidationError
from botocore.exceptions import ConnectionError as BotoConnectionError

from cachefleet.cli import complete
from cachefleet.cli.commands_agent import agent
from cachefleet.cli.commands_audit import audit
from cachefleet.cli.commands_ca import ca
from cachefleet.cli.commands_cluster import cluster
from cachefleet.cli.commands_demo import demo
from cachefleet.cli.commands_engines import engine
from cachefleet.cli.commands_events import event
from cachefleet.cli.commands_host import host
from cachefleet.cli.commands_iam import iam
from cachefleet.cli.commands_kms import kms
from cachefleet.cli.commands_params import param_group
from cachefleet.cli.commands_rg import rg
from cachefleet.cli.commands_server import server
from cachefleet.cli.commands_snapshot import snapshot
from cachefleet.cli.commands_subnet import subnet_group
from cachefleet.cli.context import stderr
from cachefleet.cli.errors import CliError
from cachefleet.cli.groups import Noun
from cachefleet.cli.options import client_options

NO_SERVER_HINT = "start it with ./run.sh, or pass --endpoint-url / --data-dir"
EXIT_USAGE = 64
EXIT_INTERRUPTED = 130

# Other names for nouns and verbs: the AWS spellings, short forms, and the verbs of earlier versions.
ALIASES = {
    "replication-group": "rg",
    "cache-cluster": "cluster",
    "parameter-group": "param-group",
    "pg": "param-group",
    "events": "event list",
    "engines": "engine list",
}


class _Main(Noun):
    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:  # fmt: skip
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            _usage(exc)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:  # a verb's own options, parsed once the verb is known
            _usage(exc)
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
        except KeyboardInterrupt:
            _fail("Interrupted: what was asked of the server goes on without the CLI.", EXIT_INTERRUPTED)


def _usage(exc: click.UsageError) -> NoReturn:
    exc.show()  # click's usage line, the message, and the hint to --help
    raise click.exceptions.Exit(EXIT_USAGE)


def _fail(message: str, exit_code: int) -> NoReturn:
    stderr().print(message, style="red", markup=False, soft_wrap=True)
    raise click.exceptions.Exit(exit_code)


@click.group(cls=_Main, aliases=ALIASES, epilog="Exit status: 0 done, 1 refused or failed, 2 no server, "
             "3 wait timed out, 64 bad command line, 130 interrupted.")  # fmt: skip
@client_options
@click.version_option(package_name="cachefleet")
def main() -> None:
    """A self-hosted Amazon ElastiCache.

    `cachefleet server` runs the control plane; the other verbs talk to it through the ElastiCache
    API, exactly as boto3 or the AWS CLI would, using DIR/server.json and DIR/credentials. Every
    verb takes --json (the API's answer, for scripts); verbs that start work wait for it, showing
    its status, unless given --no-wait.
    """


@click.command("completion")
@click.argument("shell", type=click.Choice(complete.SHELLS))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL.

    \b
    bash:  eval "$(cachefleet completion bash)"      (in ~/.bashrc)
    zsh:   eval "$(cachefleet completion zsh)"       (in ~/.zshrc)
    fish:  cachefleet completion fish > ~/.config/fish/completions/cachefleet.fish
    """
    click.echo(complete.script(main, shell))


for command in (
    server,
    agent,
    rg,
    cluster,
    snapshot,
    param_group,
    subnet_group,
    event,
    engine,
    host,
    demo,
    iam,
    audit,
    kms,
    completion,
    ca,
):
    main.add_command(command)
