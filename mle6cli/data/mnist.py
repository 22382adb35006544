"""MNIST, held once on the device as uint8, and built-in synthetic stand-in digits.

Real data are the four IDX files in `<data_dir>/MNIST/raw/` (plain or .gz, unpacked in
memory), read and checked here: a truncated file, a wrong type or shape, out-of-range pixels or
labels fail in one line naming the file. `torchvision.datasets.MNIST` only downloads them.
Nothing is converted sample by sample: the whole (N, 28, 28) uint8 tensor moves to the device
once, and `data.splits.Split` scales each batch to [0, 1].

Missing files never make a command hang: they are looked for first, a download (when allowed)
runs under a short socket timeout, and failure is one `DataError` naming the four files and
the folder they go in.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import math
import socket
import struct
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mle6cli.data.checks import check_pixels
from mle6cli.data.splits import Split
from mle6cli.errors import DataError
from mle6cli.models import MNIST_SIDE

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
DOWNLOAD_TIMEOUT_S = 15.0
# (train, test) sizes of --synthetic; tests shrink these
SYNTHETIC_SIZES = (6000, 1000)
# one fixed set of stand-in digits, so runs with different --seed see the same data
SYNTHETIC_SEED = 0
NUM_CLASSES = 10


@dataclass
class MnistData:
    """Train and test images (N, 1, 28, 28) uint8 and labels (N,) int64, all on one device."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    synthetic: bool
    source: str  # the raw folder, or "synthetic (seed S)"
    notes: list[str] = field(default_factory=list)  # what was accepted only after a second look, for the user

    def train_split(self) -> Split:
        return Split(self.train_x)  # y None: an autoencoder reconstructs its input

    def test_split(self) -> Split:
        return Split(self.test_x)

    def synthetic_note(self) -> str:
        from mle6cli.data.splits import synthetic_note

        sizes = {"train": len(self.train_x), "test": len(self.test_x)}
        return synthetic_note("built-in font-glyph digits under random jitter", sizes, "MNIST")

    def describe(self) -> dict:
        return {
            "source": self.source,
            "synthetic": self.synthetic,
            "n_train": int(self.train_x.shape[0]),
            "n_test": int(self.test_x.shape[0]),
            "sizes": {"train": int(self.train_x.shape[0]), "test": int(self.test_x.shape[0])},
        }


def raw_folder(data_dir: Path | str) -> Path:
    return Path(data_dir) / "MNIST" / "raw"


def _missing(raw: Path) -> list[str]:
    return [name for name in FILES if not (raw / name).is_file() and not (raw / f"{name}.gz").is_file()]


def missing_message(raw: Path, missing: list[str], why: str) -> str:
    head = "MNIST not found" if len(missing) == len(FILES) else f"MNIST incomplete ({', '.join(missing)} missing)"
    return (
        f"{head}: put {', '.join(FILES[:3])} and {FILES[3]} (or their .gz) in {raw}/ ({why}), "
        "or use --synthetic for built-in stand-in digits"
    )


def _try_download(data_dir: Path) -> str | None:
    """Let torchvision fetch the files under a short socket timeout; the reason on failure."""
    from torchvision.datasets import MNIST

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    raw = raw_folder(data_dir)
    new = [p for p in (raw, *raw.parents) if not p.exists()]  # the folders a failed try must not leave
    try:
        # torchvision reports progress on stdout; keep stdout for results (--json)
        with contextlib.redirect_stdout(sys.stderr):
            MNIST(str(data_dir), train=True, download=True)
    except Exception as exc:  # offline, DNS, timeout, a bad mirror, a read-only folder
        first = str(exc).strip().splitlines()
        _remove_partial(raw, new)
        return first[-1] if first else type(exc).__name__
    finally:
        socket.setdefaulttimeout(previous)
    return None


