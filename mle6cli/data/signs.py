"""The SIGNS hand-sign dataset: load and validate the npy layout, make synthetic stand-ins, convert h5/jpg.

The exercise's layout is a folder with `X_train.npy, Y_train.npy, X_val.npy, Y_val.npy,
X_test.npy, Y_test.npy`: uint8 N×64×64×3 RGB images and integer labels 0–5. `load_signs`
checks every file before any training starts, so a bad dataset fails in one precise line
instead of deep inside a run; then it scales to [0, 1], converts NHWC → NCHW once and moves
the whole set to the training device.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

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


def _first(mask: np.ndarray) -> int:
    """The sample (first axis) of the first True in `mask`."""
    return int(np.unravel_index(int(np.flatnonzero(mask.ravel())[0]), mask.shape)[0])


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
            raise DataError(f"{yn} contains inf (sample {_first(np.isinf(y))})")
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
    (with a note). Float pixels in [0, 1], or whole numbers 0..255, are accepted with a note
    (`float_use[in_unit_range]` ends it: what is done with them); fractional values above 1
    are ambiguous and refused, as are integer pixels no larger than 1 (scaled images cast to
    integers).
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
    numeric = np.issubdtype(x.dtype, np.number) and not np.issubdtype(x.dtype, np.complexfloating)
    if not numeric:
        raise DataError(f"{xn} has dtype {x.dtype}; pixels must be integers 0..255 or floats in [0, 1]")
    is_float = np.issubdtype(x.dtype, np.floating)
    if is_float:
        if np.isnan(x).any():
            raise DataError(f"{xn} contains NaN")
        if np.isinf(x).any():
            raise DataError(f"{xn} contains inf (sample {_first(np.isinf(x))})")
    lo, hi = (float(x.min()), float(x.max())) if is_float else (int(x.min()), int(x.max()))
    if lo < 0 or hi > 255:
        expected = "0..255 (or 0..1)" if is_float else "0..255"
        raise DataError(f"{xn} has pixel values from {lo:g} to {hi:g}; expected {expected}")
    if rgba:
        alpha = x[..., 3]
        top = 255 if not is_float or hi > 1 else 1
        if not np.all(alpha == top):
            sample = _first(alpha != top)
            raise DataError(
                f"{xn} holds RGBA images (shape {tuple(x.shape)}) with transparent pixels (sample {sample}); "
                "save them as N×64×64×3 RGB"
            )
        x = x[..., :3]
        if notes is not None:
            notes.append(f"Note: {xn} holds RGBA images, opaque everywhere; the alpha channel was dropped.")
        lo, hi = (float(x.min()), float(x.max())) if is_float else (int(x.min()), int(x.max()))
    if is_float:
        if hi > 1 and not np.all(x == np.round(x)):
            sample = _first(x != np.round(x))
            raise DataError(
                f"{xn} has fractional pixel values above 1 (up to {hi:g}; sample {sample}); "
                "expected whole numbers 0..255 or floats in [0, 1]"
            )
        if notes is not None:
            what = "in [0, 1]" if hi <= 1 else "with whole values 0..255"
            notes.append(f"Note: {xn} holds {x.dtype} pixels {what}; {(float_use or _FLOAT_USE)[hi <= 1]}.")
    elif hi <= 1:
        raise DataError(
            f"{xn} has integer pixel values only {lo}..{hi}; expected 0..255 "
            "(images scaled to [0, 1] and then cast to integers lose their content)"
        )
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
    return _check_pair(x, y, xn, yn, split, notes)


def _check_pair(
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


_NPY_MAGIC = b"\x93NUMPY"


def _check_complete(path: Path) -> None:
    """A cut .npy file, refused in words of our own (numpy's differ between its versions): the
    header's length is in its first bytes, and the header gives the data's size."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        prefix = fh.read(12)
        length_bytes = 2 if prefix[6:7] == b"\x01" else 4  # format 1.0: a 2-byte header length; 2.0, 3.0: 4
        if len(prefix) < 8 + length_bytes:
            raise DataError(f"cannot load {path}: truncated (the file ends inside its header)")
        data_start = 8 + length_bytes + int.from_bytes(prefix[8 : 8 + length_bytes], "little")
        if size < data_start:
            raise DataError(f"cannot load {path}: truncated (the file ends inside its header)")
        fh.seek(0)
        try:
            version = np.lib.format.read_magic(fh)
            read_header = (
                np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = read_header(fh)
        except Exception:  # a damaged header: np.load says how
            return
    if dtype.hasobject:
        return  # pickled objects: refused as such below
    expected = data_start + math.prod(shape) * dtype.itemsize
    if size < expected:
        raise DataError(
            f"cannot load {path}: truncated (its header promises {expected:,} bytes, the file has {size:,})"
        )


def read_npy(path: Path) -> np.ndarray:
    """One array from an .npy file, as data only (`allow_pickle=False`); one line naming the file otherwise."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(_NPY_MAGIC))
    except OSError as exc:
        raise DataError(f"cannot load {path}: {exc.strerror or exc}") from None
    if not head:
        raise DataError(f"cannot load {path}: the file is empty")
    if head.startswith(b"PK"):
        raise DataError(f"cannot load {path}: it is an .npz archive, not one .npy array")
    if head != _NPY_MAGIC:
        raise DataError(f"cannot load {path}: not an .npy file (it starts with {head!r})")
    _check_complete(path)
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as exc:  # a damaged header, pickled objects, ...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "allow_pickle" in reason:
            raise DataError(
                f"cannot load {path}: it holds pickled Python objects; refused (npy files are read as data only)"
            ) from None
        if "EOF" in reason or "read all data" in reason or "not fully written" in reason:
            raise DataError(f"cannot load {path}: truncated ({reason})") from None
        raise DataError(f"cannot load {path}: {reason}") from None
    if not isinstance(array, np.ndarray):
        raise DataError(f"cannot load {path}: not a single array")
    return array


def load_signs(data_dir: Path | str, device) -> SignsData:
    """Load the SIGNS npy layout from `data_dir`, validated, scaled and on `device`."""
    data_dir = Path(data_dir)
    arrays = load_arrays(data_dir)
    source = {"kind": "dir", "path": str(data_dir.resolve()), "synthetic": False}
    return arrays_to_data(arrays, device, source, where=f"{data_dir}/")


# ---------------------------------------------------------------- synthetic data

_SLOTS = 5  # finger positions on the synthetic hand


def synthetic_arrays(seed: int = 0, per_class: tuple[int, int, int] = STANDARD_PER_CLASS) -> dict[str, np.ndarray]:
    """Six classes of 64×64×3 uint8 'hands': a palm with `label` raised fingers.

    Fingers sit in a random subset of five slots, so the class is the count, not a position.
    Colours, the hand's position, finger lengths and pixel noise are random. The same seed
    gives the same arrays. Splits hold `per_class` = (train, val, test) images per class,
    by default the real dataset's 160/20/20 (960/120/120 images).
    """
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in zip(SPLITS, per_class, strict=True):
        labels = np.repeat(np.arange(CLASSES), n)
        labels = labels[rng.permutation(len(labels))]
        images = np.empty((len(labels), SIDE, SIDE, 3), dtype=np.uint8)
        for i, label in enumerate(labels):
            images[i] = _draw_hand(rng, int(label))
        arrays[f"X_{split}"] = images
        arrays[f"Y_{split}"] = labels.astype(np.int64)
    return arrays


def _draw_hand(rng: np.random.Generator, fingers: int) -> np.ndarray:
    background = rng.uniform(0, 110, size=3)
    skin = rng.uniform(150, 255, size=3)
    image = np.broadcast_to(background, (SIDE, SIDE, 3)).copy()  # (64, 64, 3)
    dx, dy = rng.integers(-8, 9), rng.integers(-4, 5)
    left, top = 14 + dx, 40 + dy  # the palm: 36 wide, down to the bottom edge
    image[top:, left : left + 36] = skin
    for slot in np.sort(rng.choice(_SLOTS, size=fingers, replace=False)):
        x0 = left + 1 + 7 * slot + rng.integers(0, 2)
        length = rng.integers(16, 30)
        image[max(top - length, 0) : top, x0 : x0 + 5] = skin
    image += rng.normal(0, 12, size=image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def synthetic_signs(device, seed: int = 0, per_class: tuple[int, int, int] = STANDARD_PER_CLASS) -> SignsData:
    """Synthetic SIGNS-like data on `device` (see `synthetic_arrays`)."""
    arrays = synthetic_arrays(seed, per_class)
    source = {"kind": "synthetic", "synthetic": True, "seed": seed, "per_class": list(per_class)}
    return arrays_to_data(arrays, device, source)


# ---------------------------------------------------------------- prepare-signs: h5 / jpg -> npy layout

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


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


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
        atomic_write_bytes(out / f"{name}.npy", _npy_bytes(np.ascontiguousarray(array)))
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
    return _check_pair(np.asarray(x), np.asarray(y), name, name, split, notes, _WRITTEN_AS_BYTES)


def _as_bytes(x: np.ndarray) -> np.ndarray:
    """Checked images as uint8 0..255: floats in [0, 1] are multiplied by 255 and rounded."""
    if np.issubdtype(x.dtype, np.floating):
        scale = 255.0 if float(x.max(initial=0.0)) <= 1.0 else 1.0
        return np.rint(x.astype(np.float64) * scale).astype(np.uint8)
    return x.astype(np.uint8)
