from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mle6cli.commands._mnist import NoDownloadOpt, note_synthetic
from mle6cli.options import DeviceOpt, JsonOpt, QuietOpt, SyntheticOpt
from mle6cli.output import Printer


def latent_plot(
    run: Annotated[Path | None, typer.Option("--run", help="A train-ae run folder that holds a d=3 model.")] = None,
    checkpoint: Annotated[
        Path | None, typer.Option("--checkpoint", help="An ae_d3.pt checkpoint instead of a run folder.")
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Folder holding MNIST/raw/ (default: the data the model was trained on)."),
    ] = None,
    synthetic: SyntheticOpt = False,
    n: Annotated[int, typer.Option("--n", help="Test images to encode (the first n).")] = 2000,
    out: Annotated[Path, typer.Option("--out", help="Where to write the PNG.")] = Path("latent.png"),
    device: DeviceOpt = "auto",
    no_download: NoDownloadOpt = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Plot a d=3 autoencoder's latent codes by digit and measure how well the digits separate.

    Example: mle6 latent-plot --run runs/train-ae/20250101-120000 --n 2000 --out latent.png
    """
    from mle6cli.autoencoders import load_autoencoder
    from mle6cli.data.mnist import mnist_spec, open_mnist
    from mle6cli.device import resolve_device
    from mle6cli.latent import MIN_POINTS, find_d3_checkpoint, plot_latent

    if (run is None) == (checkpoint is None):
        raise typer.BadParameter("give exactly one of --run DIR or --checkpoint FILE", param_hint="'--run'")
    if n < MIN_POINTS:
        raise typer.BadParameter(f"must be at least {MIN_POINTS}, got {n}", param_hint="'--n'")
    if synthetic and data_dir is not None:
        raise typer.BadParameter("give --data-dir or --synthetic, not both", param_hint="'--synthetic'")
    printer = Printer(json_mode=json_out, quiet=quiet)
    torch_device = resolve_device(device)
    path = find_d3_checkpoint(run) if run is not None else Path(checkpoint)
    model, meta = load_autoencoder(path, torch_device)
    if model.latent_dim != 3:
        raise typer.BadParameter(
            f"{path} holds a d={model.latent_dim} model; latent-plot needs d=3", param_hint="'--checkpoint'"
        )
    trained_on = meta.get("data") or {}
    if synthetic:
        spec = mnist_spec(None, True, False)
    elif data_dir is not None:
        spec = mnist_spec(data_dir, False, not no_download)
    elif trained_on.get("synthetic"):
        spec = {"synthetic": True, "n_train": trained_on.get("n_train"), "n_test": trained_on.get("n_test")}
    elif trained_on.get("source"):  # <data_dir>/MNIST/raw
        spec = {"synthetic": False, "data_dir": str(Path(trained_on["source"]).parents[1]), "download": False}
    else:
        spec = mnist_spec(Path("data"), False, not no_download)
    data = open_mnist(spec, torch_device)
    note_synthetic(printer, data)
    if meta.get("collapsed", False):
        printer.note(f"WARNING: the d=3 model in {path} is marked COLLAPSED; its codes say little.")
    if n > len(data.test_x):
        printer.note(f"Note: the test set has only {len(data.test_x)} images; encoding all of them.")
    result = plot_latent(model, meta, data, n, out)
    if json_out:
        printer.json(result.to_json())
        return
    printer.line(f"encoded {len(result.codes)} test images with {path}")
    printer.line(f"5-NN accuracy (fit on half, tested on the other half): {result.knn_accuracy:.4f}")
    printer.line(f"silhouette score: {result.silhouette:.4f}")
    printer.line(f"plot: {result.plot}")
