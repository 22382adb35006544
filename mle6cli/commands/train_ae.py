from __future__ import annotations

from mle6cli.commands._render import render_ae
from mle6cli.commands._training import training_command
from mle6cli.tasks.specs import TRAIN_AE


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
    TRAIN_AE,
    _render,
)
