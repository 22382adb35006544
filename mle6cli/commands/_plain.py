"""Help without `<bool>`: a flag takes no value, so its help shows none, in every command and group.

The CLI's root group (`cli.BoundaryGroup`), `mle6 runs` and every command are built on these.
"""

from __future__ import annotations

from typer.core import TyperCommand, TyperGroup


def plain_flags(params: list) -> list:
    """Flags take no value, so help shows none: no <bool> (typer's own --help and --install-completion too)."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


class Command(TyperCommand):
    def get_params(self, ctx):
        return plain_flags(super().get_params(ctx))


class Group(TyperGroup):
    def get_params(self, ctx):
        return plain_flags(super().get_params(ctx))
