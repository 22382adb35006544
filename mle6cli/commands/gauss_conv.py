from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mle6cli.commands._options import SEED_CHECK, JsonOpt, finite_number, positive_number
from mle6cli.commands._output import Printer


def gauss_conv(
    mu1: Annotated[float, typer.Option("--mu1", help="Mean of X1.", callback=finite_number)] = 0.0,
    sigma1: Annotated[
        float, typer.Option("--sigma1", help="Standard deviation of X1 (1e-100..1e100).", callback=positive_number)
    ] = 1.0,
    mu2: Annotated[float, typer.Option("--mu2", help="Mean of X2.", callback=finite_number)] = 0.0,
    sigma2: Annotated[
        float, typer.Option("--sigma2", help="Standard deviation of X2 (1e-100..1e100).", callback=positive_number)
    ] = 1.0,
    samples: Annotated[int, typer.Option("--samples", min=2, help="Monte-Carlo pairs to draw.")] = 100_000,
    seed: Annotated[int, typer.Option("--seed", callback=SEED_CHECK, help="Seed of the Monte-Carlo draws.")] = 0,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="Write a figure of the pdfs, the sum and the samples (.png, .pdf, .svg or .jpg)."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Sum of two independent Gaussians, N(μ1+μ2, σ1²+σ2²), checked numerically and by sampling.

    Example: mle6 gauss-conv --mu1 1 --sigma1 0.5 --mu2 -2 --sigma2 1.5 --plot gauss.png
    """
    from mle6cli.tasks.maths import GaussError, gauss_conv_check, gaussian_sum

    try:
        gaussian_sum(mu1, sigma1, mu2, sigma2)
    except GaussError as exc:  # a bad value is a usage error naming the option
        raise typer.BadParameter(exc.message, param_hint=f"'--{exc.name}'") from None
    if plot is not None:
        from mle6cli.plots import figure_format

        figure_format(plot)  # a suffix we cannot write fails before any work
    printer = Printer(json_mode=json_out)
    report, data = gauss_conv_check(mu1, sigma1, mu2, sigma2, samples=samples, seed=seed)
    document = report.to_dict()
    if plot is not None:
        from mle6cli.plots import gauss_conv_figure

        document["plot"] = str(gauss_conv_figure(data, plot))
    if json_out:
        printer.json(document)
        return
    r = report
    printer.line(f"X1 ~ N({r.mu1:g}, {r.sigma1:g}²), X2 ~ N({r.mu2:g}, {r.sigma2:g}²), independent")
    printer.line(f"Z = X1 + X2 ~ N(μ1+μ2, σ1²+σ2²) = N({r.mean:.6g}, {r.variance:.6g}), std {r.std:.6g}")
    printer.line("Completing the square in x inside ∫ f1(x) f2(z-x) dx:")
    printer.line(f"  Σ² = σ1²σ2²/(σ1²+σ2²) = {r.Sigma2:.6g}")
    printer.line(f"  μ*(z) = (σ2²μ1 + σ1²(z-μ2))/(σ1²+σ2²) = {r.mu_star_intercept:.6g} + {r.mu_star_slope:.6g}·z")
    printer.line("Checks:")
    printer.line(f"  numeric convolution on a grid: max |error| vs analytic pdf = {r.numeric_max_abs_error:.3g}")
    printer.line(
        f"  {r.samples:,} samples (seed {r.seed}): mean {r.mc_mean:.5g} (analytic {r.mean:.5g}), "
        f"variance {r.mc_variance:.5g} (analytic {r.variance:.5g})"
    )
    printer.line(f"  Kolmogorov-Smirnov test against the analytic cdf: p = {r.ks_pvalue:.3g}")
    if plot is not None:
        printer.line(f"Plot: {document['plot']}")
