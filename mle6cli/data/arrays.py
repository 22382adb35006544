"""Reading .npy files as data only (never pickles), each failure one line naming the file; writing them."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from mle6cli.errors import DataError

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


def npy_bytes(array: np.ndarray) -> bytes:
    """The bytes of `array` as an .npy file (no pickles)."""
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()
