from __future__ import annotations

from mle6cli.commands import _options as opt
from mle6cli.commands._render import render_ae
from mle6cli.commands._training import training_command
from mle6cli.tasks import config as rules

LATENT_DIMS = opt.list_option(
    "latent_dims", "3,10,100,250", "Comma-separated latent sizes; one autoencoder each (1..4096).",
    rules.LATENT_SIZE, whole=True, plural="latent sizes",
)  # fmt: skip
RETRIES = opt.Option("retries", int, 2, "Restarts (with a derived seed) allowed per collapsed run.", rule=rules.RETRIES)
INIT = opt.Option(
    "init",
    str,
    "mean",
    "Initialisation: 'mean' starts the output at the mean pixel (the collapse fix); "
    "'pytorch' is PyTorch's default, as in the exercise (collapses often).",
    rule=rules.INIT,
    typer={"autocompletion": lambda incomplete: [i for i in rules.INIT.choices if i.startswith(incomplete)]},
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
        *opt.AUTOENCODER_LOOP,
        RETRIES,
        INIT,
        *opt.RUN,
        opt.NO_DOWNLOAD,
        DDP,
    ],
    _render,
)
