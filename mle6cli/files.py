"""The one atomic writer, and the readers that go with it.

Every file the tool writes goes through `atomic_write_bytes`: a temp file in the same folder,
fsync, then `os.replace`, so a kill at any instant leaves the previous good file or the new
one, never half of one. Checkpoints are read with `weights_only=True`: a file is data, never
code (see `load_torch`).
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
from pathlib import Path

from mle6cli import fmt
from mle6cli.errors import Mle6Error, posix_module


class FileError(Mle6Error):
    """A file that cannot be written or read as the tool expects."""


def file_locks():
    """The `fcntl` module, for the run folders' locks; on a system without it, one line saying so."""
    return posix_module("fcntl", "file locks for run folders")


def _os_error(exc: OSError, path: Path, doing: str) -> FileError:
    if exc.errno == errno.ENOSPC:
        return FileError(f"no space left on the device while {doing} {path}")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return FileError(f"permission denied while {doing} {path}")
    if exc.errno == errno.EISDIR:
        return FileError(f"{path} is a folder; a file is needed there")
    if exc.errno == errno.ENOTDIR:
        return FileError(f"cannot write {path}: a file is in the way of its folder")
    return FileError(f"cannot write {path}: {exc.strerror or exc}")


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:  # a full disk, a read-only folder: keep the old file, leave no temp behind
        _unlink_quietly(tmp)
        raise _os_error(exc, path, "writing") from None
    except BaseException:  # a second Ctrl-C
        _unlink_quietly(tmp)
        raise
    return path


def check_replaceable(paths, overwrite: bool) -> None:
    """Refuse, before any work, to replace files that exist, unless `overwrite`: one line naming them."""
    existing = [Path(p) for p in paths if p is not None and Path(p).exists()]
    if not existing or overwrite:
        return
    them = "them" if len(existing) > 1 else "it"
    if len({p.parent for p in existing}) == 1:
        names = ", ".join(p.name for p in existing)
        raise FileError(f"{existing[0].parent} already holds {names}; pass --overwrite to replace {them}")
    raise FileError(f"{' and '.join(map(str, existing))} already exist; pass --overwrite to replace them")


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def dumps(document) -> str:
    return json.dumps(jsonable(document), indent=2, allow_nan=False)


def plain(document: dict) -> dict:
    """`document` as JSON makes it: fresh objects, so its pickle is the same bytes whether its values came
    from the command line or from a resumed run's config.json (pickle writes an object it has seen as a
    reference to the first: one string shared by two entries pickles differently from two equal ones)."""
    return json.loads(dumps(document))


def jsonable(value):
    """Floats made JSON-safe (NaN/inf become null), tuples lists, paths strings, recursively."""
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return jsonable(value.item())
    if hasattr(value, "__fspath__"):
        return str(value)
    return value


def write_json(path: Path, document) -> Path:
    return atomic_write_bytes(path, (dumps(document) + "\n").encode())


def read_json(path: Path):
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise FileError(f"{path} is a folder, not a JSON file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FileError(f"{path} is not valid JSON: {exc}") from None
    except OSError as exc:
        raise FileError(f"cannot read {path}: {exc.strerror or exc}") from None


def csv_bytes(header: list[str], rows: list[dict]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([fmt.exact(row.get(k, "")) for k in header])
    return buf.getvalue().encode()


def write_csv(path: Path, header: list[str], rows: list[dict]) -> Path:
    return atomic_write_bytes(path, csv_bytes(header, rows))


def save_torch(path: Path, obj) -> Path:
    """torch.save into memory, then the atomic writer. Save only what `load_torch` accepts:
    tensors, numbers, strings, None, lists, tuples and dicts."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


# torch's legacy (pre-zip) format opens with its magic number, pickled with protocol 2 as a LONG1
_LEGACY_TORCH = b"\x80\x02\x8a\x0a"


def load_torch(path: Path, what: str = "checkpoint"):
    """A torch file as data: `weights_only=True` on every torch version (≥ 2.4 defaulted to False),
    so a crafted file cannot run code. Anything else is refused with one line naming the file:
    an empty file, one that is not a torch file at all, a truncated one, or one holding objects."""
    import pickle
    import zipfile

    import torch

    path = Path(path)
    if not path.is_file():
        raise FileError(f"{what} {path} does not exist" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise FileError(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    if not head:
        raise FileError(f"{what} {path} cannot be read: the file is empty")
    if head.startswith(b"PK"):  # torch's zip format (torch >= 1.6)
        if not zipfile.is_zipfile(path):
            raise FileError(f"{what} {path} cannot be read: truncated (a torch zip archive without its end)")
    elif head.startswith(b"\x80") and not head.startswith(_LEGACY_TORCH):
        raise FileError(f"{what} {path} cannot be read: not a torch file (a plain Python pickle)")
    elif not head.startswith(_LEGACY_TORCH):
        raise FileError(f"{what} {path} cannot be read: not a torch file (it starts with {head[:4]!r})")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()
        detail = next((line for line in first if "GLOBAL" in line or "Unsupported" in line), first[0] if first else "")
        detail = detail.split(" was not an allowed global")[0].replace("WeightsUnpickler error: ", "").strip()
        raise FileError(f"{what} {path} holds more than tensors and plain values; refused ({detail})") from None
    except Exception as exc:  # truncated inside, a damaged archive
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        reason = reason.split(". This is an internal")[0]  # torch's long advice after the cause
        raise FileError(f"{what} {path} cannot be read: {reason}") from None


def state_dict_problem(exc: BaseException) -> str:
    """One line saying why `load_state_dict` refused a checkpoint's weights (torch's first detail)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    line = lines[1] if lines[0].startswith("Error(s) in loading state_dict") and len(lines) > 1 else lines[0]
    return line if len(line) <= 160 else line[:157] + "..."


def non_finite_entry(state_dict) -> str | None:
    """The name of the first floating tensor of a state dict holding NaN or inf, or None."""
    import torch

    for name, value in state_dict.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all():
            return str(name)
    return None
