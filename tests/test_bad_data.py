"""Bad data, everywhere: every input the tool reads, each kind of damage.

One test case per row of the table in tests/data_checks.py, which docs/data-checks.md shows and
from which the cases here are parametrized: a refused input fails in one line (`Error: ...`,
exit 1) naming the file, with no traceback and nothing written (no run folder, no output file,
the inputs untouched); an accepted one says what was done in one Note.
Every damaged file is built here, in tmp_path.
"""

from __future__ import annotations

import gzip
import io
import json
import pickle
import struct
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from mle6cli import files
from mle6cli.data.synthetic import synthetic_arrays
from mle6cli.engine import runs
from tests import data_checks
from tests.signs_helpers import write_layout

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY_SIGNS = (2, 1, 1)  # images per class in train/val/test: 12/6/6


# ---------------------------------------------------------------- helpers


def refused(result, start: str) -> None:
    """Exit 1, one line on stderr that starts with `Error: <start>`, no traceback, nothing on stdout."""
    lines = result.stderr.splitlines()
    assert result.exit_code == 1, result.output
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: " + start), lines[0]
    assert "Traceback" not in result.output and "unexpected" not in lines[0]
    assert result.stdout == ""


def accepted(result, note: str) -> None:
    assert result.exit_code == 0, result.output
    assert note in result.stderr.splitlines(), result.stderr


