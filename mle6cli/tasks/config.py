"""The configs of the training tasks: built from a command's options, checked field by field.

Options come from the command line, a run's config.json (`--resume`), a config file or a library
caller; each numeric option's bounds are one `Number` rule, which the command's option and the
config's field both use: a bad value is a usage error on the command line, a ConfigError here.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

from mle6cli.errors import ConfigError
from mle6cli.tasks.limits import MAX_LATENT_DIM, MNIST_PIXELS, SEED_MAX

# option name -> (config field, how a single value becomes the field's value)
ALIASES = {
    "seed": ("seeds", lambda v: [v]),
    "no_download": ("download", lambda v: not v),
}


class OptionsConfig:
    """A frozen dataclass mixin: `from_options` maps a command's options onto the fields, and every
    field declared with a rule (`ruled`) is checked by it."""

    aliases: dict = ALIASES

    def __post_init__(self):
        for f in fields(self):
            rule = f.metadata.get("rule")
            if rule is not None:
                value = getattr(self, f.name)
                if value is None:  # a field that may be left unset (run-all's seed)
                    continue
                rule.each(value) if isinstance(value, (tuple, list)) else rule.check(value)

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


@dataclass(frozen=True)
class Number:
    """The one rule for a numeric option, written once: a command's option checks the value it parsed
    with it (a usage error naming the option, `commands._options.Option`) and a task's config checks
    its field with it (a ConfigError), so the command line, --config, a resumed run's config.json and
    a library caller meet the same bounds and the same words.

    `name` is how a message names the value ("epochs", "the learning rate")."""

    name: str
    whole: bool = True
    minimum: float | None = None
    maximum: float | None = None
    positive: bool = False

    def check(self, value):
        number_type = int if self.whole else (int, float)
        if not isinstance(value, number_type) or isinstance(value, bool) or not math.isfinite(value):
            kind = "a whole number" if self.whole else "a finite number"
            raise ConfigError(f"{self.name} must be {kind}, got {value!r}")
        if self.positive and not value > 0:
            raise ConfigError(f"{self.name} must be a positive number, got {_show(value)}")
        low, high = self.minimum, self.maximum
        if (low is not None and value < low) or (high is not None and value > high):
            if low is not None and high is not None:
                raise ConfigError(f"{self.name} must be between {_show(low)} and {_show(high)}, got {_show(value)}")
            if low is not None:
                raise ConfigError(f"{self.name} must be at least {_show(low)}, got {_show(value)}")
            raise ConfigError(f"{self.name} must be at most {_show(high)}, got {_show(value)}")
        return value

    def each(self, values: Sequence) -> tuple:
        """A list of these values (--lrs, --seeds, --latent-dims): each checked, none twice, at least one."""
        values = tuple(values)
        if not values:
            raise ConfigError(f"give at least one {self.name.removeprefix('the ')}")
        for value in values:
            self.check(value)
        seen = set()
        for value in values:
            if value in seen:
                raise ConfigError(f"{self.name} {_show(value)} is listed twice")
            seen.add(value)
        return values


@dataclass(frozen=True)
class Choice:
    """The one rule for an option that takes one of a few words (see `Number`)."""

    name: str
    choices: tuple[str, ...]

    def check(self, value):
        if value not in self.choices:
            raise ConfigError(f"{self.name} must be one of {', '.join(self.choices)}, got {value!r}")
        return value


def _show(value) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def ruled(default, rule: Number | Choice):
    """A config field checked by `rule` (each entry of a tuple field) when the config is made."""
    return field(default=default, metadata={"rule": rule})


EPOCHS = Number("epochs", minimum=1)
BATCH_SIZE = Number("batch size", minimum=1)
LR = Number("the learning rate", whole=False, positive=True)
SEED = Number("seed", minimum=0, maximum=SEED_MAX)
SAVE_EVERY = Number("save every", minimum=0, maximum=1_000_000)
LATENT_SIZE = Number("latent size", minimum=1, maximum=MAX_LATENT_DIM)  # the conv autoencoder's
LINEAR_LATENT_DIM = Number("latent dim", minimum=1, maximum=MNIST_PIXELS)  # the linear autoencoder's k
RETRIES = Number("retries", minimum=0, maximum=100)
# the conv autoencoder's output bias: at the mean intensity (the collapse fix), or PyTorch's default
INIT = Choice("init", ("mean", "pytorch"))
SPLIT = Choice("split", ("test", "val", "train"))  # what `mle6 evaluate` measures a model on
