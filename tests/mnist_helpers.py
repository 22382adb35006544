"""Tiny MNIST-shaped data for the autoencoder tests: IDX files written here, small synthetic sets."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
TINY = (512, 128)  # synthetic (train, test) sizes for CliRunner tests


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array (the MNIST file format), written independently of torchvision."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def make_mnist_folder(root: Path, n_train: int = 40, n_test: int = 20, gz: bool = False, seed: int = 0) -> dict:
    """Write random digits in torchvision's layout under root/MNIST/raw/; return the arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        data = idx_bytes(array)
        if gz:
            (raw / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (raw / name).write_bytes(data)
    return arrays


@pytest.fixture
def tiny_synthetic(monkeypatch):
    """--synthetic gives 512 train / 128 test digits in this test."""
    from mle6cli.data import mnist

    monkeypatch.setattr(mnist, "SYNTHETIC_SIZES", TINY)
    return TINY


def subprocess_code(args: list[str], sizes: tuple[int, int]) -> str:
    """`python -c` source running the CLI with smaller synthetic data (a test-only knob)."""
    return (
        "import sys\n"
        "from mle6cli.data import mnist\n"
        f"mnist.SYNTHETIC_SIZES = {tuple(sizes)!r}\n"
        "from mle6cli.cli import app\n"
        f"app({args!r}, prog_name='mle6')\n"
    )
