from __future__ import annotations

from pathlib import Path

import typer

from mle6cli.commands._config import ConfigOpt, PrintConfigOpt, run_task
from mle6cli.commands._options import (
    BatchSizeOpt,
    DeterministicOpt,
    DeviceOpt,
    EpochsOpt,
    JsonOpt,
    LrOpt,
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
    seed_opt,
    seeds_option,
)
from mle6cli.commands._output import Printer
from mle6cli.commands._render import render_sweep


def train_cnn(
    ctx: typer.Context,
    config: ConfigOpt = None,
    data_dir: SignsDirOpt = Path("sign_data"),
    synthetic: SyntheticOpt = False,
    lr: LrOpt = 1e-3,
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
    """Train the exercise's CNN on SIGNS (Adam, NLL loss); write metrics, curves, model and test accuracy.

    Example: mle6 train-cnn --data-dir sign_data --lr 1e-3 --epochs 50 --batch-size 64
    """
    from mle6cli.commands._output import draw_in_background

    draw_in_background()  # before the task imports torch
    from mle6cli.tasks.classifier import train_cnn as run_train

    check_resume_alone(resume, out)
    printer = Printer(json_mode=json_out, quiet=quiet)
    options = {
        "data_dir": data_dir_option(data_dir, synthetic),
        "synthetic": synthetic,
        "lr": lr,
        "epochs": epochs,
        "batch_size": batch_size,
        "seeds": seeds_option(seed, seeds, 42, ctx),
        "device": device,
        "save_every": save_every,
        "tensorboard": tensorboard,
        "deterministic": deterministic,
    }
    summary = run_task(
        ctx, run_train, options, printer, out=out, overwrite=overwrite, resume=resume, print_config=print_config
    )
    if summary is None:  # --print-config, or a torchrun rank other than 0
        return
    if json_out:
        printer.json(summary)
        return
    if "stats" in summary:  # several seeds: the sweep's table, one learning rate
        render_sweep(printer, summary)
        return
    final = summary["final"]
    printer.line(
        f"epoch {final['epoch']}: train loss {final['train_loss']:.4f}, train acc {final['train_acc']:.4f}, "
        f"val loss {final['val_loss']:.4f}, val acc {final['val_acc']:.4f}"
    )
    printer.line(f"test accuracy {summary['test_acc']:.4f} (test loss {summary['test_loss']:.4f})")
    printer.line(f"trained in {summary['train_seconds']:.1f} s on {summary['device']}; run folder {summary['run_dir']}")
