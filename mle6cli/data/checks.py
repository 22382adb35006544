"""The pixel check every image dataset gets (SIGNS npy, SIGNS h5 and MNIST IDX), with one wording.

Images are an array whose first axis counts them; the messages name the file (`name`) and the
first image at fault. The shape each dataset expects is checked by its own module first.
"""

from __future__ import annotations

import numpy as np

from mle6cli.errors import DataError


def first_sample(mask: np.ndarray) -> int:
    """The sample (first axis) of the first True in `mask`."""
    return int(np.unravel_index(int(np.flatnonzero(mask.ravel())[0]), mask.shape)[0])


def check_pixels(x: np.ndarray, name: str, notes: list[str] | None = None, *, alpha: bool = False) -> np.ndarray:
    """Pixels 0..255 (or floats in [0, 1]), finite; one-line DataError naming `name` otherwise.

    Fractional values above 1 are ambiguous and refused, as are integer pixels no larger than 1
    (scaled images cast to integers). With `alpha` the last channel is an alpha channel: refused
    where it is transparent anywhere, dropped (with a note) where it is opaque everywhere.
    Returns the pixels, without their alpha channel.
    """
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise DataError(f"{name} has dtype {x.dtype}; pixels must be integers 0..255 or floats in [0, 1]")
    is_float = np.issubdtype(x.dtype, np.floating)
    if is_float:
        if np.isnan(x).any():
            raise DataError(f"{name} contains NaN (image {first_sample(np.isnan(x))})")
        if np.isinf(x).any():
            raise DataError(f"{name} contains inf (image {first_sample(np.isinf(x))})")
    lo, hi = _range(x, is_float)
    if lo < 0 or hi > 255:
        expected = "0..255 (or 0..1)" if is_float else "0..255"
        raise DataError(f"{name} has pixel values from {lo:g} to {hi:g}; expected {expected}")
    if alpha:
        x = _drop_opaque_alpha(x, name, is_float, hi, notes)
        lo, hi = _range(x, is_float)
    if is_float and hi > 1 and not np.all(x == np.round(x)):
        raise DataError(
            f"{name} has fractional pixel values above 1 (up to {hi:g}; image {first_sample(x != np.round(x))}); "
            "expected whole numbers 0..255 or floats in [0, 1]"
        )
    if not is_float and hi <= 1:
        raise DataError(
            f"{name} has integer pixel values only {lo}..{hi}; expected 0..255 "
            "(images scaled to [0, 1] and then cast to integers lose their content)"
        )
    return x


def _range(x: np.ndarray, is_float: bool) -> tuple[float, float] | tuple[int, int]:
    return (float(x.min()), float(x.max())) if is_float else (int(x.min()), int(x.max()))


def _drop_opaque_alpha(x: np.ndarray, name: str, is_float: bool, hi: float, notes: list[str] | None) -> np.ndarray:
    top = 255 if not is_float or hi > 1 else 1  # opaque: the brightest value of the pixels' own scale
    if not np.all(x[..., -1] == top):
        rgb = "×".join(["N", *map(str, x.shape[1:-1]), "3"])
        raise DataError(
            f"{name} holds RGBA images (shape {tuple(x.shape)}) with transparent pixels "
            f"(sample {first_sample(x[..., -1] != top)}); save them as {rgb} RGB"
        )
    if notes is not None:
        notes.append(f"Note: {name} holds RGBA images, opaque everywhere; the alpha channel was dropped.")
    return x[..., :-1]
