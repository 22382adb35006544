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
    LrOpt,
    MnistDirOpt,
    NoDownloadOpt,
    OutOpt,
    OverwriteOpt,
    QuietOpt,
    ResumeOpt,
    SaveEveryOpt,
    SeedsOpt,
    SyntheticOpt,
    TensorboardOpt,
    check_resume_alone,
    data_dir_option,
    positive_list,
    seed_opt,
    seeds_option,
)
from mle6cli.commands._output import Printer
from mle6cli.commands._render import render_ae


def parse_dims(value: str) -> list[int]:
    """'3,10' -> [3, 10]; a usage error names the first bad entry."""
    dims = positive_list(
        value, "--latent-dims", whole=True, plural="latent sizes", singular="latent size", example="3,10,100,250"
    )
    from mle6cli.tasks.limits import MAX_LATENT_DIM

    too_big = [d for d in dims if d > MAX_LATENT_DIM]
    if too_big:
        raise typer.BadParameter(
            f"latent size {too_big[0]} is larger than {MAX_LATENT_DIM} (the encoder has 2048 features)",
            param_hint="'--latent-dims'",
        )
    return dims


def train_ae(
    ctx: typer.Context,
    config: ConfigOpt = None,
    data_dir: MnistDirOpt = Path("data"),
    synthetic: SyntheticOpt = False,
    latent_dims: Annotated[
        str,
        typer.Option(
            "--latent-dims",
            callback=lambda v: parse_dims(v),
            help="Comma-separated latent sizes; one autoencoder each (1..4096).",
        ),
    ] = "3,10,100,250",
    epochs: EpochsOpt = 10,
    batch_size: BatchSizeOpt = 128,
    lr: LrOpt = 1e-3,
    seed: seed_opt(0) = None,
    seeds: SeedsOpt = None,
    retries: Annotated[
        int, typer.Option("--retries", min=0, max=100, help="Restarts (with a derived seed) allowed per collapsed run.")
    ] = 2,
    init: Annotated[
        str,
        typer.Option(
            "--init",
            autocompletion=lambda incomplete: [i for i in ("mean", "pytorch") if i.startswith(incomplete)],
            help="Initialisation: 'mean' starts the output at the mean pixel (the collapse fix); "
            "'pytorch' is PyTorch's default, as in the exercise (collapses often).",
        ),
    ] = "mean",
    device: DeviceOpt = "auto",
    ddp: Annotated[
        bool,
        typer.Option(
            "--ddp",
            help="Under torchrun: train each autoencoder data-parallel (DistributedDataParallel), every rank "
            "holding its share of the data, instead of splitting the autoencoders over the ranks.",
        ),
    ] = False,
    deterministic: DeterministicOpt = False,
    out: OutOpt = None,
    overwrite: OverwriteOpt = False,
    resume: ResumeOpt = None,
    save_every: SaveEveryOpt = 1,
    tensorboard: TensorboardOpt = False,
    no_download: NoDownloadOpt = False,
    print_config: PrintConfigOpt = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train the exercise's conv autoencoder at each latent size (Adam, MSE), with collapse detection.

    Example: mle6 train-ae --data-dir data --latent-dims 3,10,100,250 --epochs 10
    """
    from mle6cli.tasks.autoencoders import INITS, TrainingFailed, train_ae

    check_resume_alone(resume, out)
    if init not in INITS:
        raise typer.BadParameter(f"choose one of {', '.join(INITS)}, got {init!r}", param_hint="'--init'")
    printer = Printer(json_mode=json_out, quiet=quiet)
    options = {
        "data_dir": data_dir_option(data_dir, synthetic),
        "synthetic": synthetic,
        "latent_dims": latent_dims,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "seeds": seeds_option(seed, seeds, 0, ctx),
        "retries": retries,
        "init": init,
        "device": device,
        "save_every": save_every,
        "tensorboard": tensorboard,
        "deterministic": deterministic,
        "download": not no_download,
        "ddp": ddp,
    }
    result = run_task(
        ctx, train_ae, options, printer, out=out, overwrite=overwrite, resume=resume, print_config=print_config
    )
    if result is None:  # --print-config, or a torchrun rank other than 0
        return
    if json_out:
        printer.json(result.to_json())
    else:
        render_ae(printer, result)
    if result.failed:
        problems = []
        for r in result.failed:
            if r.status == "diverged":
                problems.append(f"d={r.latent_dim} diverged in epoch {r.diverged_epoch}")
            else:
                problems.append(
                    f"d={r.latent_dim} is still collapsed after {r.retries} restart(s) ({r.attempts[-1]['reason']})"
                )
        raise TrainingFailed("; ".join(problems) + f" — marked so in {result.run_dir}/summary.json, not usable")
