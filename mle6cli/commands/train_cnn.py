from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mle6cli.options import (
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
    SeedOpt,
    SyntheticOpt,
    check_resume_alone,
)
from mle6cli.output import Printer, resuming_note, synthetic_note

# train-cnn and sweep-lr read the same npy layout
DataDirOpt = Annotated[
    Path, typer.Option("--data-dir", help="Folder with X_/Y_train|val|test.npy (see prepare-signs).")
]


def note_data(printer: Printer, opened) -> None:
    if opened.data.synthetic:
        printer.note(synthetic_note("built-in drawn hands", opened.data.sizes(), "the SIGNS photos"))
    if opened.checkpoint is not None:
        printer.note(resuming_note(opened.run_dir))


def open_signs_run(command: str, printer: Printer, *, resume, out, overwrite: bool, data_dir: Path, **options):
    """train-cnn's and sweep-lr's start: the options (or, with --resume, the saved ones), data, device, folder."""
    from mle6cli import classifier

    config = None
    if resume is None:
        config = classifier.TrainConfig(data_dir=str(data_dir), **options)
    opened = classifier.open_run(command, config, out=out, overwrite=overwrite, resume_dir=resume)
    note_data(printer, opened)
    return opened


def train_cnn(
    data_dir: DataDirOpt = Path("sign_data"),
    synthetic: SyntheticOpt = False,
    lr: LrOpt = 1e-3,
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
    opened = open_signs_run(
        "train-cnn", printer, resume=resume, out=out, overwrite=overwrite, data_dir=data_dir, synthetic=synthetic,
        lr=lr, epochs=epochs, batch_size=batch_size, seed=seed, device=device, deterministic=deterministic,
    )  # fmt: skip
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
