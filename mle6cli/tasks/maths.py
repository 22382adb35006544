"""Pure arithmetic of the exercise: convolution output sizes and the sum of two Gaussians.

Nothing here imports torch; `mle6 conv-size` and `mle6 gauss-conv` stay fast because of it.
The convolution rules mirror torch's own checks, so every geometry torch refuses is refused
here too, with a message that names the problem.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field

from mle6cli.errors import ConvSizeError, Mle6Error

Pair = tuple[int, int]

_PAIR_RE = re.compile(r"^\s*([+-]?\d+)\s*(?:[xX×,]\s*([+-]?\d+)\s*)?$")


def parse_pair(text: str, name: str) -> Pair:
    """Parse `N` (square) or `NxM` into a pair of ints; raise ValueError naming the option otherwise."""
    match = _PAIR_RE.match(str(text))
    if not match:
        raise ValueError(f"{name} must be N or NxM with whole numbers, got {text!r}")
    first = int(match.group(1))
    second = int(match.group(2)) if match.group(2) is not None else first
    return first, second


def parse_padding(text: str) -> Pair | str:
    """Padding is `N`, `NxM`, `same` or `valid`."""
    word = str(text).strip().lower()
    if word in ("same", "valid"):
        return word
    return parse_pair(text, "--padding")


def _fmt(pair: Pair) -> str:
    return f"{pair[0]}x{pair[1]}"


@dataclass(frozen=True)
class ConvGeometry:
    """One 2-D convolution (or transposed convolution) applied to an H×W input."""

    input: Pair
    kernel: Pair
    padding: Pair | str = (0, 0)
    stride: Pair = (1, 1)
    dilation: Pair = (1, 1)
    transposed: bool = False
    output_padding: Pair = (0, 0)


@dataclass
class ConvResult:
    geometry: ConvGeometry
    padding: Pair  # the numeric (left/top) padding, resolved from same/valid
    output: Pair
    formulas: list[str]  # one per axis, numbers filled in
    cases: list[str] = field(default_factory=list)  # the special cases the exercise names

    def to_dict(self) -> dict:
        g = self.geometry
        return {
            "input": list(g.input),
            "kernel": list(g.kernel),
            "padding": list(self.padding),
            "padding_mode": g.padding if isinstance(g.padding, str) else "explicit",
            "stride": list(g.stride),
            "dilation": list(g.dilation),
            "transposed": g.transposed,
            "output_padding": list(g.output_padding),
            "output": list(self.output),
            "formulas": self.formulas,
            "cases": self.cases,
        }


def _check_positive(pair: Pair, what: str, minimum: int = 1) -> None:
    if min(pair) < minimum:
        bound = "positive" if minimum == 1 else f"at least {minimum}"
        raise ConvSizeError(f"{what} must be {bound}, got {_fmt(pair)}")


def conv_output(geom: ConvGeometry) -> ConvResult:
    """Output size of a Conv2d / ConvTranspose2d, with torch's rules for what is allowed.

    Conv:        H_out = floor((H + 2p - d(K-1) - 1) / s) + 1
    Transposed:  H_out = (H - 1)s - 2p + d(K-1) + op + 1
    """
    _check_positive(geom.input, "input size")
    _check_positive(geom.kernel, "kernel size")
    _check_positive(geom.stride, "stride")
    _check_positive(geom.dilation, "dilation")
    if min(geom.output_padding) < 0:
        raise ConvSizeError(f"output padding must not be negative, got {_fmt(geom.output_padding)}")

    mode = geom.padding if isinstance(geom.padding, str) else None
    if geom.transposed:
        if mode is not None:
            raise ConvSizeError(f"padding '{mode}' is not supported for transposed convolutions; give a number")
        for axis in range(2):
            op, s, d = geom.output_padding[axis], geom.stride[axis], geom.dilation[axis]
            if op >= s and op >= d:
                raise ConvSizeError(f"output padding {op} must be smaller than the stride ({s}) or the dilation ({d})")
    elif max(geom.output_padding) > 0:
        raise ConvSizeError("output padding applies only to transposed convolutions (add --transposed)")

    if mode == "same":
        if max(geom.stride) > 1:
            raise ConvSizeError(f"padding 'same' needs stride 1 (as in torch), got stride {_fmt(geom.stride)}")
        # torch pads d(K-1) in total, the smaller half first when it is odd
        padding = tuple(d * (k - 1) // 2 for k, d in zip(geom.kernel, geom.dilation, strict=True))
    elif mode == "valid":
        padding = (0, 0)
    else:
        padding = geom.padding
        if min(padding) < 0:
            raise ConvSizeError(f"padding must not be negative, got {_fmt(padding)}")

    output, formulas = [], []
    for axis, label in enumerate("HW"):
        n, k, s, d = geom.input[axis], geom.kernel[axis], geom.stride[axis], geom.dilation[axis]
        p = padding[axis]
        span = d * (k - 1) + 1  # the dilated kernel's extent
        if geom.transposed:
            op = geom.output_padding[axis]
            out = (n - 1) * s - 2 * p + d * (k - 1) + op + 1
            formulas.append(f"{label}_out = ({n} - 1)·{s} - 2·{p} + {d}·({k} - 1) + {op} + 1 = {out}")
            if out < 1:
                raise ConvSizeError(
                    f"transposed convolution has no output along {label}: size would be {out}; reduce the padding"
                )
        else:
            total_pad = d * (k - 1) if mode == "same" else 2 * p
            padded = n + total_pad
            if padded < span:
                raise ConvSizeError(
                    f"kernel extent {span} (kernel {k}, dilation {d}) is larger than the padded "
                    f"input {padded} along {label}: no valid output"
                )
            out = (padded - span) // s + 1
            pad_text = f"{total_pad}" if mode == "same" else f"2·{p}"
            formulas.append(f"{label}_out = floor(({n} + {pad_text} - {d}·({k} - 1) - 1) / {s}) + 1 = {out}")
        output.append(out)

    result = ConvResult(geom, tuple(padding), tuple(output), formulas)
    result.cases = _name_cases(result)
    return result


def _name_cases(result: ConvResult) -> list[str]:
    g = result.geometry
    cases = []
    if g.transposed:
        if any(o > i for o, i in zip(result.output, g.input, strict=True)):
            cases.append("up-sampling: a transposed convolution with stride s grows the input about s times")
        return cases
    if g.padding == "valid" or result.padding == (0, 0):
        cases.append("valid: no padding, the output shrinks by d(K-1)")
    if result.output == g.input:
        cases.append("same: the padding keeps the output size equal to the input")
    if max(g.stride) > 1:
        cases.append("down-sampling: stride s divides the size by about s")
    return cases


def pool_output(size: int, kernel: int, stride: int | None = None) -> int:
    """MaxPool2d output size (no padding, no dilation): floor((H - K) / s) + 1."""
    stride = stride or kernel
    if size < kernel:
        raise ConvSizeError(f"pooling window {kernel} is larger than its input {size}")
    return (size - kernel) // stride + 1


# The exercise's CNN, layer by layer: what conv-size --model cnn traces.
CNN_IN_CHANNELS = 3
CNN_FEATURES = 2048  # what the first Linear layer expects


def cnn_trace(input_size: Pair = (64, 64)) -> list[dict]:
    """Trace the exercise's CNN with plain integers: 3×64×64 → … → 2048 features → 6 classes."""
    _check_positive(input_size, "input size")
    rows = [{"layer": "input", "shape": [CNN_IN_CHANNELS, *input_size]}]
    channels, size = CNN_IN_CHANNELS, input_size
    for out_channels in (4, 8):
        conv = conv_output(ConvGeometry(input=size, kernel=(3, 3), padding="same"))
        size = conv.output
        rows.append({"layer": f"Conv2d({channels}→{out_channels}, 3, 'same')", "shape": [out_channels, *size]})
        rows.append({"layer": f"BatchNorm2d({out_channels}) + ReLU", "shape": [out_channels, *size]})
        size = (pool_output(size[0], 2), pool_output(size[1], 2))
        rows.append({"layer": "MaxPool2d(2)", "shape": [out_channels, *size]})
        channels = out_channels
    features = channels * size[0] * size[1]
    rows.append({"layer": "Flatten", "shape": [features]})
    if features != CNN_FEATURES:
        raise ConvSizeError(
            f"the CNN's first Linear layer expects {CNN_FEATURES} features, but a "
            f"{_fmt(input_size)} input gives {features}; the model takes 64x64 images"
        )
    rows.append({"layer": "Linear(2048→64) + ReLU", "shape": [64]})
    rows.append({"layer": "Linear(64→6) + LogSoftmax", "shape": [6]})
    return rows


