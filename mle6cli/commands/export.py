from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mle6cli.commands._options import JsonOpt, QuietOpt
from mle6cli.commands._output import Printer
from mle6cli.commands.predict import LatentDimOpt, MemberOpt, RunArg, member_option


def _format(value: str) -> str:
    if value not in ("onnx", "torchscript"):
        raise typer.BadParameter(f"choose onnx or torchscript, got {value!r}")
    return value


def export(
    run: RunArg,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            callback=_format,
            help="onnx (recommended; needs pip install 'mle6cli\\[export]') or torchscript.",
        ),
    ] = "onnx",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="The file to write (default: beside the checkpoint, model.onnx or model.torchscript.pt)."
        ),
    ] = None,
    member: MemberOpt = None,
    latent_dim: LatentDimOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Export a trained model to ONNX or TorchScript, then run the file and compare it with torch.

    Example: mle6 export runs/train-cnn/20250101-120000 --format onnx --out signs.onnx
    """
    from mle6cli.tasks.export import export as run_export

    printer = Printer(json_mode=json_out, quiet=quiet)
    result = run_export(run, fmt=fmt, out=out, member=member_option(member), latent_dim=latent_dim)
    for note in result.notes:
        printer.note(f"Note: {note}")
    if json_out:
        printer.json(result.to_json())
        return
    printer.line(f"{result.format}: {result.path} ({result.trained.command} model {result.trained.label})")
    printer.line(f"made by {result.exporter}")
    printer.line(
        f"checked on {result.checked_on}: largest difference from torch {result.max_difference:.3g} "
        f"(tolerance {result.tolerance:g})"
    )
