from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mle6cli.commands._config import ConfigOpt, PrintConfigOpt, run_task
from mle6cli.commands._options import (
    BatchSizeOpt,
    DeterministicOpt,
    DeviceOpt,
    EpochsOpt,
    JsonOpt,
    OutOpt,
    OverwriteOpt,
    QuietOpt,
    ResumeOpt,
    SaveEveryOpt,
    SeedsOpt,
    SignsDirOpt,
    SyntheticOpt,
    TensorboardOpt,
    check_resume_alone,
    data_dir_option,
    positive_list,
    seed_opt,
    seeds_option,
)
from mle6cli.commands._output import Printer
from mle6cli.commands._render import render_sweep


def parse_lrs(text: str) -> list[float]:
    """'1e-1,1e-3' -> [0.1, 0.001]; a usage error names the first bad entry."""
    return positive_list(
        text, "--lrs", whole=False, plural="learning rates", singular="learning rate", example="1e-1,1e-3"
    )


def sweep_lr(
    ctx: typer.Context,
    config: ConfigOpt = None,
    lrs: Annotated[
        str,
        typer.Option("--lrs", callback=lambda v: parse_lrs(v), help="Comma-separated learning rates, one model each."),
    ] = "1e-1,1e-3,1e-4,1e-5",
    data_dir: SignsDirOpt = Path("sign_data"),
    synthetic: SyntheticOpt = False,
    epochs: EpochsOpt = 50,
    batch_size: BatchSizeOpt = 64,
    seed: seed_opt(42) = None,
    seeds: SeedsOpt = None,
    device: DeviceOpt = "auto",
    deterministic: DeterministicOpt = False,
    out: OutOpt = None,
    overwrite: OverwriteOpt = False,
    resume: ResumeOpt = None,
    save_every: SaveEveryOpt = 1,
    tensorboard: TensorboardOpt = False,
    print_config: PrintConfigOpt = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train one CNN per learning rate from the same start; pick the best by validation accuracy.

    Example: mle6 sweep-lr --lrs 1e-1,1e-3,1e-4,1e-5 --epochs 50
    """
    from mle6cli.commands._output import draw_in_background

    draw_in_background()  # before the task imports torch
    from mle6cli.tasks.classifier import sweep_lr as run_sweep

    check_resume_alone(resume, out)
    printer = Printer(json_mode=json_out, quiet=quiet)
    options = {
        "data_dir": data_dir_option(data_dir, synthetic),
        "synthetic": synthetic,
        "lrs": lrs,
        "epochs": epochs,
        "batch_size": batch_size,
        "seeds": seeds_option(seed, seeds, 42, ctx),
        "device": device,
        "save_every": save_every,
        "tensorboard": tensorboard,
        "deterministic": deterministic,
    }
    summary = run_task(
        ctx, run_sweep, options, printer, out=out, overwrite=overwrite, resume=resume, print_config=print_config
    )
    if summary is None:  # --print-config, or a torchrun rank other than 0
        return
    if json_out:
        printer.json(summary)
        return
    render_sweep(printer, summary)
