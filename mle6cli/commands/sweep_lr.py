from __future__ import annotations

from mle6cli.commands._render import render_sweep
from mle6cli.commands._training import training_command
from mle6cli.tasks.specs import SWEEP_LR


def _render(printer, summary: dict, params: dict) -> None:
    if params["json_out"]:
        printer.json(summary)
    else:
        render_sweep(printer, summary, SWEEP_LR)


sweep_lr = training_command(
    """Train one CNN per learning rate from the same start; pick the best by validation accuracy.

    Example: mle6 sweep-lr --lrs 1e-1,1e-3,1e-4,1e-5 --epochs 50
    """,
    SWEEP_LR,
    _render,
    draws_in_background=True,
)
