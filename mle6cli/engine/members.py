"""M models trained side by side: what the one loop (`engine.loop.fit`) trains.

A `Members` holds M models and one `engine.optim.Adam` with a learning rate (and an L2 weight
decay, none by default) per member. The loop hands it a batch per seed group — `x` (S, B, ...)
and `groups[j]`, the row of `x` member j trains on — and gets back each member's loss: one
backward of the sum of the members' losses gives every member exactly its own gradient. Two kinds:

- `ModuleMembers`: any nn.Modules (the autoencoders, the linear AE), one after another;
- `fused.FusedCNNMembers`: the SIGNS CNNs stacked into one fused model.

A member is frozen when its loss turns NaN or infinite (the `alive` mask, on the device, so
a CUDA graph can do it) or when the loop is told it is done (`set_live`, on the host: a frozen
member's forward is skipped where the layout allows it). Members move in and out as plain
tensors (`export` / `load`), named like the plain model's state_dict, so checkpoints do not
depend on the layout and a run can be resumed on another device or another number of ranks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mle6cli.data.splits import Split
from mle6cli.engine.optim import Adam, sum_dtype


@dataclass(frozen=True)
class Task:
    """What is learned: the loss (a batch mean), the same loss summed over the batch's samples (a
    data-parallel rank's share), and whether accuracy means anything."""

    name: str
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    has_accuracy: bool
    sample_sum: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

    def header(self, evals: Sequence[str]) -> list[str]:
        """The keys of a history row, the columns of metrics.csv: epoch, then loss (and accuracy) per split."""
        metrics = ("loss", "acc") if self.has_accuracy else ("loss",)
        return ["epoch", *(f"{split}_{m}" for split in ("train", *evals) for m in metrics)]


