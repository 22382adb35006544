from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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
    SeedOpt,
    SignsDirOpt,
    SyntheticOpt,
    check_resume_alone,
    data_dir_option,
    positive_list,
)
from mle6cli.commands._output import Printer
from mle6cli.fmt import lr_label, plural


def parse_lrs(text: str) -> list[float]:
    """'1e-1,1e-3' -> [0.1, 0.001]; a usage error names the first bad entry."""
    return positive_list(
        text, "--lrs", whole=False, plural="learning rates", singular="learning rate", example="1e-1,1e-3"
    )


def sweep_lr(
    lrs: Annotated[
        str, typer.Option("--lrs", help="Comma-separated learning rates, one model each.")
    ] = "1e-1,1e-3,1e-4,1e-5",
    data_dir: SignsDirOpt = Path("sign_data"),
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
    from mle6cli.tasks import classifier

    check_resume_alone(resume, out)
    printer = Printer(json_mode=json_out, quiet=quiet)
    options = {
        "data_dir": data_dir_option(data_dir, synthetic),
        "synthetic": synthetic,
        "lrs": parse_lrs(lrs),
        "epochs": epochs,
        "batch_size": batch_size,
        "seeds": [seed],
        "device": device,
        "deterministic": deterministic,
    }
    with printer.events() as events:
        summary = classifier.sweep_lr(options, out=out, overwrite=overwrite, resume=resume, events=events)
    if json_out:
        printer.json(summary)
        return
    rows = []
    for run in summary["runs"]:
        final = run["final"] or {}
        status = f"diverged at epoch {run['diverged_epoch']}" if run["diverged"] else run["status"]
        rows.append(
            [
                lr_label(run["lr"]),
                status,
                final.get("train_loss", "-"),
                final.get("train_acc", "-"),
                final.get("val_loss", "-"),
                final.get("val_acc", "-"),
                "-" if run["test_acc"] is None else run["test_acc"],
            ]
        )
    printer.table(
        f"Learning-rate sweep, {plural(summary['epochs'], 'epoch')} (final epoch)",
        ["lr", "status", "train loss", "train acc", "val loss", "val acc", "test acc"],
        rows,
    )
    printer.line(
        f"best lr {lr_label(summary['best_lr'])}: val acc {summary['best_val_acc']:.4f}, "
        f"test acc {summary['test_acc']:.4f}, |val - test| = {summary['val_test_gap']:.4f}"
    )
    printer.line(f"trained in {summary['train_seconds']:.1f} s on {summary['device']}; run folder {summary['run_dir']}")
