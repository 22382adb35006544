"""Run folders: the one writer of config, metrics, summaries and checkpoints.

Every file is written atomically (a temp file in the same folder, then `os.replace`), so a
kill at any instant leaves either the previous good file or the new one, never half of one.
`summary.json` is written last: a folder without it is an unfinished run.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from mle6cli.errors import Mle6Error

SUMMARY = "summary.json"
CONFIG = "config.json"
RESUME = "resume.pt"


class RunDirError(Mle6Error):
    pass


def default_run_dir(command: str, root: Path | str = "runs") -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(root) / command / stamp
    n = 1
    while path.exists():  # two runs in the same second
        n += 1
        path = Path(root) / command / f"{stamp}-{n}"
    return path


def prepare_run_dir(out: Path | None, command: str, overwrite: bool = False) -> Path:
    """Create the run folder; refuse an existing non-empty one unless `overwrite`."""
    path = Path(out) if out is not None else default_run_dir(command)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"run folder {path} exists and is a file")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise RunDirError(f"run folder {path} is not empty; choose another --out or pass --overwrite")
    path.mkdir(parents=True, exist_ok=True)
    return path


def start(run_dir: Path, command: str, **fields) -> dict:
    """Begin a fresh run: write config.json (`command`, `fields`, package versions, time) and drop the
    summary.json/resume.pt an --overwrite'd folder may hold, so it looks neither finished nor resumable."""
    run_dir = Path(run_dir)
    (run_dir / SUMMARY).unlink(missing_ok=True)
    (run_dir / RESUME).unlink(missing_ok=True)
    torch = sys.modules.get("torch")  # the thread count can change CPU results in the last bits
    document = {
        "command": command,
        **fields,
        "cpu_threads": torch.get_num_threads() if torch is not None else None,
        "packages": package_versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_json(run_dir / CONFIG, document)
    return document


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:  # a full disk, a second Ctrl-C: keep the old file, leave no temp behind
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_json(path: Path, document) -> Path:
    from mle6cli.output import dumps

    return atomic_write_bytes(path, (dumps(document) + "\n").encode())


def read_json(path: Path):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RunDirError(f"{path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{path} is not valid JSON: {exc}") from None


def format_value(value) -> str:
    """The one number format of metrics files: repr of the float, so files are byte-stable and exact."""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def write_csv(path: Path, header: list[str], rows: list[dict]) -> Path:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([format_value(row.get(k, "")) for k in header])
    return atomic_write_bytes(path, buf.getvalue().encode())


def save_torch(path: Path, obj) -> Path:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_torch(path: Path, map_location="cpu"):
    import torch

    path = Path(path)
    if not path.is_file():
        raise RunDirError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # a truncated or foreign file
        raise RunDirError(f"checkpoint {path} cannot be read: {exc}") from None


def package_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for name in ("mle6cli", "torch", "torchvision", "numpy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def save_resume(run_dir: Path, state: dict) -> Path:
    """Write the resumable checkpoint (model and optimizer state dicts, LoopState, RNG states, …)."""
    import torch

    payload = dict(state)
    payload.setdefault("torch_rng", torch.get_rng_state())
    return save_torch(Path(run_dir) / RESUME, payload)


def load_resume(run_dir: Path, command: str | None = None) -> tuple[dict, dict]:
    """(config.json, resume.pt) of an interrupted run; RunDirError naming what is missing otherwise.

    With `command`, a run of another command is refused with the command line that resumes it.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"--resume: {run_dir} is not a run folder")
    if not (run_dir / RESUME).exists():
        if (run_dir / SUMMARY).exists():
            raise RunDirError(f"--resume: the run in {run_dir} already finished")
        raise RunDirError(
            f"--resume: no checkpoint in {run_dir} ({RESUME} is missing); only an interrupted run can be resumed"
        )
    config = read_json(run_dir / CONFIG)
    state = load_torch(run_dir / RESUME)
    if command is not None:
        saved = config.get("command") if isinstance(config, dict) else None
        if saved != command or not isinstance(state, dict) or state.get("command") != command:
            other = (
                f" holds a {saved} run; use mle6 {saved} --resume {run_dir}" if saved else f" is not a run of {command}"
            )
            raise RunDirError(f"--resume: {run_dir}{other}")
    return config, state


def restore_rng(state: dict) -> None:
    """Put back the torch RNG state `save_resume` stored."""
    import torch

    if state.get("torch_rng") is not None:
        torch.set_rng_state(state["torch_rng"])


@dataclass
class TrainClock:
    """Training seconds and resume count, carried across interruptions in resume.pt."""

    seconds_before: float = 0.0
    resumes: int = 0
    started: float = field(default_factory=time.perf_counter)

    @classmethod
    def resumed(cls, state: dict | None) -> TrainClock:
        """A clock going on from a resume checkpoint (`state`), or a fresh one when it is None."""
        if state is None:
            return cls()
        return cls(state.get("train_seconds", 0.0), state.get("resumes", 0) + 1)

    def seconds(self) -> float:
        return self.seconds_before + time.perf_counter() - self.started

    def to_state(self) -> dict:
        """The entries to save in resume.pt."""
        return {"train_seconds": self.seconds(), "resumes": self.resumes}


def finish(run_dir: Path, summary: dict) -> Path:
    """Write summary.json last, and drop the resume checkpoint: the run is complete."""
    path = write_json(Path(run_dir) / SUMMARY, summary)
    (Path(run_dir) / RESUME).unlink(missing_ok=True)
    return path
