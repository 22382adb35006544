"""Run folders: the one protocol of every training command.

    run = Run.open("train-cnn", options, out=..., overwrite=..., resume=...)   # nothing written yet
    ... load and check the data ...
    run.begin(device=..., data=...)          # the folder, config.json (or checks a resumed run)
    run.train(members, build, train, evals, epochs=..., batch_size=...)   # resume, save, interrupt
    run.finish(summary)                      # summary.json, written last

- **config.json** has one schema: `command`, `options` (the command's options, every one,
  defaults included: a run folder's config.json reproduces the run), then what was resolved
  (`device`, `data`), `cpu_threads`, `packages` and `created`.
- **resume.pt** holds every member: its loop state, weights and Adam state, as plain tensors
  and values (loaded with `weights_only=True`), plus the clock and the RNG. Members are saved
  one by one, so a run can continue on another device or be re-sharded.
- **Interrupts** (SIGINT, SIGTERM) finish the current step, save, and raise `Interrupted`
  with the exact `mle6 <command> --resume DIR` line; every command reports them the same way.
- **summary.json** is written last: a folder without it is not a finished run.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mle6cli.engine.distributed import PeerFailed
from mle6cli.engine.interrupt import Interrupted, any_of, graceful_stop
from mle6cli.errors import Mle6Error
from mle6cli.files import FileError, atomic_write_bytes, load_torch, read_json, save_torch, write_csv, write_json

SUMMARY = "summary.json"
CONFIG = "config.json"
RESUME = "resume.pt"
RESUME_SHARD = "resume.rank{}.pt"  # under torchrun: one rank's members, saved while it trains its shard
RESUME_SHARDS = "resume.rank*.pt"
PROGRESS = "progress.json"
LOCK = ".lock"
# what a resumed run may change: where it computes and how often it saves, not what it computes
RESUMABLE = ("device", "save_every", "tensorboard")


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


@dataclass
class Member:
    """One model of a run, as the run folder knows it.

    `key` says what it is (e.g. {"lr": 1e-3, "seed": 42}); `state` is its loop state
    (`engine.loop.MemberState`); `weights`/`optimizer` its latest exported tensors (None
    before it first trained); `extra` the job's own bookkeeping (restarts, …).
    """

    key: dict
    state: object
    weights: dict | None = None
    optimizer: dict | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "key": self.key,
            "state": self.state.to_dict(),
            "weights": self.weights,
            "optimizer": self.optimizer,
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Member:
        from mle6cli.engine.loop import MemberState

        return cls(data["key"], MemberState.from_dict(data["state"]), data["weights"], data["optimizer"], data["extra"])


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
        outputs: Sequence[str] = (),
    ):
        self.command = command
        self.path = path
        self.options = options
        self.saved = saved  # the resume checkpoint of an interrupted run
        self.document = document  # config.json of a resumed run
        self.outputs = tuple(outputs)  # globs of the files this command writes (an --overwrite clears them)
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
        outputs: Sequence[str] = (),
        overrides: dict | None = None,
        peers=None,
    ) -> Run:
        """A fresh run in `out` (checked, not yet created), or the interrupted run in `resume` with its
        saved options (and `overrides`, the options a resumed run may change: the device). Nothing is
        written until `begin`; a resumed run is locked at once. Under torchrun (`peers`) rank 0 opens
        the folder and the other ranks get what it found (or its error)."""
        if peers is None:
            return cls._open(command, options, out, overwrite, resume, outputs, overrides)
        opened = []

        def lead() -> dict:
            run = cls._open(command, options, out, overwrite, resume, outputs, overrides)
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
    def _open(cls, command, options, out, overwrite, resume, outputs, overrides) -> Run:
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
            document, saved = load_resume(path, command, keys=[k for k in options if k not in RESUMABLE])
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
            self._check_same_data(data)
            return
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunDirError(f"cannot create run folder {self.path}: {exc.strerror or exc}") from None
        self.lock = RunLock.take(self.path)
        remove_stale_temps(self.path)
        clear_outputs(self.path, (SUMMARY, RESUME, RESUME_SHARDS, PROGRESS, CONFIG, *self.outputs))
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

    def _check_same_data(self, data: dict) -> None:
        before = self.document.get("data") or {}
        for key in ("sizes", "fingerprint"):
            if key == "fingerprint" and _scheme(before.get(key)) != _scheme(data.get(key)):
                continue  # made by another version, another way: not comparable
            if before.get(key) is not None and before.get(key) != data.get(key):
                what = f"sizes {before['sizes']} then, {data.get('sizes')} now" if key == "sizes" else "other contents"
                raise RunDirError(f"--resume: the data changed since the run in {self.path} started ({what})")

    # ---- files

    def write_csv(self, relative: str | Path, header: list[str], rows: list[dict]) -> Path:
        return write_csv(self.path / relative, header, rows)

    def write_bytes(self, relative: str | Path, data: bytes) -> Path:
        return atomic_write_bytes(self.path / relative, data)

    def save_torch(self, relative: str | Path, obj) -> Path:
        return save_torch(self.path / relative, obj)

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
        progress.json: how far the run got, readable without torch (`run_status`)."""
        import torch

        payload = {
            "command": self.command,
            "members": [m.to_dict() for m in members],
            **extra,
            **self.clock.to_state(),
            "torch_rng": torch.get_rng_state(),
        }
        path = save_torch(self.path / RESUME, payload)
        self._progress(members, status, extra)
        return path

    def save_shard(self, members: Sequence[Member], status: str = "running") -> Path | None:
        """Under torchrun: this rank's own members in resume.rank<r>.pt (a `--resume` merges them into
        resume.pt), so a rank that dies loses at most `--save-every` epochs of the others. Skipped
        where the folder cannot be seen (a node without the shared filesystem): those members are
        then saved at the next exchange, through rank 0."""
        if not self.path.is_dir():
            return None
        payload = {"command": self.command, "members": [m.to_dict() for m in members], **self.clock.to_state()}
        path = save_torch(self.path / RESUME_SHARD.format(self.peers.rank), payload)
        if self.peers.writer:
            self._progress(members, status, {"ranks": self.peers.world})
        return path

    def _progress(self, members: Sequence[Member], status: str, extra: dict) -> None:
        done = [len(m.state.history) for m in members]
        write_json(
            self.path / PROGRESS,
            {
                "command": self.command,
                "status": status,
                "epochs_done": min(done) if done else 0,
                "epochs": self.epochs,
                "members": len(members),
                "member_epochs": done,
                "pid": os.getpid(),
                "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                **{k: v for k, v in extra.items() if isinstance(v, (str, int, float))},
            },
        )

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
        if self.saved is None or self.saved.get("members") is None:
            return None
        try:
            return [Member.from_dict(m) for m in self.saved["members"]]
        except (KeyError, TypeError) as exc:
            raise RunDirError(f"--resume: {self.path / RESUME} is not a checkpoint of this version ({exc})") from None

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

        Under torchrun each rank trains its shard of the members (balanced by the epochs left; with
        `shard=False` every rank trains every member, data-parallel), then every member's state is
        exchanged: each rank returns with every member's history, rank 0 with their weights too.
        `note(text)` hears what a person should know while training (a failed CUDA graph capture).
        """
        from mle6cli.engine.distributed import shard as split

        self.epochs = epochs
        peers = self.peers
        if peers is None:
            self.save(members)  # from here on the folder is resumable, even before a first epoch ends
            with graceful_stop() as signal_stop:
                interrupted = self._fit_groups(
                    members,
                    build,
                    train,
                    evals,
                    epochs,
                    batch_size,
                    on_epoch,
                    any_of(signal_stop, stop),
                    save_every,
                    self.save,
                    note,
                )
                if interrupted:
                    self.save(members, status="interrupted")
                    raise self.interrupted(signal_stop.signal_number, _where(members, epochs))
            return

        if shard:
            costs = [epochs - m.state.epoch if m.state.status == "training" else 0 for m in members]
            mine = split(costs, peers.world)[peers.rank]
        else:
            mine = list(range(len(members)))
        own = [members[i] for i in mine]
        # data-parallel ranks hold the same members: rank 0 saves them all, the others nothing
        save_own = self.save_shard if shard else (self.save if peers.writer else _no_save)
        if peers.writer:
            self.save(members)
            remove_shards(self.path)  # merged into the resume.pt just written
        peers.arrive("start training")
        with graceful_stop() as signal_stop:
            stop = any_of(signal_stop, stop, peers.stop_asked)
            if not shard:  # data-parallel ranks must leave the loop after the same step
                from mle6cli.engine.ddp import collective_stop

                stop = collective_stop(stop)
            try:
                interrupted = self._fit_groups(
                    own,
                    build,
                    train,
                    evals,
                    epochs,
                    batch_size,
                    on_epoch,
                    stop,
                    save_every,
                    save_own,
                    note,
                    by_seed=not shard,
                )
                if interrupted:
                    peers.ask_stop(signal_stop.signal_number)
                save_own(own, "interrupted" if interrupted else "running")
                signal_number = self._exchange(members, mine if shard else [], interrupted, signal_stop.signal_number)
            except Exception as exc:
                failed = exc if isinstance(exc, PeerFailed) else peers.culprit()
                if failed is None:  # this rank's own failure: the others stop and name it
                    peers.fail(str(exc) if isinstance(exc, Mle6Error) else f"{type(exc).__name__}: {exc}")
                    raise
                save_own(own, "interrupted")
                self.release()
                raise PeerFailed(
                    f"{failed}. This rank saved its members; continue with: mle6 {self.command} --resume {self.path}"
                ) from None
            if signal_number is not None:  # still under the handlers: the agent's SIGTERM must not cut this save
                if peers.writer:
                    self.save(members, status="interrupted")
                    remove_shards(self.path)
                raise self.interrupted(signal_number, _where(members, epochs))

    def _fit_groups(
        self, members, build, train, evals, epochs, batch_size, on_epoch, stop, save_every, save, note, by_seed=False
    ) -> bool:
        """`fit` each group of `members` standing at the same point (`by_seed`: and drawing the same
        batches), calling `save(members)` every `save_every` epochs; True when interrupted (saved by
        the caller)."""
        from mle6cli.engine.loop import fit, position_groups

        groups = position_groups([m.state for m in members])
        if by_seed:
            groups = [[i for i in g if members[i].state.seed == seed] for g in groups for seed in _seeds(members, g)]
        for indices in groups:
            group = [members[i] for i in indices]
            backend = build(group)
            for j, member in enumerate(group):
                if member.weights is not None:
                    backend.load(j, {"weights": member.weights, "optimizer": member.optimizer})

            def rows_done(rows, group=group, backend=backend):
                retire = (on_epoch(group, rows, backend) if on_epoch is not None else None) or []
                epoch = next((row["epoch"] for row in rows if row is not None), 0)
                if save_every and epoch % save_every == 0:
                    for j in retire:  # as fit is about to mark them: the saved state is the true one
                        group[j].state.status = "stopped"
                    self._export(group, backend)
                    save(members)
                return retire

            interrupted = fit(
                backend,
                [m.state for m in group],
                train,
                evals,
                epochs=epochs,
                batch_size=batch_size,
                on_epoch=rows_done,
                stop=stop,
                note=note,
            )
            self.graphed.extend(backend.graphed)
            self._export(group, backend)
            if interrupted:
                return True
        return False

    def _exchange(self, members: list[Member], mine: list[int], interrupted: bool, signal_number) -> int | None:
        """Every rank's members to every rank (their loop state and bookkeeping) and to rank 0 (their
        weights); returns the signal that stopped the run (0 for a stop a peer asked), or None."""
        peers = self.peers
        light = {
            "interrupted": interrupted,
            "graphed": self.graphed,
            "signal": signal_number if signal_number is not None else peers.stop_signal,
            "members": {i: {"state": members[i].state, "extra": members[i].extra} for i in mine},
        }
        parts = peers.all_gather("exchange the members' progress", light)
        self.graphed = [g for part in parts for g in part["graphed"]]
        for part in parts:
            for i, member in part["members"].items():
                members[i].state, members[i].extra = member["state"], member["extra"]
        heavy = {i: (members[i].weights, members[i].optimizer) for i in mine}
        for part in peers.gather("gather the members' weights", heavy) or ():
            for i, (weights, optimizer) in part.items():
                members[i].weights, members[i].optimizer = weights, optimizer
        signals = [part["signal"] for part in parts if part["interrupted"]]
        if not signals:
            return None
        return next((s for s in signals if s), 0)

    @staticmethod
    def _export(group: list[Member], backend) -> None:
        for j, member in enumerate(group):
            exported = backend.export(j)
            member.weights, member.optimizer = exported["weights"], exported["optimizer"]


def _scheme(fingerprint: str | None) -> str | None:
    """`v2` of a `v2:<hex>` data fingerprint; "" for the first, unprefixed kind."""
    if fingerprint is None:
        return None
    scheme, colon, _ = fingerprint.partition(":")
    return scheme if colon else ""


def _seeds(members: list[Member], indices: list[int]) -> list[int]:
    return list(dict.fromkeys(members[i].state.seed for i in indices))


def _no_save(members, status: str = "running") -> None:
    return None


class RunLock:
    """One writer per run folder: an exclusive `flock` on `.lock` in it, held while the run runs.

    The kernel drops the lock when its process dies, however it dies, so a stale `.lock` left by a
    killed run blocks nobody; the file holds the holder's pid for the message of the one refused.
    """

    def __init__(self, path: Path, fd: int):
        self.path, self.fd = path, fd

    @classmethod
    def take(cls, folder: Path) -> RunLock:
        from mle6cli.files import file_locks

        fcntl = file_locks()  # one line, not a traceback, where the system has no fcntl

        path = Path(folder) / LOCK
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RunDirError(f"cannot lock run folder {folder}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"process {holder}" if holder else "another process"
            raise RunDirError(
                f"run folder {folder} is in use by {who}; wait for it, or choose another folder"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return cls(path, fd)

    def release(self) -> None:
        self.path.unlink(missing_ok=True)
        os.close(self.fd)

    @staticmethod
    def held(folder: Path) -> int | None:
        """The pid holding `folder`'s lock, or None (no lock file, or a stale one)."""
        from mle6cli.files import file_locks

        fcntl = file_locks()  # one line, not a traceback, where the system has no fcntl

        path = Path(folder) / LOCK
        if not path.exists():
            return None
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            holder = _read_pid(fd)
            os.close(fd)
            return holder or -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        return None


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
        return int(text) if text.isdigit() else None
    except (OSError, ValueError):
        return None


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