def _remove_partial(raw: Path, created: list[Path]) -> None:
    """After a failed download: the half-fetched archives, then the folders it made, if now empty."""
    for leftover in raw.glob("*.gz.part") if raw.is_dir() else []:
        leftover.unlink(missing_ok=True)
    for folder in sorted(created, key=lambda p: len(p.parts), reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


# IDX type codes (the third byte of the magic number) and their big-endian numpy types
_IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _file_bytes(raw: Path, name: str) -> tuple[bytes, Path]:
    """The bytes of `name` in `raw`, plain or unpacked in memory from its .gz (the folder is never written)."""
    plain = raw / name
    if plain.is_file():
        try:
            return plain.read_bytes(), plain
        except OSError as exc:
            raise DataError(f"cannot read {plain}: {exc.strerror or exc}") from None
    packed = raw / f"{name}.gz"
    try:
        with gzip.open(packed, "rb") as fh:
            return fh.read(), packed
    except (OSError, EOFError, zlib.error) as exc:  # not gzip, truncated, damaged
        raise DataError(f"{packed} is not a readable gzip file: {exc}") from None


def read_idx(data: bytes, path: Path) -> np.ndarray:
    """The array an IDX file holds (any IDX type), its header checked against its size.

    `path` names the file in messages (the .gz the user has, where the bytes were unpacked).
    """
    if not data:
        raise DataError(f"{path} is empty")
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise DataError(f"{path} is not an IDX file (it starts with {data[:4]!r}, not 00 00 08 ..)")
    dtype, ndim = _IDX_TYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path} is truncated: its header is cut short")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    count = math.prod(dims)
    shape = "×".join(map(str, dims))
    expected, got = count * dtype.itemsize, len(data) - header
    if got < expected:
        raise DataError(f"{path} is truncated: its header announces {shape} values ({expected} bytes), it holds {got}")
    if got > expected:
        raise DataError(f"{path} has {got - expected} bytes after the {shape} values its header announces")
    return np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(dims)


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array, as MNIST's files hold it (what `read_idx` reads back)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def _type_name(x: np.ndarray) -> str:
    return x.dtype.newbyteorder("=").name


def _check_images(x: np.ndarray, path: Path, notes: list[str]) -> np.ndarray:
    """(N, 28, 28) pixels 0..255 as uint8 (`data.checks.check_pixels`); float pixels in [0, 1] or whole 0..255
    are accepted with a note."""
    if x.ndim != 3:
        raise DataError(f"{path} holds an array of shape {tuple(x.shape)}; MNIST images are N×28×28 (one grey channel)")
    if tuple(x.shape[1:]) != (MNIST_SIDE, MNIST_SIDE):
        raise DataError(f"{path} holds images of shape {tuple(x.shape[1:])}, expected 28x28")
    if len(x) == 0:
        raise DataError(f"{path} holds no images")
    x = check_pixels(x, str(path))
    if np.issubdtype(x.dtype, np.floating):
        hi = float(x.max())
        what = "in [0, 1]; stored as bytes 0..255 (×255, rounded)" if hi <= 1 else "with whole values 0..255"
        notes.append(f"Note: {path} holds {_type_name(x)} pixels {what} like MNIST's.")
        return np.rint(x.astype(np.float64) * (255.0 if hi <= 1 else 1.0)).astype(np.uint8)
    if x.dtype != np.uint8:
        notes.append(f"Note: {path} holds {_type_name(x)} pixels; read as the bytes 0..255 they are.")
    return x.astype(np.uint8)


