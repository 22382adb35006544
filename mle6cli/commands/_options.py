"""Options as Typer reads them, and their validation.

A training command's options are its config's fields (`tasks.specs`): `options_of(config)` makes an
`Option` of each, which holds what Typer needs (parameter name, type, default, help, flags, its bounds
`rule`, the rest of typer.Option's arguments) and the key it sets in a run's config.json (`key`,
`value`, `inverse`). The other commands take theirs as `Annotated` types (`DEVICE.annotated()`).

One rule for option values: a malformed or out-of-range value is a usage error (exit 2)
whose message names the option — raised as `typer.BadParameter`, through a callback, `min=`,
or with `param_hint`. `Mle6Error` (exit 1) is for what only shows up later: data, devices,
run folders.
"""

from __future__ import annotations

import math
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

import typer

from mle6cli.errors import ConfigError
from mle6cli.tasks import config as rules
from mle6cli.tasks import specs

NOT_RECORDED = None  # the key of an option a run does not record (where output goes, how it is shown)


@dataclass(frozen=True)
class Option:
    """One option of a command, declared once.

    `key` is what it sets in config.json (and in a --config file); `value(params, ctx)` makes that
    entry from the parsed parameters (default: the parameter as parsed); options that share a key
    (--seed, --seeds) get it from the first of them. `inverse` turns a config value back into the
    parameter and its value (download -> --no-download, one seed -> --seed). `check(params)` runs before
    the task: a check that needs more than the parser has (a heavy import, another option)."""

    name: str
    type: Any
    default: Any
    help: str
    key: str | None = "="  # "=": the parameter's own name
    value: Callable[[dict, typer.Context], Any] | None = None
    inverse: Callable[[Any], tuple[str, Any]] | None = None  # a config value -> (parameter, its value)
    sources: tuple[str, ...] = ()  # the parameters named when a resumed run's value would change
    check: Callable[[dict], None] | None = None
    flags: tuple[str, ...] = ()  # default: --name with dashes
    rule: rules.Number | None = None  # the value's bounds, shared with the task's config
    parse: Callable[[str], list] | None = None  # a list option's text -> its values (each checked by `rule`)
    typer: dict = field(default_factory=dict)  # typer.Option's other arguments: callback=, metavar=, ...

    def __post_init__(self):
        if self.key == "=":
            object.__setattr__(self, "key", self.name)
        if self.key is not None and not self.sources:
            object.__setattr__(self, "sources", (self.name,))

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def annotated(self):
        """The option as Typer reads it from a signature."""
        extra = dict(self.typer)
        if self.rule is not None:
            extra["callback"] = by_rule(self.rule, self.parse)
        return Annotated[self.type, typer.Option(*(self.flags or (self.flag,)), help=self.help, **extra)]

    def but(self, **changes) -> Option:
        """The same option with another default, help or check (a command's own variant)."""
        return replace(self, **changes)

    def config_value(self, params: dict, ctx: typer.Context):
        return params[self.name] if self.value is None else self.value(params, ctx)

    def from_config(self, value) -> tuple[str, Any]:
        """The parameter a --config file's value for this option's key sets, and its value."""
        return (self.name, value) if self.inverse is None else self.inverse(value)


def by_rule(rule: rules.Number, parse: Callable | None = None):
    """Option callback: the value (or `parse(text)`'s list) checked by `rule`, a usage error in its words."""

    def check(value):
        if value is None or isinstance(value, list):  # unset, or a list already parsed (--config)
            return value
        try:
            return rule.check(value) if parse is None else list(rule.each(parse(value)))
        except ConfigError as exc:
            raise typer.BadParameter(str(exc)) from None

    return check


def switch(name: str, help: str, **rest) -> Option:
    """An on/off switch (no value shown in help)."""
    return Option(name, bool, False, help, **rest, typer={"metavar": ""})


def complete(words: tuple[str, ...]):
    """Tab completion of an option with a few known words (--device: cuda:N is typed by hand)."""
    return lambda incomplete: [w for w in words if w.startswith(incomplete)]


DEVICE = Option(
    "device", str, "auto", specs.DEVICE_HELP, typer={"show_default": True, "autocompletion": complete(specs.DEVICES)}
)
DeviceOpt = DEVICE.annotated()
SEED_CHECK = by_rule(rules.SEED)  # the callback of a plain --seed
MAX_SEEDS = 1000


