from __future__ import annotations

from mle6cli.commands._render import render_sweep
from mle6cli.commands._training import training_command
from mle6cli.tasks.schema import SweepSummary, read
from mle6cli.tasks.specs import TRAIN_CNN


def _render(printer, summary: dict, params: dict) -> None:
    if params["json_out"]:
        printer.json(summary)
        return
    if isinstance(read(summary), SweepSummary):  # several seeds: the sweep's table, one learning rate
        render_sweep(printer, summary, TRAIN_CNN)
        return
    final = summary["final"]
    printer.line(
        f"epoch {final['epoch']}: train loss {final['train_loss']:.4f}, train acc {final['train_acc']:.4f}, "
        f"val loss {final['val_loss']:.4f}, val acc {final['val_acc']:.4f}"
    )
    printer.line(f"test accuracy {summary['test_acc']:.4f} (test loss {summary['test_loss']:.4f})")
    printer.line(f"trained in {summary['train_seconds']:.1f} s on {summary['device']}; run folder {summary['run_dir']}")


train_cnn = training_command(
    """Train the exercise's CNN on SIGNS (Adam, NLL loss); write metrics, curves, model and test accuracy.

    Example: mle6 train-cnn --data-dir sign_data --lr 1e-3 --epochs 50 --batch-size 64
    """,
    TRAIN_CNN,
    _render,
    draws_in_background=True,
)