def snapshot(folder: Path) -> dict:
    """Every file under `folder` and its bytes: the same after a refusal means nothing was written."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def signs_arrays() -> dict[str, np.ndarray]:
    return synthetic_arrays(seed=0, per_class=TINY_SIGNS)


def on_files(damage: Callable[[Path], object]):
    """Mark a change as one made to the written files (its argument: the folder), not to the arrays."""
    damage.on_files = True
    return damage


def cut(path: Path, keep: int | float = 0.5) -> None:
    """Truncate a file to `keep` bytes (or that fraction of itself)."""
    data = path.read_bytes()
    path.write_bytes(data[: keep if isinstance(keep, int) else int(len(data) * keep)])


def drop_class(arrays: dict, split: str, label: int = 5) -> None:
    """Remove every image of `label` from a split (images and labels)."""
    keep = arrays[f"Y_{split}"] != label
    arrays[f"X_{split}"], arrays[f"Y_{split}"] = arrays[f"X_{split}"][keep], arrays[f"Y_{split}"][keep]


def rgba(x: np.ndarray, alpha: int = 255) -> np.ndarray:
    out = np.concatenate([x, np.full((*x.shape[:3], 1), 255, np.uint8)], axis=3)
    out[0, 0, 0, 3] = alpha
    return out


# ---------------------------------------------------------------- SIGNS npy layout (train-cnn, sweep-lr)

Arrays = dict[str, np.ndarray]


def _set(name: str, value: Callable[[Arrays], np.ndarray]):
    def change(arrays: Arrays) -> None:
        arrays[name] = value(arrays)

    return change


@on_files
def _pickled(d: Path) -> None:
    np.save(d / "Y_train.npy", np.array([0, "a", None] * 4, dtype=object), allow_pickle=True)


@on_files
def _npz(d: Path) -> None:
    with open(d / "X_train.npy", "wb") as fh:
        np.savez(fh, x=np.zeros(3))


# case -> (a change to the six arrays before they are written, or `on_files` to the written folder; the error)
SIGNS_REFUSED = {
    "truncated npy (data cut)": (
        on_files(lambda d: cut(d / "X_train.npy")),
        "cannot load {d}/X_train.npy: truncated (its header promises",
    ),
    "truncated npy (header cut)": (
        on_files(lambda d: cut(d / "Y_val.npy", 40)),
        "cannot load {d}/Y_val.npy: truncated (the file ends inside its header)",
    ),
    "empty npy file": (on_files(lambda d: cut(d / "X_test.npy", 0)), "cannot load {d}/X_test.npy: the file is empty"),
    "not an npy file": (
        on_files(lambda d: (d / "X_val.npy").write_bytes(b"this is not an npy file")),
        "cannot load {d}/X_val.npy: not an .npy file (it starts with b'this i')",
    ),
    "an npz archive under an npy name": (
        _npz,
        "cannot load {d}/X_train.npy: it is an .npz archive, not one .npy array",
    ),
    "pickled object array": (
        _pickled,
        "cannot load {d}/Y_train.npy: it holds pickled Python objects; refused (npy files are read as data only)",
    ),
    "missing file": (on_files(lambda d: (d / "Y_test.npy").unlink()), "{d} is missing Y_test.npy"),
    "images of strings": (
        _set("X_train", lambda a: a["X_train"].astype(str)),
        "{d}/X_train.npy has dtype <U3; pixels must be integers 0..255 or floats in [0, 1]",
    ),
    "complex images": (
        _set("X_train", lambda a: a["X_train"].astype(np.complex64)),
        "{d}/X_train.npy has dtype complex64; pixels must be integers 0..255 or floats in [0, 1]",
    ),
    "boolean labels": (
        _set("Y_val", lambda a: a["Y_val"] > 2),
        "{d}/Y_val.npy has dtype bool; labels must be integers 0..5",
    ),
    "grey images N×64×64 (rank 3)": (
        _set("X_train", lambda a: a["X_train"][..., 0]),
        "{d}/X_train.npy must hold N×64×64×3 RGB images, got shape (12, 64, 64)",
    ),
    "channels first N×3×64×64": (
        _set("X_test", lambda a: a["X_test"].transpose(0, 3, 1, 2)),
        "{d}/X_test.npy must hold N×64×64×3 RGB images, got shape (6, 3, 64, 64)",
    ),
    "one-hot labels N×6 (rank 2)": (
        _set("Y_train", lambda a: np.eye(6, dtype=np.int64)[a["Y_train"]]),
        "{d}/Y_train.npy must be a 1-D array of labels, got shape (12, 6) (one-hot rows? store each label as its",
    ),
    "NaN pixels": (
        _set("X_val", lambda a: np.where(np.arange(6)[:, None, None, None] == 4, np.nan, a["X_val"] / 255.0)),
        "{d}/X_val.npy contains NaN (image 4)",
    ),
    "infinite pixels": (
        _set("X_train", lambda a: np.where(np.arange(12)[:, None, None, None] == 3, np.inf, a["X_train"] / 1.0)),
        "{d}/X_train.npy contains inf (image 3)",
    ),
    "NaN label": (
        _set("Y_test", lambda a: np.where(np.arange(6) == 2, np.nan, a["Y_test"])),
        "{d}/Y_test.npy contains NaN",
    ),
    "infinite label": (
        _set("Y_train", lambda a: np.where(np.arange(12) == 7, np.inf, a["Y_train"])),
        "{d}/Y_train.npy contains inf (sample 7)",
    ),
    "fractional float pixels above 1": (
        _set("X_train", lambda a: a["X_train"] / 1.5),
        "{d}/X_train.npy has fractional pixel values above 1 (up to ",
    ),
    "pixels above 255": (
        _set("X_val", lambda a: a["X_val"].astype(np.int16) + 100),
        "{d}/X_val.npy has pixel values from 100 to 355; expected 0..255",
    ),
    "standardised pixels (negative)": (
        _set("X_train", lambda a: (a["X_train"] - a["X_train"].mean()) / a["X_train"].std()),
        "{d}/X_train.npy has pixel values from -",
    ),
    "[0, 1] images cast to integers": (
        _set("X_train", lambda a: (a["X_train"] / 255.0).round().astype(np.uint8)),
        "{d}/X_train.npy has integer pixel values only 0..1; expected 0..255",
    ),
    "RGBA with transparent pixels": (
        _set("X_train", lambda a: rgba(a["X_train"], alpha=0)),
        "{d}/X_train.npy holds RGBA images (shape (12, 64, 64, 4)) with transparent pixels (sample 0); "
        "save them as N×64×64×3 RGB",
    ),
    "label above 5": (
        _set("Y_val", lambda a: np.where(np.arange(6) == 1, 6, a["Y_val"])),
        "{d}/Y_val.npy has 1 label(s) outside 0..5, e.g. 6 at sample 1",
    ),
    "negative label": (
        _set("Y_test", lambda a: np.where(np.arange(6) == 0, -1, a["Y_test"])),
        "{d}/Y_test.npy has 1 label(s) outside 0..5, e.g. -1 at sample 0",
    ),
    "fractional label": (
        _set("Y_train", lambda a: np.where(np.arange(12) == 4, 2.5, a["Y_train"])),
        "{d}/Y_train.npy holds a non-integer label 2.5 (sample 4); labels must be 0..5",
    ),
    "empty split": (
        lambda a: a.update(X_val=a["X_val"][:0], Y_val=a["Y_val"][:0]),
        "{d}/X_val.npy holds no images",
    ),
    "fewer labels than images": (
        _set("Y_train", lambda a: a["Y_train"][:-1]),
        "{d}/X_train.npy has 12 images but {d}/Y_train.npy has 11 labels",
    ),
    "training split missing a class": (
        lambda a: drop_class(a, "train", 5),
        "{d}/Y_train.npy has no image of class 5; the training split must hold every class 0..5",
    ),
}

SIGNS_ACCEPTED = {
    "float pixels in [0, 1]": (
        _set("X_train", lambda a: (a["X_train"] / 255.0).astype(np.float32)),
        "Note: {d}/X_train.npy holds float32 pixels in [0, 1]; used as they are (not divided by 255).",
    ),
    "float pixels, whole numbers 0..255": (
        _set("X_val", lambda a: a["X_val"].astype(np.float64)),
        "Note: {d}/X_val.npy holds float64 pixels with whole values 0..255; divided by 255 as uint8 pixels are.",
    ),
    "RGBA, opaque everywhere": (
        _set("X_test", lambda a: rgba(a["X_test"], alpha=255)),
        "Note: {d}/X_test.npy holds RGBA images, opaque everywhere; the alpha channel was dropped.",
    ),
    "float labels, whole numbers": (
        _set("Y_train", lambda a: a["Y_train"].astype(np.float32)),
        "Note: {d}/Y_train.npy holds float32 labels; read as the whole numbers 0..5 they are.",
    ),
    "val split missing a class": (
        lambda a: drop_class(a, "val", 0),
        "Note: {d}/Y_val.npy has no image of class 0; its accuracy covers the other classes only.",
    ),
    "test split missing a class": (
        lambda a: drop_class(a, "test", 3),
        "Note: {d}/Y_test.npy has no image of class 3; its accuracy covers the other classes only.",
    ),
}


def signs_folder(tmp_path: Path, change) -> Path:
    """A tiny valid layout, then `change`: to the arrays before they are written, or (`on_files`) to the folder."""
    arrays = signs_arrays()
    folder = tmp_path / "signs"
    takes_folder = getattr(change, "on_files", False)
    if not takes_folder:
        change(arrays)
    write_layout(folder, arrays)
    if takes_folder:
        change(folder)
    return folder


def train_cnn_args(folder: Path, out: Path, command: str = "train-cnn") -> list[str]:
    extra = ["--lrs", "1e-3,1e-2"] if command == "sweep-lr" else []
    return [command, "--data-dir", str(folder), "--epochs", "1", "--batch-size", "16", "--device", "cpu"] + [
        "--out",
        str(out),
        *extra,
    ]


@pytest.mark.parametrize("case", data_checks.cases("SIGNS_REFUSED"))
def test_signs_npy_refused(runner, app, tmp_path, case):
    change, message = SIGNS_REFUSED[case]
    folder = signs_folder(tmp_path, change)
    before = snapshot(folder)
    result = runner.invoke(app, train_cnn_args(folder, tmp_path / "run"))
    refused(result, message.format(d=folder))
    assert not (tmp_path / "run").exists() and not (tmp_path / "runs").exists()
    assert snapshot(folder) == before


def test_sweep_lr_refuses_the_same_way(runner, app, tmp_path):
    folder = signs_folder(tmp_path, on_files(lambda d: cut(d / "Y_test.npy")))
    result = runner.invoke(app, train_cnn_args(folder, tmp_path / "run", "sweep-lr"))
    refused(result, f"cannot load {folder}/Y_test.npy: truncated (")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("case", data_checks.cases("SIGNS_ACCEPTED"))
def test_signs_npy_accepted_with_a_note(runner, app, tmp_path, case):
    change, note = SIGNS_ACCEPTED[case]
    folder = signs_folder(tmp_path, change)
    result = runner.invoke(app, train_cnn_args(folder, tmp_path / "run"))
    accepted(result, note.format(d=folder))
    assert (tmp_path / "run" / "summary.json").is_file()


def test_float_images_in_unit_range_train_like_their_bytes(tmp_path):
    """[0, 1] floats are used as they are: the same tensors as the uint8 images divided by 255."""
    from mle6cli.data.signs import load_signs

    arrays = signs_arrays()
    plain = load_signs(write_layout(tmp_path / "a", arrays), torch.device("cpu"))
    arrays["X_train"] = arrays["X_train"] / np.float32(255.0)
    floats = load_signs(write_layout(tmp_path / "b", arrays), torch.device("cpu"))
    assert torch.equal(plain.train.x, floats.train.x) and plain.notes == [] and len(floats.notes) == 1


# ---------------------------------------------------------------- prepare-signs: h5 files


def write_h5(path: Path, split: str, x, y) -> Path:
    with h5py.File(path, "w") as fh:
        fh[f"{split}_set_x"] = x
        fh[f"{split}_set_y"] = np.asarray(y).reshape(1, -1)  # as the original files store them
        fh["list_classes"] = np.arange(6)
    return path


def h5_pair(tmp_path: Path, change_train=None, change_test=None) -> tuple[Path, Path]:
    arrays = synthetic_arrays(seed=1, per_class=(3, 1, 1))  # 18 train, 6 test images
    train = {"x": arrays["X_train"], "y": arrays["Y_train"]}
    test = {"x": arrays["X_val"], "y": arrays["Y_val"]}
    if change_train:
        change_train(train)
    if change_test:
        change_test(test)
    return (
        write_h5(tmp_path / "train_signs.h5", "train", train["x"], train["y"]),
        write_h5(tmp_path / "test_signs.h5", "test", test["x"], test["y"]),
    )


def prepare_args(train: Path, test: Path, out: Path) -> list[str]:
    return ["prepare-signs", "--train-h5", str(train), "--test-h5", str(test), "--out", str(out)] + [
        "--val-per-class",
        "1",
    ]


def _drop5(s: dict) -> None:
    keep = s["y"] != 5
    s["x"], s["y"] = s["x"][keep], s["y"][keep]


def _h5_truncated(tmp_path: Path) -> tuple[Path, Path, str]:
    train, test = h5_pair(tmp_path)
    cut(train)
    return train, test, "cannot read {train} as HDF5: truncated file: eof = "


def _h5_not_h5(tmp_path: Path) -> tuple[Path, Path, str]:
    train, test = h5_pair(tmp_path)
    test.write_bytes(b"just text")
    return train, test, "cannot read {test} as HDF5: not an HDF5 file (file signature not found)"


def _h5_no_dataset(tmp_path: Path) -> tuple[Path, Path, str]:
    train, test = h5_pair(tmp_path)
    return test, test, "{test} has no dataset 'train_set_x' (it holds list_classes, test_set_x, test_set_y)"


def _h5(change_train=None, change_test=None, message: str = ""):
    def make(tmp_path: Path) -> tuple[Path, Path, str]:
        train, test = h5_pair(tmp_path, change_train, change_test)
        return train, test, message

    return make


H5_REFUSED = {
    "truncated h5": _h5_truncated,
    "not an HDF5 file": _h5_not_h5,
    "h5 without the split's datasets": _h5_no_dataset,
    "h5 grey images (rank 3)": _h5(
        lambda s: s.update(x=s["x"][..., 0]),
        message="{train} must hold N×64×64×3 RGB images, got shape (18, 64, 64)",
    ),
    "h5 RGBA with transparent pixels": _h5(
        None,
        lambda s: s.update(x=rgba(s["x"], alpha=10)),
        message="{test} holds RGBA images (shape (6, 64, 64, 4)) with transparent pixels (sample 0)",
    ),
    "h5 NaN pixels": _h5(
        lambda s: s.update(x=np.where(np.arange(18)[:, None, None, None] == 2, np.nan, s["x"] / 255.0)),
        message="{train} contains NaN (image 2)",
    ),
    "h5 fractional float pixels above 1": _h5(
        lambda s: s.update(x=s["x"] * 0.7),
        message="{train} has fractional pixel values above 1 (up to ",
    ),
    "h5 label above 5": _h5(
        None,
        lambda s: s.update(y=np.where(np.arange(6) == 3, 9, s["y"])),
        message="{test} has 1 label(s) outside 0..5, e.g. 9 at sample 3",
    ),
    "h5 fractional label": _h5(
        lambda s: s.update(y=np.where(np.arange(18) == 0, 2.5, s["y"])),
        message="{train} holds a non-integer label 2.5 (sample 0); labels must be 0..5",
    ),
    "h5 empty": _h5(
        None,
        lambda s: s.update(x=s["x"][:0], y=s["y"][:0]),
        message="{test} holds no images",
    ),
    "h5 fewer labels than images": _h5(
        lambda s: s.update(y=s["y"][:-1]),
        message="{train} holds 18 images but 17 labels",
    ),
    "h5 training file missing a class": _h5(
        _drop5,
        message="{train} has no image of class 5; the training split must hold every class 0..5",
    ),
}

H5_ACCEPTED = {
    "h5 float pixels in [0, 1]": (
        lambda s: s.update(x=s["x"] / 255.0),
        None,
        "Note: {train} holds float64 pixels in [0, 1]; written as uint8 0..255 (multiplied by 255, rounded).",
    ),
    "h5 test file missing a class": (
        None,
        _drop5,
        "Note: {test} has no image of class 5; its accuracy covers the other classes only.",
    ),
}


@pytest.mark.parametrize("case", data_checks.cases("H5_REFUSED"))
def test_prepare_signs_h5_refused(runner, app, tmp_path, case):
    train, test, message = H5_REFUSED[case](tmp_path)
    result = runner.invoke(app, prepare_args(train, test, tmp_path / "sd"))
    refused(result, message.format(train=train, test=test))
    assert not (tmp_path / "sd").exists()


@pytest.mark.parametrize("case", data_checks.cases("H5_ACCEPTED"))
def test_prepare_signs_h5_accepted_with_a_note(runner, app, tmp_path, case):
    change_train, change_test, note = H5_ACCEPTED[case]
    train, test = h5_pair(tmp_path, change_train, change_test)
    result = runner.invoke(app, prepare_args(train, test, tmp_path / "sd"))
    accepted(result, note.format(train=train, test=test))
    x = np.load(tmp_path / "sd" / "X_train.npy")
    assert x.dtype == np.uint8 and x.max() > 200  # written as bytes 0..255 whatever the source held
    if change_train is not None:  # [0, 1] floats of uint8 images come back exactly
        original = synthetic_arrays(seed=1, per_class=(3, 1, 1))["X_train"]
        merged = np.concatenate([x, np.load(tmp_path / "sd" / "X_val.npy")])
        assert {a.tobytes() for a in merged} == {a.tobytes() for a in original}


# ---------------------------------------------------------------- prepare-signs: jpg/png folders


def image_folders(tmp_path: Path) -> tuple[Path, Path]:
    """train/ (3 per class) and test/ (1 per class) of valid <label>_<i>.png images."""
    from PIL import Image

    arrays = synthetic_arrays(seed=2, per_class=(3, 1, 1))
    for split, key in (("train", "train"), ("test", "val")):
        folder = tmp_path / split
        folder.mkdir()
        for i, (img, label) in enumerate(zip(arrays[f"X_{key}"], arrays[f"Y_{key}"], strict=True)):
            Image.fromarray(img).save(folder / f"{label}_{i:03d}.png")
    return tmp_path / "train", tmp_path / "test"


def _first_image(folder: Path) -> Path:
    return sorted(folder.glob("*.png"))[0]


def _save_as(folder: Path, name: str, mode: str, alpha: int = 255) -> Path:
    """A copy of the folder's first image in another PIL mode (alpha: the first pixel's opacity)."""
    from PIL import Image

    source = _first_image(folder)
    with Image.open(source) as img:
        converted = img.convert(mode)
    if mode in ("RGBA", "LA"):
        converted.putpixel((0, 0), (*converted.getpixel((0, 0))[:-1], alpha))
    target = folder / name
    converted.save(target)
    return target


def _jpg_truncated(train: Path, test: Path) -> str:
    from PIL import Image

    path = train / "0_900.jpg"
    with Image.open(_first_image(train)) as img:
        img.save(path, quality=95)
    cut(path, 0.5)
    return f"cannot read image {path}: image file is truncated"


def _not_an_image(train: Path, test: Path) -> str:
    (test / "2_bad.jpg").write_bytes(b"not a picture")
    return f"cannot read image {test}/2_bad.jpg: not a JPEG or PNG image"


def _label_7(train: Path, test: Path) -> str:
    (train / "7_extra.png").write_bytes(_first_image(train).read_bytes())
    return f"{train}/7_extra.png is labelled 7 by its name; labels are 0..5"


def _unlabelled(train: Path, test: Path) -> str:
    (train / "hand.png").write_bytes(_first_image(train).read_bytes())
    return f"{train}/hand.png is not named <label>_*.jpg, so its label is unknown"


def _wrong_size(train: Path, test: Path) -> str:
    from PIL import Image

    Image.new("RGB", (32, 48)).save(train / "1_small.png")
    return f"{train}/1_small.png is 32x48 pixels; expected 64x64 (resize it first)"


def _transparent(train: Path, test: Path) -> str:
    path = _save_as(train, "4_rgba.png", "RGBA", alpha=0)
    return f"{path} has transparent pixels; flatten it onto a background (RGB) first"


def _sixteen_bit(train: Path, test: Path) -> str:
    from PIL import Image

    path = test / "0_deep.png"
    Image.fromarray(np.full((64, 64), 40000, np.uint16)).save(path)
    return f"{path} has 16-bit or float pixels (mode I;16); save it with 8 bits per channel"


def _empty_folder(train: Path, test: Path) -> str:
    for p in test.iterdir():
        p.unlink()
    return f"{test} holds no <label>_*.jpg images"


def _train_missing_class(train: Path, test: Path) -> str:
    for p in train.glob("2_*"):
        p.unlink()
    return f"{train} has no image of class 2; the training split must hold every class 0..5"


FOLDER_REFUSED = {
    "truncated jpg": _jpg_truncated,
    "not an image": _not_an_image,
    "label in the name above 5": _label_7,
    "no label in the name": _unlabelled,
    "wrong image size": _wrong_size,
    "png with transparent pixels": _transparent,
    "16-bit png": _sixteen_bit,
    "empty folder": _empty_folder,
    "training folder missing a class": _train_missing_class,
}


def _grey(train: Path, test: Path) -> str:
    _save_as(train, "3_grey.png", "L")
    return f"Note: {train} holds 1 grey image(s); each was copied into the R, G and B channels."


def _opaque_rgba(train: Path, test: Path) -> str:
    _save_as(test, "5_rgba.png", "RGBA", alpha=255)
    return f"Note: {test} holds 1 image(s) with an opaque alpha channel; it was dropped."


def _test_missing_class(train: Path, test: Path) -> str:
    for p in test.glob("4_*"):
        p.unlink()
    return f"Note: {test} has no image of class 4; its accuracy covers the other classes only."


FOLDER_ACCEPTED = {
    "grey png": _grey,
    "png with an opaque alpha channel": _opaque_rgba,
    "test folder missing a class": _test_missing_class,
}


def folder_args(train: Path, test: Path, out: Path) -> list[str]:
    return ["prepare-signs", "--train-dir", str(train), "--test-dir", str(test), "--out", str(out)] + [
        "--val-per-class",
        "1",
    ]


@pytest.mark.parametrize("case", data_checks.cases("FOLDER_REFUSED"))
def test_prepare_signs_image_folders_refused(runner, app, tmp_path, case):
    train, test = image_folders(tmp_path)
    message = FOLDER_REFUSED[case](train, test)
    result = runner.invoke(app, folder_args(train, test, tmp_path / "sd"))
    refused(result, message)
    assert not (tmp_path / "sd").exists()


@pytest.mark.parametrize("case", data_checks.cases("FOLDER_ACCEPTED"))
def test_prepare_signs_image_folders_accepted_with_a_note(runner, app, tmp_path, case):
    train, test = image_folders(tmp_path)
    note = FOLDER_ACCEPTED[case](train, test)
    result = runner.invoke(app, folder_args(train, test, tmp_path / "sd"))
    accepted(result, note)
    assert np.load(tmp_path / "sd" / "X_test.npy").shape[1:] == (64, 64, 3)


# ---------------------------------------------------------------- MNIST IDX files (train-ae, pca-ae, latent-plot)

IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D}
IMAGES, LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"


def idx(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8, int32 or float32 array (big-endian, as the format says)."""
    array = np.asarray(array)
    code = IDX_CODES[array.dtype]
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=array.dtype.newbyteorder(">")).tobytes()


