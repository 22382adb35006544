"""What a run folder is made of: its file names, its error, and the chores on the folder itself
(checking a new one before any work, clearing an --overwrite'd one, dropping a killed writer's temps).

    config.json     the command and every option, then what was resolved (written by `Run.begin`)
    resume.pt       every member of an interrupted run (`engine.checkpoints`)
    progress.json   how far training got, readable without torch (`engine.status`)
    summary.json    written last: a folder without it is not a finished run
    .lock           held while the run runs (`engine.lock`)

and the command's own files, declared once in its `Outputs`: the `Run` writes nothing else, and an
--overwrite clears exactly those (with what export, evaluate and predict write there by default).
"""

from __future__ import annotations

import fnmatch
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from mle6cli.errors import Mle6Error

SUMMARY = "summary.json"
CONFIG = "config.json"
RESUME = "resume.pt"
RESUME_SHARD = "resume.rank{}.pt"  # under torchrun: one rank's members, saved while it trains its shard
RESUME_SHARDS = "resume.rank*.pt"
PROGRESS = "progress.json"
LOCK = ".lock"
TENSORBOARD = "tensorboard"  # the sub-folder of TensorBoard event files, one folder per member
PROTOCOL = (CONFIG, SUMMARY, RESUME, RESUME_SHARDS, PROGRESS)  # the run protocol's own files


@dataclass(frozen=True)
class Outputs:
    """The files a command writes into its run folder: the one list of them.

    `files` are globs relative to the run folder; each of `member_files` sits in each of
    `member_folders` ("" is the run folder itself); `tensorboard`: TensorBoard event files, one
    sub-folder per member; `steps`: commands run in sub-folders of their own (run-all's steps),
    with their protocol files. `Run` refuses to write a file that matches none of these, so a
    file cannot be added without its glob, and `globs()` is what an --overwrite clears.
    """

    files: tuple[str, ...] = ()
    member_files: tuple[str, ...] = ()
    member_folders: tuple[str, ...] = ("",)
    tensorboard: bool = False
    steps: Mapping[str, Outputs] = field(default_factory=dict)

    def globs(self) -> tuple[str, ...]:
        own = list(self.files)
        own += [str(PurePosixPath(folder, name)) for folder in self.member_folders for name in self.member_files]
        if self.tensorboard:
            own.append(f"{TENSORBOARD}/*/events.out.tfevents.*")
        for step, outputs in self.steps.items():
            own += [f"{step}/{pattern}" for pattern in (*PROTOCOL, *outputs.globs())]
        return tuple(own)

    def declares(self, relative: str | Path) -> bool:
        """Whether the file `relative` (to the run folder) is one of these; globs match part by part."""
        parts = PurePosixPath(Path(relative).as_posix()).parts
        for pattern in self.globs():
            wanted = PurePosixPath(pattern).parts
            if len(wanted) == len(parts) and all(map(fnmatch.fnmatchcase, parts, wanted)):
                return True
        return False


def exports(checkpoint: str) -> tuple[str, ...]:
    """What `mle6 export` writes beside a checkpoint by default (an --overwrite clears those too)."""
    stem = checkpoint.removesuffix(".pt")
    return (f"{stem}.onnx", f"{stem}.torchscript.pt")


# What `mle6 evaluate` and `mle6 predict` write into a run folder by default: evaluation/<split>/
# (the classifier's confusion matrix) and predictions/ (an autoencoder's figure)
EVALUATION = "evaluation"
CONFUSION = ("confusion.csv", "confusion.png")
PREDICTIONS = "predictions"
RECONSTRUCTIONS = "reconstructions.png"


def evaluation_dir(run: Path | str, split: str) -> Path:
    return Path(run) / EVALUATION / split


def prediction_figure(run: Path | str) -> Path:
    return Path(run) / PREDICTIONS / RECONSTRUCTIONS


def evaluations() -> tuple[str, ...]:
    """What `mle6 evaluate` writes into a classifier's run folder by default (an --overwrite clears those too)."""
    return tuple(f"{EVALUATION}/*/{name}" for name in CONFUSION)


def predictions() -> tuple[str, ...]:
    """What `mle6 predict` writes into an autoencoder's run folder by default (an --overwrite clears it too)."""
    return (f"{PREDICTIONS}/{RECONSTRUCTIONS}",)


class UndeclaredOutput(Exception):
    """A command wrote a file its `Outputs` do not name (a bug in the command, not a user's error)."""


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
