"""Shell completion: the script for each shell, and the ids of existing resources as values.

click completes commands and options by itself when ``_CACHEFLEET_COMPLETE`` is set; the functions
here add the names of the server's resources (``cachefleet rg describe <TAB>``). A completion that
cannot reach a server offers nothing rather than an error in the middle of the user's line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import click
from click.shell_completion import CompletionItem, get_completion_class

from cachefleet.cli.connection import ElastiCache, collect
from cachefleet.cli.context import CliState

PROG = "cachefleet"
COMPLETE_VAR = "_CACHEFLEET_COMPLETE"
SHELLS = ("bash", "zsh", "fish")

Completer = Callable[[click.Context, click.Parameter, str], list[CompletionItem]]


def script(command: click.Command, shell: str) -> str:
    """The completion script click generates for ``shell``, for a program called ``cachefleet``."""
    cls = get_completion_class(shell)
    if cls is None:
        raise click.BadParameter(f"no completion for {shell}; one of {', '.join(SHELLS)}")
    return cls(command, {}, PROG, COMPLETE_VAR).source()


def _ids(list_ids: Callable[[ElastiCache], Iterable[str]]) -> Completer:
    def complete(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        state = ctx.find_object(CliState) or CliState()
        try:
            found = list(list_ids(state.client()))
        except Exception:  # no server, bad credentials, anything: complete nothing, print nothing
            return []
        return [CompletionItem(name) for name in sorted(found) if name.startswith(incomplete)]

    return complete


groups = _ids(lambda c: (g["ReplicationGroupId"] for g in collect(c.describe_replication_groups, "ReplicationGroups")))
clusters = _ids(lambda c: (x["CacheClusterId"] for x in collect(c.describe_cache_clusters, "CacheClusters")))
snapshots = _ids(lambda c: (s["SnapshotName"] for s in collect(c.describe_snapshots, "Snapshots")))
parameter_groups = _ids(
    lambda c: (g["CacheParameterGroupName"] for g in collect(c.describe_cache_parameter_groups, "CacheParameterGroups"))
)
