"""Put the data `make gpu-check` reads inside the repository, so that one folder travels to the GPU box.

This copies the SIGNS arrays and MNIST's four IDX files into `gpu_data/` (ignored by git), in the
layout the check reads, and refuses a copy much bigger than the two data sets (about 22 MiB with
mnist-mini, the project's 8k-image MNIST sample): that means a wrong folder.

    python3 benchmarks/gpu_data.py --signs DIR --mnist-root DIR   # make gpu-data SIGNS_DATA=.. MNIST_DIR=..
    python3 benchmarks/gpu_data.py --tiny --dest DIR              # tiny stand-ins in the same layout (dry runs)

Layout (what tests/test_cuda.py and gpu_check.sh read):
    gpu_data/sign_data/{X,Y}_{train,val,test}.npy
    gpu_data/mnist-mini/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte   (plain, else .gz)

The copy needs the standard library only; --tiny needs numpy and this repository's mle6cli.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SIGNS_FILES = [f"{k}_{s}.npy" for s in ("train", "val", "test") for k in ("X", "Y")]
MNIST_NAMES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
DATA_LIMIT = 48 * 2**20  # twice the two data sets: more is not what the check reads


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def plan_copy(signs: Path, mnist_root: Path) -> list[tuple[Path, Path]]:
    """(source file, path under the destination) for every file to copy; raises if one is missing."""
    pairs = [(signs / name, Path("sign_data") / name) for name in SIGNS_FILES]
    raw = mnist_root / "MNIST" / "raw"
    for name in MNIST_NAMES:
        plain, packed = raw / name, raw / f"{name}.gz"
        chosen = plain if plain.is_file() else packed  # plain when there: nothing to unpack there
        pairs.append((chosen, Path("mnist-mini") / "MNIST" / "raw" / chosen.name))
    missing = [str(src) for src, _ in pairs if not src.is_file()]
    if missing:
        raise FileNotFoundError("missing: " + ", ".join(missing))
    return pairs


def copy_data(signs: Path, mnist_root: Path, dest: Path, limit: int = DATA_LIMIT) -> int:
    pairs = plan_copy(signs, mnist_root)
    total = sum(src.stat().st_size for src, _ in pairs)
    if total > limit:
        raise ValueError(f"{_mib(total)} of data is more than the {_mib(limit)} expected: is this the right folder?")
    for src, rel in pairs:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
        print(f"  {rel}  {_mib(src.stat().st_size)}")
    return total


def write_tiny(dest: Path) -> None:
    """48/12/12 synthetic SIGNS images and 512/128 synthetic digits, in the real layout."""
    import numpy as np

    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(HERE))
    from bench import synthetic_mnist, write_idx

    from mle6cli.data.synthetic import synthetic_arrays

    signs = dest / "sign_data"
    signs.mkdir(parents=True, exist_ok=True)
    for name, array in synthetic_arrays(seed=0, per_class=(8, 2, 2)).items():
        np.save(signs / f"{name}.npy", array)
    raw = dest / "mnist-mini" / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    arrays = synthetic_mnist(512, 128)
    keys = [("train", "images"), ("train", "labels"), ("test", "images"), ("test", "labels")]
    for key, name in zip(keys, MNIST_NAMES, strict=True):
        write_idx(raw / name, arrays[key])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--signs", type=Path, default=REPO / "sign_data", help="SIGNS npy folder (X_train.npy, ...)")
    parser.add_argument("--mnist-root", type=Path, default=REPO / "data", help="folder holding MNIST/raw/")
    parser.add_argument("--dest", type=Path, default=REPO / "gpu_data")
    parser.add_argument("--tiny", action="store_true", help="write tiny synthetic stand-ins instead of copying")
    args = parser.parse_args(argv)
    if args.tiny:
        write_tiny(args.dest)
        print(f"wrote tiny stand-in data to {args.dest}")
        return 0
    try:
        print(f"copying {args.signs} and {args.mnist_root} -> {args.dest}")
        total = copy_data(args.signs, args.mnist_root, args.dest)
    except (FileNotFoundError, ValueError) as err:
        print(f"gpu_data: {err}", file=sys.stderr)
        return 1
    print(f"{_mib(total)} copied into {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
