"""prepare-signs: the dataset's original h5 files, or folders of `<label>_*.jpg`, into the npy layout."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from mle6cli.data.arrays import npy_bytes
from mle6cli.data.signs import CLASSES, FILES, SIDE, SPLITS, check_pair
from mle6cli.errors import DataError

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_LABELLED = re.compile(r"^(\d+)_.*$")


def read_h5(path: Path | str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of the dataset's original h5 file (`<split>_set_x`, `<split>_set_y`)."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist")
    try:
        with h5py.File(path, "r") as fh:
            keys = sorted(fh.keys())
            wanted = [f"{split}_set_x", f"{split}_set_y"]
            missing = [k for k in wanted if k not in fh]
            if missing:
                raise DataError(f"{path} has no dataset {missing[0]!r} (it holds {', '.join(keys) or 'nothing'})")
            x, y = np.asarray(fh[wanted[0]][:]), np.asarray(fh[wanted[1]][:])
    except DataError:
        raise
    except Exception as exc:  # not HDF5, truncated, …
        raise DataError(f"cannot read {path} as HDF5: {_h5_reason(exc)}") from None
    return x, y


def _h5_reason(exc: BaseException) -> str:
    """h5py's reason in a few words: 'truncated file: eof = …', 'not an HDF5 file (file signature not found)'."""
    reason = (str(exc).splitlines() or [""])[0].strip().strip("'\"") or type(exc).__name__
    opened = re.match(r"^Unable to (?:synchronously )?open file \((.*)\)$", reason)
    reason = opened.group(1) if opened else reason
    return f"not an HDF5 file ({reason})" if "signature not found" in reason else reason


