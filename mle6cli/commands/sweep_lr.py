from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mle6cli.commands.train_cnn import DataDirOpt, open_signs_run
from mle6cli.options import (
    BatchSizeOpt,
    DeterministicOpt,
    DeviceOpt,
    EpochsOpt,
    JsonOpt,
    OutOpt,
    OverwriteOpt,
    QuietOpt,
    ResumeOpt,
    SeedOpt,
    SyntheticOpt,
    check_resume_alone,
    positive_list,
)
from mle6cli.output import Printer


def parse_lrs(text: str) -> list[float]:
    """'1e-1,1e-3' -> [0.1, 0.001]; a usage error names the first bad entry."""
    return positive_list(
        text, "--lrs", whole=False, plural="learning rates", singular="learning rate", example="1e-1,1e-3"
    )


def sweep_lr(
    lrs: Annotated[
        str, typer.Option("--lrs", help="Comma-separated learning rates, one model each.")
    ] = "1e-1,1e-3,1e-4,1e-5",
    data_dir: DataDirOpt = Path("sign_data"),
    synthetic: SyntheticOpt = False,
    epochs: EpochsOpt = 50,
    batch_size: BatchSizeOpt = 64,
    seed: SeedOpt = 42,
    device: DeviceOpt = "auto",
    deterministic: DeterministicOpt = False,
    out: OutOpt = None,
    overwrite: OverwriteOpt = False,
    resume: ResumeOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train one CNN per learning rate from the same start; pick the best by validation accuracy.

    Example: mle6 sweep-lr --lrs 1e-1,1e-3,1e-4,1e-5 --epochs 50
    """
    from mle6cli import classifier

    check_resume_alone(resume, out)
    values = parse_lrs(lrs)
    printer = Printer(json_mode=json_out, quiet=quiet)
    opened = open_signs_run(
        "sweep-lr", printer, resume=resume, out=out, overwrite=overwrite, data_dir=data_dir, synthetic=synthetic,
        epochs=epochs, batch_size=batch_size, seed=seed, device=device, deterministic=deterministic,
    )  # fmt: skip
    if resume is not None:
        values = opened.extra["lrs"]
    config = opened.config
    with printer.progress(len(values) * config.epochs, "sweep") as update:
        summary = classifier.sweep_lr(
            config, values, opened.data, opened.device, opened.run_dir, update, resume=opened.checkpoint
        )
    if json_out:
        printer.json(summary)
        return
    rows = []
    for run in summary["runs"]:
        final = run["final"] or {}
        status = f"diverged at epoch {run['diverged_epoch']}" if run["diverged"] else run["status"]
        rows.append(
            [
                classifier.lr_label(run["lr"]),
                status,
                final.get("train_loss", "-"),
                final.get("train_acc", "-"),
                final.get("val_loss", "-"),
                final.get("val_acc", "-"),
                "-" if run["test_acc"] is None else run["test_acc"],
            ]
        )
    printer.table(
        f"Learning-rate sweep, {config.epochs} epochs (final epoch)",
        ["lr", "status", "train loss", "train acc", "val loss", "val acc", "test acc"],
        rows,
    )
    printer.line(
        f"best lr {classifier.lr_label(summary['best_lr'])}: val acc {summary['best_val_acc']:.4f}, "
        f"test acc {summary['test_acc']:.4f}, |val - test| = {summary['val_test_gap']:.4f}"
    )
    printer.line(f"trained in {summary['train_seconds']:.1f} s on {summary['device']}; run folder {summary['run_dir']}")
