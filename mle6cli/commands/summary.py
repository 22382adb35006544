from __future__ import annotations

from typing import Annotated

import typer

from mle6cli.commands._options import JsonOpt
from mle6cli.commands._output import Printer

MODEL_NAMES = ("cnn", "ae", "linear-ae")


def _model_name(value: str) -> str:
    if value not in MODEL_NAMES:
        raise typer.BadParameter(f"unknown model {value!r}; choose one of {', '.join(MODEL_NAMES)}")
    return value


def summary(
    model: Annotated[
        str,
        typer.Argument(
            help="cnn, ae or linear-ae.",
            callback=_model_name,
            autocompletion=lambda incomplete: [m for m in MODEL_NAMES if m.startswith(incomplete)],
        ),
    ],
    latent_dim: Annotated[
        int, typer.Option("--latent-dim", help="Latent size of ae / linear-ae.", min=1, max=784)
    ] = 10,
    json_out: JsonOpt = False,
) -> None:
    """Print a model's torch-summary table (layers, output shapes, parameters).

    Example: mle6 summary cnn
    """
    from mle6cli.tasks.summary import summarize

    result = summarize(model, latent_dim)
    printer = Printer(json_mode=json_out)
    if json_out:
        printer.json(result.to_dict())
    else:
        printer.line(result.table)
