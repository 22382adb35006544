"""The one generic training loop: epochs of index-sliced batches of data already on the device.

No DataLoader and no per-sample Python: each epoch draws one seeded permutation, and a batch
is `x[perm[i:i+B]]`. Losses and correct counts are accumulated on the device and read once
per epoch, so a GPU is not stalled by a host sync every step.

The loop can stop after any step (Ctrl-C, SIGTERM) and hand back a `LoopState` from which
`train_model(..., resume=state)` continues exactly: same batches, same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from mle6cli import graphs
from mle6cli.errors import ConfigError


@dataclass
class Split:
    """A dataset held on the training device. `y` None means the target is the input (autoencoders)."""

    x: torch.Tensor  # (N, C, H, W), float in [0, 1] or uint8
    y: torch.Tensor | None = None  # (N,) int64 labels

    def __len__(self) -> int:
        return self.x.shape[0]

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xb = as_float(self.x[index])
        return xb, (xb if self.y is None else self.y[index])


def as_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images are scaled to [0, 1] per batch; float tensors pass through."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x


def sum_dtype(device: torch.device) -> torch.dtype:
    """float64 for running sums and optimizer scalars on the device, where it has it (MPS does not)."""
    return torch.float32 if device.type == "mps" else torch.float64


@dataclass(frozen=True)
class Task:
    """What is learned: the loss (a batch mean) and whether accuracy means anything."""

    name: str
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    has_accuracy: bool


CLASSIFY = Task("classify", F.nll_loss, True)  # the model ends in LogSoftmax
RECONSTRUCT = Task("reconstruct", F.mse_loss, False)


class Diverged(Exception):
    """The loss became NaN or infinite."""


def check_lr(lr: float) -> float:
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise ConfigError(f"learning rate must be a positive number, got {lr!r}")
    return float(lr)


def check_loop_options(epochs: int, batch_size: int, lr: float) -> None:
    """The numbers every training run has; ConfigError naming the first bad one."""
    for name, value in (("epochs", epochs), ("batch size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a whole number of at least 1, got {value!r}")
    check_lr(lr)


@dataclass
class LoopState:
    """Everything needed to continue a run exactly where it stopped."""

    epoch: int = 0  # epochs completed
    batch: int = 0  # batches of the current epoch already done
    perm: torch.Tensor | None = None  # the current epoch's permutation (on CPU)
    loss_sum: float = 0.0  # of the current epoch, so far
    correct: int = 0
    seen: int = 0
    generator_state: torch.Tensor | None = None
    history: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict) -> LoopState:
        return cls(**data)


@dataclass
class TrainResult:
    history: list[dict]
    status: str  # "completed", "interrupted" or "diverged"
    state: LoopState
    diverged_epoch: int | None = None


@torch.no_grad()
def evaluate(model: nn.Module, task: Task, split: Split, batch_size: int = 1024) -> dict:
    """Mean loss (and accuracy) over a whole split, in eval mode."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=split.x.device, dtype=sum_dtype(split.x.device))
    correct = torch.zeros((), device=split.x.device, dtype=torch.int64)
    for start in range(0, len(split), batch_size):
        index = torch.arange(start, min(start + batch_size, len(split)), device=split.x.device)
        xb, yb = split.batch(index)
        out = model(xb)
        loss_sum += task.loss(out, yb).to(loss_sum.dtype) * len(index)
        if task.has_accuracy:
            correct += (out.argmax(1) == yb).sum()
    model.train(was_training)
    result = {"loss": loss_sum.item() / len(split)}
    if task.has_accuracy:
        result["acc"] = correct.item() / len(split)
    return result


