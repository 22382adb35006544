"""Put the data `make gpu-check` needs inside the repo, where a device call can carry it.

A device call sends the repository and the paths it names in `carry`, nothing beside it: the
`../shared/data` beside a checkout stays behind. This copies the real SIGNS arrays and
mnist-mini into `gpu_data/` (ignored by git; carry it), checking that it fits:

    python3 benchmarks/gpu_data.py                      # ../shared/data -> gpu_data (make gpu-data)
    python3 benchmarks/gpu_data.py --tiny --dest DIR    # tiny stand-ins in the same layout (dry runs)

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
CARRY_LIMIT = 64 * 2**20  # what one device call may carry, the working tree included
DATA_LIMIT = 48 * 2**20  # leave room for the tree itself (about 1 MB) and the wheels


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def plan_copy(source: Path) -> list[tuple[Path, Path]]:
    """(source file, path under the destination) for every file to copy; raises if one is missing."""
    pairs = [(source / "sign_data" / name, Path("sign_data") / name) for name in SIGNS_FILES]
    raw = source / "mnist-mini" / "MNIST" / "raw"
    for name in MNIST_NAMES:
        plain, packed = raw / name, raw / f"{name}.gz"
        chosen = plain if plain.is_file() else packed  # plain when there: nothing to unpack there
        pairs.append((chosen, Path("mnist-mini") / "MNIST" / "raw" / chosen.name))
    missing = [str(src) for src, _ in pairs if not src.is_file()]
    if missing:
        raise FileNotFoundError("missing: " + ", ".join(missing))
    return pairs


def copy_data(source: Path, dest: Path, limit: int = DATA_LIMIT) -> int:
    pairs = plan_copy(source)
    total = sum(src.stat().st_size for src, _ in pairs)
    if total > limit:
        raise ValueError(f"{_mib(total)} of data is more than the {_mib(limit)} left for it in one carry")
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

    from mle6cli.data.signs import synthetic_arrays

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
    parser.add_argument("--source", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--dest", type=Path, default=REPO / "gpu_data")
    parser.add_argument("--tiny", action="store_true", help="write tiny synthetic stand-ins instead of copying")
    args = parser.parse_args(argv)
    if args.tiny:
        write_tiny(args.dest)
        print(f"wrote tiny stand-in data to {args.dest}")
        return 0
    try:
        print(f"copying {args.source} -> {args.dest}")
        total = copy_data(args.source, args.dest)
    except (FileNotFoundError, ValueError) as err:
        print(f"gpu_data: {err}", file=sys.stderr)
        return 1
    print(f"{_mib(total)} copied; a device call carries at most {_mib(CARRY_LIMIT)} (tree and carried paths together)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
