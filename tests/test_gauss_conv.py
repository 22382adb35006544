"""gauss-conv: the analytic sum against scipy/numpy, numeric convolution and sampling."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import integrate, stats

from mle6cli.errors import Mle6Error
from mle6cli.tasks.maths import gauss_conv_check, gaussian_sum, numeric_convolution


@pytest.mark.parametrize("params", [(0, 1, 0, 1), (1, 0.5, -2, 1.5), (100, 3, -40, 0.2), (0, 1e-2, 5, 10)])
def test_analytic_density_equals_the_convolution_integral(params):
    """Independent oracle: scipy's adaptive quadrature of ∫ f1(x) f2(z-x) dx at a few z."""
    mu1, s1, mu2, s2 = params
    g = gaussian_sum(*params)
    for z in g.mean + g.std * np.array([-2.5, -1.0, 0.0, 0.7, 3.0]):
        # the integrand lives where both factors do: the overlap of their ±15σ windows
        lo = max(mu1 - 15 * s1, z - mu2 - 15 * s2)
        hi = min(mu1 + 15 * s1, z - mu2 + 15 * s2)
        peaks = [p for p in (mu1, z - mu2) if lo < p < hi]
        value, _ = integrate.quad(
            lambda x, z=z: stats.norm.pdf(x, mu1, s1) * stats.norm.pdf(z - x, mu2, s2),
            lo,
            hi,
            points=sorted(peaks) or None,
            limit=500,
            epsabs=1e-14,
            epsrel=1e-10,
        )
        assert g.pdf(z) == pytest.approx(value, rel=1e-7, abs=1e-12)


def test_completing_the_square_quantities():
    g = gaussian_sum(1.0, 2.0, -3.0, 0.5)
    assert g.Sigma2 == pytest.approx(4 * 0.25 / 4.25)
    z = 0.37
    assert g.mu_star_intercept + g.mu_star_slope * z == pytest.approx((0.25 * 1.0 + 4 * (z + 3.0)) / 4.25)


@pytest.mark.parametrize("params", [(0, 1, 0, 1), (1, 0.5, -2, 1.5), (3, 0.1, 0, 7)])
def test_numeric_convolution_is_below_1e6(params):
    _, _, error = numeric_convolution(gaussian_sum(*params))
    assert error < 1e-6


def test_three_answers_agree():
    report, _ = gauss_conv_check(1, 0.5, -2, 1.5, samples=100_000, seed=3)
    assert report.mean == -1 and report.variance == pytest.approx(2.5)
    se_mean = math.sqrt(2.5 / 100_000)
    assert abs(report.mc_mean - report.mean) < 5 * se_mean
    assert report.mc_variance == pytest.approx(2.5, rel=0.03)
    assert report.ks_pvalue > 1e-3


def test_sampling_catches_a_wrong_variance():
    """The KS check is able to fail: samples with the wrong variance get a tiny p-value."""
    rng = np.random.default_rng(0)
    z = rng.normal(-1, 0.5, 50_000) + rng.normal(0, 1.5, 50_000)  # variance 2.5 ...
    assert stats.kstest(z, stats.norm(-1, 1.5).cdf).pvalue < 1e-6  # ... tested against sd 1.5


def test_seeded_sampling_is_reproducible():
    a, _ = gauss_conv_check(0, 1, 0, 1, samples=1000, seed=7)
    b, _ = gauss_conv_check(0, 1, 0, 1, samples=1000, seed=7)
    assert a.mc_mean == b.mc_mean and a.ks_pvalue == b.ks_pvalue


@pytest.mark.parametrize("bad", [(0, 0, 0, 1), (0, 1, 0, -2), (float("nan"), 1, 0, 1), (0, float("inf"), 0, 1)])
def test_bad_parameters_are_refused(bad):
    with pytest.raises(Mle6Error):
        gaussian_sum(*bad)


def test_cli_json_and_plot(runner, app, tmp_path):
    plot = tmp_path / "g.png"
    result = runner.invoke(
        app,
        [
            "gauss-conv",
            "--mu1",
            "1",
            "--sigma1",
            "0.5",
            "--mu2",
            "-2",
            "--sigma2",
            "1.5",
            "--samples",
            "20000",
            "--plot",
            str(plot),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    for key in ("mean", "variance", "std", "numeric_max_abs_error", "mc_mean", "mc_variance", "ks_pvalue"):
        assert key in doc
    assert doc["mean"] == -1.0 and doc["variance"] == pytest.approx(2.5)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_human_output(runner, app):
    result = runner.invoke(app, ["gauss-conv", "--samples", "5000"])
    assert result.exit_code == 0
    assert "Z = X1 + X2 ~ N(μ1+μ2, σ1²+σ2²) = N(0, 2)" in result.stdout
    assert "Σ² = σ1²σ2²/(σ1²+σ2²) = 0.5" in result.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--sigma1", "0"], 2, "Error: mle6 gauss-conv: Invalid value for '--sigma1': must be a positive number"),
        (["--sigma2", "-1"], 2, "Invalid value for '--sigma2': must be a positive number, got -1"),
        (["--mu1", "nan"], 2, "Invalid value for '--mu1': must be a finite number, got nan"),
        (["--sigma1", "inf"], 2, "Invalid value for '--sigma1': must be a positive number, got inf"),
        (["--samples", "1"], 2, "Invalid value for '--samples'"),
        (["--mu1", "one"], 2, "Error: mle6 gauss-conv: Invalid value for '--mu1'"),
    ],
)
def test_cli_bad_input(runner, app, args, code, message):
    result = runner.invoke(app, ["gauss-conv", *args])
    assert result.exit_code == code
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("name", "magic"), [("g.svg", b"<svg"), ("g.pdf", b"%PDF"), ("g.jpg", b"\xff\xd8\xff"), ("G.JPEG", b"\xff\xd8\xff")]
)
def test_cli_plot_writes_the_format_its_suffix_names(runner, app, tmp_path, name, magic):
    result = runner.invoke(app, ["gauss-conv", "--samples", "2000", "--plot", name])
    assert result.exit_code == 0, result.output
    assert magic in (tmp_path / name).read_bytes()[:400]
    assert f"Plot: {name}" in result.stdout


def test_cli_plot_with_an_unknown_suffix_is_refused_before_any_work(runner, app, tmp_path, monkeypatch):
    from mle6cli.tasks import maths

    def no_work(*args, **kwargs):
        raise AssertionError("gauss-conv computed before refusing the plot's suffix")

    monkeypatch.setattr(maths, "gauss_conv_check", no_work)
    result = runner.invoke(app, ["gauss-conv", "--plot", "g.gif"])
    assert result.exit_code == 1
    assert result.stderr == "Error: cannot write a figure as 'g.gif': use .png, .pdf, .svg or .jpg\n"
    assert result.stdout == "" and list(tmp_path.iterdir()) == []