def mnist_arrays() -> dict[str, np.ndarray]:
    """40 train / 20 test random digits, every digit present in both."""
    rng = np.random.default_rng(0)
    return {
        IMAGES: rng.integers(0, 256, (40, 28, 28), dtype=np.uint8),
        LABELS: (np.arange(40) % 10).astype(np.uint8),
        TEST_IMAGES: rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        TEST_LABELS: (np.arange(20) % 10).astype(np.uint8),
    }


def mnist_folder(tmp_path: Path, change=None, gz: bool = False) -> tuple[Path, Path]:
    """root/MNIST/raw/ with the four files, after `change(arrays)` (or, `on_files`, `change(raw)` after writing)."""
    arrays = mnist_arrays()
    root = tmp_path / "mnist"
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    takes_raw = getattr(change, "on_files", False)
    if change is not None and not takes_raw:
        change(arrays)
    for name, array in arrays.items():
        data = idx(array)
        if gz:
            (raw / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (raw / name).write_bytes(data)
    if takes_raw:
        change(raw)
    return root, raw


def train_ae_args(root: Path, out: Path, command: str = "train-ae") -> list[str]:
    extra = ["--latent-dims", "2", "--retries", "0"] if command == "train-ae" else []
    return [command, "--data-dir", str(root), "--no-download", "--epochs", "1", "--batch-size", "20"] + [
        "--device",
        "cpu",
        "--out",
        str(out),
        *extra,
    ]


def _put(name: str, value: Callable[[dict], np.ndarray]):
    def change(arrays: dict) -> None:
        arrays[name] = value(arrays)

    return change


MNIST_REFUSED = {
    "truncated IDX": (on_files(lambda raw: cut(raw / IMAGES)), False, "{raw}/" + IMAGES + " is truncated: its header "),
    "IDX with trailing bytes": (
        on_files(lambda raw: (raw / LABELS).write_bytes((raw / LABELS).read_bytes() + b"\0\0")),
        False,
        "{raw}/" + LABELS + " has 2 bytes after the 40 values its header announces",
    ),
    "not an IDX file": (
        on_files(lambda raw: (raw / TEST_IMAGES).write_bytes(b"<html>not found</html>")),
        False,
        "{raw}/" + TEST_IMAGES + " is not an IDX file (it starts with b'<htm'",
    ),
    "empty IDX file": (on_files(lambda raw: cut(raw / TEST_LABELS, 0)), False, "{raw}/" + TEST_LABELS + " is empty"),
    ".gz that is not gzip": (
        on_files(lambda raw: (raw / f"{IMAGES}.gz").write_bytes(idx(mnist_arrays()[IMAGES]))),
        True,
        "{raw}/" + IMAGES + ".gz is not a readable gzip file: Not a gzipped file",
    ),
    "truncated .gz": (
        on_files(lambda raw: cut(raw / f"{LABELS}.gz")),
        True,
        "{raw}/" + LABELS + ".gz is not a readable gzip file: Compressed file ended",
    ),
    ".gz holding something else": (
        on_files(lambda raw: (raw / f"{TEST_IMAGES}.gz").write_bytes(gzip.compress(b"PK\x03\x04 a zip inside"))),
        True,
        "{raw}/" + TEST_IMAGES + ".gz is not an IDX file (it starts with b'PK",
    ),
    "images with 3 channels (rank 4)": (
        _put(IMAGES, lambda a: np.repeat(a[IMAGES][..., None], 3, axis=3)),
        False,
        "{raw}/" + IMAGES + " holds an array of shape (40, 28, 28, 3); MNIST images are N×28×28 (one grey channel)",
    ),
    "images of the wrong size": (
        _put(TEST_IMAGES, lambda a: np.zeros((20, 32, 32), np.uint8)),
        False,
        "{raw}/" + TEST_IMAGES + " holds images of shape (32, 32), expected 28x28",
    ),
    "NaN pixels (float IDX)": (
        _put(IMAGES, lambda a: np.where(np.arange(40)[:, None, None] == 6, np.nan, a[IMAGES] / 255).astype(np.float32)),
        False,
        "{raw}/" + IMAGES + " contains NaN (image 6)",
    ),
    "infinite pixels (float IDX)": (
        _put(TEST_IMAGES, lambda a: np.full((20, 28, 28), np.inf, np.float32)),
        False,
        "{raw}/" + TEST_IMAGES + " contains inf (image 0)",
    ),
    "fractional float pixels above 1": (
        _put(IMAGES, lambda a: (a[IMAGES] * 0.75).astype(np.float32)),
        False,
        "{raw}/" + IMAGES + " has fractional pixel values above 1 (up to ",
    ),
    "[0, 1] images saved as bytes": (
        _put(IMAGES, lambda a: (a[IMAGES] > 127).astype(np.uint8)),
        False,
        "{raw}/" + IMAGES + " has integer pixel values only 0..1; expected 0..255",
    ),
    "label above 9": (
        _put(LABELS, lambda a: np.full(40, 12, np.uint8)),
        False,
        "MNIST labels in {raw}/" + LABELS + " must be 0..9, found 12..12",
    ),
    "fractional label (float IDX)": (
        _put(TEST_LABELS, lambda a: (a[TEST_LABELS] + 0.5).astype(np.float32)),
        False,
        "{raw}/" + TEST_LABELS + " holds a non-integer label 0.5 (label 0); labels are digits 0..9",
    ),
    "labels of rank 2": (
        _put(LABELS, lambda a: a[LABELS][:, None]),
        False,
        "{raw}/" + LABELS + " holds an array of shape (40, 1); MNIST labels are one digit per image",
    ),
    "fewer labels than images": (
        _put(TEST_LABELS, lambda a: a[TEST_LABELS][:-1]),
        False,
        "{raw}/" + TEST_IMAGES + " holds 20 images but its labels file 19 labels",
    ),
    "empty split": (
        lambda a: a.update({TEST_IMAGES: a[TEST_IMAGES][:0], TEST_LABELS: a[TEST_LABELS][:0]}),
        False,
        "{raw}/" + TEST_IMAGES + " holds no images",
    ),
}

MNIST_ACCEPTED = {
    "float pixels in [0, 1] (float IDX)": (
        _put(IMAGES, lambda a: (a[IMAGES] / np.float32(255)).astype(np.float32)),
        "Note: {raw}/"
        + IMAGES
        + " holds float32 pixels in [0, 1]; stored as bytes 0..255 (×255, rounded) like MNIST's.",
    ),
    "int32 pixels 0..255": (
        _put(TEST_IMAGES, lambda a: a[TEST_IMAGES].astype(np.int32)),
        "Note: {raw}/" + TEST_IMAGES + " holds int32 pixels; read as the bytes 0..255 they are.",
    ),
    "float labels, whole numbers": (
        _put(LABELS, lambda a: a[LABELS].astype(np.float32)),
        "Note: {raw}/" + LABELS + " holds float32 labels; read as the whole digits 0..9 they are.",
    ),
    "a digit missing from a split": (
        _put(LABELS, lambda a: np.where(a[LABELS] == 7, 1, a[LABELS]).astype(np.uint8)),
        "Note: {raw}/" + LABELS + " has no image of digit 7; the autoencoders do not use labels, "
        "and latent-plot shows only the digits present.",
    ),
}


@pytest.mark.parametrize("case", data_checks.cases("MNIST_REFUSED"))
def test_mnist_refused(runner, app, tmp_path, case):
    change, gz, message = MNIST_REFUSED[case]
    root, raw = mnist_folder(tmp_path, change, gz=gz)
    before = snapshot(root)
    result = runner.invoke(app, train_ae_args(root, tmp_path / "run"))
    refused(result, message.format(raw=raw))
    assert not (tmp_path / "run").exists() and not (tmp_path / "runs").exists()
    assert snapshot(root) == before  # a .gz is unpacked in memory, never next to the user's files


def test_pca_ae_refuses_the_same_way(runner, app, tmp_path):
    root, raw = mnist_folder(tmp_path, on_files(lambda raw: cut(raw / f"{TEST_IMAGES}.gz", 30)), gz=True)
    result = runner.invoke(app, train_ae_args(root, tmp_path / "run", "pca-ae"))
    refused(result, f"{raw}/{TEST_IMAGES}.gz is not a readable gzip file: ")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("case", data_checks.cases("MNIST_ACCEPTED"))
def test_mnist_accepted_with_a_note(runner, app, tmp_path, case):
    change, note = MNIST_ACCEPTED[case]
    root, raw = mnist_folder(tmp_path, change)
    result = runner.invoke(app, train_ae_args(root, tmp_path / "run"))
    accepted(result, note.format(raw=raw))
    assert (tmp_path / "run" / "summary.json").is_file()


def test_mnist_float_unit_images_become_their_bytes(tmp_path):
    from mle6cli.data.mnist import load_mnist

    arrays = mnist_arrays()
    root, _ = mnist_folder(tmp_path, _put(IMAGES, lambda a: (a[IMAGES] / np.float32(255)).astype(np.float32)))
    data = load_mnist(root, torch.device("cpu"), download=False)
    assert np.array_equal(data.train_x[:, 0].numpy(), arrays[IMAGES]) and len(data.notes) == 1


# ---------------------------------------------------------------- checkpoints (latent-plot, load_classifier)


def ae_checkpoint(path: Path, **changes) -> Path:
    """A valid d=3 train-ae checkpoint (untrained weights), with `changes` to its entries."""
    from mle6cli.models import ConvAutoencoder
    from mle6cli.tasks.kinds import ARCHITECTURE

    torch.manual_seed(0)
    payload = {
        "model": "ae",
        "architecture": ARCHITECTURE,
        "latent_dim": 3,
        "state_dict": ConvAutoencoder(3).state_dict(),
        "collapsed": False,
        "data": {"synthetic": True, "n_train": 40, "n_test": 40},
    }
    payload.update(changes)
    files.save_torch(path, payload)
    return path


def torch_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _nan_weights(path: Path) -> None:
    from mle6cli.models import ConvAutoencoder

    weights = ConvAutoencoder(3).state_dict()
    weights["encoder.0.weight"][0, 0, 0, 0] = float("nan")
    ae_checkpoint(path, state_dict=weights)


CHECKPOINT_REFUSED = {
    "not a torch file": (
        lambda p: p.write_bytes(b"garbage, not a checkpoint"),
        "checkpoint {p} cannot be read: not a torch file (it starts with b'garb')",
    ),
    "empty file": (lambda p: p.write_bytes(b""), "checkpoint {p} cannot be read: the file is empty"),
    "truncated torch file": (
        lambda p: (ae_checkpoint(p), cut(p)),
        "checkpoint {p} cannot be read: truncated (a torch zip archive without its end)",
    ),
    "a pickled module (code, not data)": (
        lambda p: p.write_bytes(torch_bytes(torch.nn.Linear(2, 2))),
        "checkpoint {p} holds more than tensors and plain values; refused (Unsupported global: GLOBAL "
        "torch.nn.modules.linear.Linear)",
    ),
    "a plain pickle": (
        lambda p: p.write_bytes(pickle.dumps({"state_dict": {}})),
        "checkpoint {p} cannot be read: not a torch file (a plain Python pickle)",
    ),
    "a tensor, not a checkpoint": (lambda p: files.save_torch(p, torch.zeros(3)), "{p} is not a train-ae checkpoint"),
    "a classifier's model.pt": (
        lambda p: files.save_torch(p, {"model": "cnn", "classes": 6, "state_dict": {}}),
        "{p} is not a train-ae checkpoint",
    ),
    "weights not a mapping": (lambda p: ae_checkpoint(p, state_dict=[1, 2]), "{p} is not a train-ae checkpoint"),
    "latent_dim not a number": (
        lambda p: ae_checkpoint(p, latent_dim="three"),
        "{p} is not a train-ae checkpoint (its latent_dim is 'three', not a whole number >= 1)",
    ),
    "weights missing": (
        lambda p: ae_checkpoint(p, state_dict={}),
        "{p} does not fit the exercise's autoencoder: Missing key(s) in state_dict: ",
    ),
    "NaN weights": (
        _nan_weights,
        "{p} holds NaN or infinite weights (encoder.0.weight); the model diverged or the file is damaged",
    ),
}


@pytest.mark.parametrize("case", data_checks.cases("CHECKPOINT_REFUSED"))
def test_latent_plot_checkpoint_refused(runner, app, tmp_path, case):
    make, message = CHECKPOINT_REFUSED[case]
    path = tmp_path / "ae_d3.pt"
    make(path)
    out = tmp_path / "latent.png"
    args = ["latent-plot", "--checkpoint", str(path), "--synthetic", "--device", "cpu", "--out", str(out)]
    result = runner.invoke(app, args)
    refused(result, message.format(p=path))
    assert not out.exists()


def test_latent_plot_refuses_bad_mnist(runner, app, tmp_path):
    root, raw = mnist_folder(tmp_path, on_files(lambda raw: cut(raw / TEST_LABELS, 6)))
    checkpoint = ae_checkpoint(tmp_path / "ae_d3.pt")
    out = tmp_path / "latent.png"
    result = runner.invoke(
        app,
        ["latent-plot", "--checkpoint", str(checkpoint), "--data-dir", str(root), "--n", "20"]
        + [
            "--device",
            "cpu",
            "--out",
            str(out),
        ],
    )
    refused(result, f"{raw}/{TEST_LABELS} is truncated: its header is cut short")
    assert not out.exists()


def test_latent_plot_prints_the_data_notes(runner, app, tmp_path):
    root, raw = mnist_folder(tmp_path, _put(TEST_LABELS, lambda a: np.where(a[TEST_LABELS] == 0, 1, a[TEST_LABELS])))
    checkpoint = ae_checkpoint(tmp_path / "ae_d3.pt")
    args = ["latent-plot", "--checkpoint", str(checkpoint), "--data-dir", str(root), "--n", "20", "--device", "cpu"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "latent.png")])
    accepted(
        result,
        f"Note: {raw}/{TEST_LABELS} has no image of digit 0; the autoencoders do not use labels, "
        "and latent-plot shows only the digits present.",
    )


