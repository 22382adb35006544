"""Seeds as an axis: how much of a difference is seed noise.

For each configuration (a learning rate, a latent size) the final metric over its seeds gets a
mean, a standard deviation (n − 1) and a 95% confidence interval from Student's t. Two
configurations are compared paired by seed — the same seed means the same initial weights and
batch order in both — so the interval is that of the mean per-seed difference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

LEVEL = 0.95


@dataclass(frozen=True)
class Estimate:
    n: int
    mean: float | None
    std: float | None  # sample standard deviation; None under two values
    ci_low: float | None  # 95% Student t interval of the mean; None under two values
    ci_high: float | None

    @property
    def half_width(self) -> float | None:
        return None if self.ci_high is None else (self.ci_high - self.ci_low) / 2

    def to_dict(self) -> dict:
        return asdict(self)


def estimate(values: Sequence[float]) -> Estimate:
    """Mean, std and the 95% t interval of the finite values (NaN, inf and None are left out)."""
    xs = [float(v) for v in values if v is not None and math.isfinite(v)]
    n = len(xs)
    if n == 0:
        return Estimate(0, None, None, None, None)
    mean = sum(xs) / n
    if n < 2:
        return Estimate(n, mean, None, None, None)
    # scipy.special, not scipy.stats: the same quantile (stats.t.ppf calls stdtrit) for a
    # third of the import time, and only here, so a one-seed run never pays for it.
    from scipy.special import stdtrit

    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = float(stdtrit(n - 1, 0.5 + LEVEL / 2)) * std / math.sqrt(n)  # a plain float: CSVs print repr
    return Estimate(n, mean, std, mean - half, mean + half)


@dataclass(frozen=True)
class Paired:
    """config `a` minus config `b`, seed by seed."""

    a: str
    b: str
    metric: str
    seeds: int
    difference: Estimate
    p_value: float | None  # two-sided paired t test

    @property
    def distinguishable(self) -> bool:
        d = self.difference
        return d.ci_low is not None and (d.ci_low > 0 or d.ci_high < 0)

    def sentence(self) -> str:
        d = self.difference
        if d.mean is None or d.ci_low is None:
            return f"{self.a} against {self.b}: one seed cannot tell them apart (give --seeds for a comparison)"
        if not self.distinguishable:
            return f"{self.a} is not distinguishable from {self.b} with {self.seeds} seeds"
        verb = "beats" if d.mean > 0 else "trails"
        return f"{self.a} {verb} {self.b} by {abs(d.mean):.3f} ± {d.half_width:.3f} {self.metric} ({self.seeds} seeds)"

    def to_dict(self) -> dict:
        return {
            "a": self.a,
            "b": self.b,
            "metric": self.metric,
            "seeds": self.seeds,
            "difference": self.difference.to_dict(),
            "p_value": self.p_value,
            "distinguishable": self.distinguishable,
            "sentence": self.sentence(),
        }


def paired(a: dict[int, float], b: dict[int, float], name_a: str, name_b: str, metric: str) -> Paired:
    """Compare two configurations' values keyed by seed, over the seeds both have finite values for."""
    seeds = [s for s in a if s in b and _finite(a[s]) and _finite(b[s])]
    diffs = [a[s] - b[s] for s in seeds]
    difference = estimate(diffs)
    p = None
    if len(seeds) >= 2:
        if any(d != diffs[0] for d in diffs):
            # scipy.stats.ttest_rel's p-value, from the same t statistic: ttest_rel warns on stderr when the
            # differences agree to the last bits (accuracies 0.9 - 0.8 and 0.8 - 0.7), where t is merely huge
            from scipy.special import stdtr

            t = difference.mean / (difference.std / math.sqrt(len(diffs)))
            p = float(2 * stdtr(len(diffs) - 1, -abs(t)))
        else:
            p = 1.0 if diffs[0] == 0 else 0.0
    return Paired(name_a, name_b, metric, len(seeds), difference, p)


def _finite(v) -> bool:
    return v is not None and math.isfinite(v)
