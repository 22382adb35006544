"""A study's search space and the tune commands' configs: plain data, no torch, no Optuna.

`--space NAME=KIND:LOW..HIGH` (repeatable) names one member axis of the target command (its spec's
fields declared `axis=True`, the seeds aside) and how a trial draws it:

    lr=log:1e-5..1e-1        log-uniform between the bounds (both above 0)
    lr=float:1e-4..1e-2      uniform
    latent-dim=int:2..64     a whole number, both bounds included
    latent-dim=choice:3,10   one of the values listed

Every entry is parsed and checked here, by `SpaceRule`: the command line (a usage error), a --config
file, a resumed run's config.json and a library caller meet the same words. The tune config of a target
command (`tune_config`) is its config with the member axes taken off the command line and the study's
own options added; its other options are fixed for the whole study.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, make_dataclass

from mle6cli.errors import ConfigError
from mle6cli.tasks.config import Choice, Number, declared, member_axes, option


class SpaceError(ConfigError):
    """A search space (or sampler) that cannot be searched: a usage error, found before anything is written."""

    exit_code = 2


KINDS = ("log", "float", "int", "choice")
# a config field that is a member axis -> its name in --space (the trial's parameter: dashes as underscores);
# an axis not listed here is named after its field
AXIS_NAMES = {"lrs": "lr", "latent_dims": "latent-dim"}
NOT_TUNED = ("seeds",)  # each trial trains over every seed given (--seeds): not a parameter of the search
# target options a study does not use: restarts of collapsed autoencoders, data-parallel members
UNUSED = ("retries", "ddp")
SAMPLERS = Choice("sampler", ("tpe", "random", "grid"))
PRUNERS = Choice("pruner", ("sha", "hyperband", "median", "none"))
TRIALS = Number("trials", minimum=1, maximum=100_000)
PARALLEL = Number("parallel", minimum=1, maximum=1024)
MAX_GRID = 100_000  # grid points a study may list


@dataclass(frozen=True)
class Axis:
    """One member axis a study may vary: its --space name, the target config's field, the bounds of a value."""

    name: str
    field: str
    rule: Number

    @property
    def key(self) -> str:
        """The trial's parameter and the member's key: `latent_dim` for --space latent-dim."""
        return self.name.replace("-", "_")


def tunable_axes(config_type) -> dict[str, Axis]:
    """The member axes of a command's config, by --space name (its seeds aside)."""
    by_field = {f.name: f for f in fields(config_type)}
    axes = {}
    for name in member_axes(config_type):
        if name in NOT_TUNED:
            continue
        spaced = AXIS_NAMES.get(name, name.replace("_", "-"))
        axes[spaced] = Axis(spaced, name, by_field[name].metadata["rule"])
    return axes


