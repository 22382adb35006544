"""What a run folder is made of: its file names, its error, and the chores on the folder itself
(checking a new one before any work, clearing an --overwrite'd one, dropping a killed writer's temps).

    config.json     the command and every option, then what was resolved (written by `Run.begin`)
    resume.pt       every member of an interrupted run (`engine.checkpoints`)
    progress.json   how far training got, readable without torch (`engine.status`)
    summary.json    written last: a folder without it is not a finished run
    .lock           held while the run runs (`engine.lock`)
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from mle6cli.errors import Mle6Error

SUMMARY = "summary.json"
CONFIG = "config.json"
RESUME = "resume.pt"
RESUME_SHARD = "resume.rank{}.pt"  # under torchrun: one rank's members, saved while it trains its shard
RESUME_SHARDS = "resume.rank*.pt"
PROGRESS = "progress.json"
LOCK = ".lock"


class RunDirError(Mle6Error):
    """A run folder that cannot be used as asked."""


def default_run_dir(command: str, root: Path | str = "runs") -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(root) / command / stamp
    n = 1
    while path.exists():  # two runs in the same second
        n += 1
        path = Path(root) / command / f"{stamp}-{n}"
    return path


def check_new_run_dir(out: Path | str | None, command: str, overwrite: bool = False) -> Path:
    """The folder a fresh run will use; refuse an unusable one before anything is computed."""
    path = Path(out) if out is not None else default_run_dir(command)
    if str(out) == "":
        raise RunDirError("--out is empty; name a folder")
    if path.exists() and not path.is_dir():
        raise RunDirError(f"run folder {path} exists and is a file")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise RunDirError(f"run folder {path} is not empty; choose another --out or pass --overwrite")
    return path


def check_writable(path: Path) -> None:
    """Refuse, before any work, a run folder that cannot be created or written."""
    path = Path(path)
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise RunDirError(f"cannot create run folder {path}: {probe} is a file")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise RunDirError(f"cannot write run folder {path}: permission denied on {probe}")


def remove_stale_temps(folder: Path) -> None:
    """The half-written temp files (`.<name>.tmp-<pid>`) a killed writer left; called under the lock,
    so no live writer of this folder can own one."""
    for path in Path(folder).rglob(".*.tmp-*"):
        if path.is_file():
            path.unlink(missing_ok=True)


def clear_outputs(folder: Path, patterns: Sequence[str]) -> None:
    """Delete what an earlier run of the command left in `folder` (its own outputs: `patterns`, globs
    relative to the folder), then the folders that leaves empty; nothing else is touched."""
    folder = Path(folder)
    touched = set()
    for pattern in patterns:
        for path in sorted(folder.glob(pattern), reverse=True):
            if path.is_file() or path.is_symlink():
                path.unlink()
                touched.add(path.parent)
    for parent in sorted(touched, key=lambda p: len(p.parts), reverse=True):
        while parent != folder and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
