from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mle6cli.commands._options import SEED_CHECK, JsonOpt, OverwriteOpt, QuietOpt
from mle6cli.commands._output import Printer

CLASS_NAMES = [str(i) for i in range(6)]


def _source(split: str):
    """--<split>-h5 and --<split>-dir: the two ways to give one split."""
    h5 = Annotated[
        Path | None,
        typer.Option(f"--{split}-h5", help=f"The original {split}_signs.h5 ({split}_set_x/{split}_set_y)."),
    ]
    folder = Annotated[
        Path | None,
        typer.Option(f"--{split}-dir", help=f"Instead of --{split}-h5: a folder of <label>_*.jpg images."),
    ]
    return h5, folder


TrainH5, TrainDir = _source("train")
TestH5, TestDir = _source("test")


def prepare_signs(
    train_h5: TrainH5 = None,
    test_h5: TestH5 = None,
    train_dir: TrainDir = None,
    test_dir: TestDir = None,
    out: Annotated[Path, typer.Option("--out", help="Folder to write the six .npy files into.")] = Path("sign_data"),
    val_per_class: Annotated[
        int, typer.Option("--val-per-class", min=1, help="Training images per class moved to validation.")
    ] = 20,
    seed: Annotated[int, typer.Option("--seed", callback=SEED_CHECK, help="Seed of the validation split.")] = 0,
    overwrite: OverwriteOpt = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Convert the SIGNS h5 pair (or <label>_*.jpg folders) into the npy layout, with a per-class val split.

    Example: mle6 prepare-signs --train-h5 train_signs.h5 --test-h5 test_signs.h5 --out sign_data
    """
    from mle6cli.data.prepare import prepare_signs as prepare

    sources = {"train_h5": train_h5, "test_h5": test_h5, "train_dir": train_dir, "test_dir": test_dir}
    report = prepare(out, **sources, val_per_class=val_per_class, seed=seed, overwrite=overwrite)
    printer = Printer(json_mode=json_out, quiet=quiet)
    for note in report["notes"]:  # what the sources held that was accepted only after a second look
        printer.note(note)
    if json_out:
        printer.json(report)
        return
    printer.table(
        f"Wrote {report['out']}/X_*.npy, Y_*.npy (images per class)",
        ["split", *CLASS_NAMES, "total"],
        [[split, *counts, report["sizes"][split]] for split, counts in report["per_class"].items()],
    )
