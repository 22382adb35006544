"""What every training task does around its own model: open the run, resolve the device, seed, load
and check the data, say so, begin; then write each member's metrics and report each epoch.

A task (classifier, autoencoders, pca) adds only its config, its data loader, its members'
`build`, and what it makes of the results.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from copy import deepcopy
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from mle6cli.engine.events import Events
from mle6cli.engine.runs import Member, Run
from mle6cli.tasks.specs import RunParams


@dataclass
class Restarts:
    """A member trained again from its start (the conv autoencoder after a collapse): the try it is on, the
    epochs and the records of the earlier tries, and why the current try would be given up (`collapse`).
    Kept in the member's resume state (`Member.extra`, plain data), so a resumed run goes on counting."""

    attempt: int = 0
    epochs_before: int = 0
    attempts: list[dict] = field(default_factory=list)
    collapse: str | None = None

    @classmethod
    def of(cls, member: Member) -> Restarts:
        """The member's restarts, a copy (members made from one `extra` share its lists): `keep` stores it."""
        return cls(**deepcopy({f.name: member.extra[f.name] for f in fields(cls) if f.name in member.extra}))

    def keep(self, member: Member) -> None:
        """Into the member's resume state."""
        member.extra.update(asdict(self))


@dataclass
class Job:
    run: Run
    config: object
    device: object
    data: object
    params: RunParams

    def train(
        self,
        members: list[Member],
        build: Callable,
        train,
        evals: dict,
        log: EpochLog,
        *,
        check: Callable[[list[Member], list[dict | None], object], Sequence[int] | None] | None = None,
        shard: bool = True,
    ) -> bool:
        """`Run.train` with the config's epochs and batch size and --save-every, every finished epoch
        written and reported by `log` (after `check(group, rows, backend)`, which may retire members);
        under torchrun, then the epochs the other ranks trained. Returns whether this process writes
        the run folder (under torchrun only rank 0, which then holds every member)."""

        def on_epoch(group: list[Member], rows: list[dict | None], backend) -> Sequence[int] | None:
            retire = check(group, rows, backend) if check is not None else None
            for member, row in zip(group, rows, strict=True):
                if row is not None:
                    log(member, row)
            return retire

        self.run.train(
            members,
            build,
            train,
            evals,
            epochs=self.config.epochs,
            batch_size=self.config.batch_size,
            on_epoch=on_epoch,
            stop=self.params.stop,
            save_every=self.config.save_every,
            shard=shard,
            note=log.events.note,
        )
        log.catch_up(members)
        return self.run.writer


def open_job(
    spec,
    options: dict,
    load: Callable,
    params: RunParams,
    *,
    data=None,
    check: Callable | None = None,
    members: Callable[[object], int | None] | None = None,
) -> Job:
    """Open the run of `spec`'s command (`tasks.specs.CommandSpec`: its name, config, `Outputs`; fresh in
    `params.out`, or the interrupted one in `params.resume` with its saved options), then device, seed and data
    (`load(config, device)` unless `data` is given, then `check(config, data)`): all before the folder
    exists, so a bad input leaves nothing behind. The config's folders are recorded absolute.

    Under torchrun every rank joins the process group here; `members(config)` counts the run's
    members, and a world larger than that is refused (a rank would have nothing to train)."""
    from mle6cli.engine.device import describe_device, resolve_device, set_seed
    from mle6cli.engine.distributed import join

    peers, events = join(), params.events
    _say_notes(peers, events)
    run = params.open(spec, options, spec.outputs, peers)
    try:
        config = spec.config.from_options(run.options)
        check_tensorboard(config)
        if peers is not None and members is not None:
            peers.agree("count the members", lambda: check_world(peers.world, members(config), spec.name))
        device = resolve_device(config.device)
        if peers is not None:
            peers.use_device(device)
            _say_notes(peers, events)
        set_seed(config.seeds[0], config.deterministic)
        data = data if data is not None else load(config, device)
        if check is not None:
            check(config, data)
        if data.synthetic:
            events.note(data.synthetic_note())
        for note in getattr(data, "notes", ()):  # what the data layer accepted only after a second look
            events.note(note)
        if run.resumed:
            events.note(f"Resuming the run in {run.path} with its saved options.")
        run.record_paths(*folders(spec.config))
        run.begin(device=describe_device(device), data=dict(data.describe(), fingerprint=fingerprint(data)))
        run.restore_rng()
    except BaseException:
        run.release()  # a resumed run holds its lock from the start
        raise
    return Job(run, config, device, data, params)


