"""The options commands share, defined once (Typer `Annotated` style), and their validation.

A command declares e.g. `device: DeviceOpt = "auto"`; the help text lives here only.

One rule for option values: a malformed or out-of-range value is a usage error (exit 2)
whose message names the option — raised as `typer.BadParameter`, through a callback, `min=`,
or with `param_hint`. `Mle6Error` (exit 1) is for what only shows up later: data, devices,
run folders.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated

import typer

from mle6cli.tasks.limits import SEED_MAX

DEVICES = ("auto", "cpu", "cuda", "mps")


def complete_device(incomplete: str) -> list[str]:
    """Tab completion of --device: the closed choices (and cuda:N is typed by hand)."""
    return [d for d in DEVICES if d.startswith(incomplete)]


DeviceOpt = Annotated[
    str,
    typer.Option(
        "--device",
        help="Where to compute: auto, cpu, cuda, cuda:N or mps (CPU threads: torch's default, or MLE6_THREADS=N).",
        show_default=True,
        autocompletion=complete_device,
    ),
]
SEED_RANGE = {"min": 0, "max": SEED_MAX}


def seed_opt(default: int):
    """The --seed option of a command whose default seed is `default` (shown in its help)."""
    return Annotated[
        int | None,
        typer.Option(
            "--seed", **SEED_RANGE, help=f"Random seed (default {default}); the same seed gives the same metrics."
        ),
    ]


def _seeds_callback(value):
    return value if value is None or isinstance(value, list) else parse_seeds(value)


SeedsOpt = Annotated[
    str | None,
    typer.Option(
        "--seeds",
        callback=_seeds_callback,
        help="Several seeds, a list or a range (0,1,2 or 0-4), instead of --seed: each is one more fused "
        "member, and the results get means and 95% confidence intervals.",
    ),
]
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
        if high > SEED_MAX:
            raise typer.BadParameter(f"seeds go up to {SEED_MAX}, got {high}", param_hint=hint)
        if len(values) + high - low + 1 > MAX_SEEDS:
            raise typer.BadParameter(f"at most {MAX_SEEDS} seeds", param_hint=hint)
        for value in range(low, high + 1):
            if value in values:
                raise typer.BadParameter(f"seed {value} is listed twice", param_hint=hint)
            values.append(value)
    return values


def _out_folder(value: str | None) -> Path | None:
    if value is not None and not str(value).strip():
        raise typer.BadParameter("is empty; name a folder (or leave --out out for runs/<command>/<timestamp>)")
    return None if value is None else Path(value)


OutOpt = Annotated[
    str | None,
    typer.Option(
        "--out",
        callback=_out_folder,
        help="Run folder to create (default: runs/<command>/<timestamp>). Must be new or empty.",
    ),
]
TensorboardOpt = Annotated[
    bool,
    typer.Option(
        "--tensorboard",
        metavar="",
        help="Also write TensorBoard event files (run folder's tensorboard/, one run per member); "
        "needs pip install 'mle6cli\\[tensorboard]'.",
    ),
]
SaveEveryOpt = Annotated[
    int,
    typer.Option(
        "--save-every",
        min=0,
        max=1_000_000,
        help="Save the resumable state every N epochs (0: only when stopped); a crash loses at most N epochs.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", metavar="", help="Print exactly one JSON document on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", metavar="", help="Print nothing but the result (and errors).")]
SyntheticOpt = Annotated[
    bool, typer.Option("--synthetic", metavar="", help="Use the built-in synthetic data instead of a dataset on disk.")
]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", metavar="", help="Allow writing into a non-empty folder.")]


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


def positive_lr(value: float) -> float:
    if not math.isfinite(value) or value <= 0:
        raise typer.BadParameter(f"the learning rate must be a positive number, got {value:g}")
    return value


# the options of the training commands (train-cnn, sweep-lr, train-ae, pca-ae)
EpochsOpt = Annotated[int, typer.Option("--epochs", min=1, help="Epochs to train each model.")]
BatchSizeOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Images per training step.")]
LrOpt = Annotated[float, typer.Option("--lr", help="Adam learning rate.", callback=positive_lr)]
DeterministicOpt = Annotated[
    bool,
    typer.Option("--deterministic", metavar="", help="Also force torch's deterministic algorithms (matters on CUDA)."),
]
ResumeOpt = Annotated[
    Path | None,
    typer.Option("--resume", help="Continue the interrupted run in this folder with its saved options."),
]


SignsDirOpt = Annotated[
    Path, typer.Option("--data-dir", help="Folder with X_/Y_train|val|test.npy (see prepare-signs).")
]
MnistDirOpt = Annotated[
    Path, typer.Option("--data-dir", help="Folder holding MNIST/raw/ (the four IDX files, plain or .gz).")
]
NoDownloadOpt = Annotated[
    bool,
    typer.Option("--no-download", metavar="", help="Never try to download MNIST; fail at once when it is missing."),
]


def data_dir_option(data_dir: Path | None, synthetic: bool) -> str | None:
    """The data folder as given (a run records it absolute, so --resume works from anywhere), or None."""
    return None if synthetic or data_dir is None else str(data_dir)


# option key in a run's config.json -> the command-line parameters that set it
SOURCES = {"seeds": ("seed", "seeds"), "download": ("no_download",)}


def resume_overrides(ctx: typer.Context, resume: Path | None, options: dict) -> dict | None:
    """With --resume: the options given on the command line that a resumed run may change (--device,
    --save-every); a usage error naming every other given option whose value differs from the run's."""
    if resume is None:
        return None
    from mle6cli.engine.runs import RESUMABLE
    from mle6cli.files import FileError, read_json

    try:
        saved = read_json(Path(resume) / "config.json").get("options", {})
    except (FileError, AttributeError):
        return None  # the run protocol says what is wrong with the folder
    given = {name for name in ctx.params if ctx.get_parameter_source(name).name in ("COMMANDLINE", "ENVIRONMENT")}
    changed, overrides = [], {}
    for key, value in options.items():
        params = SOURCES.get(key, (key,))
        if not given.intersection(params):
            continue
        if key in RESUMABLE:
            overrides[key] = value
        elif _normal(key, value) != _normal(key, saved.get(key)):
            changed.extend("--" + p.replace("_", "-") for p in params if p in given)
    if changed:
        raise typer.BadParameter(
            f"{', '.join(changed)} would change the run being resumed; a resumed run keeps its options "
            f"(only {', '.join('--' + k.replace('_', '-') for k in RESUMABLE)} may change)",
            param_hint="'--resume'",
        )
    return overrides