# ---------------------------------------------------------------- Gaussians


@dataclass
class GaussianSum:
    """Z = X1 + X2 with Xi ~ N(mu_i, sigma_i²) independent: Z ~ N(mu1 + mu2, sigma1² + sigma2²).

    Completing the square in x inside f_Z(z) = ∫ f1(x) f2(z - x) dx gives a Gaussian in x with
    variance Sigma² = σ1²σ2² / (σ1² + σ2²) and mean mu*(z) = (σ2² μ1 + σ1² (z - μ2)) / (σ1² + σ2²);
    integrating it out leaves the N(μ1 + μ2, σ1² + σ2²) density in z.
    """

    mu1: float
    sigma1: float
    mu2: float
    sigma2: float

    @property
    def mean(self) -> float:
        return self.mu1 + self.mu2

    @property
    def variance(self) -> float:
        return self.sigma1**2 + self.sigma2**2

    @property
    def std(self) -> float:
        return math.sqrt(self.variance)

    @property
    def Sigma2(self) -> float:  # noqa: N802 - the exercise's symbol
        return self.sigma1**2 * self.sigma2**2 / self.variance

    @property
    def mu_star_slope(self) -> float:
        return self.sigma1**2 / self.variance

    @property
    def mu_star_intercept(self) -> float:
        return (self.sigma2**2 * self.mu1 - self.sigma1**2 * self.mu2) / self.variance

    def pdf(self, z):
        import numpy as np

        return np.exp(-0.5 * (np.asarray(z) - self.mean) ** 2 / self.variance) / math.sqrt(2 * math.pi * self.variance)


