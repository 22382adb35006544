"""How a run trains its members: one strategy per way of running, chosen by `strategy_for`.

- `OneProcess`: every member here.
- `Sharded` (torchrun): each rank trains its shard of the members (longest first by epochs
  left), saving it in resume.rank<r>.pt; then the ranks exchange them: every rank gets every
  member's loop state, rank 0 their weights too, and only rank 0 goes on to write.
- `DataParallel` (torchrun, `shard=False`: train-ae --ddp): every rank trains every member on
  its share of each batch (`engine.ddp`); the ranks agree on stopping every few steps, and
  rank 0 saves the members.

All three train through `fit_groups` (the one loop, group by group) and save before the first
epoch, every `--save-every` epochs and when stopped; a stop (SIGINT, SIGTERM, `stop()`, under
torchrun a peer's) saves the members and raises `Interrupted`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from mle6cli.engine.checkpoints import Member, remove_shards, write_shard
from mle6cli.engine.distributed import PeerFailed
from mle6cli.engine.interrupt import any_of, graceful_stop
from mle6cli.errors import Mle6Error


@dataclass
class Fit:
    """What every group's `fit` gets besides its members (see `Run.train`)."""

    build: Callable[[list[Member]], object]
    train: object
    evals: dict
    epochs: int
    batch_size: int
    on_epoch: Callable[[list[Member], list[dict | None], object], Sequence[int] | None] | None
    save_every: int
    note: Callable[[str], None] | None


def strategy_for(peers, shard: bool = True):
    """One process without `peers`; under torchrun members sharded over the ranks, or data-parallel."""
    if peers is None:
        return OneProcess()
    return Sharded(peers) if shard else DataParallel(peers)


class OneProcess:
    def train(self, run, members: list[Member], fit: Fit, stop: Callable[[], bool] | None) -> None:
        run.save(members)  # from here on the folder is resumable, even before a first epoch ends
        with graceful_stop() as signal_stop:
            stopped = any_of(signal_stop, stop)
            # a signal after the loop's last check stops the run all the same: leaving the handlers
            # with it unanswered would lose it (and ignore SIGTERM for the rest of the process)
            if fit_groups(run, members, fit, stopped, run.save) or signal_stop():
                run.save(members, status="interrupted")
                raise run.interrupted(stopped.signal_number, where(members, fit.epochs))


class _Ranks:
    """What both torchrun strategies do: train this rank's members, then exchange them. The
    subclasses say which members are this rank's, how it saves them and how the ranks stop."""

    by_seed = False  # whether a group must also draw the same batches (data-parallel ranks split them)

    def __init__(self, peers):
        self.peers = peers

    def mine(self, members: list[Member], epochs: int) -> list[int]:
        raise NotImplementedError

    def save_own(self, run, own: Sequence[Member], status: str = "running") -> None:
        raise NotImplementedError

    def agreed(self, stop: Callable[[], bool]) -> Callable[[], bool]:
        return stop

    def sent(self, mine: list[int]) -> list[int]:
        """The members this rank hands to the others at the exchange."""
        return mine

    def train(self, run, members: list[Member], fit: Fit, stop: Callable[[], bool] | None) -> None:
        peers = self.peers
        mine = self.mine(members, fit.epochs)
        own = [members[i] for i in mine]
        save_own = partial(self.save_own, run)
        if peers.writer:
            run.save(members)
            remove_shards(run.path)  # merged into the resume.pt just written
        peers.arrive("start training")
        with graceful_stop() as signal_stop:
            stop = self.agreed(any_of(signal_stop, stop, peers.stop_asked))
            try:
                interrupted = fit_groups(run, own, fit, stop, save_own, by_seed=self.by_seed)
                if interrupted:
                    peers.ask_stop(signal_stop.signal_number)
                save_own(own, "interrupted" if interrupted else "running")
                signal_number = self._exchange(run, members, self.sent(mine), interrupted, signal_stop.signal_number)
            except Exception as exc:
                failed = exc if isinstance(exc, PeerFailed) else peers.culprit()
                if failed is None:  # this rank's own failure: the others stop and name it
                    peers.fail(str(exc) if isinstance(exc, Mle6Error) else f"{type(exc).__name__}: {exc}")
                    raise
                save_own(own, "interrupted")
                run.release()
                raise PeerFailed(
                    f"{failed}. This rank saved its members; continue with: mle6 {run.command} --resume {run.path}"
                ) from None
            if signal_number is not None:  # still under the handlers: the agent's SIGTERM must not cut this save
                if peers.writer:
                    run.save(members, status="interrupted")
                    remove_shards(run.path)
                raise run.interrupted(signal_number, where(members, fit.epochs))

    def _exchange(self, run, members: list[Member], mine: list[int], interrupted: bool, signal_number) -> int | None:
        """Every rank's members to every rank (their loop state and bookkeeping) and to rank 0 (their
        weights); returns the signal that stopped the run (0 for a stop a peer asked), or None."""
        peers = self.peers
        light = {
            "interrupted": interrupted,
            "graphed": run.graphed,
            "signal": signal_number if signal_number is not None else peers.stop_signal,
            "members": {i: {"state": members[i].state, "extra": members[i].extra} for i in mine},
        }
        parts = peers.all_gather("exchange the members' progress", light)
        run.graphed = [g for part in parts for g in part["graphed"]]
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