def train_model(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    task: Task,
    train: Split,
    evals: dict[str, Split],
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    resume: LoopState | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    before_step: Callable[[int], None] | None = None,
    use_graphs: bool | None = None,
) -> TrainResult:
    """Train for `epochs` epochs; after each, evaluate every split in `evals` (e.g. {"val": ...}).

    Each history row holds `epoch`, `train_loss` (the mean over every training sample of the
    epoch, i.e. over all batches, weighted by their size), `train_acc` for classifiers, and
    `<name>_loss` / `<name>_acc` for each eval split.
    `before_step(global_step)` may adjust the optimizer (e.g. a warm-up) before each step.
    A NaN or infinite training loss stops the run; the result's status says so.
    `use_graphs`: replay each step from a CUDA graph (`mle6cli.graphs`); None means whenever the
    device is CUDA and the optimizer can be captured (Adam, AdamW). `before_step` then runs
    outside the graph, so it may only change tensors in place (e.g. a tensor `lr` via `fill_`).
    """
    device = train.x.device
    n = len(train)
    state = resume or LoopState()
    generator = torch.Generator().manual_seed(seed)
    if state.generator_state is not None:
        generator.set_state(state.generator_state)
    steps_per_epoch = math.ceil(n / batch_size)
    # accumulated on the device, read once per epoch; fixed tensors, so a CUDA graph can write them
    loss_sum = torch.zeros((), device=device, dtype=sum_dtype(device))
    correct = torch.zeros((), device=device, dtype=torch.int64)

    def step(index: torch.Tensor) -> None:
        xb, yb = train.batch(index)
        out = model(xb)
        loss = task.loss(out, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum.add_(loss.detach().to(loss_sum.dtype) * index.shape[0])
        if task.has_accuracy:
            correct.add_((out.detach().argmax(1) == yb).sum())

    run_step = step
    if graphs.graphs_enabled(device, use_graphs) and (
        use_graphs or (graphs.make_capturable(optimizer) and (before_step is None or _tensor_lrs(optimizer)))
    ):
        sizes = sorted({min(batch_size, n), n % batch_size} - {0})
        run_step = graphs.make_step(
            step, batch_sizes=sizes, device=device, modules=[model], optimizers=[optimizer], extra=[loss_sum, correct]
        )
    captured_lrs = [group["lr"] for group in optimizer.param_groups] if run_step is not step else None
    model.train()
    while state.epoch < epochs:
        if state.perm is None:  # a new epoch
            state.perm = torch.randperm(n, generator=generator)
            state.batch, state.loss_sum, state.correct, state.seen = 0, 0.0, 0, 0
        perm = state.perm.to(device)
        loss_sum.fill_(state.loss_sum)
        correct.fill_(state.correct)
        interrupted = False
        while state.batch < steps_per_epoch:
            index = perm[state.batch * batch_size : (state.batch + 1) * batch_size]
            if before_step is not None:
                before_step(state.epoch * steps_per_epoch + state.batch)
                if captured_lrs is not None:
                    _check_lrs_unchanged(optimizer, captured_lrs)
            run_step(index)
            state.batch += 1
            state.seen += len(index)
            if should_stop is not None and should_stop() and state.batch < steps_per_epoch:
                interrupted = True
                break
        state.loss_sum, state.correct = loss_sum.item(), int(correct.item())
        state.generator_state = generator.get_state()
        if interrupted:
            return TrainResult(state.history, "interrupted", state)
        train_loss = state.loss_sum / state.seen
        if not math.isfinite(train_loss):
            state.perm = None
            return TrainResult(state.history, "diverged", state, diverged_epoch=state.epoch + 1)
        row = {"epoch": state.epoch + 1, "train_loss": train_loss}
        if task.has_accuracy:
            row["train_acc"] = state.correct / state.seen
        for name, split in evals.items():
            for key, value in evaluate(model, task, split).items():
                row[f"{name}_{key}"] = value
        state.history.append(row)
        state.epoch += 1
        state.perm = None
        if on_epoch is not None:
            on_epoch(row)
        if should_stop is not None and should_stop() and state.epoch < epochs:
            return TrainResult(state.history, "interrupted", state)
    return TrainResult(state.history, "completed", state)


def _tensor_lrs(optimizer: torch.optim.Optimizer) -> bool:
    return all(isinstance(group["lr"], torch.Tensor) for group in optimizer.param_groups)


def _check_lrs_unchanged(optimizer: torch.optim.Optimizer, captured: list) -> None:
    """A CUDA graph baked in float learning rates and reads tensor ones where they were."""
    for group, lr in zip(optimizer.param_groups, captured):
        now = group["lr"]
        if (now is not lr) if isinstance(lr, torch.Tensor) else (now != lr):
            raise RuntimeError(
                "before_step replaced a learning rate of a CUDA-graphed step; "
                "use a tensor lr changed in place (lr.fill_), or use_graphs=False"
            )


def train_members(
    models: list[nn.Module],
    optimizers: list[torch.optim.Optimizer],
    task: Task,
    train: Split,
    evals: dict[str, Split],
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    resume: list[TrainResult | None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_epoch: Callable[[int, dict], None] | None = None,
) -> list[TrainResult]:
    """Train model i with optimizer i, one after another, in place; one TrainResult each, in order.

    The contract every sweep runner keeps (see `fused.run_members` for the fused one):
    - each member sees the batches `train_model` would give it alone with `seed`;
    - `on_epoch(i, row)` after each of member i's epochs;
    - `resume[i]` is None (start afresh), a finished result (completed/diverged: returned as is)
      or an interrupted one whose `state` the member continues from;
    - once `should_stop()` is true, every unfinished member returns "interrupted", resumable
      (a member never started gets an empty LoopState);
    - on return, the models and optimizers hold each member's weights and optimizer state.
    """
    previous = list(resume) if resume is not None else [None] * len(models)
    results: list[TrainResult] = []
    for i, (model, optimizer) in enumerate(zip(models, optimizers)):
        before = previous[i]
        if before is not None and before.status in ("completed", "diverged"):
            results.append(before)
            continue
        state = before.state if before is not None else None
        if should_stop is not None and should_stop():
            state = state or LoopState()
            results.append(TrainResult(state.history, "interrupted", state))
            continue
        results.append(
            train_model(
                model,
                optimizer,
                task,
                train,
                evals,
                epochs=epochs,
                batch_size=batch_size,
                seed=seed,
                resume=state,
                should_stop=should_stop,
                on_epoch=None if on_epoch is None else (lambda row, i=i: on_epoch(i, row)),
            )
        )
    return results