def _nll_sum(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.nll_loss(out, y, reduction="sum")


def _mse_sum(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Σ over samples of each sample's mean squared error (a batch of 0 samples gives 0)."""
    per_sample = math.prod(out.shape[1:])
    return F.mse_loss(out, y, reduction="sum") / per_sample


CLASSIFY = Task("classify", F.nll_loss, True, _nll_sum)  # the models end in LogSoftmax
RECONSTRUCT = Task("reconstruct", F.mse_loss, False, _mse_sum)

EVAL_BATCH = 1024


class Members:
    """The loop's view of M models; subclasses say how to run them (`_losses`, `_eval_outputs`)."""

    task: Task
    count: int
    optimizer: Adam
    device: torch.device
    graphable = True  # a step can be captured in a CUDA graph (fixed shapes, no collectives)

    def __init__(self) -> None:
        self.groups: list[int] = []
        self.live: list[bool] = []
        self.bind([0] * self.count, [True] * self.count)
        self.graphed: list[bool] = []  # per `fit` binding: whether its steps were replayed from a CUDA graph

    @property
    def has_accuracy(self) -> bool:
        return self.task.has_accuracy

    @property
    def leaves_retired(self) -> bool:
        """Whether members that retire are better left out of a new backend than kept as idle slots: where
        the members run one after another (CPU), an idle slot still costs its optimizer step and its
        evaluation, and a member's numbers do not depend on the others'."""
        return self.device.type == "cpu"

    def bind(self, groups: Sequence[int], live: Sequence[bool]) -> None:
        """Member j trains on row `groups[j]` of each batch; members with `live[j]` False are skipped."""
        self.groups, self.live = list(groups), list(live)

    def modules(self) -> list[nn.Module]:
        raise NotImplementedError

    def train(self, mode: bool = True) -> None:
        for module in self.modules():
            module.train(mode)

    def step(
        self, x: torch.Tensor, y: torch.Tensor, alive: torch.Tensor, batch_size: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One Adam step of every live member on its batch (of `batch_size` samples over every
        process); returns (losses (M,), correct counts (M,) or None)."""
        outputs, losses = self._losses(x, y)  # (M,)
        alive.logical_and_(torch.isfinite(losses))
        objective = self.objective(losses)
        self.optimizer.zero_grad()
        if alive.device.type == "cpu" and bool(alive.all()):  # no host sync to fear: skip the masks
            objective.sum().backward()
            self.optimizer.step()
        else:
            torch.where(alive, objective, 0.0).sum().backward()  # a frozen member's loss sends back zeros
            self.optimizer.step(active=alive)
        correct = self._correct(outputs, y) if self.has_accuracy else None
        return losses.detach(), correct

    @torch.no_grad()
    def evaluate(
        self, split: Split, on_outputs: Callable[[int, torch.Tensor], None] | None = None
    ) -> tuple[list[float], list[float] | None]:
        """Each member's mean loss (and accuracy) over a whole split, in eval mode; `on_outputs(j, out)`
        sees member j's outputs of each batch, in order (what `mle6 evaluate` counts a confusion from)."""
        self.train(False)
        device = split.x.device
        loss_sum = torch.zeros(self.count, device=device, dtype=sum_dtype(device))
        correct = torch.zeros(self.count, device=device, dtype=torch.int64)
        for start in range(0, len(split), EVAL_BATCH):
            index = torch.arange(start, min(start + EVAL_BATCH, len(split)), device=device)
            xb, yb = split.batch(index)
            for j, out in self._eval_outputs(xb):
                if on_outputs is not None:
                    on_outputs(j, out)
                loss_sum[j] += self.task.loss(out, yb).to(loss_sum.dtype) * len(index)
                if self.has_accuracy:
                    correct[j] += (out.argmax(-1) == yb).sum()
        self.train(True)
        losses = [v / len(split) for v in loss_sum.tolist()]
        return losses, ([c / len(split) for c in correct.tolist()] if self.has_accuracy else None)

    def objective(self, losses: torch.Tensor) -> torch.Tensor:
        """What is differentiated: the members' losses (a data-parallel rank scales its share)."""
        return losses

    def run_sums(self, loss_sum: torch.Tensor, correct: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The run's epoch sums from this process's (data-parallel ranks add theirs up)."""
        return loss_sum, correct

    def own_share(self, loss_sums: list[float], corrects: list[int]) -> tuple[list[float], list[int]]:
        """This process's share of the run's saved epoch sums (all of them, but on data-parallel ranks)."""
        return loss_sums, corrects

    def _member_input(self, x: torch.Tensor, j: int) -> torch.Tensor:
        return x[self.groups[j]]

    def _losses(self, x, y):
        raise NotImplementedError

    def _eval_outputs(self, x):
        raise NotImplementedError

    def _correct(self, outputs, y) -> torch.Tensor:
        raise NotImplementedError

    def export(self, j: int) -> dict:
        """Member j as plain CPU tensors: {"weights": state_dict, "optimizer": Adam state}."""
        raise NotImplementedError

    def load(self, j: int, member: dict) -> None:
        """Put member j back from `export`'s form (weights, and the optimizer state when given)."""
        raise NotImplementedError


class ModuleMembers(Members):
    """Any nn.Modules, each with its own learning rate (and weight decay, default none), stepped one after another."""

    def __init__(
        self,
        models: Sequence[nn.Module],
        lrs: Sequence[float],
        task: Task,
        weight_decays: Sequence[float] | None = None,
    ):
        self.models = list(models)
        self.count = len(self.models)
        self.task = task
        self.device = next(self.models[0].parameters()).device
        params, member_of, self.names = [], [], []
        for j, model in enumerate(self.models):
            for name, p in model.named_parameters():
                params.append(p)
                member_of.append(j)
                self.names.append(name)
        self.optimizer = Adam(params, member_of, lrs, weight_decays=weight_decays)
        super().__init__()

    def modules(self) -> list[nn.Module]:
        return self.models

    def _losses(self, x, y):
        outputs, losses = [], []
        for j, model in enumerate(self._runners()):
            if not self.live[j]:
                outputs.append(None)
                losses.append(torch.zeros((), device=x.device))
                continue
            out = model(self._member_input(x, j))
            outputs.append(out)
            losses.append(self._loss(out, self._member_input(y, j)))
        return outputs, torch.stack(losses)

    def _runners(self) -> list[nn.Module]:
        """What computes each member's output in a step: the models themselves."""
        return self.models

    def _loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """A member's loss on its batch: the task's batch mean."""
        return self.task.loss(out, target)

    def _correct(self, outputs, y) -> torch.Tensor:
        counts = [
            torch.zeros((), dtype=torch.int64, device=y.device)
            if out is None
            else (out.detach().argmax(-1) == self._member_input(y, j)).sum()
            for j, out in enumerate(outputs)
        ]
        return torch.stack(counts)

    def _eval_outputs(self, x):
        for j, model in enumerate(self.models):
            yield j, model(x)

    def export(self, j: int) -> dict:
        return {
            "weights": {k: v.detach().cpu().clone() for k, v in self.models[j].state_dict().items()},
            "optimizer": self.optimizer.member_state(j, self.names),
        }

    def load(self, j: int, member: dict) -> None:
        self.models[j].load_state_dict(member["weights"])
        if member.get("optimizer") is not None:
            self.optimizer.load_member_state(j, self.names, member["optimizer"])
