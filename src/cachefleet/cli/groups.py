"""Nouns of the CLI (``rg``, ``cluster``, ``snapshot``, ...) as click groups whose verbs may have aliases.

Every noun uses the same verbs where they apply (``create``, ``list``, ``describe``, ``modify``,
``delete``); ``show`` is another name for ``describe`` everywhere, and a noun may add its own aliases
(``param-group set`` for ``modify``). An alias may name a verb of another noun (``engines`` is
``engine list``), which is how older spellings keep working.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import click

# Aliases every noun has.
COMMON_ALIASES = {"show": "describe"}


class Noun(click.Group):
    def __init__(self, *args: Any, aliases: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.aliases = {**COMMON_ALIASES, **(aliases or {})}

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = self.aliases.get(cmd_name, cmd_name)
        first, _, rest = target.partition(" ")
        command = super().get_command(ctx, first)
        # "engine list": the verb of another noun.
        if rest and isinstance(command, click.Group):
            return command.get_command(ctx, rest)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_commands(ctx, formatter)
        names = set(self.list_commands(ctx))
        shown = [(alias, target) for alias, target in sorted(self.aliases.items()) if target.split()[0] in names]
        if shown:
            with formatter.section("Aliases"):
                formatter.write_dl([(alias, target) for alias, target in shown])


def noun(name: str, *, aliases: Mapping[str, str] | None = None) -> Callable[[Callable[..., Any]], Noun]:
    """``@noun("rg")``: a group of verbs with the common aliases (and ``aliases``)."""

    def decorate(function: Callable[..., Any]) -> Noun:
        group = click.group(name, cls=Noun, aliases=aliases)(function)
        assert isinstance(group, Noun)
        return group

    return decorate
