"""Options and data helpers the MNIST commands (train-ae, latent-plot, pca-ae) share."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mle6cli.output import Printer, synthetic_note

DataDirOpt = Annotated[
    Path,
    typer.Option("--data-dir", help="Folder holding MNIST/raw/ (the four IDX files, plain or .gz)."),
]
NoDownloadOpt = Annotated[
    bool, typer.Option("--no-download", help="Never try to download MNIST; fail at once when it is missing.")
]


def note_synthetic(printer: Printer, data) -> None:
    if data.synthetic:
        sizes = {"train": len(data.train_x), "test": len(data.test_x)}
        printer.note(synthetic_note("built-in font-glyph digits under random jitter", sizes, "MNIST"))
