from __future__ import annotations

from mle6cli.commands import _options as opt
from mle6cli.commands._render import render_sweep
from mle6cli.commands._training import training_command
from mle6cli.tasks import config as rules

LRS = opt.list_option(
    "lrs", "1e-1,1e-3,1e-4,1e-5", "Comma-separated learning rates, one model each.", rules.LR,
    whole=False, plural="learning rates",
)  # fmt: skip


def _sweep(options, **run):
    from mle6cli.tasks.classifier import sweep_lr

    return sweep_lr(options, **run)


def _render(printer, summary: dict, params: dict) -> None:
    if params["json_out"]:
        printer.json(summary)
    else:
        render_sweep(printer, summary)


sweep_lr = training_command(
    """Train one CNN per learning rate from the same start; pick the best by validation accuracy.

    Example: mle6 sweep-lr --lrs 1e-1,1e-3,1e-4,1e-5 --epochs 50
    """,
    _sweep,
    [
        opt.SIGNS_DIR,
        opt.SYNTHETIC,
        LRS,
        opt.EPOCHS,
        opt.BATCH_SIZE,
        *opt.seed_options(42),
        *opt.RUN,
    ],
    _render,
    draws_in_background=True,
)