@dataclass(frozen=True)
class Dimension:
    """One parsed --space entry."""

    axis: Axis
    kind: str  # log | float | int | choice
    low: float | None = None
    high: float | None = None
    choices: tuple = ()

    @property
    def name(self) -> str:
        return self.axis.name

    def suggest(self, trial):
        """Draw this parameter for an Optuna trial (its sampler decides)."""
        key = self.axis.key
        if self.kind == "choice":
            return trial.suggest_categorical(key, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(key, int(self.low), int(self.high))
        return trial.suggest_float(key, self.low, self.high, log=self.kind == "log")

    def grid(self) -> list:
        """The values a grid search takes (int: every one in the range; choice: those listed)."""
        return list(self.choices) if self.kind == "choice" else list(range(int(self.low), int(self.high) + 1))


def _number(name: str, text: str, whole: bool):
    try:
        value = float(text)
    except ValueError:
        raise SpaceError(f"--space {name}: {text!r} is not a number") from None
    if whole:
        if not value.is_integer():
            raise SpaceError(f"--space {name}: {text!r} is not a whole number")
        return int(value)
    if not math.isfinite(value):
        raise SpaceError(f"--space {name}: {text!r} is not a finite number")
    return value


def parse_dimension(text: str, axes: dict[str, Axis], command: str) -> Dimension:
    """One `NAME=KIND:LOW..HIGH` entry, checked; a ConfigError in the words the command line shows."""
    name, eq, rest = str(text).strip().partition("=")
    name = name.strip()
    if not eq or not name:
        raise SpaceError(f"--space {text!r}: give NAME=KIND:LOW..HIGH, e.g. lr=log:1e-5..1e-1")
    if name not in axes:
        known = ", ".join(axes) or "none"
        raise SpaceError(f"--space {name}: mle6 {command} has no member axis {name!r} (its axes: {known})")
    axis = axes[name]
    kind, colon, values = rest.partition(":")
    kind = kind.strip()
    if not colon or kind not in KINDS:
        raise SpaceError(f"--space {name}: unknown kind {kind!r}; give log:, float:, int: or choice: before the range")
    whole = kind == "int" or (kind == "choice" and axis.rule.whole)
    if kind in ("int", "log", "float") and axis.rule.whole != (kind == "int"):
        wanted = "int:" if axis.rule.whole else "log: or float:"
        raise SpaceError(f"--space {name}: {axis.rule.name} takes {wanted}, not {kind}:")
    if kind == "choice":
        parts = [p.strip() for p in values.split(",") if p.strip()]
        if not parts:
            raise SpaceError(f"--space {name}: choice: needs at least one value, e.g. {name}=choice:a,b")
        choices = tuple(_number(name, p, whole) for p in parts)
        try:
            axis.rule.each(choices)
        except ConfigError as exc:
            raise SpaceError(f"--space {name}: {exc}") from None
        return Dimension(axis, kind, choices=choices)
    low_text, dots, high_text = values.partition("..")
    if not dots or not low_text.strip() or not high_text.strip():
        raise SpaceError(f"--space {name}: give a range {kind}:LOW..HIGH, e.g. {name}={kind}:{_example(axis)}")
    low, high = _number(name, low_text.strip(), whole), _number(name, high_text.strip(), whole)
    if low > high:
        raise SpaceError(f"--space {name}: the range {low_text.strip()}..{high_text.strip()} runs backwards")
    if low == high:
        raise SpaceError(f"--space {name}: the range {low_text.strip()}..{high_text.strip()} is empty")
    if kind == "log" and low <= 0:
        raise SpaceError(f"--space {name}: log: needs bounds above 0, got {low_text.strip()}")
    for bound in (low, high):
        try:
            axis.rule.check(bound)
        except ConfigError as exc:
            raise SpaceError(f"--space {name}: {exc}") from None
    return Dimension(axis, kind, low, high)


RANGE_EXAMPLES = {"weight-decay": "1e-6..1e-2"}  # the messages' example range of an axis (default by its type)


def _example(axis: Axis) -> str:
    return RANGE_EXAMPLES.get(axis.name, "2..64" if axis.rule.whole else "1e-5..1e-1")


def parse_space(texts, axes: dict[str, Axis], command: str) -> tuple[Dimension, ...]:
    """Every --space entry, checked: at least one, no axis twice."""
    if isinstance(texts, str):
        texts = [texts]
    if not texts:
        example = " ".join(f"--space {a.name}={'int' if a.rule.whole else 'log'}:{_example(a)}" for a in axes.values())
        raise SpaceError(f"give the search space, e.g. {example}")
    dims = []
    for text in texts:
        dim = parse_dimension(text, axes, command)
        if any(d.name == dim.name for d in dims):
            raise SpaceError(f"--space {dim.name} is given twice")
        dims.append(dim)
    return tuple(dims)


@dataclass(frozen=True)
class SpaceRule:
    """The rule of --space (the `rule` of its config field): the whole list parsed by `parse_space`."""

    axes: dict
    command: str
    name: str = "search space"
    whole: bool = False

    def check(self, value):
        parse_space(value, self.axes, self.command)
        return value

    def each(self, values) -> tuple:
        parse_space(values, self.axes, self.command)
        return tuple(values)


def grid_size(dims) -> int:
    return math.prod(len(d.grid()) for d in dims)


def check_study(config) -> None:
    """What only the options together say: a grid search takes listable axes only."""
    dims = config.dimensions
    if config.sampler == "grid":
        ranged = [d.name for d in dims if d.kind in ("log", "float")]
        if ranged:
            raise SpaceError(
                f"--sampler grid needs int: or choice: axes; --space {ranged[0]} is a continuous range "
                f"(list its values, e.g. {ranged[0]}=choice:1e-4,1e-3,1e-2)"
            )
        if grid_size(dims) > MAX_GRID:
            raise SpaceError(f"--sampler grid: the space holds {grid_size(dims)} points, more than {MAX_GRID}")


# ---------------------------------------------------------------- the tune command's config


def tune_config(spec) -> type:
    """The config of `mle6 tune <spec.name>`: the target's config with its member axes (and the options a
    study does not use) taken off the command line, then the study's own options."""
    axes = tunable_axes(spec.config)
    off = {a.field for a in axes.values()} | set(UNUSED)
    own = [
        (f.name, f.type, field(default=f.default, metadata={}))  # the library's own: not an option
        for f in fields(spec.config)
        if f.name in off and declared(f) is not None
    ]
    own += [
        ("trials", int, option(20, "Trials in the study, every process together.", TRIALS)),
        (
            "space",
            list[str],
            option(
                (),
                "NAME=KIND:LOW..HIGH, repeatable: a member axis and its range (kinds log:, float:, int:, "
                f"choice:a,b); axes: {', '.join(axes)}.",
                SpaceRule(axes, f"tune {spec.name}"),
            ),
        ),
        ("parallel", int, option(4, "Trials trained together, as members of one fused model.", PARALLEL)),
        (
            "sampler",
            str,
            option(
                "tpe",
                "How trials are drawn: tpe (seeded by --seed), random or grid.",
                SAMPLERS,
                complete=SAMPLERS.choices,
                show_default=True,
            ),
        ),
        (
            "pruner",
            str,
            option(
                "sha",
                "What stops trials early: sha (successive halving), hyperband, median, none.",
                PRUNERS,
                complete=PRUNERS.choices,
                show_default=True,
            ),
        ),
        (
            "storage",
            str | None,
            option(
                None,
                "Where the study lives: a journal file several processes may share, "
                "or a database URL (default: study.journal in the run folder).",
            ),
        ),
    ]

    def post_init(self):
        spec.config.__post_init__(self)
        check_study(self)

    def dimensions(self) -> tuple[Dimension, ...]:
        return parse_space(self.space, axes, f"tune {spec.name}")

    name = "Tune" + spec.config.__name__
    namespace = {"__post_init__": post_init, "dimensions": property(dimensions), "axes": axes, "target": spec}
    return make_dataclass(name, own, bases=(spec.config,), frozen=True, namespace=namespace)
