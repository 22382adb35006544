"""The configs of the training tasks: built from a command's options, checked field by field.

Options come from the command line, a run's config.json (`--resume`), a config file or a library
caller; each numeric option's bounds are one `Number` rule, which the command's option and the
config's field both use: a bad value is a usage error on the command line, a ConfigError here.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import Field, dataclass, field, fields

from mle6cli.errors import ConfigError
from mle6cli.tasks.limits import MAX_LATENT_DIM, MNIST_PIXELS, SEED_MAX


class OptionsConfig:
    """A frozen dataclass mixin: `from_options` maps a command's options onto the fields, and every
    field declared with a rule (`ruled`, `option`) is checked by it. An option typed under another name
    (`--seed` for `seeds`, `--no-download` for `download`) is mapped by its field's `Form`."""

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
        aliases = {alias: (f.name, convert) for f in options_of(cls) for alias, convert in _aliases(f).items()}
        values = {}
        for key, value in options.items():
            field_name, convert = (key, None) if key in names else aliases.get(key, (key, None))
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


# ---------------------------------------------------------------- a config field that is an option


class Form:
    """How the command line types a field other than as one value of its own type. Plain data: the
    CLI layer (`commands._options.options_of`) makes the Typer options from it."""

    def aliases(self) -> dict[str, Callable]:
        """Other names a caller's options may give the field under -> their value as the field's."""
        return {}


@dataclass(frozen=True)
class Listed(Form):
    """A tuple of numbers typed as comma-separated text (--lrs 1e-1,1e-3): `text` is the default as typed
    (the field's default is made from it), `plural` names the values in messages."""

    text: str
    plural: str
    whole: bool

    def parse(self, text: str) -> list:
        """'1e-1,1e-3' -> [0.1, 0.001] (ints when `whole`), in order; a ConfigError names the first entry that
        is not a number (the field's rule then checks the values)."""
        parts = [p.strip() for p in str(text).split(",") if p.strip()]
        if not parts:
            raise ConfigError(f"give {self.plural} as a comma-separated list, e.g. {self.text}")
        values = []
        for part in parts:
            try:
                values.append(int(part) if self.whole else float(part))
            except ValueError:
                kind = "a whole number" if self.whole else "a number"
                raise ConfigError(
                    f"{part!r} is not {kind}; give comma-separated {self.plural} like {self.text}"
                ) from None
        return values


SEEDS_HELP = (
    "Several seeds, a list or a range (0,1,2 or 0-4), instead of --seed: each is one more fused "
    "member, and the results get means and 95% confidence intervals."
)


@dataclass(frozen=True)
class Seeds(Form):
    """The seeds, typed as --seed K (the field's help) or --seeds 0-4 (`several`: its help). `single`: the
    field makes --seed too (run-all's --seed is a field of its own, and --seeds then sets this one)."""

    single: bool = True
    several: str = SEEDS_HELP

    def aliases(self) -> dict[str, Callable]:
        return {"seed": lambda v: [v]} if self.single else {}


@dataclass(frozen=True)
class Negated(Form):
    """A switch that is the field's negation: the field `download`, typed --no-download."""

    name: str

    def aliases(self) -> dict[str, Callable]:
        return {self.name: lambda v: not v}


@dataclass(frozen=True)
class Folder(Form):
    """A folder: recorded as given (a run records it absolute, so --resume works from anywhere), None when
    `unless` (--synthetic) is set or the option is not given."""

    flag: str | None = None
    unless: str | None = "synthetic"


@dataclass(frozen=True)
class Declared:
    """A config field as a command's option: its help, its flags (default: --name with dashes), how it is
    typed (`form`; None: one value of the field's type, a switch for a bool), tab completion's words,
    whether help shows its default, whether it is a member axis (it varies between the members of
    one run: learning rate, seed, latent size), and whether a run's config.json may lack it
    (`absent_is_default`: an option added after run folders were first written, whose default is what
    those runs did, so they resume with it)."""

    help: str
    flags: tuple[str, ...] = ()
    form: Form | None = None
    complete: tuple[str, ...] = ()
    show_default: bool = False
    axis: bool = False
    absent_is_default: bool = False


def option(default, help: str, rule: Number | Choice | None = None, **declared) -> Field:
    """A config field that is an option of its command, declared once: default, help, bounds (`rule`) and
    the rest of `Declared`. The command's Typer options, --config keys, --print-config, config.json, the
    resume check, the library's defaults and the CLI reference are all made from these fields."""
    form = declared.get("form")
    if isinstance(form, Listed):
        default = tuple(form.parse(form.text))
    return field(default=default, metadata={"rule": rule, "option": Declared(help, **declared)})


def listed(text: str, help: str, rule: Number, *, plural: str, axis: bool = False) -> Field:
    """A tuple of numbers typed as comma-separated text; its default is `text` (as help shows it), parsed."""
    return option(None, help, rule, form=Listed(text, plural, rule.whole), axis=axis)


def declared(f: Field) -> Declared | None:
    """How a config field is an option (None: the library's own field, not on the command line)."""
    return f.metadata.get("option")


def _aliases(f: Field) -> dict[str, Callable]:
    form = declared(f).form
    return form.aliases() if form is not None else {}


def options_of(config_type) -> list[Field]:
    """The fields of a config that are options, in config.json's order."""
    return [f for f in fields(config_type) if declared(f) is not None]


def may_be_absent(config_type) -> tuple[str, ...]:
    """The options a run's config.json may lack (a run older than them: their default is what it did)."""
    return tuple(f.name for f in options_of(config_type) if declared(f).absent_is_default)


def member_axes(config_type) -> tuple[str, ...]:
    """The fields whose values vary between the members of one run."""
    return tuple(f.name for f in options_of(config_type) if declared(f).axis)


EPOCHS = Number("epochs", minimum=1)
BATCH_SIZE = Number("batch size", minimum=1)
LR = Number("the learning rate", whole=False, positive=True)
WEIGHT_DECAY = Number("weight decay", whole=False, minimum=0)
SEED = Number("seed", minimum=0, maximum=SEED_MAX)
SAVE_EVERY = Number("save every", minimum=0, maximum=1_000_000)
LATENT_SIZE = Number("latent size", minimum=1, maximum=MAX_LATENT_DIM)  # the conv autoencoder's
LINEAR_LATENT_DIM = Number("latent dim", minimum=1, maximum=MNIST_PIXELS)  # the linear autoencoder's k
RETRIES = Number("retries", minimum=0, maximum=100)
# the conv autoencoder's output bias: at the mean intensity (the collapse fix), or PyTorch's default
INIT = Choice("init", ("mean", "pytorch"))
SPLIT = Choice("split", ("test", "val", "train"))  # what `mle6 evaluate` measures a model on
