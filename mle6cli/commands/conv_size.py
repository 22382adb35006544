from __future__ import annotations

from typing import Annotated

import typer

from mle6cli.commands._options import JsonOpt
from mle6cli.commands._output import Printer
from mle6cli.errors import Mle6Error
from mle6cli.tasks import maths


def _pair_option(name: str, minimum: int = 1):
    """A parser of `N`/`NxM` for option `name`; a value below `minimum` is a usage error too."""

    def parse(value: str | None):
        if value is None:
            return None
        try:
            pair = maths.parse_pair(value, name)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        if min(pair) < minimum:
            bound = "positive" if minimum == 1 else f"at least {minimum}"
            raise typer.BadParameter(f"{name} must be {bound}, got {pair[0]}x{pair[1]}")
        return pair

    return parse


def _padding(value: str):
    if str(value).strip().lower() in ("same", "valid"):
        return maths.parse_padding(value)
    return _pair_option("--padding", minimum=0)(value)


def conv_size(
    input: Annotated[str, typer.Option("--input", "-i", help="Input size H or HxW.")] = "64",
    kernel: Annotated[str, typer.Option("--kernel", "-k", help="Kernel size K or KHxKW.")] = "3",
    padding: Annotated[str, typer.Option("--padding", "-p", help="P, PHxPW, 'same' or 'valid'.")] = "0",
    stride: Annotated[str, typer.Option("--stride", "-s", help="Stride S or SHxSW.")] = "1",
    dilation: Annotated[str, typer.Option("--dilation", "-d", help="Dilation D or DHxDW.")] = "1",
    transposed: Annotated[
        bool, typer.Option("--transposed", metavar="", help="A transposed convolution (ConvTranspose2d).")
    ] = False,
    output_padding: Annotated[
        str, typer.Option("--output-padding", help="Extra size on one side of a transposed output.")
    ] = "0",
    verify: Annotated[
        bool, typer.Option("--verify", metavar="", help="Also build the torch layer and confirm the shape.")
    ] = False,
    model: Annotated[
        str | None, typer.Option("--model", help="Trace a whole model layer by layer instead: 'cnn'.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Output size of a 2-D convolution: floor((H + 2p - d(K-1) - 1)/s) + 1.

    Example: mle6 conv-size --input 64 --kernel 3 --padding same
    """
    printer = Printer(json_mode=json_out)
    size = _pair_option("--input")(input)
    if model is not None:
        return _trace_model(printer, model, size, verify)
    geometry = maths.ConvGeometry(
        input=size,
        kernel=_pair_option("--kernel")(kernel),
        padding=_padding(padding),
        stride=_pair_option("--stride")(stride),
        dilation=_pair_option("--dilation")(dilation),
        transposed=transposed,
        output_padding=_pair_option("--output-padding", minimum=0)(output_padding),
    )
    result = maths.conv_output(geometry)
    document = result.to_dict()
    if verify:
        from mle6cli.tasks.verify import torch_conv_shape

        torch_shape = torch_conv_shape(geometry)
        if torch_shape != result.output:
            raise Mle6Error(
                f"torch gives {torch_shape[0]}x{torch_shape[1]}, the formula {result.output[0]}x{result.output[1]}"
            )
        document["verified"] = True
    if json_out:
        printer.json(document)
        return
    kind = "ConvTranspose2d" if transposed else "Conv2d"
    printer.line(f"{kind}: input {size[0]}x{size[1]} -> output {result.output[0]}x{result.output[1]}")
    for formula in result.formulas:
        printer.line(f"  {formula}")
    for case in result.cases:
        printer.line(f"  case {case}")
    if verify:
        printer.line("  verified against torch.nn." + kind)


def _trace_model(printer: Printer, model: str, size, verify: bool) -> None:
    if model != "cnn":
        raise typer.BadParameter(f"unknown model {model!r}; only 'cnn' can be traced", param_hint="'--model'")
    rows = maths.cnn_trace(size)
    document = {"model": model, "input": list(size), "layers": rows, "features": rows[-3]["shape"][0]}
    if verify:
        from mle6cli.tasks.verify import torch_cnn_shapes

        torch_shapes = torch_cnn_shapes(size)
        if torch_shapes != [r["shape"] for r in rows]:
            raise Mle6Error(f"the torch model's shapes {torch_shapes} differ from the trace")
        document["verified"] = True
    if printer.json_mode:
        printer.json(document)
        return
    printer.table(
        f"The exercise's CNN on a {size[0]}x{size[1]} RGB image",
        ["layer", "shape (C, H, W)"],
        [[r["layer"], " x ".join(map(str, r["shape"]))] for r in rows],
    )
    if verify:
        printer.line("verified against the torch model")