# Bounds that keep every check meaningful in double precision: σ² and σ1²+σ2² stay normal
# numbers, and a sample μ + σ·ε keeps about four significant digits of σ·ε.
SIGMA_RANGE = (1e-100, 1e100)
MAX_MU = 1e100
MAX_MU_OVER_SIGMA = 1e12


def check_gaussian(name: str, value: float, *, scale: bool) -> None:
    """One parameter: finite, and for a standard deviation within SIGMA_RANGE; GaussError naming it."""
    if not math.isfinite(value):
        raise GaussError(name, f"must be a finite number, got {value}")
    if scale and not SIGMA_RANGE[0] <= value <= SIGMA_RANGE[1]:
        raise GaussError(name, f"must be between {SIGMA_RANGE[0]:g} and {SIGMA_RANGE[1]:g}, got {value:g}")
    if not scale and abs(value) > MAX_MU:
        raise GaussError(name, f"must be between {-MAX_MU:g} and {MAX_MU:g}, got {value:g}")


class GaussError(Mle6Error, ValueError):
    """A parameter of the Gaussian sum outside what double precision can check."""

    def __init__(self, name: str, message: str):
        super().__init__(f"--{name} {message}")
        self.name, self.message = name, message


def gaussian_sum(mu1: float, sigma1: float, mu2: float, sigma2: float) -> GaussianSum:
    for name, value, scale in (
        ("mu1", mu1, False),
        ("sigma1", sigma1, True),
        ("mu2", mu2, False),
        ("sigma2", sigma2, True),
    ):
        check_gaussian(name, value, scale=scale)
    for name, mu in (("mu1", mu1), ("mu2", mu2)):
        if abs(mu) > MAX_MU_OVER_SIGMA * min(sigma1, sigma2):
            raise GaussError(
                name,
                f"is {abs(mu) / min(sigma1, sigma2):.3g} times the smaller standard deviation; at most "
                f"{MAX_MU_OVER_SIGMA:g} keeps the samples' spread measurable in double precision",
            )
    return GaussianSum(float(mu1), float(sigma1), float(mu2), float(sigma2))


