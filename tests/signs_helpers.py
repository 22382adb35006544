"""Small SIGNS-like data for the classifier tests: 48/12/12 synthetic images written as the npy layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mle6cli.data.synthetic import synthetic_arrays

SMALL = (8, 2, 2)  # images per class in train/val/test: 48/12/12


def write_layout(folder: Path, arrays: dict[str, np.ndarray] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    arrays = arrays if arrays is not None else synthetic_arrays(seed=0, per_class=SMALL)
    for name, array in arrays.items():
        np.save(folder / f"{name}.npy", array)
    return folder


def train_args(data_dir: Path, out: Path, *extra: str, epochs: int = 2) -> list[str]:
    """A fast train-cnn/sweep-lr command line on the small data (3 steps of 16 per epoch)."""
    return [
        "--data-dir",
        str(data_dir),
        "--epochs",
        str(epochs),
        "--batch-size",
        "16",
        "--device",
        "cpu",
        "--out",
        str(out),
        *extra,
    ]


def signs_options(data_dir: Path, **overrides) -> dict:
    """The options dict train-cnn's core function takes, for the small data (3 steps of 16 per epoch)."""
    options = {
        "data_dir": str(data_dir),
        "synthetic": False,
        "lr": 1e-3,
        "epochs": 2,
        "batch_size": 16,
        "seeds": [42],
        "device": "cpu",
        "deterministic": False,
    }
    options.update(overrides)
    return options