def read_image_folder(folder: Path | str, notes: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images named `<label>_*.jpg` (or .jpeg/.png), in file-name order, as (N, 64, 64, 3) uint8 and labels.

    Grey and palette images become RGB, and an alpha channel that is opaque everywhere is
    dropped (`notes` says how many); transparent pixels, 16-bit or float pixels are refused.
    """
    from PIL import Image

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"image folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{folder} holds no <label>_*.jpg images")
    images, labels = [], []
    grey = opaque_alpha = 0
    for path in files:
        match = _LABELLED.match(path.name)
        if not match:
            raise DataError(f"{path} is not named <label>_*.jpg, so its label is unknown")
        label = int(match.group(1))
        if not 0 <= label < CLASSES:
            raise DataError(f"{path} is labelled {label} by its name; labels are 0..5")
        try:
            with Image.open(path) as img:
                img.load()
                mode = img.mode
                if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
                    raise DataError(f"{path} has 16-bit or float pixels (mode {mode}); save it with 8 bits per channel")
                has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info
                if has_alpha:
                    alpha = np.asarray(img.convert("RGBA"))[..., 3]
                    if alpha.min() < 255:
                        raise DataError(f"{path} has transparent pixels; flatten it onto a background (RGB) first")
                    opaque_alpha += 1
                grey += mode in ("1", "L", "LA", "La")
                pixels = np.asarray(img.convert("RGB"))
        except DataError:
            raise
        except Exception as exc:  # not an image, truncated, ...
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if reason.startswith("cannot identify image file"):
                reason = "not a JPEG or PNG image"
            raise DataError(f"cannot read image {path}: {reason}") from None
        if pixels.shape != (SIDE, SIDE, 3):
            raise DataError(f"{path} is {pixels.shape[1]}x{pixels.shape[0]} pixels; expected 64x64 (resize it first)")
        images.append(pixels)
        labels.append(label)
    if notes is not None and grey:
        notes.append(f"Note: {folder} holds {grey} grey image(s); each was copied into the R, G and B channels.")
    if notes is not None and opaque_alpha:
        notes.append(f"Note: {folder} holds {opaque_alpha} image(s) with an opaque alpha channel; it was dropped.")
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def stratified_split(y: np.ndarray, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices: `per_class` random images of each class go to val; both sorted."""
    rng = np.random.default_rng(seed)
    val = []
    for label in range(CLASSES):
        members = np.flatnonzero(y == label)
        if len(members) <= per_class:
            raise DataError(
                f"class {label} has {len(members)} training images; "
                f"--val-per-class {per_class} would leave none to train on"
            )
        val.append(rng.choice(members, size=per_class, replace=False))
    val = np.sort(np.concatenate(val))
    train = np.setdiff1d(np.arange(len(y)), val)
    return train, val


def prepare_signs(
    out: Path | str,
    *,
    train_h5: Path | str | None = None,
    test_h5: Path | str | None = None,
    train_dir: Path | str | None = None,
    test_dir: Path | str | None = None,
    val_per_class: int = 20,
    seed: int = 0,
    overwrite: bool = False,
) -> dict:
    """Write the npy layout into `out` from the original h5 pair or `<label>_*.jpg` folders.

    The training source is split by class into train and val (`val_per_class` of each class,
    drawn with `seed`); the test source becomes the test split unchanged. Existing arrays are
    never replaced unless `overwrite`. Returns counts per split and class.
    """
    from mle6cli.files import atomic_write_bytes

    if (train_h5 is None) == (train_dir is None):
        raise DataError("give the training images with exactly one of --train-h5 and --train-dir")
    if (test_h5 is None) == (test_dir is None):
        raise DataError("give the test images with exactly one of --test-h5 and --test-dir")
    if val_per_class < 1:
        raise DataError(f"--val-per-class must be at least 1, got {val_per_class}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} exists and is not a folder")
    existing = [name for name in FILES if (out / name).exists()]
    if existing and not overwrite:
        raise DataError(f"{out} already holds {', '.join(existing)}; pass --overwrite to replace them")

    notes: list[str] = []
    x_all, y_all = read_h5(train_h5, "train") if train_h5 is not None else read_image_folder(train_dir, notes)
    x_test, y_test = read_h5(test_h5, "test") if test_h5 is not None else read_image_folder(test_dir, notes)
    train_name = str(train_h5 if train_h5 is not None else train_dir)
    test_name = str(test_h5 if test_h5 is not None else test_dir)
    x_all, y_all = _check_source(x_all, y_all, train_name, "train", notes)
    x_test, y_test = _check_source(x_test, y_test, test_name, "test", notes)
    train_idx, val_idx = stratified_split(y_all, val_per_class, seed)
    arrays = {
        "X_train": x_all[train_idx],
        "Y_train": y_all[train_idx],
        "X_val": x_all[val_idx],
        "Y_val": y_all[val_idx],
        "X_test": x_test,
        "Y_test": y_test,
    }
    arrays = {k: (_as_bytes(v) if k.startswith("X") else v.astype(np.int64)) for k, v in arrays.items()}
    out.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        atomic_write_bytes(out / f"{name}.npy", npy_bytes(np.ascontiguousarray(array)))
    counts = {split: np.bincount(arrays[f"Y_{split}"], minlength=CLASSES).tolist() for split in SPLITS}
    return {
        "out": str(out),
        "sizes": {split: len(arrays[f"Y_{split}"]) for split in SPLITS},
        "per_class": counts,
        "val_per_class": val_per_class,
        "seed": seed,
        "sources": {"train": train_name, "test": test_name},
        "notes": notes,
    }


_WRITTEN_AS_BYTES = {
    True: "written as uint8 0..255 (multiplied by 255, rounded)",
    False: "written as uint8 0..255",
}


def _check_source(
    x: np.ndarray, y: np.ndarray, name: str, split: str, notes: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """The checks the npy layout gets, with messages naming the source file or folder; the training
    source must hold every class, the test source may lack one (a note)."""
    return check_pair(np.asarray(x), np.asarray(y), name, name, split, notes, _WRITTEN_AS_BYTES)


def _as_bytes(x: np.ndarray) -> np.ndarray:
    """Checked images as uint8 0..255: floats in [0, 1] are multiplied by 255 and rounded."""
    if np.issubdtype(x.dtype, np.floating):
        scale = 255.0 if float(x.max(initial=0.0)) <= 1.0 else 1.0
        return np.rint(x.astype(np.float64) * scale).astype(np.uint8)
    return x.astype(np.uint8)