def _cnn_weights() -> dict:
    from mle6cli.models import CNNClassifier

    return CNNClassifier(6).state_dict()


def _cnn_nan() -> dict:
    weights = _cnn_weights()
    next(iter(weights.values())).view(-1)[0] = float("inf")
    return weights


CLASSIFIER_REFUSED = {
    "a damaged zip archive": (b"PK not really a zip", "checkpoint {p} cannot be read: truncated"),
    "an autoencoder checkpoint": ({"model": "ae", "state_dict": {}}, "{p} is not a classifier saved by mle6"),
    "weights not a mapping": ({"model": "cnn", "state_dict": [1]}, "{p} is not a classifier saved by mle6"),
    "a class count that is not a number": (
        {"model": "cnn", "classes": "six", "state_dict": {}},
        "{p} does not fit the exercise's CNN: its class count is 'six'",
    ),
    "weights of another shape": (
        {"model": "cnn", "classes": 6, "state_dict": {"conv1.weight": torch.zeros(1)}},
        "{p} does not fit the exercise's CNN: ",
    ),
    "infinite weights": (
        "nan",
        "{p} holds NaN or infinite weights (",
    ),
}


@pytest.mark.parametrize("case", data_checks.cases("CLASSIFIER_REFUSED"))
def test_load_classifier_refused(tmp_path, case):
    from mle6cli.errors import Mle6Error
    from mle6cli.tasks.classifier import load_classifier

    content, message = CLASSIFIER_REFUSED[case]
    path = tmp_path / "model.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "nan":
        files.save_torch(path, {"model": "cnn", "classes": 6, "state_dict": _cnn_nan(), "config": {}})
    else:
        files.save_torch(path, content)
    with pytest.raises(Mle6Error) as info:
        load_classifier(tmp_path)
    text = str(info.value)
    assert text.startswith(message.format(p=path)) and "\n" not in text