def remove_shards(folder: Path) -> None:
    """Drop the ranks' resume.rank<r>.pt files once resume.pt holds their members."""
    for path in Path(folder).glob(RESUME_SHARDS):
        path.unlink(missing_ok=True)


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


def run_status(folder: Path) -> dict:
    """What a folder is, without torch: `finished`, `failed`, `running`, `interrupted`, `crashed`, or
    `started` (config.json, nothing trained yet); how far it got; RunDirError if it was never a run."""
    folder = Path(folder)
    if not (folder / CONFIG).is_file():
        raise RunDirError(f"{folder} is not a run folder (no {CONFIG})")
    try:
        config = read_json(folder / CONFIG)
    except FileError as exc:
        raise RunDirError(str(exc)) from None
    progress = {}
    if (folder / PROGRESS).is_file():
        try:
            progress = read_json(folder / PROGRESS)
        except FileError:
            progress = {}
    holder = RunLock.held(folder)
    out = {
        "run_dir": str(folder),
        "command": config.get("command") if isinstance(config, dict) else None,
        "created": config.get("created") if isinstance(config, dict) else None,
        "epochs_done": progress.get("epochs_done"),
        "epochs": progress.get("epochs"),
        "updated": progress.get("updated"),
    }
    if (folder / SUMMARY).is_file():
        try:
            summary = read_json(folder / SUMMARY)
        except FileError:
            summary = {}
        out["status"] = "failed" if summary.get("status") == "failed" else "finished"
        out["summary"] = summary
        return out
    if holder is not None:
        out.update(status="running", pid=holder)
    elif progress.get("status") == "interrupted":
        out["status"] = "interrupted"
    elif (folder / RESUME).is_file() or progress:
        out["status"] = "crashed"  # resumable: it stopped without saying so (SIGKILL, a node failure)
    else:
        out["status"] = "started"
    return out