def folders(config_type) -> list[str]:
    """The config's options that name folders (recorded absolute, so --resume works from anywhere)."""
    from mle6cli.tasks.config import Folder, declared, options_of

    return [f.name for f in options_of(config_type) if isinstance(declared(f).form, Folder)]


def _say_notes(peers, events: Events) -> None:
    while peers is not None and peers.notes:
        events.note(peers.notes.pop(0))


def check_world(world: int, count: int | None, command: str) -> None:
    """More processes than members leaves a rank idle: refused (`count` None: every rank trains every member)."""
    from mle6cli.engine.distributed import DistributedError

    if count is not None and world > count:
        raise DistributedError(
            f"torchrun started {world} processes but this {command} run has {count} member"
            f"{'s' if count != 1 else ''}; start at most {count} (each process trains whole members)"
        )


def fingerprint(data) -> str:
    """A hash of every array the run trains and tests on (config.json records it: a resume on other
    data is refused); the dataset's own when it has one (SIGNS: of the arrays before scaling)."""
    from mle6cli.data.splits import fingerprint as hash_arrays

    if getattr(data, "fingerprint", None) is not None:
        return data.fingerprint
    if hasattr(data, "train_x"):  # MNIST
        return hash_arrays([data.train_x, data.train_y, data.test_x, data.test_y])
    return hash_arrays(t for split in (data.train, data.val, data.test) for t in (split.x, split.y))


def check_tensorboard(config) -> None:
    """--tensorboard needs the optional extra; say how to get it, before anything runs."""
    if getattr(config, "tensorboard", False):  # a command without the option writes none
        try:
            import tensorboard  # noqa: F401
        except ModuleNotFoundError:
            from mle6cli.errors import Mle6Error

            raise Mle6Error("--tensorboard needs the tensorboard package: pip install 'mle6cli[tensorboard]'") from None


class EpochLog:
    """After each epoch of a member: rewrite its metrics file, report one line of progress and, with
    --tensorboard, add the row's scalars to the member's TensorBoard run (tensorboard/<member>/)."""

    def __init__(
        self,
        job: Job,
        members: list[Member],
        header: list[str],
        file_of: Callable[[Member], Path],
        label_of: Callable[[Member], str],
        shown: Sequence[str],
    ):
        self.run, self.events, self.header = job.run, job.params.events, header
        self.file_of, self.label_of, self.shown = file_of, label_of, list(shown)
        self.epochs = job.config.epochs
        self.done = sum(len(m.state.history) + Restarts.of(m).epochs_before for m in members)
        self.logged = {_attempt(m): len(m.state.history) for m in members}
        self.writers = {} if getattr(job.config, "tensorboard", False) and job.run.writer else None
        self.events.start(len(members) * self.epochs, job.run.command)

    def __call__(self, member: Member, row: dict) -> None:
        if self.run.writer:  # under torchrun rank 0 writes every member's file (`catch_up`)
            self.run.write_csv(self.file_of(member), self.header, member.state.history)
        self.logged[_attempt(member)] = len(member.state.history)
        self._report(member, row)

    def _report(self, member: Member, row: dict) -> None:
        self.done += 1
        metrics = {k: row[k] for k in self.shown if k in row}
        self.events.epoch(self.label_of(member), row["epoch"], self.epochs, self.done, metrics)
        if self.writers is not None:
            self._tensorboard(member, row)

    def catch_up(self, members: list[Member]) -> None:
        """Under torchrun, after the ranks exchanged their members: log the epochs other ranks trained."""
        for member in members:
            history = member.state.history
            if len(history) <= self.logged.get(_attempt(member), 0):
                continue
            for row in history[self.logged.get(_attempt(member), 0) :]:
                self._report(member, row)
            self.logged[_attempt(member)] = len(history)
            if self.run.writer:
                self.run.write_csv(self.file_of(member), self.header, history)

    def _tensorboard(self, member: Member, row: dict) -> None:
        from torch.utils.tensorboard import SummaryWriter

        name = "_".join(f"{k}_{_tag(v)}" for k, v in member.key.items())  # e.g. lr_1e-03_seed_42
        if name not in self.writers:
            self.writers[name] = SummaryWriter(log_dir=str(self.run.tensorboard_dir(name)))
        writer = self.writers[name]
        for key in self.header[1:]:
            if key in row:
                writer.add_scalar(key, row[key], row["epoch"])
        writer.flush()

    def close(self) -> None:
        for writer in (self.writers or {}).values():
            writer.close()


def _attempt(member: Member) -> tuple:
    return (repr(member.key), Restarts.of(member).attempt)


def _tag(value) -> str:
    from mle6cli.fmt import lr_label

    return lr_label(value) if isinstance(value, float) else str(value)