# ---------------------------------------------------------------- --resume: config.json and resume.pt


def resume_folder(tmp_path: Path, small: Path, config=None, state=None) -> Path:
    """An interrupted-looking train-cnn run: a config.json with every option, a resume.pt with members."""
    folder = tmp_path / "cut"
    folder.mkdir()
    options = {
        "data_dir": str(small),
        "synthetic": False,
        "lr": 1e-3,
        "epochs": 1,
        "batch_size": 16,
        "seeds": [42],
        "device": "cpu",
        "deterministic": False,
    }
    document = {"command": "train-cnn", "options": options, "data": {"sizes": {"train": 12}}}
    files.write_json(folder / runs.CONFIG, document if config is None else config(document))
    payload = {"command": "train-cnn", "members": []}
    files.save_torch(folder / runs.RESUME, payload if state is None else state(payload))
    return folder


def _drop(key: str):
    def change(document: dict) -> dict:
        document.pop(key)
        return document

    return change


def _drop_option(key: str):
    def change(document: dict) -> dict:
        document["options"].pop(key)
        return document

    return change


RESUME_REFUSED = {
    "config.json not JSON": (
        {"config_text": "{'command': 'train-cnn'"},
        "--resume: {d}/config.json is not valid JSON: ",
    ),
    "config.json a list": ({"config": lambda doc: [doc]}, "--resume: {d}/config.json holds a JSON list, not a run's"),
    "config.json without command": (
        {"config": _drop("command")},
        "--resume: {d}/config.json lacks the key 'command'",
    ),
    "config.json without options": ({"config": _drop("options")}, "--resume: {d}/config.json lacks the run's options"),
    "config.json missing an option": (
        {"config": _drop_option("lr")},
        "--resume: {d}/config.json lacks the option(s) lr",
    ),
    "config.json with a malformed data entry": (
        {"config": lambda doc: dict(doc, data=[12, 6, 6])},
        "--resume: {d}/config.json has a 'data' entry that is a JSON list, not an object",
    ),
    "resume.pt not a torch file": (
        {"resume_bytes": b"half a checkpoint"},
        "--resume: checkpoint {d}/resume.pt cannot be read: not a torch file",
    ),
    "resume.pt truncated": (
        {"resume_bytes": torch_bytes({"command": "train-cnn", "members": []})[:200]},
        "--resume: checkpoint {d}/resume.pt cannot be read: truncated",
    ),
    "resume.pt holding code": (
        {"resume_bytes": torch_bytes({"command": "train-cnn", "members": [torch.nn.ReLU()]})},
        "--resume: checkpoint {d}/resume.pt holds more than tensors and plain values; refused",
    ),
    "resume.pt a tensor": (
        {"state": lambda payload: torch.zeros(2)},
        "--resume: {d}/resume.pt is not a resume checkpoint of mle6 (it holds Tensor)",
    ),
    "resume.pt without members": (
        {"state": lambda payload: {"command": "train-cnn"}},
        "--resume: {d}/resume.pt is not a resume checkpoint of mle6 (it holds no list of members)",
    ),
    "resume.pt of another command": (
        {"state": lambda payload: dict(payload, command="sweep-lr")},
        "--resume: {d}/resume.pt belongs to a 'sweep-lr' run, config.json to a train-cnn run",
    ),
}