class Sharded(_Ranks):
    """Each rank trains its shard of the members, balanced by the epochs they have left."""

    def mine(self, members: list[Member], epochs: int) -> list[int]:
        from mle6cli.engine.distributed import shard

        costs = [epochs - m.state.epoch if m.state.status == "training" else 0 for m in members]
        return shard(costs, self.peers.world)[self.peers.rank]

    def save_own(self, run, own: Sequence[Member], status: str = "running") -> None:
        """This rank's members in resume.rank<r>.pt, so a rank that dies loses at most `--save-every`
        epochs of the others. Skipped where the folder cannot be seen (a node without the shared
        filesystem): those members are then saved at the next exchange, through rank 0."""
        if not run.path.is_dir():
            return
        write_shard(run.path, self.peers.rank, run.command, own, run.clock.to_state())
        if self.peers.writer:
            run.progress(own, status, {"ranks": self.peers.world})


class DataParallel(_Ranks):
    """Every rank trains every member on its share of each batch; the ranks hold the same members."""

    by_seed = True

    def mine(self, members: list[Member], epochs: int) -> list[int]:
        return list(range(len(members)))

    def save_own(self, run, own: Sequence[Member], status: str = "running") -> None:
        if self.peers.writer:  # the others hold the same members
            run.save(own, status)

    def agreed(self, stop: Callable[[], bool]) -> Callable[[], bool]:
        from mle6cli.engine.ddp import collective_stop

        return collective_stop(stop)  # the ranks must leave the loop after the same step

    def sent(self, mine: list[int]) -> list[int]:
        return []  # every rank already holds every member


def fit_groups(run, members: list[Member], fit: Fit, stop, save, by_seed: bool = False) -> bool:
    """`fit` each group of `members` standing at the same point (`by_seed`: and drawing the same
    batches), calling `save(members)` every `fit.save_every` epochs; True when interrupted (saved by
    the caller). Each group's CUDA-graph use is added to `run.graphed`."""
    from mle6cli.engine.loop import fit as fit_loop
    from mle6cli.engine.loop import position_groups

    groups = position_groups([m.state for m in members])
    if by_seed:
        groups = [[i for i in g if members[i].state.seed == seed] for g in groups for seed in _seeds(members, g)]
    while groups:
        indices = groups.pop(0)
        group = [members[i] for i in indices]
        backend = fit.build(group)
        for j, member in enumerate(group):
            if member.weights is not None:
                backend.load(j, {"weights": member.weights, "optimizer": member.optimizer})

        def rows_done(rows, group=group, backend=backend):
            retire = (fit.on_epoch(group, rows, backend) if fit.on_epoch is not None else None) or []
            epoch = next((row["epoch"] for row in rows if row is not None), 0)
            if fit.save_every and epoch % fit.save_every == 0:
                for j in retire:  # as fit is about to mark them: the saved state is the true one
                    group[j].state.status = "stopped"
                _export(group, backend)
                save(members)
            return retire

        interrupted = fit_loop(
            backend,
            [m.state for m in group],
            fit.train,
            fit.evals,
            epochs=fit.epochs,
            batch_size=fit.batch_size,
            on_epoch=rows_done,
            stop=stop,
            note=fit.note,
            leave_on_retire=backend.leaves_retired,
        )
        run.graphed.extend(backend.graphed)
        _export(group, backend)
        if interrupted:
            return True
        going_on = [i for i in indices if members[i].state.status == "training"]
        if going_on:  # members left this backend at an epoch's end: the others go on in one of their own
            groups.insert(0, going_on)
    return False


def where(members: list[Member], epochs: int) -> str:
    """Where the slowest member stands, for the interrupted message."""
    states = [m.state for m in members if m.state.status == "training"]
    if not states:
        return "between steps"
    s = min(states, key=lambda s: s.position)
    return f"after epoch {s.epoch}/{epochs}" if s.perm is None else f"in epoch {s.epoch + 1}/{epochs} (batch {s.batch})"


def _export(group: list[Member], backend) -> None:
    for j, member in enumerate(group):
        exported = backend.export(j)
        member.weights, member.optimizer = exported["weights"], exported["optimizer"]


def _seeds(members: list[Member], indices: list[int]) -> list[int]:
    return list(dict.fromkeys(members[i].state.seed for i in indices))
