"""The SIGNS hand-sign dataset: load and validate the npy layout.

The exercise's layout is a folder with `X_train.npy, Y_train.npy, X_val.npy, Y_val.npy,
X_test.npy, Y_test.npy`: uint8 N×64×64×3 RGB images and integer labels 0–5. `load_signs`
checks every file before any training starts, so a bad dataset fails in one precise line
instead of deep inside a run; then it scales to [0, 1], converts NHWC → NCHW once and moves
the whole set to the training device.

Its neighbours: `data.arrays` reads the npy files, `data.checks` checks pixels (as for MNIST),
`data.synthetic` draws stand-in hands, `data.prepare` converts the original h5/jpg files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mle6cli.data.arrays import read_npy
from mle6cli.data.checks import check_pixels, first_sample
from mle6cli.errors import DataError

CLASSES = 6
SIDE = 64
SPLITS = ("train", "val", "test")
FILES = tuple(f"{kind}_{split}.npy" for split in SPLITS for kind in ("X", "Y"))
# the real dataset's sizes per class: 1080 training photos = 160 train + 20 val per class, 120 test
STANDARD_PER_CLASS = (160, 20, 20)


@dataclass
class SignsData:
    """train/val/test as `data.splits.Split`s on the device (x float32 in [0, 1], (N, 3, 64, 64); y int64)."""

    train: object
    val: object
    test: object
    source: dict = field(default_factory=dict)  # where the data came from, for config.json/summary.json
    notes: list[str] = field(default_factory=list)  # what was accepted only after a second look, for the user
    fingerprint: str | None = None  # of the arrays as loaded, before scaling (`data.splits.fingerprint`)

    @property
    def synthetic(self) -> bool:
        return bool(self.source.get("synthetic"))

    def sizes(self) -> dict:
        return {name: len(getattr(self, name)) for name in SPLITS}

    def describe(self) -> dict:
        """Where the data came from and the split sizes, as config.json records them."""
        return self.source

    def synthetic_note(self) -> str:
        from mle6cli.data.splits import synthetic_note

        return synthetic_note("built-in drawn hands", self.sizes(), "the SIGNS photos")


# ---------------------------------------------------------------- validation


def _count_message(xn: str, yn: str, n_images: int, n_labels: int) -> str:
    if xn == yn:  # one source file or folder holds both
        return f"{xn} holds {n_images} images but {n_labels} labels"
    return f"{xn} has {n_images} images but {yn} has {n_labels} labels"


def check_labels(y: np.ndarray, yn: str, notes: list[str] | None = None) -> np.ndarray:
    """Labels 0..5 as a 1-D int64 array; one-line DataError naming `yn` otherwise.

    Float labels that are whole numbers are accepted (with a note); anything else is refused.
    """
    if y.dtype == object:
        raise DataError(f"{yn} holds Python objects, not numbers")
    if y.ndim == 2 and 1 in y.shape:  # the original h5 files store labels as (1, N)
        y = y.reshape(-1)
    if y.ndim != 1:
        one_hot = y.ndim == 2 and y.shape[1] == CLASSES
        hint = " (one-hot rows? store each label as its class number 0..5)" if one_hot else ""
        raise DataError(f"{yn} must be a 1-D array of labels, got shape {tuple(y.shape)}{hint}")
    if not np.issubdtype(y.dtype, np.number) or np.issubdtype(y.dtype, np.complexfloating):
        raise DataError(f"{yn} has dtype {y.dtype}; labels must be integers 0..5")
    if np.issubdtype(y.dtype, np.floating):
        if np.isnan(y).any():
            raise DataError(f"{yn} contains NaN")
        if np.isinf(y).any():
            raise DataError(f"{yn} contains inf (sample {first_sample(np.isinf(y))})")
        if not np.all(y == np.round(y)):
            bad = int(np.flatnonzero(y != np.round(y))[0])
            raise DataError(f"{yn} holds a non-integer label {y[bad].item()!r} (sample {bad}); labels must be 0..5")
    bad = np.flatnonzero((y < 0) | (y >= CLASSES))
    if len(bad):
        i = int(bad[0])
        raise DataError(f"{yn} has {len(bad)} label(s) outside 0..5, e.g. {y[i].item()!r} at sample {i}")
    if np.issubdtype(y.dtype, np.floating) and notes is not None:
        notes.append(f"Note: {yn} holds {y.dtype} labels; read as the whole numbers 0..5 they are.")
    return y.astype(np.int64)


def check_images(
    x: np.ndarray, xn: str, notes: list[str] | None = None, *, float_use: dict[bool, str] | None = None
) -> np.ndarray:
    """N×64×64×3 images with pixels 0..255 (or floats in [0, 1]); DataError naming `xn` otherwise.

    Returns the images, RGB: an RGBA array whose alpha is opaque everywhere loses its alpha
    (with a note). The pixels get the check every dataset's get (`data.checks.check_pixels`);
    float pixels are accepted with a note (`float_use[in_unit_range]` ends it: what is done with them).
    """
    if x.dtype == object:
        raise DataError(f"{xn} holds Python objects, not numbers")
    if x.ndim == 0:
        raise DataError(f"{xn} holds a single value, not images")
    if len(x) == 0:
        raise DataError(f"{xn} holds no images")
    rgba = x.shape[1:] == (SIDE, SIDE, 4)
    if x.shape[1:] != (SIDE, SIDE, 3) and not rgba:
        raise DataError(f"{xn} must hold N×64×64×3 RGB images, got shape {tuple(x.shape)}")
    x = check_pixels(x, xn, notes, alpha=rgba)
    if np.issubdtype(x.dtype, np.floating) and notes is not None:
        in_unit = float(x.max()) <= 1
        what = "in [0, 1]" if in_unit else "with whole values 0..255"
        notes.append(f"Note: {xn} holds {x.dtype} pixels {what}; {(float_use or _FLOAT_USE)[in_unit]}.")
    return x


_FLOAT_USE = {True: "used as they are (not divided by 255)", False: "divided by 255 as uint8 pixels are"}


def check_classes(y: np.ndarray, yn: str, split: str, notes: list[str] | None = None) -> None:
    """Every class 0..5 in the training split; a val/test split may lack one (a note says which)."""
    absent = [c for c in range(CLASSES) if not np.any(y == c)]
    if not absent:
        return
    names = ", ".join(map(str, absent))
    plural = "es" if len(absent) > 1 else ""
    if split == "train":
        raise DataError(f"{yn} has no image of class{plural} {names}; the training split must hold every class 0..5")
    if notes is not None:
        notes.append(f"Note: {yn} has no image of class{plural} {names}; its accuracy covers the other classes only.")


def check_arrays(
    x: np.ndarray, y: np.ndarray, split: str, where: str = "", notes: list[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Validate one split's images and labels: the (RGB) images and the labels as a 1-D int64 array.

    `where` prefixes the names in messages (e.g. "sign_data/"); what was accepted only after a
    second look (float pixels, float labels, an opaque alpha channel, a val/test split without
    some class) is said in `notes`. Raises DataError with one line.
    """
    xn, yn = f"{where}X_{split}.npy", f"{where}Y_{split}.npy"
    return check_pair(x, y, xn, yn, split, notes)