def _check_labels(y: np.ndarray, path: Path, n_images: int, images: Path, notes: list[str]) -> np.ndarray:
    """(N,) digits 0..9 as int64, as many as there are images; float labels that are whole numbers pass, noted."""
    if y.ndim != 1:
        raise DataError(f"{path} holds an array of shape {tuple(y.shape)}; MNIST labels are one digit per image")
    if len(y) != n_images:
        raise DataError(f"{images} holds {n_images} images but its labels file {len(y)} labels")
    if np.issubdtype(y.dtype, np.floating):
        if not np.isfinite(y).all():
            raise DataError(f"{path} contains NaN or inf (label {int(np.flatnonzero(~np.isfinite(y))[0])})")
        fractional = np.flatnonzero(y != np.round(y))
        if len(fractional):
            i = int(fractional[0])
            raise DataError(f"{path} holds a non-integer label {y[i].item()!r} (label {i}); labels are digits 0..9")
    if len(y) and (y.min() < 0 or y.max() >= NUM_CLASSES):
        raise DataError(f"MNIST labels in {path} must be 0..9, found {y.min().item():g}..{y.max().item():g}")
    if np.issubdtype(y.dtype, np.floating):
        notes.append(f"Note: {path} holds {_type_name(y)} labels; read as the whole digits 0..9 they are.")
    absent = [d for d in range(NUM_CLASSES) if not np.any(y == d)]
    if absent:
        names = ", ".join(map(str, absent))
        notes.append(
            f"Note: {path} has no image of digit {names}; the autoencoders do not use labels, "
            "and latent-plot shows only the digits present."
        )
    return y.astype(np.int64)


