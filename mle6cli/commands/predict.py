from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mle6cli.commands._options import OVERWRITE, DeviceOpt, JsonOpt, QuietOpt
from mle6cli.commands._output import Printer
from mle6cli.fmt import cell

RunArg = Annotated[Path, typer.Argument(help="A finished train-cnn, sweep-lr, train-ae or pca-ae run folder.")]


def member_option(value: str | None) -> dict | None:
    from mle6cli.tasks.trained import parse_member

    if value is None:
        return None
    try:
        return parse_member(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


MemberOpt = Annotated[
    str | None,
    typer.Option(
        "--member",
        help="Which model of a sweep or of several seeds, e.g. lr=1e-4,seed=2 (default: the best learning "
        "rate, its best seed).",
    ),
]
ReplaceOpt = OVERWRITE.but(help="Replace output files that exist (they are refused otherwise).").annotated()
LatentDimOpt = Annotated[
    int | None,
    typer.Option("--latent-dim", min=1, help="Which autoencoder of a train-ae run (needed when it has several)."),
]


def _csv_file(value: Path | None) -> Path | None:
    if value is not None and value.suffix.lower() != ".csv":
        raise typer.BadParameter(f"name a .csv file, got {value}")
    return value


def _png_file(value: Path | None) -> Path | None:
    if value is not None and value.suffix.lower() != ".png":
        raise typer.BadParameter(f"name a .png file, got {value}")
    return value


FigureOpt = Annotated[
    Path | None,
    typer.Option(
        "--figure",
        callback=_png_file,
        help="An autoencoder's originals over reconstructions, first 16 images "
        "(default: RUN/predictions/reconstructions.png).",
    ),
]


def predict(
    run: RunArg,
    inputs: Annotated[
        list[Path], typer.Argument(help="PNG or JPEG files, folders of them, or .npy arrays in the dataset's layout.")
    ],
    member: MemberOpt = None,
    latent_dim: LatentDimOpt = None,
    strict_size: Annotated[
        bool,
        typer.Option(
            "--strict-size", metavar="", help="Refuse images of another size instead of cropping and resizing them."
        ),
    ] = False,
    out: Annotated[
        Path | None, typer.Option("--out", callback=_csv_file, help="Also write one CSV row per image here.")
    ] = None,
    figure: FigureOpt = None,
    overwrite: ReplaceOpt = False,
    device: DeviceOpt = "auto",
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Run a trained model on images (any size: centre-cropped, resized): the sign, or an autoencoder's code.

    Example: mle6 predict runs/train-cnn/20250101-120000 hand.jpg photos/ --out predictions.csv
    """
    from mle6cli.engine.folder import prediction_figure
    from mle6cli.tasks.predict import predict as run_predict

    printer = Printer(json_mode=json_out, quiet=quiet)
    result = run_predict(
        run,
        inputs,
        member=member_option(member),
        latent_dim=latent_dim,
        strict_size=strict_size,
        device=device,
        csv=out,
        figure=figure if figure is not None else prediction_figure(run),
        overwrite=overwrite,
    )
    for note in result.resized:
        printer.note(f"resized {note}")
    if json_out:
        printer.json(result.to_json())
        return
    trained = result.trained
    if trained.kind.classifies:
        printer.table(
            f"{trained.command} model {trained.label} ({trained.checkpoint})",
            ["image", "sign", "probability", "top 3"],
            [
                [name, *result.top(i)[0], "  ".join(f"{c}: {cell(p)}" for c, p in result.top(i))]
                for i, name in enumerate(result.names)
            ],
        )
    else:
        printer.table(
            f"{trained.command} model {trained.label} ({trained.checkpoint})",
            ["image", "reconstruction MSE", "latent code"],
            [
                [
                    name,
                    float(result.errors[i]),
                    " ".join(cell(float(v)) for v in result.codes[i][:8])
                    + (" ..." if result.codes.shape[1] > 8 else ""),
                ]
                for i, name in enumerate(result.names)
            ],  # fmt: skip
        )
        printer.line(f"figure: {result.figure}")
    if result.csv:
        printer.line(f"csv: {result.csv}")