def check_pair(
    x, y, xn: str, yn: str, split: str, notes: list[str] | None, float_use: dict[bool, str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    if x.dtype == object or y.dtype == object:
        raise DataError(f"{xn if x.dtype == object else yn} holds Python objects, not numbers")
    if y.ndim == 2 and 1 in y.shape:  # the original h5 files store labels as (1, N)
        y = y.reshape(-1)
    if y.ndim == 1 and (x.ndim == 0 or len(x) != len(y)):
        raise DataError(_count_message(xn, yn, len(x) if x.ndim else 0, len(y)))
    y = check_labels(y, yn, notes)
    x = check_images(x, xn, notes, float_use=float_use)
    check_classes(y, yn, split, notes)
    return x, y


def to_unit_float(x: np.ndarray) -> np.ndarray:
    """Integer images (0..255) are divided by 255; float images already in [0, 1] are kept, 0..255 scaled."""
    if np.issubdtype(x.dtype, np.floating) and float(x.max(initial=0.0)) <= 1.0:
        return x.astype(np.float32)
    return x.astype(np.float32) / np.float32(255.0)


def arrays_to_data(arrays: dict[str, np.ndarray], device, source: dict, where: str = "") -> SignsData:
    """Validate the six arrays (keys X_train, Y_train, …) and put them on `device` as float32 NCHW."""
    import torch

    from mle6cli.data.splits import Split, fingerprint

    checked, notes = {}, []
    for split in SPLITS:
        checked[split] = check_arrays(arrays[f"X_{split}"], arrays[f"Y_{split}"], split, where, notes)
    # the stored (uint8) arrays: a quarter of the bytes of the float copies, the same data
    stored = fingerprint(a for split in SPLITS for a in checked[split])
    splits = {}
    for split, (x, y) in checked.items():
        xt = torch.from_numpy(to_unit_float(x)).permute(0, 3, 1, 2).contiguous()  # (N, 3, 64, 64)
        splits[split] = Split(xt.to(device), torch.from_numpy(y).to(device))
    source = dict(source, sizes={s: len(splits[s]) for s in SPLITS})
    return SignsData(splits["train"], splits["val"], splits["test"], source, notes, stored)


def load_arrays(data_dir: Path | str) -> dict[str, np.ndarray]:
    """Read the six npy files, refusing a missing folder, missing files and unreadable files."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        hint = "give --data-dir, make it with `mle6 prepare-signs`, or use --synthetic"
        what = "is not a folder" if data_dir.exists() else "does not exist"
        raise DataError(f"data folder {data_dir} {what}; {hint}")
    missing = [name for name in FILES if not (data_dir / name).is_file()]
    if missing:
        raise DataError(f"{data_dir} is missing {', '.join(missing)} (make them with `mle6 prepare-signs`)")
    return {name[:-4]: read_npy(data_dir / name) for name in FILES}


def load_signs(data_dir: Path | str, device) -> SignsData:
    """Load the SIGNS npy layout from `data_dir`, validated, scaled and on `device`."""
    data_dir = Path(data_dir)
    arrays = load_arrays(data_dir)
    source = {"kind": "dir", "path": str(data_dir.resolve()), "synthetic": False}
    return arrays_to_data(arrays, device, source, where=f"{data_dir}/")
