"""Run folders: the one protocol of every training command.

    run = Run.open("train-cnn", options, out=..., overwrite=..., resume=...)   # nothing written yet
    ... load and check the data ...
    run.begin(device=..., data=...)          # the folder, config.json (or checks a resumed run)
    run.train(members, build, train, evals, epochs=..., batch_size=...)   # resume, save, interrupt
    run.finish(summary)                      # summary.json, written last

`Run` is the folder's life; its parts live beside it: the file names and folder chores
(`engine.folder`), the lock (`engine.lock`), resume.pt and its checks (`engine.checkpoints`),
progress.json and the status `mle6 runs` reads (`engine.status`), and how the members are
trained, in one process or under torchrun (`engine.strategies`).

- **config.json** has one schema: `command`, `options` (the command's options, every one,
  defaults included: a run folder's config.json reproduces the run), then what was resolved
  (`device`, `data`), `cpu_threads`, `packages` and `created`.
- **Interrupts** (SIGINT, SIGTERM) finish the current step, save, and raise `Interrupted`
  with the exact `mle6 <command> --resume DIR` line; every command reports them the same way.
- **summary.json** is written last: a folder without it is not a finished run.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mle6cli.engine.checkpoints import (
    Member,
    check_same_data,
    load_resume,
    remove_resume,
    remove_shards,
    saved_members,
    write_resume,
)
from mle6cli.engine.folder import (
    CONFIG,
    PROGRESS,
    PROTOCOL,
    RESUME,
    SUMMARY,
    TENSORBOARD,
    Outputs,
    RunDirError,
    UndeclaredOutput,
    check_new_run_dir,
    check_writable,
    clear_outputs,
    remove_stale_temps,
)
from mle6cli.engine.interrupt import Interrupted
from mle6cli.engine.lock import RunLock
from mle6cli.engine.status import write_progress
from mle6cli.engine.strategies import Fit, strategy_for
from mle6cli.errors import Mle6Error
from mle6cli.files import atomic_write_bytes, save_torch, write_csv, write_json

# what a resumed run may change: where it computes and how often it saves, not what it computes
RESUMABLE = ("device", "save_every", "tensorboard")


def package_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for name in ("mle6cli", "torch", "torchvision", "numpy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


@dataclass
class TrainClock:
    """Training seconds and resume count, carried across interruptions in resume.pt."""

    seconds_before: float = 0.0
    resumes: int = 0
    started: float = field(default_factory=time.perf_counter)

    def seconds(self) -> float:
        return self.seconds_before + time.perf_counter() - self.started

    def to_state(self) -> dict:
        return {"train_seconds": self.seconds(), "resumes": self.resumes}


class RunFinished(Mle6Error):
    """`--resume` of a run that already finished: nothing to do (exit 0, a note, not an error)."""

    exit_code = 0
    note = True


class Run:
    """One run folder, from opening to summary (see the module docstring)."""

    def __init__(
        self,
        command: str,
        path: Path,
        options: dict,
        saved: dict | None,
        document: dict | None,
        outputs: Outputs | None = None,
    ):
        self.command = command
        self.path = path
        self.options = options
        self.saved = saved  # the resume checkpoint of an interrupted run
        self.document = document  # config.json of a resumed run
        self.outputs = outputs or Outputs()  # the files this command writes (an --overwrite clears them)
        self.lock: RunLock | None = None
        self.peers = None  # engine.distributed.Peers under torchrun (rank 0 writes, every rank trains)
        self.epochs: int | None = None
        self.graphed: list[bool] = []  # per group trained (every rank's): whether its steps replayed CUDA graphs
        self.clock = TrainClock()
        if saved is not None:
            self.clock = TrainClock(float(saved.get("train_seconds", 0.0)), int(saved.get("resumes", 0)) + 1)

    @property
    def resumed(self) -> bool:
        return self.saved is not None

    @property
    def writer(self) -> bool:
        """Whether this process writes the folder: always, but under torchrun only rank 0."""
        return self.peers is None or self.peers.writer

    # ---- opening

    @classmethod
    def open(
        cls,
        command: str,
        options: dict,
        *,
        out: Path | str | None = None,
        overwrite: bool = False,
        resume: Path | str | None = None,
        outputs: Outputs | None = None,
        overrides: dict | None = None,
        peers=None,
        may_lack: tuple[str, ...] = (),
    ) -> Run:
        """A fresh run in `out` (checked, not yet created), or the interrupted run in `resume` with its
        saved options (and `overrides`, the options a resumed run may change: the device; `may_lack`: the
        options its config.json may lack, which then take their defaults). Nothing is written until `begin`;
        a resumed run is locked at once. Under torchrun (`peers`) rank 0 opens the folder and the other
        ranks get what it found (or its error)."""
        if peers is None:
            return cls._open(command, options, out, overwrite, resume, outputs, overrides, may_lack)
        opened = []

        def lead() -> dict:
            run = cls._open(command, options, out, overwrite, resume, outputs, overrides, may_lack)
            opened.append(run)
            return {"path": str(run.path), "options": run.options, "saved": run.saved, "document": run.document}

        shared = peers.agree("open the run folder", lead)
        if opened:
            run = opened[0]
        else:
            run = cls(command, Path(shared["path"]), shared["options"], shared["saved"], shared["document"], outputs)
        run.peers = peers
        return run

    @classmethod
    def _open(cls, command, options, out, overwrite, resume, outputs, overrides, may_lack) -> Run:
        from mle6cli.files import file_locks

        file_locks()  # a system without file locks is told so before any data are read or folder made
        if resume is None:
            path = check_new_run_dir(out, command, overwrite)
            check_writable(path)
            return cls(command, path, dict(options), None, None, outputs)
        path = Path(resume)
        if (path / SUMMARY).is_file() and not (path / RESUME).exists() and (path / CONFIG).is_file():
            raise RunFinished(f"the run in {path} already finished; nothing to resume (see {path / SUMMARY})")
        lock = RunLock.take(path) if path.is_dir() else None
        try:
            keys = [k for k in options if k not in RESUMABLE and k not in may_lack]
            document, saved = load_resume(path, command, keys=keys)
            saved_options = document.get("options")
            if not isinstance(saved_options, dict):
                raise RunDirError(f"--resume: {path / CONFIG} lacks the run's options")
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        run = cls(command, path, dict(saved_options, **(overrides or {})), saved, document, outputs)
        run.lock = lock
        remove_stale_temps(path)
        return run

    def record_paths(self, *keys: str) -> None:
        """Record these options' paths absolute (a fresh run), so --resume works from any folder."""
        if not self.resumed:
            for key in keys:
                if self.options.get(key) is not None:
                    self.options[key] = str(Path(self.options[key]).resolve())

    def begin(self, *, device: str, data: dict, **extra) -> None:
        """Create and lock the folder, clear an --overwrite'd folder of this command's own outputs and
        write config.json (a fresh run); or check that a resumed run's data are the data it started on.
        Under torchrun rank 0 does it, after checking that every rank loaded the same data.
        The training clock starts here."""
        self.clock.started = time.perf_counter()
        if self.peers is None:
            self._begin(device, data, extra)
            return
        prints = self.peers.all_gather("compare data", data.get("fingerprint"))

        def lead() -> None:
            for rank, print_ in enumerate(prints):
                if print_ != prints[0]:
                    raise RunDirError(
                        f"rank {rank} loaded other data than rank 0 (fingerprint {print_} against {prints[0]}); "
                        "every rank must read the same files"
                    )
            self._begin(device, data, dict(extra, ranks=self.peers.world))

        self.peers.agree("create the run folder", lead)

    def _begin(self, device: str, data: dict, extra: dict) -> None:
        if self.resumed:
            check_same_data(self.document, data, self.path)
            return
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunDirError(f"cannot create run folder {self.path}: {exc.strerror or exc}") from None
        self.lock = RunLock.take(self.path)
        remove_stale_temps(self.path)
        clear_outputs(self.path, (*PROTOCOL, *self.outputs.globs()))
        torch = sys.modules.get("torch")  # the thread count can change CPU results in the last bits
        write_json(
            self.path / CONFIG,
            {
                "command": self.command,
                "options": self.options,
                "device": device,
                "data": data,
                **extra,
                "cpu_threads": torch.get_num_threads() if torch is not None else None,
                "packages": package_versions(),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
        )

    # ---- files

    def output(self, relative: str | Path) -> Path:
        """The path of one of the command's own files (its `Outputs` must name it)."""
        if not self.outputs.declares(relative):
            raise UndeclaredOutput(f"mle6 {self.command} writes {relative}, which its Outputs do not name")
        return self.path / relative

    def tensorboard_dir(self, member: str) -> Path:
        """The folder of one member's TensorBoard event files (the command's `Outputs` must have them)."""
        if not self.outputs.tensorboard:
            raise UndeclaredOutput(f"mle6 {self.command} writes TensorBoard files, which its Outputs do not name")
        return self.path / TENSORBOARD / member

    def write_csv(self, relative: str | Path, header: list[str], rows: list[dict]) -> Path:
        return write_csv(self.output(relative), header, rows)

    def write_bytes(self, relative: str | Path, data: bytes) -> Path:
        return atomic_write_bytes(self.output(relative), data)

    def save_torch(self, relative: str | Path, obj) -> Path:
        return save_torch(self.output(relative), obj)

    def finish(self, summary: dict) -> dict:
        """Write summary.json last and drop the resume checkpoint: the run is complete."""
        summary = dict(summary, train_seconds=summary.get("train_seconds", self.clock.seconds()))
        summary.setdefault("resumed", self.clock.resumes)
        summary.setdefault("graphs", bool(self.graphed) and all(self.graphed))
        summary.setdefault("run_dir", str(self.path))
        write_json(self.path / SUMMARY, summary)
        for name in (RESUME, PROGRESS):
            (self.path / name).unlink(missing_ok=True)
        remove_shards(self.path)
        self.release()
        return summary

    def release(self) -> None:
        """Drop the folder's lock (at the end, or when the run fails: a library caller may go on)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    # ---- saving, resuming, interrupting

    def save(self, members: Sequence[Member], status: str = "running", **extra) -> Path:
        """resume.pt (every member, the clock, the torch RNG, the job's `extra` entries), then
        progress.json: how far the run got, readable without torch (`engine.status`)."""
        path = write_resume(self.path, self.command, members, self.clock.to_state(), extra)
        self.progress(members, status, extra)
        return path

    def progress(self, members: Sequence[Member], status: str, extra: dict) -> None:
        write_progress(self.path, self.command, members, status, self.epochs, extra)

    def drop_resume(self) -> None:
        """A run that cannot go on (its members diverged) keeps no resume.pt: nothing to resume."""
        remove_resume(self.path)

    def members(self, keys: list[dict], extra: dict | None = None) -> list[Member]:
        """One member per key (each with its `seed`): fresh, or those the resumed run saved (which must be
        the same members)."""
        from mle6cli.engine.loop import MemberState

        saved = self.saved_members()
        if saved is None:
            return [Member(dict(key), MemberState(seed=key["seed"]), extra=dict(extra or {})) for key in keys]
        if [m.key for m in saved] != keys:
            raise RunDirError(
                f"--resume: the checkpoint in {self.path} does not hold the members its config.json names"
            )
        return saved

    def saved_members(self) -> list[Member] | None:
        return saved_members(self.saved, self.path)

    def restore_rng(self) -> None:
        import torch

        if self.saved is not None and self.saved.get("torch_rng") is not None:
            torch.set_rng_state(self.saved["torch_rng"])

    def interrupted(self, signal_number: int | None, where: str) -> Interrupted:
        self.release()
        return Interrupted(
            signal_number,
            f"interrupted {where}; progress saved in {self.path / RESUME}. "
            f"Continue with: mle6 {self.command} --resume {self.path}",
        )

    def train(
        self,
        members: list[Member],
        build: Callable[[list[Member]], object],
        train,
        evals: dict,
        *,
        epochs: int,
        batch_size: int,
        on_epoch: Callable[[list[Member], list[dict | None], object], Sequence[int] | None] | None = None,
        stop: Callable[[], bool] | None = None,
        save_every: int = 1,
        shard: bool = True,
        note: Callable[[str], None] | None = None,
    ) -> None:
        """Train every member still `training` to `epochs`, in place.

        `build(members)` makes the `engine.members.Members` for a group of members standing at
        the same point, from their weights (None: fresh) and optimizer states. After each epoch
        `on_epoch(group, rows, backend)` may retire members (their index in the group). Every
        `save_every` epochs (0: never) every member is saved in resume.pt, so a crash (SIGKILL, a
        node failure) loses at most that many epochs; on SIGINT/SIGTERM (or `stop()`) they are
        saved at once and `Interrupted` is raised.

        How depends on the way the command runs (`engine.strategies`): in one process, or under
        torchrun with the members sharded over the ranks or, with `shard=False`, data-parallel;
        under torchrun each rank returns with every member's history, rank 0 with their weights too.
        `note(text)` hears what a person should know while training (a failed CUDA graph capture).
        """
        self.epochs = epochs
        fit = Fit(build, train, evals, epochs, batch_size, on_epoch, save_every, note)
        strategy_for(self.peers, shard).train(self, members, fit, stop)