def seeds_option(seed: int | None, seeds: str | None, default: int, ctx: typer.Context | None = None) -> list[int]:
    """--seed K or --seeds 0-4 (not both) as a list of seeds; neither: [default]. One from a --config
    file and the other on the command line: the command line wins."""
    if seed is not None and seeds is not None:
        typed = {name for name in ("seed", "seeds") if ctx is not None and _from_command_line(ctx, name)}
        if typed == {"seed"}:
            seeds = None
        elif typed == {"seeds"}:
            seed = None
        else:
            raise typer.BadParameter("give --seed or --seeds, not both", param_hint="'--seeds'")
    if seeds is None:
        return [default if seed is None else seed]
    return seeds if isinstance(seeds, list) else parse_seeds(seeds)


def _from_command_line(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def parse_seeds(text: str) -> list[int]:
    """'0-4' -> [0, 1, 2, 3, 4]; '0,2,7-8' -> [0, 2, 7, 8]; a usage error names the first bad part."""
    hint = "'--seeds'"
    values: list[int] = []
    for part in [p.strip() for p in str(text).split(",")]:
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not match:
            raise typer.BadParameter(f"{part!r} is not a seed or a range; give e.g. 0,1,2 or 0-4", param_hint=hint)
        low, high = int(match.group(1)), int(match.group(2) or match.group(1))
        if high < low:
            raise typer.BadParameter(f"the range {part} runs backwards", param_hint=hint)
        if len(values) + high - low + 1 > MAX_SEEDS:  # before a range is spelled out
            raise typer.BadParameter(f"at most {MAX_SEEDS} seeds", param_hint=hint)
        values.extend(range(low, high + 1))
    try:
        return list(rules.SEED.each(values))
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint=hint) from None


def _out_folder(value: str | None) -> Path | None:
    if value is not None and not str(value).strip():
        raise typer.BadParameter("is empty; name a folder (or leave --out out for runs/<command>/<timestamp>)")
    return None if value is None else Path(value)


OUT = Option(
    "out",
    str | None,
    None,
    "Run folder to create (default: runs/<command>/<timestamp>). Must be new or empty.",
    key=NOT_RECORDED,
    typer={"callback": _out_folder},
)
JSON = switch("json_out", "Print exactly one JSON document on stdout.", key=NOT_RECORDED, flags=("--json",))
QUIET = switch("quiet", "Print nothing but the result (and errors).", key=NOT_RECORDED, flags=("--quiet", "-q"))
OVERWRITE = switch("overwrite", "Allow writing into a non-empty folder.", key=NOT_RECORDED)
JsonOpt = JSON.annotated()
QuietOpt = QUIET.annotated()
SyntheticOpt = switch("synthetic", specs.SYNTHETIC_HELP).annotated()
NoDownloadOpt = switch("no_download", specs.NO_DOWNLOAD_HELP).annotated()
OverwriteOpt = OVERWRITE.annotated()


def finite_number(value: float) -> float:
    """Option callback: any finite number."""
    if not math.isfinite(value):
        raise typer.BadParameter(f"must be a finite number, got {value:g}")
    return value


def positive_number(value: float) -> float:
    """Option callback: a finite number above 0."""
    if not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"must be a positive number, got {value:g}")
    return value


def whole_in_range(low: int, high: int):
    """Option callback: a whole number in low..high, the message naming both bounds and the value."""

    def check(value: int) -> int:
        if value is not None and not low <= value <= high:
            raise typer.BadParameter(f"must be between {low} and {high}, got {value}")
        return value

    return check


RESUME = Option(
    "resume",
    Path | None,
    None,
    "Continue the interrupted run in this folder with its saved options.",
    key=NOT_RECORDED,
)


def _key_sources(options: list[Option]) -> dict[str, tuple[str, ...]]:
    """config.json key -> the command-line parameters that set it, in the command's order."""
    sources: dict[str, tuple[str, ...]] = {}
    for option in options:
        if option.key is not None:
            known = sources.get(option.key, ())
            sources[option.key] = known + tuple(s for s in option.sources if s not in known)
    return sources