MAX_GRID_POINTS = 1 << 21


def numeric_convolution(g: GaussianSum, points_per_sigma: int = 10, tails: float = 12.0):
    """Convolve the two pdfs on a shared uniform grid and compare with the analytic density.

    Each pdf is sampled at mu_i + k·h out to `tails` standard deviations; the discrete
    convolution times h is a Riemann sum of ∫ f1(x) f2(z - x) dx, which for smooth, fast-decaying
    integrands is accurate far beyond 1e-6 once h resolves the narrower pdf.
    Returns (z, numeric_pdf, max_abs_error).
    """
    import numpy as np
    from scipy.signal import fftconvolve
    from scipy.stats import norm

    h = min(g.sigma1, g.sigma2) / points_per_sigma
    n1 = math.ceil(tails * g.sigma1 / h)
    n2 = math.ceil(tails * g.sigma2 / h)
    if 2 * (n1 + n2) + 1 > MAX_GRID_POINTS:  # extreme sigma ratios: coarser grid, error reported as measured
        h = tails * (g.sigma1 + g.sigma2) * 2 / MAX_GRID_POINTS
        n1 = math.ceil(tails * g.sigma1 / h)
        n2 = math.ceil(tails * g.sigma2 / h)
    k1 = np.arange(-n1, n1 + 1)
    k2 = np.arange(-n2, n2 + 1)
    f1 = norm.pdf(g.mu1 + k1 * h, g.mu1, g.sigma1)
    f2 = norm.pdf(g.mu2 + k2 * h, g.mu2, g.sigma2)
    numeric = fftconvolve(f1, f2) * h  # (len(f1) + len(f2) - 1,)
    z = g.mean + np.arange(-(n1 + n2), n1 + n2 + 1) * h
    error = float(np.max(np.abs(numeric - g.pdf(z))))
    return z, numeric, error


def monte_carlo(g: GaussianSum, samples: int, seed: int):
    """Draw `samples` pairs, sum them, and test the sums against the analytic cdf (Kolmogorov–Smirnov)."""
    import numpy as np
    from scipy import stats

    if samples < 2:
        raise Mle6Error(f"--samples must be at least 2, got {samples}")
    rng = np.random.default_rng(seed)
    z = rng.normal(g.mu1, g.sigma1, samples) + rng.normal(g.mu2, g.sigma2, samples)
    ks = stats.kstest(z, stats.norm(loc=g.mean, scale=g.std).cdf)
    return z, float(z.mean()), float(z.var(ddof=1)), float(ks.pvalue)


@dataclass
class GaussConvReport:
    mu1: float
    sigma1: float
    mu2: float
    sigma2: float
    mean: float
    variance: float
    std: float
    Sigma2: float  # noqa: N815 - the exercise's symbol
    mu_star_slope: float
    mu_star_intercept: float
    numeric_max_abs_error: float
    samples: int
    seed: int
    mc_mean: float
    mc_variance: float
    ks_pvalue: float

    def to_dict(self) -> dict:
        return asdict(self)


def gauss_conv_check(mu1: float, sigma1: float, mu2: float, sigma2: float, samples: int = 100_000, seed: int = 0):
    """The analytic sum, checked numerically and by sampling. Returns (report, plot data)."""
    g = gaussian_sum(mu1, sigma1, mu2, sigma2)
    z_grid, numeric, error = numeric_convolution(g)
    draws, mc_mean, mc_var, pvalue = monte_carlo(g, samples, seed)
    report = GaussConvReport(
        mu1=g.mu1,
        sigma1=g.sigma1,
        mu2=g.mu2,
        sigma2=g.sigma2,
        mean=g.mean,
        variance=g.variance,
        std=g.std,
        Sigma2=g.Sigma2,
        mu_star_slope=g.mu_star_slope,
        mu_star_intercept=g.mu_star_intercept,
        numeric_max_abs_error=error,
        samples=samples,
        seed=seed,
        mc_mean=mc_mean,
        mc_variance=mc_var,
        ks_pvalue=pvalue,
    )
    return report, {"gaussian": g, "z": z_grid, "numeric": numeric, "draws": draws}
