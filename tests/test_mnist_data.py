"""MNIST loading: IDX files (plain and .gz) against arrays written here, clean failures, synthetic digits."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from mle6cli.data import mnist
from mle6cli.errors import DataError
from tests.conftest import shared_path
from tests.mnist_helpers import FILES, idx_bytes, make_mnist_folder

CPU = torch.device("cpu")

MISSING = (
    "MNIST not found: put train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and "
    "t10k-labels-idx1-ubyte (or their .gz) in {raw}/ ({why}), or use --synthetic for built-in stand-in digits"
)


@pytest.mark.parametrize("gz", [False, True])
def test_reads_idx_files_plain_and_gz(tmp_path, gz):
    arrays = make_mnist_folder(tmp_path / "d", n_train=40, n_test=20, gz=gz)
    data = mnist.load_mnist(tmp_path / "d", CPU, download=False)
    assert data.train_x.shape == (40, 1, 28, 28) and data.train_x.dtype == torch.uint8
    assert np.array_equal(data.train_x[:, 0].numpy(), arrays["train-images-idx3-ubyte"])
    assert np.array_equal(data.test_x[:, 0].numpy(), arrays["t10k-images-idx3-ubyte"])
    assert np.array_equal(data.train_y.numpy(), arrays["train-labels-idx1-ubyte"])
    assert np.array_equal(data.test_y.numpy(), arrays["t10k-labels-idx1-ubyte"])
    assert data.test_y.dtype == torch.int64 and not data.synthetic
    if gz:  # the user's folder is read, never written
        assert sorted(p.name for p in (tmp_path / "d" / "MNIST" / "raw").iterdir()) == sorted(f"{n}.gz" for n in FILES)


def test_missing_files_fail_at_once_without_download(tmp_path):
    start = time.perf_counter()
    with pytest.raises(DataError) as info:
        mnist.load_mnist(tmp_path / "nowhere", CPU, download=False)
    assert time.perf_counter() - start < 2.0
    raw = tmp_path / "nowhere" / "MNIST" / "raw"
    assert str(info.value) == MISSING.format(raw=raw, why="--no-download was given")


def test_partial_folder_names_what_is_missing(tmp_path):
    make_mnist_folder(tmp_path)
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match=r"^MNIST incomplete \(t10k-labels-idx1-ubyte missing\): put "):
        mnist.load_mnist(tmp_path, CPU, download=False)


def test_failed_download_is_one_error_not_a_hang(tmp_path, monkeypatch):
    """The real download path, pointed at a closed local port: refused at once, reported in one line."""
    from torchvision.datasets import MNIST

    monkeypatch.setattr(MNIST, "mirrors", ["http://127.0.0.1:9/"])
    monkeypatch.setattr(mnist, "DOWNLOAD_TIMEOUT_S", 2.0)
    start = time.perf_counter()
    with pytest.raises(DataError) as info:
        mnist.load_mnist(tmp_path / "data", CPU, download=True)
    assert time.perf_counter() - start < 10.0
    message = str(info.value)
    assert message.startswith("MNIST not found: put train-images-idx3-ubyte, ")
    assert f"in {tmp_path / 'data' / 'MNIST' / 'raw'}/ (the download failed: " in message
    assert "\n" not in message


def test_cli_missing_data_exits_1_and_leaves_no_run_folder(runner, app, tmp_path):
    result = runner.invoke(app, ["train-ae", "--data-dir", "nodata", "--no-download", "--epochs", "1"])
    assert result.exit_code == 1
    raw = tmp_path / "nodata" / "MNIST" / "raw"  # absolute: the run config keeps it so
    assert result.stderr == "Error: " + MISSING.format(raw=raw, why="--no-download was given") + "\n"
    assert result.stdout == ""
    assert not (tmp_path / "runs").exists()


def _write(tmp_path, name: str, data: bytes) -> None:
    (tmp_path / "MNIST" / "raw" / name).write_bytes(data)


def test_corrupt_file(tmp_path):
    make_mnist_folder(tmp_path)
    _write(tmp_path, "train-images-idx3-ubyte", b"this is not an IDX file at all")
    with pytest.raises(DataError, match=r"MNIST/raw/train-images-idx3-ubyte is not an IDX file \(it starts with "):
        mnist.load_mnist(tmp_path, CPU, download=False)


def test_corrupt_gzip(tmp_path):
    make_mnist_folder(tmp_path, gz=True)
    _write(tmp_path, "t10k-images-idx3-ubyte.gz", b"\x1f\x8b broken")
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.gz is not a readable gzip file"):
        mnist.load_mnist(tmp_path, CPU, download=False)


def test_wrong_image_size(tmp_path):
    make_mnist_folder(tmp_path)
    _write(tmp_path, "t10k-images-idx3-ubyte", idx_bytes(np.zeros((20, 32, 32), np.uint8)))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte holds images of shape \(32, 32\), expected 28x28"):
        mnist.load_mnist(tmp_path, CPU, download=False)


def test_labels_out_of_range(tmp_path):
    make_mnist_folder(tmp_path)
    _write(tmp_path, "train-labels-idx1-ubyte", idx_bytes(np.full(40, 12, np.uint8)))
    with pytest.raises(DataError, match=r"MNIST labels in .* must be 0\.\.9, found 12\.\.12"):
        mnist.load_mnist(tmp_path, CPU, download=False)


def test_label_count_mismatch(tmp_path):
    make_mnist_folder(tmp_path)
    _write(tmp_path, "train-labels-idx1-ubyte", idx_bytes(np.zeros(39, np.uint8)))
    with pytest.raises(DataError, match=r"holds 40 images but its labels file 39 labels"):
        mnist.load_mnist(tmp_path, CPU, download=False)


def test_synthetic_digits_are_seeded_mnist_like_and_balanced():
    a = mnist.synthetic_mnist(0, 600, 100)
    b = mnist.synthetic_mnist(0, 600, 100)
    c = mnist.synthetic_mnist(1, 600, 100)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert not torch.equal(a.train_x, c.train_x)
    assert a.train_x.shape == (600, 1, 28, 28) and a.train_x.dtype == torch.uint8
    assert a.synthetic and a.source == "synthetic (seed 0)"
    counts = torch.bincount(a.train_y, minlength=10)
    assert counts.min() >= 35  # every digit, roughly balanced
    x = a.train_x.float() / 255
    # like MNIST: mostly black background (~80% of pixels), mean x² near 0.12
    assert 0.6 < (a.train_x == 0).float().mean() < 0.9
    assert 0.06 < x.pow(2).mean() < 0.2
    # the images differ from the plain glyphs (jitter), and every image has ink
    assert x.flatten(1).amax(1).min() > 0.5


def test_glyphs_keep_their_holes():
    glyphs = mnist.digit_glyphs()
    assert glyphs.shape == (10, 28, 28)
    assert glyphs[0][12:16, 12:16].max() < 0.05  # the inside of the 0 is empty
    assert glyphs[8][8:11, 13:15].max() < 0.05  # the upper loop of the 8
    assert glyphs[1].sum() < glyphs[8].sum()  # a 1 has less ink than an 8


@pytest.mark.realdata
def test_real_mnist_mini():
    root = shared_path("mnist-mini")
    if not (root / "MNIST" / "raw").is_dir():
        pytest.skip("../shared/data/mnist-mini is not here")
    data = mnist.load_mnist(root, CPU, download=False)
    assert data.train_x.shape == (8000, 1, 28, 28) and data.test_x.shape == (2000, 1, 28, 28)
    # the reference figure in ../shared/README.md: predicting all zeros scores 0.123261
    assert float((data.test_x.double() / 255).pow(2).mean()) == pytest.approx(0.123261, abs=1e-6)
    assert sorted(torch.unique(data.train_y).tolist()) == list(range(10))


def _damaged(side: tuple[int, ...], damage: str) -> np.ndarray:
    """Three images of shape `side`, bytes-like, with one `damage` (in image 1, image 2 for inf)."""
    x = np.full((3, *side), 200.0)
    if damage == "nan":
        x[1, 0] = np.nan
    elif damage == "inf":
        x[2, 0] = np.inf
    elif damage == "fraction":
        x[1, 0] = 3.5
    elif damage == "negative":
        x = x / 200.0
        x[0, 0] = -1.0
    elif damage == "scaled bytes":
        x = (x > 100).astype(np.uint8)
    return x


@pytest.mark.parametrize(
    "damage, message",
    [
        ("nan", "F contains NaN (image 1)"),
        ("inf", "F contains inf (image 2)"),
        (
            "fraction",
            "F has fractional pixel values above 1 (up to 200; image 1); "
            "expected whole numbers 0..255 or floats in [0, 1]",
        ),
        ("negative", "F has pixel values from -1 to 1; expected 0..255 (or 0..1)"),
        (
            "scaled bytes",
            "F has integer pixel values only 1..1; expected 0..255 "
            "(images scaled to [0, 1] and then cast to integers lose their content)",
        ),
    ],
)
def test_signs_and_mnist_word_a_pixel_fault_alike(damage, message):
    from mle6cli.data import signs

    with pytest.raises(DataError) as mnist_error:
        mnist._check_images(_damaged((28, 28), damage), "F", [])
    with pytest.raises(DataError) as signs_error:
        signs.check_images(_damaged((64, 64, 3), damage), "F", [])
    assert str(mnist_error.value) == str(signs_error.value) == message
