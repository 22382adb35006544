"""The one training loop: epochs of index-sliced batches of data already on the device, for M members.

One model (train-cnn) and many (a sweep, the autoencoders at every latent size, every seed)
go through the same `fit`. Each member keeps a `MemberState`: its batch-order seed, where it
stands (epoch, batch), its running sums and its history. Members with the same seed share one
seeded permutation per epoch (the batch order a single run with that seed has), so every
member sees exactly the batches it would see alone; a batch is `x[perm[i:i+B]]`, gathered on
the device, for each seed group at once ((S, B) indices).

Losses and correct counts are accumulated on the device and read once per epoch, so a GPU is
not stalled by a host sync every step; on CUDA whole steps are replayed from CUDA graphs.
The loop can stop after any step (a signal, a time budget) and the states it leaves continue
exactly: same batches, same numbers. A member whose loss becomes NaN or infinite is frozen at
once and reported `diverged` at the end of that epoch; `on_epoch` may retire members
(`stopped`, e.g. a collapsed autoencoder) while the others go on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields

import torch

from mle6cli.data.splits import Split
from mle6cli.engine import graphs
from mle6cli.engine.members import Members
from mle6cli.engine.optim import sum_dtype

TRAINING, COMPLETED, DIVERGED, STOPPED = "training", "completed", "diverged", "stopped"


@dataclass
class MemberState:
    """Everything needed to continue one member exactly where it stopped (plain values and tensors)."""

    seed: int  # of the batch order
    epoch: int = 0  # epochs completed
    batch: int = 0  # batches of the current epoch done
    seen: int = 0  # samples of the current epoch done
    loss_sum: float = 0.0  # of the current epoch, so far
    correct: int = 0
    perm: torch.Tensor | None = None  # the current epoch's permutation (CPU)
    generator: torch.Tensor | None = None  # the batch-order generator's state after drawing `perm`
    history: list[dict] = field(default_factory=list)
    status: str = TRAINING
    diverged_epoch: int | None = None

    @property
    def position(self) -> tuple[int, int, int]:
        return (self.epoch, self.batch, self.seen)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict) -> MemberState:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def position_groups(states: Sequence[MemberState]) -> list[list[int]]:
    """Indices of the members still training, grouped by where they stand (one group per `fit`)."""
    groups: dict[tuple, list[int]] = {}
    for j, s in enumerate(states):
        if s.status == TRAINING:
            key = (s.position, None if s.perm is None else s.perm.shape)
            groups.setdefault(key, []).append(j)
    return list(groups.values())


def train_step(
    members: Members, train: Split, alive: torch.Tensor, loss_sum: torch.Tensor, correct: torch.Tensor
) -> Callable[[torch.Tensor, int], None]:
    """The loop's step: gather the batch at `index` (S, B) of a batch of `size` samples (over every
    process: a data-parallel rank holds only its share), one Adam step of every live member, the
    losses (times the batch size) and correct counts added to the device sums. Everything it does
    stays on the device: it is what a CUDA graph captures (tests/test_rehearsal.py checks)."""

    def step(index: torch.Tensor, size: int) -> None:  # index: (S, B)
        xb, yb = train.batch(index)  # (S, B, ...)
        losses, hits = members.step(xb, yb, alive, size)
        loss_sum.add_(losses.to(loss_sum.dtype) * size)
        if hits is not None:
            correct.add_(hits)

    return step


def fit(
    members: Members,
    states: list[MemberState],
    train: Split,
    evals: dict[str, Split],
    *,
    epochs: int,
    batch_size: int,
    on_epoch: Callable[[list[dict | None]], Sequence[int] | None] | None = None,
    stop: Callable[[], bool] | None = None,
    use_graphs: bool | None = None,
    note: Callable[[str], None] | None = None,
    leave_on_retire: bool = False,
) -> bool:
    """Train every member whose state is `training` up to `epochs`; return True when interrupted.

    The live members must stand at the same point (`position_groups` splits those that don't).
    After each epoch every live member gets a history row — `epoch`, `train_loss` (the mean
    over every training sample of the epoch), `train_acc` for classifiers, `<split>_loss` and
    `<split>_acc` for each split in `evals`, in eval mode — and `on_epoch(rows)` is called with
    one row per member (None for members not trained this epoch); it may return members to
    retire (status `stopped`). `stop()` is asked after every step: on True the states
    are left resumable and fit returns True. `note(text)` hears what a person should know (a
    CUDA graph capture that failed); `members.graphed` records whether the steps were graphed.
    `leave_on_retire`: return (False) at the end of an epoch where members retired or diverged before
    the last, the others still `training`, so that the caller trains them on without the retired ones.
    """
    if len(states) != members.count:
        raise ValueError(f"need one state per member ({members.count}), got {len(states)}")
    live = [s.status == TRAINING for s in states]
    if not any(live):
        return False
    lead = states[live.index(True)]
    if any(states[j].position != lead.position for j in range(len(states)) if live[j]):
        raise ValueError("the members to train stand at different points; fit each of position_groups apart")
    loop = _Fit(members, states, live, train, batch_size, use_graphs, note)
    return loop.run(evals, epochs, on_epoch, stop, leave_on_retire)


class _Fit:
    """One `fit` call: the seed groups' batch orders, the device sums, the step (graphed or not) and
    where the loop stands; its methods are the loop's steps."""

    def __init__(
        self,
        members: Members,
        states: list[MemberState],
        live: list[bool],
        train: Split,
        batch_size: int,
        use_graphs: bool | None,
        note: Callable[[str], None] | None,
    ):
        self.members, self.states, self.live, self.train = members, states, live, train
        self.batch_size, self.use_graphs, self.note = batch_size, use_graphs, note
        self.device = train.x.device
        self.n = len(train)
        self.steps_per_epoch = math.ceil(self.n / batch_size)
        lead = states[live.index(True)]
        self.epoch, self.batch, self.seen = lead.epoch, lead.batch, lead.seen

        # one generator (and permutation) per seed: members sharing a seed share their batches
        self.seeds = list(dict.fromkeys(states[j].seed for j in range(len(states)) if live[j]))
        self.group_of = [self.seeds.index(s.seed) if s.seed in self.seeds else 0 for s in states]
        self.generators, self.perms = [], []
        for seed in self.seeds:
            first = next(s for j, s in enumerate(states) if live[j] and s.seed == seed)
            generator = torch.Generator().manual_seed(seed)
            if first.generator is not None:
                generator.set_state(first.generator)
            self.generators.append(generator)
            self.perms.append(first.perm)

        self.alive = torch.tensor(live, device=self.device)
        self.loss_sum = torch.zeros(len(states), device=self.device, dtype=sum_dtype(self.device))
        self.correct = torch.zeros(len(states), device=self.device, dtype=torch.int64)
        self.step = train_step(members, train, self.alive, self.loss_sum, self.correct)

    def run(self, evals: dict[str, Split], epochs: int, on_epoch, stop, leave_on_retire: bool = False) -> bool:
        # training mode before the first capture: a graph replays the mode it was captured in
        self.members.train(True)
        run_step = self.bind()
        while self.epoch < epochs:
            if self.perms[0] is None:
                self.new_epoch()
            if self.train_epoch(run_step, stop):
                return True
            before = list(self.live)
            self.end_epoch(evals, on_epoch)
            if not any(self.live):
                return False
            if stop is not None and stop() and self.epoch < epochs:
                return True
            if self.live != before and self.epoch < epochs:  # fewer members to train
                if leave_on_retire:
                    return False
                self.alive.copy_(torch.tensor(self.live, device=self.device))  # skip the retired ones (recapture)
                run_step = self.bind()
        for j, s in enumerate(self.states):
            if self.live[j]:
                s.status = COMPLETED
        return False

    def bind(self) -> Callable[[torch.Tensor, int], None]:
        """The members bound to the live seed groups, and the step to run (graphed where it can be)."""
        members, n, batch_size = self.members, self.n, self.batch_size
        members.bind(self.group_of, self.live)
        sizes = sorted({min(batch_size, n), n % batch_size} - {0})
        graphed = graphs.make_step(
            self.step,
            batch_sizes=sizes,
            groups=len(self.seeds),
            device=self.device,
            modules=members.modules(),
            optimizers=[members.optimizer],
            extra=[self.alive, self.loss_sum, self.correct],
            enabled=self.use_graphs if members.graphable else False,
            on_fallback=self.note,
        )
        members.graphed.append(graphs.is_graphed(graphed))
        return graphed

    def sync(self, sums: bool = True) -> None:
        """Copy the loop's position (and the device sums) into the live members' states."""
        if sums:
            run_loss, run_correct = self.members.run_sums(self.loss_sum, self.correct)
            values, counts = run_loss.tolist(), run_correct.tolist()
        for j, s in enumerate(self.states):
            if self.live[j]:
                if sums:
                    s.loss_sum, s.correct = values[j], int(counts[j])
                s.epoch, s.batch, s.seen = self.epoch, self.batch, self.seen
                s.perm = self.perms[self.group_of[j]]
                s.generator = self.generators[self.group_of[j]].get_state()

    def new_epoch(self) -> None:
        self.perms = [torch.randperm(self.n, generator=g) for g in self.generators]
        self.batch = self.seen = 0
        for j, s in enumerate(self.states):
            if self.live[j]:
                s.loss_sum, s.correct = 0.0, 0
        self.sync(sums=False)

    def train_epoch(self, run_step, stop) -> bool:
        """The epoch's batches from where the loop stands; True when `stop` cut it short."""
        states = self.states
        batches = self.train.epoch_batches(torch.stack(self.perms), self.batch_size)  # [(index (S, B), size)]
        share = self.members.own_share([s.loss_sum for s in states], [s.correct for s in states])
        self.loss_sum.copy_(torch.tensor(share[0], dtype=torch.float64))
        self.correct.copy_(torch.tensor(share[1], dtype=torch.int64))
        interrupted = False
        while self.batch < self.steps_per_epoch:
            index, size = batches[self.batch]
            run_step(index, size)
            self.batch += 1
            self.seen += size
            if stop is not None and stop() and self.batch < self.steps_per_epoch:
                interrupted = True
                break
        self.sync()
        return interrupted

    def end_epoch(self, evals: dict[str, Split], on_epoch) -> None:
        """Diverged members frozen, every live member's history row, then `on_epoch`'s retirements."""
        states, live, members = self.states, self.live, self.members
        rows: list[dict | None] = [None] * len(states)
        for j, s in enumerate(states):
            if live[j] and not math.isfinite(s.loss_sum / s.seen):
                s.status, s.diverged_epoch, live[j] = DIVERGED, s.epoch + 1, False
        metrics = {name: members.evaluate(split) for name, split in evals.items()} if any(live) else {}
        for j, s in enumerate(states):
            if not live[j]:
                continue
            row = {"epoch": s.epoch + 1, "train_loss": s.loss_sum / s.seen}
            if members.has_accuracy:
                row["train_acc"] = s.correct / s.seen
            for name, (losses, accs) in metrics.items():
                row[f"{name}_loss"] = losses[j]
                if accs is not None:
                    row[f"{name}_acc"] = accs[j]
            s.history.append(row)
            rows[j] = row
        self.epoch += 1
        self.batch = self.seen = 0
        self.perms = [None] * len(self.seeds)
        self.sync(sums=False)
        for j in (on_epoch(rows) if on_epoch is not None else None) or ():
            if live[j]:
                states[j].status, live[j] = STOPPED, False