def _where(members: list[Member], epochs: int) -> str:
    states = [m.state for m in members if m.state.status == "training"]
    if not states:
        return "between steps"
    s = min(states, key=lambda s: s.position)
    return f"after epoch {s.epoch}/{epochs}" if s.perm is None else f"in epoch {s.epoch + 1}/{epochs} (batch {s.batch})"


def load_resume(run_dir: Path, command: str | None = None, keys=()) -> tuple[dict, dict]:
    """(config.json, resume.pt) of an interrupted run; RunDirError naming what is missing otherwise.

    With `command`, a run of another command is refused with the command line that resumes it.
    config.json must be a JSON object with `command` and `options` (holding every option in
    `keys`: a run's config.json lists them all) and, where present, a `data` object; resume.pt
    a checkpoint of that command with its `members`.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"--resume: {run_dir} is not a run folder")
    fresh = None
    if not (run_dir / RESUME).exists():
        if (run_dir / SUMMARY).exists():
            raise RunDirError(f"--resume: the run in {run_dir} already finished")
        if not (run_dir / CONFIG).is_file():
            raise RunDirError(
                f"--resume: no checkpoint in {run_dir} ({RESUME} is missing); only an interrupted run can be resumed"
            )
        # killed before its first save: nothing trained to keep, so it starts again with its options
        fresh = {"command": None, "members": None}
    try:
        config = read_json(run_dir / CONFIG)
        state = load_torch(run_dir / RESUME) if fresh is None else fresh
    except FileError as exc:
        raise RunDirError(f"--resume: {exc}") from None
    if fresh is not None and isinstance(config, dict):
        fresh["command"] = config.get("command")
    if not isinstance(config, dict):
        raise RunDirError(f"--resume: {run_dir / CONFIG} holds a JSON {_json_kind(config)}, not a run's config")
    saved = config.get("command")
    if not isinstance(saved, str) or not saved:
        raise RunDirError(f"--resume: {run_dir / CONFIG} lacks the key 'command'")
    if command is not None and saved != command:
        raise RunDirError(f"--resume: {run_dir} holds a {saved} run; use mle6 {saved} --resume {run_dir}")
    options = config.get("options")
    if not isinstance(options, dict):
        raise RunDirError(f"--resume: {run_dir / CONFIG} lacks the run's options")
    missing = [key for key in keys if key not in options]
    if missing:
        raise RunDirError(f"--resume: {run_dir / CONFIG} lacks the option(s) {', '.join(missing)}")
    if not isinstance(config.get("data", {}), dict):
        kind = _json_kind(config["data"])
        raise RunDirError(f"--resume: {run_dir / CONFIG} has a 'data' entry that is a JSON {kind}, not an object")
    members = state.get("members") if isinstance(state, dict) else None
    if fresh is None and (not isinstance(members, list) or not all(isinstance(m, dict) for m in members)):
        held = type(state).__name__ if not isinstance(state, dict) else "no list of members"
        raise RunDirError(f"--resume: {run_dir / RESUME} is not a resume checkpoint of mle6 (it holds {held})")
    if state.get("command") != saved:
        raise RunDirError(
            f"--resume: {run_dir / RESUME} belongs to a {state.get('command')!r} run, {CONFIG} to a {saved} run"
        )
    if fresh is None:
        merge_shards(run_dir, state)
    return config, state


def merge_shards(run_dir: Path, state: dict) -> None:
    """Put into `state` (resume.pt's) the members that ranks saved in resume.rank<r>.pt after it was
    written: a run under torchrun that crashed (a rank or node lost) resumes from where each rank got."""
    by_key = {repr(m.get("key")): i for i, m in enumerate(state["members"])}
    for path in sorted(run_dir.glob(RESUME_SHARDS)):
        try:
            shard = load_torch(path)
        except FileError as exc:
            raise RunDirError(f"--resume: {exc}") from None
        members = shard.get("members") if isinstance(shard, dict) else None
        if not isinstance(members, list) or shard.get("command") != state.get("command"):
            raise RunDirError(f"--resume: {path} is not a rank's checkpoint of this run")
        for member in members:
            index = by_key.get(repr(member.get("key"))) if isinstance(member, dict) else None
            if index is None:
                raise RunDirError(f"--resume: {path} holds a member this run does not have")
            state["members"][index] = member
        state["train_seconds"] = max(float(state.get("train_seconds", 0.0)), float(shard.get("train_seconds", 0.0)))


def _json_kind(value) -> str:
    kinds = {list: "list", str: "string", bool: "boolean", int: "number", float: "number", type(None): "null"}
    return kinds.get(type(value), "value") if not isinstance(value, dict) else "object"