def _normal(key: str, value):
    if key.endswith("_dir") or key == "compare":
        return None if value is None else str(Path(value).resolve())
    return list(value) if isinstance(value, tuple) else value


def check_resume_alone(resume: Path | None, out: Path | None) -> None:
    if resume is not None and out is not None:
        raise typer.BadParameter("--resume continues in its own folder; leave out --out", param_hint="'--out'")


def positive_list(text: str, option: str, *, whole: bool, plural: str, singular: str, example: str) -> list:
    """'1e-1,1e-3' -> [0.1, 0.001] (ints with `whole`): distinct positive finite numbers, in order.

    A usage error names `option` and the first bad entry.
    """
    hint = f"'{option}'"
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise typer.BadParameter(f"give {plural} as a comma-separated list, e.g. {example}", param_hint=hint)
    values = []
    for part in parts:
        try:
            value = int(part) if whole else float(part)
        except ValueError:
            kind = "a whole number" if whole else "a number"
            raise typer.BadParameter(
                f"{part!r} is not {kind}; give comma-separated {plural} like {example}", param_hint=hint
            ) from None
        if not (value > 0 and math.isfinite(value)):
            raise typer.BadParameter(f"{plural} must be positive numbers, got {part}", param_hint=hint)
        if value in values:
            raise typer.BadParameter(f"{singular} {part} is listed twice", param_hint=hint)
        values.append(value)
    return values
