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


def data_spec(data_dir: Path | None, synthetic: bool, download: bool) -> dict:
    """What to load, as saved in config.json (an absolute folder, so --resume works from anywhere)."""
    from mle6cli.data import mnist

    if synthetic:
        return {"synthetic": True, "n_train": mnist.SYNTHETIC_SIZES[0], "n_test": mnist.SYNTHETIC_SIZES[1]}
    return {"synthetic": False, "data_dir": str(Path(data_dir).resolve()), "download": download}


def open_data(spec: dict, device):
    """MnistData for a spec from `data_spec` (or from a saved config)."""
    from mle6cli.data import mnist

    if spec.get("synthetic"):
        return mnist.synthetic_mnist(mnist.SYNTHETIC_SEED, spec.get("n_train"), spec.get("n_test"), device)
    return mnist.load_mnist(spec["data_dir"], device, download=spec.get("download", True))


def note_synthetic(printer: Printer, data) -> None:
    if data.synthetic:
        sizes = {"train": len(data.train_x), "test": len(data.test_x)}
        printer.note(synthetic_note("built-in font-glyph digits under random jitter", sizes, "MNIST"))
