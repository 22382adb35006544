from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from mle6cli.options import DeviceOpt, JsonOpt, OutOpt, OverwriteOpt, QuietOpt, SeedOpt, SyntheticOpt
from mle6cli.output import Printer


def positive_lr(value: float) -> float:
    if not math.isfinite(value) or value <= 0:
        raise typer.BadParameter(f"the learning rate must be a positive number, got {value:g}")
    return value


# the options train-cnn and sweep-lr share
DataDirOpt = Annotated[
    Path, typer.Option("--data-dir", help="Folder with X_/Y_train|val|test.npy (see prepare-signs).")
]
EpochsOpt = Annotated[int, typer.Option("--epochs", min=1, help="Epochs to train (each model, in a sweep).")]
BatchSizeOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Images per training step.")]
DeterministicOpt = Annotated[
    bool, typer.Option("--deterministic", help="Also force torch's deterministic algorithms (matters on CUDA).")
]
ResumeOpt = Annotated[
    Path | None,
    typer.Option("--resume", help="Continue the interrupted run in this folder with its saved options."),
]


def check_resume_alone(resume: Path | None, out: Path | None) -> None:
    if resume is not None and out is not None:
        raise typer.BadParameter("--resume continues in its own folder; leave out --out", param_hint="'--out'")


def note_data(printer: Printer, opened) -> None:
    if opened.data.synthetic:
        sizes = opened.data.sizes()
        printer.note(
            f"Note: the data are SYNTHETIC (built-in drawn hands, {sizes['train']}/{sizes['val']}/{sizes['test']} "
            "train/val/test images), not the SIGNS photos."
        )
    if opened.checkpoint is not None:
        printer.note(f"Resuming the run in {opened.run_dir} with its saved options.")


def train_cnn(
    data_dir: DataDirOpt = Path("sign_data"),
    synthetic: SyntheticOpt = False,
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate.", callback=positive_lr)] = 1e-3,
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
    """Train the exercise's CNN on SIGNS (Adam, NLL loss); write metrics, curves, model and test accuracy.

    Example: mle6 train-cnn --data-dir sign_data --lr 1e-3 --epochs 50 --batch-size 64
    """
    from mle6cli import classifier

    check_resume_alone(resume, out)
    printer = Printer(json_mode=json_out, quiet=quiet)
    config = None
    if resume is None:
        config = classifier.TrainConfig(
            lr=lr,
            epochs=epochs,
            batch_size=batch_size,
            seed=seed,
            device=device,
            deterministic=deterministic,
            data_dir=str(data_dir),
            synthetic=synthetic,
        )
    opened = classifier.open_run("train-cnn", config, out=out, overwrite=overwrite, resume_dir=resume)
    note_data(printer, opened)
    config = opened.config
    with printer.progress(config.epochs, "training") as update:
        summary = classifier.train_cnn(
            config, opened.data, opened.device, opened.run_dir, update, resume=opened.checkpoint
        )
    if json_out:
        printer.json(summary)
        return
    final = summary["final"]
    printer.line(
        f"epoch {final['epoch']}: train loss {final['train_loss']:.4f}, train acc {final['train_acc']:.4f}, "
        f"val loss {final['val_loss']:.4f}, val acc {final['val_acc']:.4f}"
    )
    printer.line(f"test accuracy {summary['test_acc']:.4f} (test loss {summary['test_loss']:.4f})")
    printer.line(f"trained in {summary['train_seconds']:.1f} s on {summary['device']}; run folder {summary['run_dir']}")