@pytest.mark.parametrize("case", data_checks.cases("RESUME_REFUSED"))
def test_resume_refused(runner, app, tmp_path, case):
    how, message = RESUME_REFUSED[case]
    small = write_layout(tmp_path / "small", signs_arrays())
    folder = resume_folder(tmp_path, small, how.get("config"), how.get("state"))
    if "config_text" in how:
        (folder / runs.CONFIG).write_text(how["config_text"])
    if "resume_bytes" in how:
        (folder / runs.RESUME).write_bytes(how["resume_bytes"])
    before = snapshot(folder)
    result = runner.invoke(app, ["train-cnn", "--resume", str(folder)])
    refused(result, message.format(d=folder))
    assert snapshot(folder) == before


def test_the_undamaged_resume_folder_loads(tmp_path):
    """The control for the rows above: before its damage, the folder they start from is accepted."""
    small = write_layout(tmp_path / "small", signs_arrays())
    folder = resume_folder(tmp_path, small)
    config, state = runs.load_resume(
        folder, "train-cnn", keys=json.loads((folder / runs.CONFIG).read_text())["options"]
    )
    assert config["command"] == state["command"] == "train-cnn"


# -- the table (tests/data_checks.py) and the cases here are one list ---------------------------------

# how this module's expected messages name what the table calls D/, raw/ and F (DIR: `{d}` of a resume case)
PLACEHOLDERS = {"{raw}": "raw", "{p}": "F", "{path}": "F", "{train}": "F", "{test}": "F"}