def _read(raw: Path, train: bool, notes: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """One split's images (N, 28, 28) uint8 and labels (N,) int64, every file checked."""
    prefix = "train" if train else "t10k"
    data, images_path = _file_bytes(raw, f"{prefix}-images-idx3-ubyte")
    x = _check_images(read_idx(data, images_path), images_path, notes)
    del data
    data, labels_path = _file_bytes(raw, f"{prefix}-labels-idx1-ubyte")
    y = _check_labels(read_idx(data, labels_path), labels_path, len(x), images_path, notes)
    return torch.from_numpy(x), torch.from_numpy(y)


def load_mnist(data_dir: Path | str, device: torch.device, download: bool = True) -> MnistData:
    """Read MNIST from `<data_dir>/MNIST/raw/` (downloading it first when allowed) onto `device`."""
    data_dir = Path(data_dir)
    raw = raw_folder(data_dir)
    missing = _missing(raw)
    if missing:
        if not download:
            raise DataError(missing_message(raw, missing, "--no-download was given"))
        reason = _try_download(data_dir)
        missing = _missing(raw)
        if missing:
            raise DataError(missing_message(raw, missing, f"the download failed: {reason or 'no files'}"))
    notes: list[str] = []
    train_x, train_y = _read(raw, True, notes)
    test_x, test_y = _read(raw, False, notes)
    return MnistData(
        train_x=train_x.unsqueeze(1).contiguous().to(device),  # (N, 1, 28, 28) uint8
        train_y=train_y.to(device),
        test_x=test_x.unsqueeze(1).contiguous().to(device),
        test_y=test_y.to(device),
        synthetic=False,
        source=str(raw),
        notes=notes,
    )


# --- synthetic stand-in digits -------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def digit_glyphs(supersample: int = 4) -> np.ndarray:
    """The glyphs '0'-'9' of matplotlib's bundled DejaVu Sans, (10, 28, 28) float32 in [0, 1].

    Each glyph is scaled into a 20×20 box centred in 28×28, as MNIST's digits are, and
    anti-aliased by averaging a `supersample`² grid of point-in-outline tests per pixel.
    """
    import matplotlib
    from matplotlib.font_manager import FontProperties
    from matplotlib.path import Path as MplPath
    from matplotlib.textpath import TextPath

    font = FontProperties(fname=str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"))
    side = MNIST_SIDE * supersample
    centres = (np.arange(side) + 0.5) / supersample  # pixel units, y downwards
    gx, gy = np.meshgrid(centres, centres)
    glyphs = np.zeros((NUM_CLASSES, MNIST_SIDE, MNIST_SIDE), dtype=np.float32)
    for digit in range(NUM_CLASSES):
        path = TextPath((0, 0), str(digit), size=100, prop=font)
        (x0, y0), (x1, y1) = path.get_extents().get_points()
        scale = 20.0 / max(x1 - x0, y1 - y0)
        # glyph coordinates of every sample point (glyph y grows upwards)
        px = (gx - 14.0) / scale + (x0 + x1) / 2
        py = (14.0 - gy) / scale + (y0 + y1) / 2
        points = np.column_stack([px.ravel(), py.ravel()])
        # even-odd rule over the outline's closed contours, so the holes of 0, 4, 6, 8, 9 stay open
        inside = np.zeros(len(points), dtype=bool)
        for polygon in path.to_polygons():
            inside ^= MplPath(polygon).contains_points(points)
        inside = inside.reshape(side, side)
        blocks = inside.reshape(MNIST_SIDE, supersample, MNIST_SIDE, supersample)
        glyphs[digit] = blocks.mean(axis=(1, 3))
    return glyphs


def synthetic_digits(generator: torch.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n jittered glyphs: (n, 1, 28, 28) uint8 and (n,) int64 labels, on the CPU."""
    import torch.nn.functional as F

    labels = torch.randint(0, NUM_CLASSES, (n,), generator=generator)
    base = torch.from_numpy(digit_glyphs())[labels].unsqueeze(1)  # (n, 1, 28, 28)

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)

    angle = uniform(-0.26, 0.26)  # ±15°
    scale = uniform(0.8, 1.15)
    aspect = uniform(0.8, 1.2)
    shear = uniform(-0.25, 0.25)
    shift_x, shift_y = uniform(-0.12, 0.12), uniform(-0.12, 0.12)  # ±1.7 px
    gain = uniform(1.0, 1.6)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # output -> input sampling grid: rotation · shear · anisotropic scale, inverted via 1/scale
    theta = torch.zeros(n, 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = cos / (scale * aspect)
    theta[:, 0, 1] = (-sin + shear * cos) / (scale * aspect)
    theta[:, 1, 0] = sin / scale
    theta[:, 1, 1] = (cos + shear * sin) / scale
    theta[:, 0, 2], theta[:, 1, 2] = shift_x, shift_y
    grid = F.affine_grid(theta.float(), [n, 1, MNIST_SIDE, MNIST_SIDE], align_corners=False)
    images = F.grid_sample(base, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    images = (images * gain.float().view(n, 1, 1, 1)).clamp_(0.0, 1.0)
    return (images * 255.0).round_().to(torch.uint8), labels


def synthetic_mnist(
    seed: int, n_train: int | None = None, n_test: int | None = None, device: torch.device | None = None
) -> MnistData:
    """Stand-in digits rendered from a bundled font under random affine jitter (the same for a seed)."""
    n_train = SYNTHETIC_SIZES[0] if n_train is None else n_train
    n_test = SYNTHETIC_SIZES[1] if n_test is None else n_test
    generator = torch.Generator().manual_seed(seed)
    train_x, train_y = synthetic_digits(generator, n_train)
    test_x, test_y = synthetic_digits(generator, n_test)
    device = device or torch.device("cpu")
    return MnistData(
        train_x=train_x.to(device),
        train_y=train_y.to(device),
        test_x=test_x.to(device),
        test_y=test_y.to(device),
        synthetic=True,
        source=f"synthetic (seed {seed})",
    )


def mnist_spec(data_dir: Path | str | None, synthetic: bool, download: bool) -> dict:
    """What to load, as saved in config.json (an absolute folder, so --resume works from anywhere)."""
    if synthetic:
        return {"synthetic": True, "n_train": SYNTHETIC_SIZES[0], "n_test": SYNTHETIC_SIZES[1]}
    return {"synthetic": False, "data_dir": str(Path(data_dir).resolve()), "download": download}


def open_mnist(spec: dict, device) -> MnistData:
    """MnistData for a spec from `mnist_spec` (or from a saved config)."""
    if spec.get("synthetic"):
        return synthetic_mnist(SYNTHETIC_SEED, spec.get("n_train"), spec.get("n_test"), device)
    return load_mnist(spec["data_dir"], device, download=spec.get("download", True))
