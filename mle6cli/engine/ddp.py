"""Data parallel: every rank trains every member, each on its share of every batch (`train-ae --ddp`).

For data that outgrows one GPU. Each rank holds the training samples i with i % world == rank
(`data.splits.ShardedSplit`); every rank draws the same seeded permutation, so a step's global
batch is the single-process batch, and each rank takes the samples of it that it holds. Its
loss is its share of the batch's sum of per-sample losses over the global batch size, times
the world size: DistributedDataParallel averages the gradients over the ranks, which gives
the gradient of the single-process batch mean. Only the order of the floating-point sums
differs, so the run agrees with the single-process run to rounding (docs/gpus.md, "What is exact
and what is within tolerance").

The ranks stay in lockstep: they stop together (`collective_stop`), and the epoch's loss sums
are added up over the ranks before they are read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from mle6cli.engine.members import ModuleMembers, Task

STOP_EVERY = 8  # steps between the ranks' agreements on stopping (a collective each)


class DataParallelMembers(ModuleMembers):
    """`ModuleMembers` whose every step is one DistributedDataParallel step over the ranks."""

    graphable = False  # a rank's share of a batch changes size from step to step
    leaves_retired = False  # a new backend is a new DistributedDataParallel on every rank: keep the slots

    def __init__(
        self,
        models: Sequence[nn.Module],
        lrs: Sequence[float],
        task: Task,
        *,
        group,
        world: int,
        rank: int,
        weight_decays: Sequence[float] | None = None,
    ):
        from torch.nn.parallel import DistributedDataParallel

        super().__init__(models, lrs, task, weight_decays)
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        self.parallel = [
            DistributedDataParallel(model, device_ids=device_ids, process_group=group) for model in self.models
        ]
        self.group, self.world, self.rank = group, world, rank
        self._batch_size = 1

    def step(self, x, y, alive, batch_size=None):
        self._batch_size = batch_size or x.shape[1]
        return super().step(x, y, alive, batch_size)

    def _runners(self):
        return self.parallel  # each model's step goes through its DistributedDataParallel wrapper

    def _loss(self, out, target):
        # out: (b_rank, ...), this rank's share of the batch; its share of the batch mean (fit adds it
        # times the global batch size)
        return self.task.sample_sum(out, target) / self._batch_size

    def objective(self, losses: torch.Tensor) -> torch.Tensor:
        return losses * self.world  # DistributedDataParallel divides the summed gradients by the world

    def run_sums(self, loss_sum, correct):
        import torch.distributed as dist

        loss_sum, correct = loss_sum.clone(), correct.clone()
        dist.all_reduce(loss_sum, group=self.group)
        dist.all_reduce(correct, group=self.group)
        return loss_sum, correct

    def own_share(self, loss_sums, corrects):
        if self.rank == 0:
            return loss_sums, corrects
        return [0.0] * len(loss_sums), [0] * len(corrects)


def collective_stop(local: Callable[[], bool], every: int = STOP_EVERY) -> Callable[[], bool]:
    """A `stop` the ranks agree on: every `every` calls they all ask whether any of them wants to stop
    (one tiny all-reduce), so data-parallel ranks leave the loop after the same step."""
    import torch.distributed as dist

    calls = [0]

    def stop() -> bool:
        calls[0] += 1
        if calls[0] % every:
            return False
        flag = torch.tensor([1 if local() else 0], dtype=torch.int32)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    return stop
