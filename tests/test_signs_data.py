"""SIGNS data: validation of the npy layout, the synthetic generator, and prepare-signs (h5 and jpg)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from mle6cli.data.prepare import stratified_split
from mle6cli.data.signs import FILES, load_signs
from mle6cli.data.synthetic import synthetic_arrays, synthetic_signs
from mle6cli.errors import DataError
from tests.conftest import shared_path
from tests.signs_helpers import SMALL, write_layout


def test_load_signs_scales_converts_and_keeps_labels(tmp_path):
    arrays = synthetic_arrays(seed=3, per_class=SMALL)
    data = load_signs(write_layout(tmp_path / "d", arrays), torch.device("cpu"))
    assert data.sizes() == {"train": 48, "val": 12, "test": 12}
    x, y = data.train.x, data.train.y
    assert x.shape == (48, 3, 64, 64) and x.dtype == torch.float32 and x.is_contiguous()
    # NHWC uint8 -> NCHW float in [0, 1], value for value
    expected = arrays["X_train"].transpose(0, 3, 1, 2).astype(np.float32) / 255
    np.testing.assert_array_equal(x.numpy(), expected)
    assert y.dtype == torch.int64 and y.tolist() == arrays["Y_train"].tolist()
    assert data.source["synthetic"] is False and data.source["sizes"]["val"] == 12


def test_synthetic_data_is_seeded_balanced_and_flagged():
    a, b = synthetic_arrays(seed=1, per_class=SMALL), synthetic_arrays(seed=1, per_class=SMALL)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["X_train"], synthetic_arrays(seed=2, per_class=SMALL)["X_train"])
    standard = synthetic_arrays(seed=0)
    assert [len(standard[f"Y_{s}"]) for s in ("train", "val", "test")] == [960, 120, 120]
    assert standard["X_train"].shape[1:] == (64, 64, 3) and standard["X_train"].dtype == np.uint8
    assert np.bincount(standard["Y_val"]).tolist() == [20] * 6
    data = synthetic_signs(torch.device("cpu"), per_class=SMALL)
    assert data.synthetic and data.source["per_class"] == list(SMALL)


def _corrupt(folder: Path, name: str, array) -> None:
    np.save(folder / f"{name}.npy", array)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: (d / "X_val.npy").unlink() or (d / "Y_test.npy").unlink(),
            "{d} is missing X_val.npy, Y_test.npy (make them with `mle6 prepare-signs`)",
        ),
        (
            lambda d: _corrupt(d, "Y_train", np.zeros(47, dtype=np.int64)),
            "{d}/X_train.npy has 48 images but {d}/Y_train.npy has 47 labels",
        ),
        (
            lambda d: _corrupt(d, "X_train", np.zeros((48, 64, 64), dtype=np.uint8)),
            "{d}/X_train.npy must hold N×64×64×3 RGB images, got shape (48, 64, 64)",
        ),
        (
            lambda d: _corrupt(d, "X_test", np.zeros((12, 3, 64, 64), dtype=np.uint8)),
            "{d}/X_test.npy must hold N×64×64×3 RGB images, got shape (12, 3, 64, 64)",
        ),
        (
            lambda d: _corrupt(d, "Y_val", np.array([0, 1, 2, 6, 4, 5, 0, 1, 2, 3, 4, 5])),
            "{d}/Y_val.npy has 1 label(s) outside 0..5, e.g. 6 at sample 3",
        ),
        (
            lambda d: _corrupt(d, "Y_val", np.array([0, 1, 2, -1, 4, 5, 0, 1, 2, 3, 4, -2])),
            "{d}/Y_val.npy has 2 label(s) outside 0..5, e.g. -1 at sample 3",
        ),
        (
            lambda d: _corrupt(d, "X_test", np.full((12, 64, 64, 3), np.nan, dtype=np.float32)),
            "{d}/X_test.npy contains NaN (image 0)",
        ),
        (
            lambda d: _corrupt(d, "Y_test", np.array([0.0, 1, 2, 3, 4, np.nan, 0, 1, 2, 3, 4, 5])),
            "{d}/Y_test.npy contains NaN",
        ),
        (
            lambda d: _corrupt(d, "X_train", np.full((48, 64, 64, 3), 300.0)),
            "{d}/X_train.npy has pixel values from 300 to 300; expected 0..255 (or 0..1)",
        ),
        (
            lambda d: _corrupt(d, "X_val", np.zeros((0, 64, 64, 3), np.uint8)) or _corrupt(d, "Y_val", np.zeros(0)),
            "{d}/X_val.npy holds no images",
        ),
    ],
)
def test_each_data_problem_is_one_precise_line(tmp_path, change, message):
    folder = write_layout(tmp_path / "d")
    change(folder)
    with pytest.raises(DataError) as err:
        load_signs(folder, torch.device("cpu"))
    assert str(err.value) == message.format(d=folder)


def test_an_unloadable_file_is_named(tmp_path):
    folder = write_layout(tmp_path / "d")
    (folder / "X_val.npy").write_bytes(b"this is not an npy file")
    with pytest.raises(DataError, match=rf"^cannot load {folder}/X_val.npy: "):
        load_signs(folder, torch.device("cpu"))


def test_float_images_in_unit_range_are_kept(tmp_path):
    arrays = synthetic_arrays(seed=0, per_class=SMALL)
    arrays["X_test"] = arrays["X_test"].astype(np.float64) / 255
    data = load_signs(write_layout(tmp_path / "d", arrays), torch.device("cpu"))
    assert float(data.test.x.max()) <= 1.0 and float(data.test.x.max()) > 0.5


def test_cli_reports_bad_data_in_one_line_and_leaves_no_run_folder(runner, app, tmp_path):
    folder = write_layout(tmp_path / "d")
    _corrupt(folder, "Y_train", np.full(48, 9))
    result = runner.invoke(app, ["train-cnn", "--data-dir", str(folder), "--device", "cpu", "--epochs", "1"])
    assert result.exit_code == 1
    assert result.stderr == f"Error: {folder}/Y_train.npy has 48 label(s) outside 0..5, e.g. 9 at sample 0\n"
    assert not (tmp_path / "runs").exists()
    result = runner.invoke(app, ["sweep-lr", "--data-dir", "nowhere"])
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: data folder nowhere does not exist; give --data-dir, make it with `mle6 prepare-signs`, "
        "or use --synthetic\n"
    )


# ---------------------------------------------------------------- prepare-signs


def _write_h5(path: Path, split: str, x: np.ndarray, y: np.ndarray) -> Path:
    with h5py.File(path, "w") as fh:
        fh[f"{split}_set_x"] = x
        fh[f"{split}_set_y"] = y
        fh["list_classes"] = np.arange(6)
    return path


def _h5_pair(tmp_path: Path, per_class_train: int = 7, per_class_test: int = 2):
    arrays = synthetic_arrays(seed=5, per_class=(per_class_train, per_class_test, 1))
    train = _write_h5(tmp_path / "train_signs.h5", "train", arrays["X_train"], arrays["Y_train"])
    test = _write_h5(tmp_path / "test_signs.h5", "test", arrays["X_val"], arrays["Y_val"])
    return train, test, arrays


def test_prepare_signs_from_h5_splits_by_class(runner, app, tmp_path):
    train, test, arrays = _h5_pair(tmp_path)
    args = ["prepare-signs", "--train-h5", str(train), "--test-h5", str(test), "--out", "sd"]
    result = runner.invoke(app, [*args, "--val-per-class", "2", "--seed", "4", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["sizes"] == {"train": 30, "val": 12, "test": 12}
    assert report["per_class"]["val"] == [2] * 6 and report["per_class"]["train"] == [5] * 6
    out = tmp_path / "sd"
    loaded = {name[:-4]: np.load(out / name) for name in FILES}
    assert loaded["X_train"].dtype == np.uint8 and loaded["Y_train"].dtype == np.int64
    # train + val is exactly the original training set, each image once, with its label
    merged = np.concatenate([loaded["X_train"], loaded["X_val"]])
    labels = np.concatenate([loaded["Y_train"], loaded["Y_val"]])
    original = {a.tobytes(): int(b) for a, b in zip(arrays["X_train"], arrays["Y_train"], strict=True)}
    assert len(merged) == len(original) == len({a.tobytes() for a in merged})
    assert all(original[a.tobytes()] == b for a, b in zip(merged, labels, strict=True))
    np.testing.assert_array_equal(loaded["X_test"], arrays["X_val"])
    data = load_signs(out, torch.device("cpu"))  # the result passes the loader's checks
    assert data.sizes() == {"train": 30, "val": 12, "test": 12}

    again = runner.invoke(app, args)
    assert again.exit_code == 1
    assert again.stderr == (
        "Error: sd already holds X_train.npy, Y_train.npy, X_val.npy, Y_val.npy, X_test.npy, Y_test.npy; "
        "pass --overwrite to replace them\n"
    )
    assert runner.invoke(app, [*args, "--overwrite", "--val-per-class", "3"]).exit_code == 0
    assert len(np.load(out / "Y_val.npy")) == 18


def test_stratified_split_is_seeded_and_per_class():
    y = np.repeat(np.arange(6), 10)
    train, val = stratified_split(y, 3, seed=0)
    assert np.bincount(y[val]).tolist() == [3] * 6 and len(train) == 42
    assert not set(train) & set(val)
    assert np.array_equal(val, stratified_split(y, 3, seed=0)[1])
    assert not np.array_equal(val, stratified_split(y, 3, seed=1)[1])
    with pytest.raises(DataError, match="class 0 has 10 training images; --val-per-class 10 would leave none"):
        stratified_split(y, 10, seed=0)


def test_prepare_signs_from_jpg_folders(runner, app, tmp_path):
    from PIL import Image

    arrays = synthetic_arrays(seed=2, per_class=(4, 1, 1))
    for split, key in (("train", "train"), ("test", "val")):
        folder = tmp_path / split
        folder.mkdir()
        for i, (img, label) in enumerate(zip(arrays[f"X_{key}"], arrays[f"Y_{key}"], strict=True)):
            Image.fromarray(img).save(folder / f"{label}_{i:03d}.jpg", quality=95)
        (folder / "notes.txt").write_text("not an image: ignored")
    result = runner.invoke(
        app,
        ["prepare-signs", "--train-dir", "train", "--test-dir", "test", "--val-per-class", "1", "--out", "sd"],
    )
    assert result.exit_code == 0, result.output
    assert "Wrote sd/X_*.npy" in result.stdout
    y_all = np.concatenate([np.load("sd/Y_train.npy"), np.load("sd/Y_val.npy")])
    assert sorted(y_all.tolist()) == sorted(arrays["Y_train"].tolist())
    x_test = np.load("sd/X_test.npy")
    assert x_test.shape == (6, 64, 64, 3) and x_test.dtype == np.uint8
    # jpg is lossy, but the images are the ones written, in label-then-name order
    order = np.argsort([f"{label}_{i:03d}.jpg" for i, label in enumerate(arrays["Y_val"])])
    distance = np.abs(x_test[:, None].astype(int) - arrays["X_val"][None].astype(int)).mean(axis=(2, 3, 4))
    assert distance.argmin(axis=1).tolist() == order.tolist()

    first = sorted((tmp_path / "train").glob("*.jpg"))[0]
    (tmp_path / "train" / "cat.jpg").write_bytes(first.read_bytes())
    bad = runner.invoke(
        app, ["prepare-signs", "--train-dir", "train", "--test-dir", "test", "--out", "sd2", "--val-per-class", "1"]
    )
    assert bad.exit_code == 1
    assert bad.stderr == "Error: train/cat.jpg is not named <label>_*.jpg, so its label is unknown\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--test-h5", "t.h5"], "Error: give the training images with exactly one of --train-h5 and --train-dir\n"),
        (["--train-h5", "a.h5", "--test-h5", "t.h5"], "Error: a.h5 does not exist\n"),
        (["--train-h5", "bad.h5", "--test-h5", "t.h5"], "Error: cannot read bad.h5 as HDF5: "),
        (
            ["--train-h5", "test_signs.h5", "--test-h5", "test_signs.h5"],
            "Error: test_signs.h5 has no dataset 'train_set_x'",
        ),
    ],
)
def test_prepare_signs_refuses_bad_sources(runner, app, tmp_path, args, message):
    _h5_pair(tmp_path)
    (tmp_path / "bad.h5").write_bytes(b"garbage")
    result = runner.invoke(app, ["prepare-signs", *args])
    assert result.exit_code == 1
    assert result.stderr.startswith(message) and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "sign_data").exists()


@pytest.mark.slow
def test_prepare_signs_reads_the_real_test_file(runner, app, tmp_path):
    real_test = shared_path("signs_h5", "test_signs.h5")
    if not real_test.is_file():
        pytest.skip("../shared/data/signs_h5 is absent")
    train, _, _ = _h5_pair(tmp_path, per_class_train=3)
    result = runner.invoke(
        app, ["prepare-signs", "--train-h5", str(train), "--test-h5", str(real_test), "--val-per-class", "1", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["per_class"]["test"] == [20] * 6
    assert np.load("sign_data/X_test.npy").shape == (120, 64, 64, 3)


@pytest.mark.realdata
def test_the_real_sign_data_loads():
    folder = shared_path("sign_data")
    if not folder.is_dir():
        pytest.skip("../shared/data/sign_data is absent")
    data = load_signs(folder, torch.device("cpu"))
    assert data.sizes() == {"train": 960, "val": 120, "test": 120}
    assert data.train.x.shape == (960, 3, 64, 64)
    assert 0.0 <= float(data.train.x.min()) and float(data.train.x.max()) <= 1.0
    assert torch.bincount(data.val.y).tolist() == [20] * 6