def test_every_row_of_the_table_is_a_case_here_and_every_case_a_row():
    module = globals()
    for group in {row.group for row in data_checks.ROWS}:
        assert group in module, f"tests/data_checks.py names {group}, which this module lacks"
        kinds = {row.outcome.split()[0] for row in data_checks.ROWS if row.group == group}
        if group.startswith("test_"):
            assert callable(module[group]) and kinds == {"refused"}, group
        else:
            assert data_checks.cases(group) == list(module[group]), f"{group}: its cases and the table's rows differ"
            assert kinds == {group.rsplit("_", 1)[1].lower()}, group
    tables = {
        name for name, value in module.items() if name.endswith(("_REFUSED", "_ACCEPTED")) and isinstance(value, dict)
    }
    assert tables <= {row.group for row in data_checks.ROWS}, "a group of cases with no rows in tests/data_checks.py"


def test_the_table_shows_the_messages_the_cases_expect():
    """Where a case spells its message out, the table's message (up to its first `…`) agrees with it."""
    checked = 0
    for row in data_checks.ROWS:
        case = globals().get(row.group, {}).get(row.case) if not row.group.startswith("test_") else None
        if not isinstance(case, tuple) or not isinstance(case[-1], str):
            continue  # built by a function that returns its message for the files it makes
        expected = case[-1].replace("{d}", "DIR" if row.group == "RESUME_REFUSED" else "D")
        for name, shown in PLACEHOLDERS.items():
            expected = expected.replace(name, shown)
        shown = row.message.split("…")[0].rstrip(" (")
        assert expected.startswith(shown) or shown.startswith(expected), (row.case, shown, expected)
        checked += 1
    assert checked > 80
