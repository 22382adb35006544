"""The configs of the training tasks: built from a command's options, checked field by field.

Options come from the command line, a run's config.json (`--resume`) or a config file, so the
library checks them again: a bad value is a ConfigError naming it.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Sequence
from dataclasses import fields

from mle6cli.errors import ConfigError

# option name -> (config field, how a single value becomes the field's value)
ALIASES = {
    "seed": ("seeds", lambda v: [v]),
    "no_download": ("download", lambda v: not v),
}


class OptionsConfig:
    """A frozen dataclass mixin: `from_options` maps a command's options onto the fields."""

    aliases: dict = ALIASES

    @classmethod
    def from_options(cls, options: dict):
        names = {f.name: f for f in fields(cls)}
        hints = typing.get_type_hints(cls)
        values = {}
        for key, value in options.items():
            field_name, convert = (key, None) if key in names else cls.aliases.get(key, (key, None))
            if field_name in names:
                values[field_name] = convert(value) if convert is not None else value
        for name, value in values.items():
            if isinstance(value, list) and _holds_tuple(hints[name]):
                values[name] = tuple(value)
        return cls(**values)


def _holds_tuple(hint) -> bool:
    """Whether a field's type is a tuple (`tuple[int, ...]`, or `tuple[int, ...] | None`)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_holds_tuple(arg) for arg in typing.get_args(hint))
    return hint is tuple or origin is tuple


def check_number(name: str, value, *, whole: bool, minimum: float | None = None, positive: bool = False):
    """One rule for every numeric value: a ConfigError naming it."""
    ok_type = (isinstance(value, int) if whole else isinstance(value, (int, float))) and not isinstance(value, bool)
    if not ok_type or (isinstance(value, float) and not math.isfinite(value)):
        kind = "a whole number" if whole else "a finite number"
        raise ConfigError(f"{name} must be {kind}, got {value!r}")
    if positive and not value > 0:
        raise ConfigError(f"{name} must be positive, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be at least {minimum:g}, got {value!r}")
    return value


def check_distinct(name: str, values: Sequence) -> tuple:
    values = tuple(values)
    if not values:
        raise ConfigError(f"give at least one {name}")
    seen = set()
    for v in values:
        if v in seen:
            raise ConfigError(f"{name} {v:g} is listed twice")
        seen.add(v)
    return values


def check_seeds(seeds: Sequence) -> None:
    for seed in seeds:
        check_number("seed", seed, whole=True, minimum=0)
    check_distinct("seed", seeds)


def check_loop(epochs, batch_size, lr=None) -> None:
    check_number("epochs", epochs, whole=True, minimum=1)
    check_number("batch size", batch_size, whole=True, minimum=1)
    if lr is not None:
        check_number("learning rate", lr, whole=False, positive=True)