def resume_overrides(ctx: typer.Context, resume: Path | None, recorded: dict, options: list[Option]) -> dict | None:
    """With --resume: the options given on the command line that a resumed run may change (--device,
    --save-every); a usage error naming every other given option whose value differs from the run's.
    `recorded`: config.json's options made from the command's `options`."""
    if resume is None:
        return None
    from mle6cli.engine.runs import RESUMABLE
    from mle6cli.files import FileError, read_json

    try:
        saved = read_json(Path(resume) / "config.json").get("options", {})
    except (FileError, AttributeError):
        return None  # the run protocol says what is wrong with the folder
    given = {name for name in ctx.params if ctx.get_parameter_source(name).name in ("COMMANDLINE", "ENVIRONMENT")}
    sources = _key_sources(options)
    folders = {option.key for option in options if _is_path(option.type)}
    changed, overrides = [], {}
    for key, value in recorded.items():
        params = sources.get(key, (key,))
        if not given.intersection(params):
            continue
        if key in RESUMABLE:
            overrides[key] = value
        elif _normal(key in folders, value) != _normal(key in folders, saved.get(key)):
            changed.extend("--" + p.replace("_", "-") for p in params if p in given)
    if changed:
        raise typer.BadParameter(
            f"{', '.join(changed)} would change the run being resumed; a resumed run keeps its options "
            f"(only {', '.join('--' + k.replace('_', '-') for k in RESUMABLE)} may change)",
            param_hint="'--resume'",
        )
    return overrides


def _is_path(annotation) -> bool:
    return annotation is Path or Path in typing.get_args(annotation)


def _normal(folder: bool, value):
    if folder:  # the same folder, however it was written
        return None if value is None else str(Path(value).resolve())
    return list(value) if isinstance(value, tuple) else value


def check_resume_alone(resume: Path | None, out: Path | None) -> None:
    if resume is not None and out is not None:
        raise typer.BadParameter("--resume continues in its own folder; leave out --out", param_hint="'--out'")


def options_of(config_type) -> list[Option]:
    """A command's options, made from its config's fields (`tasks.specs`), in config.json's order."""
    hints = typing.get_type_hints(config_type)
    return [option for f in rules.options_of(config_type) for option in _options_for(f, hints[f.name])]


def _options_for(f, hint) -> list[Option]:
    """The Typer option(s) of one config field: how it is typed (`declared.form`) decides."""
    declared, rule, form = rules.declared(f), f.metadata.get("rule"), rules.declared(f).form
    common = {"rule": rule, "flags": declared.flags}
    if isinstance(form, rules.Seeds):
        return _seed_options(f.name, f.default, declared.help, form, rule)
    if isinstance(form, rules.Listed):
        return [Option(f.name, str, form.text, declared.help, parse=form.parse, **common)]
    if isinstance(form, rules.Negated):
        return [switch(form.name, declared.help, key=f.name, value=lambda p, ctx: not p[form.name],
                       inverse=lambda value: (form.name, not value))]  # fmt: skip
    if isinstance(form, rules.Folder):
        return [_folder(f.name, f.default, declared.help, form)]
    if hint is bool:
        return [switch(f.name, declared.help, flags=declared.flags)]
    extra = {"show_default": True} if declared.show_default else {}
    if declared.complete:
        extra["autocompletion"] = complete(declared.complete)
    return [Option(f.name, hint, f.default, declared.help, typer=extra, **common)]


def _seed_options(key: str, default, help: str, form: rules.Seeds, rule) -> list[Option]:
    """--seed K and --seeds LIST, which make one config key (one seed in a --config file sets --seed, so
    --seed on the command line still wins). Without `form.single` the command's --seed is a field of
    its own and --seeds alone sets the key (None when not given)."""

    def inverse(value):
        return ("seed", value[0]) if isinstance(value, list) and len(value) == 1 else ("seeds", value)

    several = Option("seeds", str | None, None, form.several, rule=rule, parse=parse_seeds)
    if not form.single:
        value = lambda p, ctx: None if p["seeds"] is None else seeds_option(p["seed"], p["seeds"], 0, ctx)  # noqa: E731
        return [replace(several, value=value, inverse=inverse, sources=("seed", "seeds"))]
    one = Option(
        "seed", int | None, None, help, key=key, rule=rule, inverse=inverse,
        value=lambda p, ctx: seeds_option(p["seed"], p["seeds"], default[0], ctx),
    )  # fmt: skip
    return [one, several]


def _folder(name: str, default, help: str, form: rules.Folder) -> Option:
    """A folder option: recorded as given, or None (not given, or with `form.unless`: --synthetic)."""

    def value(params, ctx):
        unset = params[name] is None or (form.unless is not None and params[form.unless])
        return None if unset else str(params[name])

    flags = (form.flag,) if form.flag else ()
    if default is None:
        return Option(name, Path | None, None, help, value=value, flags=flags)
    return Option(name, Path, Path(default), help, value=value, flags=flags)
