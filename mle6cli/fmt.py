"""The one place for number formats: files, tables, reports and labels.

No imports beyond the standard library: the CLI's start-up path uses it.
"""

from __future__ import annotations

import math


def exact(value) -> str:
    """Metrics files: repr of a float (shortest round-trip), so files are byte-stable and exact."""
    return repr(value) if isinstance(value, float) else str(value)


def cell(value, missing: str = "—") -> str:
    """Tables and reports: 4 decimals, or 4 significant digits for small non-zero values."""
    if value is None:
        return missing
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return missing if math.isnan(value) else str(value)
    return f"{value:.4g}" if abs(value) < 1e-3 and value != 0 else f"{value:.4f}"


def mean_ci(estimate: dict | None, digits: int = 4) -> str:
    """'0.9083 ± 0.0121' (a 95% CI's half-width), '0.9083' for one seed, '-' for none (`tasks.stats`)."""
    if not estimate or estimate.get("mean") is None:
        return "-"
    if estimate.get("ci_high") is None:
        return f"{estimate['mean']:.{digits}f}"
    return f"{estimate['mean']:.{digits}f} ± {(estimate['ci_high'] - estimate['ci_low']) / 2:.{digits}f}"


def lr_label(lr: float) -> str:
    """The shortest exact scientific form: 1e-3 -> '1e-03', 2.5e-4 -> '2.5e-04' (folders, tables, legends)."""
    for digits in range(17):
        text = f"{lr:.{digits}e}"
        if float(text) == lr:
            return text
    return repr(lr)


def plural(count: int, one: str, many: str | None = None) -> str:
    """'1 epoch', '2 epochs'."""
    return f"{count} {one if count == 1 else (many or one + 's')}"
