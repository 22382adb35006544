"""The options commands share, each declared once as an `Option`, and their validation.

An `Option` holds everything about one option: its parameter name, type, default, help, its
bounds (`rule`: the task layer's `Number`, which the task's config checks too), the rest of
typer.Option's arguments, and the key it sets in a run's config.json (`key`, `value`, `inverse`).
A training command lists its `Option`s once (`commands._training`);
the other commands take the same declarations as `Annotated` types (`DEVICE.annotated()`).

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

NOT_RECORDED = None  # the key of an option a run does not record (where output goes, how it is shown)


@dataclass(frozen=True)
class Option:
    """One option of a command, declared once.

    `key` is what it sets in config.json (and in a --config file); `value(params, ctx)` makes that
    entry from the parsed parameters (default: the parameter as parsed); options that share a key
    (--seed, --seeds) get it from the first of them. `inverse` turns a config value back into the
    parameter's (download -> --no-download). `check(params)` runs before the task: a check that
    needs more than the parser has (a heavy import, another option)."""

    name: str
    type: Any
    default: Any
    help: str
    key: str | None = "="  # "=": the parameter's own name
    value: Callable[[dict, typer.Context], Any] | None = None
    inverse: Callable[[Any], Any] | None = None
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


DEVICES = ("auto", "cpu", "cuda", "mps")


def complete_device(incomplete: str) -> list[str]:
    """Tab completion of --device: the closed choices (and cuda:N is typed by hand)."""
    return [d for d in DEVICES if d.startswith(incomplete)]


DEVICE = Option(
    "device",
    str,
    "auto",
    "Where to compute: auto, cpu, cuda, cuda:N or mps (CPU threads: torch's default, or MLE6_THREADS=N).",
    typer={"show_default": True, "autocompletion": complete_device},
)
DeviceOpt = DEVICE.annotated()
SEED_CHECK = by_rule(rules.SEED)  # the callback of a plain --seed


def seed_option(default: int) -> Option:
    """The --seed of a command whose default seed is `default` (shown in its help); with --seeds it
    makes config.json's `seeds`."""
    return Option(
        "seed",
        int | None,
        None,
        f"Random seed (default {default}); the same seed gives the same metrics.",
        key="seeds",
        value=lambda p, ctx: seeds_option(p["seed"], p["seeds"], default, ctx),
        rule=rules.SEED,
    )


SEEDS = Option(
    "seeds",
    str | None,
    None,
    "Several seeds, a list or a range (0,1,2 or 0-4), instead of --seed: each is one more fused "
    "member, and the results get means and 95% confidence intervals.",
    rule=rules.SEED,
    parse=lambda text: parse_seeds(text),
)
SeedsOpt = SEEDS.annotated()
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
TENSORBOARD = switch(
    "tensorboard",
    "Also write TensorBoard event files (run folder's tensorboard/, one run per member); "
    "needs pip install 'mle6cli\\[tensorboard]'.",
)
SAVE_EVERY = Option(
    "save_every",
    int,
    1,
    "Save the resumable state every N epochs (0: only when stopped); a crash loses at most N epochs.",
    rule=rules.SAVE_EVERY,
)
JSON = switch("json_out", "Print exactly one JSON document on stdout.", key=NOT_RECORDED, flags=("--json",))
QUIET = switch("quiet", "Print nothing but the result (and errors).", key=NOT_RECORDED, flags=("--quiet", "-q"))
SYNTHETIC = switch("synthetic", "Use the built-in synthetic data instead of a dataset on disk.")
OVERWRITE = switch("overwrite", "Allow writing into a non-empty folder.", key=NOT_RECORDED)
JsonOpt = JSON.annotated()
QuietOpt = QUIET.annotated()
SyntheticOpt = SYNTHETIC.annotated()
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


# the options of the training commands (train-cnn, sweep-lr, train-ae, pca-ae, run-all)
EPOCHS = Option("epochs", int, 50, "Epochs to train each model.", rule=rules.EPOCHS)
BATCH_SIZE = Option("batch_size", int, 64, "Images per training step.", rule=rules.BATCH_SIZE)
LR = Option("lr", float, 1e-3, "Adam learning rate.", rule=rules.LR)
DETERMINISTIC = switch("deterministic", "Also force torch's deterministic algorithms (matters on CUDA).")
RESUME = Option(
    "resume",
    Path | None,
    None,
    "Continue the interrupted run in this folder with its saved options.",
    key=NOT_RECORDED,
)


# what every training command but run-all has after its own options
RUN = (DEVICE, SAVE_EVERY, TENSORBOARD, DETERMINISTIC)


def seed_options(default: int) -> tuple[Option, Option]:
    """--seed (default `default`) and --seeds: config.json's `seeds`."""
    return seed_option(default), SEEDS


def data_dir_option(data_dir: Path | None, synthetic: bool) -> str | None:
    """The data folder as given (a run records it absolute, so --resume works from anywhere), or None."""
    return None if synthetic or data_dir is None else str(data_dir)


def data_folder(name: str, default: str, help: str, flag: str = "--data-dir") -> Option:
    """A dataset folder: recorded as given, or None with --synthetic."""
    return Option(
        name, Path, Path(default), help, value=lambda p, ctx: data_dir_option(p[name], p["synthetic"]), flags=(flag,)
    )


SIGNS_DIR = data_folder("data_dir", "sign_data", "Folder with X_/Y_train|val|test.npy (see prepare-signs).")
MNIST_DIR = data_folder("data_dir", "data", "Folder holding MNIST/raw/ (the four IDX files, plain or .gz).")
NO_DOWNLOAD = switch(
    "no_download",
    "Never try to download MNIST; fail at once when it is missing.",
    key="download",
    value=lambda p, ctx: not p["no_download"],
    inverse=lambda download: not download,
)
NoDownloadOpt = NO_DOWNLOAD.annotated()
# the loop of both MNIST autoencoders (train-ae, pca-ae): the exercise trains each 10 epochs in batches of 128
AUTOENCODER_LOOP = (EPOCHS.but(default=10), BATCH_SIZE.but(default=128), LR, *seed_options(0))


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


def list_option(name: str, default: str, help: str, rule: rules.Number, *, whole: bool, plural: str) -> Option:
    """An option that takes a comma-separated list of numbers (--lrs, --latent-dims), each checked by `rule`."""
    return Option(
        name, str, default, help, rule=rule,
        parse=lambda text: number_list(text, whole=whole, plural=plural, example=default),
    )  # fmt: skip


def number_list(text: str, *, whole: bool, plural: str, example: str) -> list:
    """'1e-1,1e-3' -> [0.1, 0.001] (ints with `whole`), in order; a usage error names the first entry
    that is not a number (the option's rule then checks the values)."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise typer.BadParameter(f"give {plural} as a comma-separated list, e.g. {example}")
    values = []
    for part in parts:
        try:
            values.append(int(part) if whole else float(part))
        except ValueError:
            kind = "a whole number" if whole else "a number"
            raise typer.BadParameter(f"{part!r} is not {kind}; give comma-separated {plural} like {example}") from None
    return values
