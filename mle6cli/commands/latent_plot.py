from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mle6cli.commands._options import DeviceOpt, JsonOpt, NoDownloadOpt, QuietOpt, SyntheticOpt, whole_in_range
from mle6cli.commands._output import Printer
from mle6cli.tasks.limits import MIN_POINTS


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
    n: Annotated[
        int,
        typer.Option(
            "--n",
            callback=whole_in_range(MIN_POINTS, 1_000_000),
            help=f"Test images to encode: the first n ({MIN_POINTS}..1000000; the sheet's 2048).",
        ),
    ] = 2048,
    out: Annotated[Path, typer.Option("--out", help="The figure: .png, .pdf, .svg or .jpg.")] = Path("latent.png"),
    device: DeviceOpt = "auto",
    no_download: NoDownloadOpt = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Plot a d=3 autoencoder's latent codes by digit and measure how well the digits separate.

    Example: mle6 latent-plot --run runs/train-ae/20250101-120000 --n 2000 --out latent.png
    """
    if (run is None) == (checkpoint is None):
        raise typer.BadParameter("give exactly one of --run DIR or --checkpoint FILE", param_hint="'--run'")
    if synthetic and data_dir is not None:
        raise typer.BadParameter("give --data-dir or --synthetic, not both", param_hint="'--synthetic'")
    from mle6cli.tasks.latent import latent_plot as run_latent_plot

    printer = Printer(json_mode=json_out, quiet=quiet)
    with printer.events() as events:
        result = run_latent_plot(
            run=run,
            checkpoint=checkpoint,
            data_dir=data_dir,
            synthetic=synthetic,
            download=not no_download,
            n=n,
            out=out,
            device=device,
            events=events,
        )
    path = result.checkpoint
    if json_out:
        printer.json(result.to_json())
        return
    printer.line(f"encoded {len(result.codes)} test images with {path}")
    printer.line(f"5-NN accuracy (fit on half, tested on the other half): {result.knn_accuracy:.4f}")
    printer.line(f"silhouette score: {result.silhouette:.4f}")
    printer.line(f"plot: {result.plot}")
