from __future__ import annotations

import typer

from mle6cli.commands import _options as opt
from mle6cli.commands._render import render_ae
from mle6cli.commands._training import training_command


def parse_dims(value: str) -> list[int]:
    """'3,10' -> [3, 10]; a usage error names the first bad entry."""
    dims = opt.positive_list(
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


def _check_init(params: dict) -> None:
    from mle6cli.tasks.autoencoders import INITS

    if params["init"] not in INITS:
        raise typer.BadParameter(f"choose one of {', '.join(INITS)}, got {params['init']!r}", param_hint="'--init'")


LATENT_DIMS = opt.Option(
    "latent_dims",
    str,
    "3,10,100,250",
    "Comma-separated latent sizes; one autoencoder each (1..4096).",
    typer={"callback": parse_dims},
)
RETRIES = opt.Option(
    "retries", int, 2, "Restarts (with a derived seed) allowed per collapsed run.", typer={"min": 0, "max": 100}
)
INIT = opt.Option(
    "init",
    str,
    "mean",
    "Initialisation: 'mean' starts the output at the mean pixel (the collapse fix); "
    "'pytorch' is PyTorch's default, as in the exercise (collapses often).",
    check=_check_init,
    typer={"autocompletion": lambda incomplete: [i for i in ("mean", "pytorch") if i.startswith(incomplete)]},
)
DDP = opt.switch(
    "ddp",
    "Under torchrun: train each autoencoder data-parallel (DistributedDataParallel), every rank "
    "holding its share of the data, instead of splitting the autoencoders over the ranks.",
)


def _train(options, **run):
    from mle6cli.tasks.autoencoders import train_ae

    return train_ae(options, **run)


def _render(printer, result, params: dict) -> None:
    from mle6cli.tasks.autoencoders import TrainingFailed

    if params["json_out"]:
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


train_ae = training_command(
    """Train the exercise's conv autoencoder at each latent size (Adam, MSE), with collapse detection.

    Example: mle6 train-ae --data-dir data --latent-dims 3,10,100,250 --epochs 10
    """,
    _train,
    [
        opt.MNIST_DIR,
        opt.SYNTHETIC,
        LATENT_DIMS,
        opt.EPOCHS.but(default=10),
        opt.BATCH_SIZE.but(default=128),
        opt.LR,
        *opt.seed_options(0),
        RETRIES,
        INIT,
        *opt.RUN,
        opt.NO_DOWNLOAD,
        DDP,
    ],
    _render,
)
