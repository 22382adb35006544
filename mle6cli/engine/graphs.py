"""Whole training steps captured in CUDA graphs: one replay instead of hundreds of kernel launches.

The models here are so small that an eager step on a GPU is nearly all launch overhead and
Python. `make_step(step, ...)` takes the loop's step function — `step(index)` gathers the
batch `x[index]` ((S, B) indices: one row per seed group), runs forward, backward and the
optimizer, and accumulates the losses on the device — and, on CUDA, returns a drop-in
replacement that replays a CUDA graph:

- the batch is gathered inside the graph from a static index buffer, so shuffling stays
  outside (each call copies the epoch's index slice into that buffer);
- one graph per batch size: the full batch, and the ragged last one;
- the optimizer must be capturable (`engine.optim.Adam` is: its state lives in device tensors);
- warm-up steps run before capture (CUDA needs them) and are then undone: parameters, buffers,
  optimizer state and the `extra` tensors are restored, so the graphed run gives the same
  numbers as the eager one.

Anywhere but CUDA the step function is used as it is (`graphs_enabled` says which applies).
Set MLE6_GRAPHS=0 to turn capture off everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import torch
from torch import nn


def graphs_enabled(device: torch.device, requested: bool | None = None) -> bool:
    """Whether to capture steps: only on CUDA; `requested` None means yes unless MLE6_GRAPHS=0."""
    if torch.device(device).type != "cuda" or not torch.cuda.is_available():
        return False
    if requested is None:
        return os.environ.get("MLE6_GRAPHS", "1") != "0"
    return bool(requested)


def _optimizer_tensors(optimizer) -> list[torch.Tensor]:
    out = []
    for value in vars(optimizer).values():
        if isinstance(value, torch.Tensor):
            out.append(value)
        elif isinstance(value, (list, tuple)):
            out.extend(v for v in value if isinstance(v, torch.Tensor))
    return out


class _Snapshot:
    """Values of every tensor a step may change, to undo the warm-up steps in place."""

    def __init__(self, modules: Sequence[nn.Module], optimizers: Sequence, extra: Sequence[torch.Tensor]):
        tensors = list(extra)
        for module in modules:
            tensors.extend(module.state_dict(keep_vars=True).values())
        for optimizer in optimizers:
            tensors.extend(_optimizer_tensors(optimizer))
        self.saved = [(t, t.detach().clone()) for t in tensors]

    @torch.no_grad()
    def restore(self) -> None:
        for tensor, value in self.saved:
            tensor.detach().copy_(value)


class GraphedStep:
    """`step(index)` replayed from one CUDA graph per batch size (see the module docstring)."""

    def __init__(
        self,
        step: Callable[[torch.Tensor], None],
        *,
        batch_sizes: Sequence[int],
        groups: int,
        device: torch.device,
        modules: Sequence[nn.Module],
        optimizers: Sequence,
        extra: Sequence[torch.Tensor] = (),
        warmup: int = 3,
    ):
        self.step = step
        device = torch.device(device)
        self.device = device if device.index is not None else torch.device("cuda", torch.cuda.current_device())
        for optimizer in optimizers:
            if not getattr(optimizer, "capturable", False):
                raise ValueError(f"{type(optimizer).__name__} cannot be captured in a CUDA graph")
        with torch.cuda.device(self.device):  # capture on the device the tensors live on
            self._capture(step, batch_sizes, groups, modules, optimizers, extra, warmup)

    def _capture(self, step, batch_sizes, groups, modules, optimizers, extra, warmup) -> None:
        device = self.device
        snapshot = _Snapshot(modules, optimizers, extra)
        self.index = {
            size: torch.arange(size, device=device).expand(groups, size).contiguous()
            for size in sorted(set(batch_sizes))
        }  # (S, B)
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):  # warm-up on a side stream, as capture requires
            for index in self.index.values():
                for _ in range(warmup):
                    step(index)
        torch.cuda.current_stream(device).wait_stream(side)
        snapshot.restore()
        self.graphs = {}
        for size, index in self.index.items():
            for optimizer in optimizers:  # backward in the graph must allocate, not accumulate into, .grad
                optimizer.zero_grad()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                step(index)
            self.graphs[size] = graph
        torch.cuda.synchronize(device)

    def __call__(self, index: torch.Tensor) -> None:
        size = index.shape[-1]
        if size not in self.graphs:  # a batch size nobody announced: run it eagerly
            self.step(index)
            return
        self.index[size].copy_(index, non_blocking=True)
        if torch.cuda.current_device() == self.device.index:
            self.graphs[size].replay()
        else:
            with torch.cuda.device(self.device):
                self.graphs[size].replay()


def make_step(
    step: Callable[[torch.Tensor], None],
    *,
    batch_sizes: Sequence[int],
    device: torch.device,
    modules: Sequence[nn.Module],
    optimizers: Sequence,
    extra: Sequence[torch.Tensor] = (),
    groups: int = 1,
    enabled: bool | None = None,
) -> Callable[[torch.Tensor], None]:
    """`step` itself, or on CUDA its graph-replaying twin.

    `step(index)` must do all its work in tensors on `device` (no `.item()`, no host sync, no
    new Python state between calls) and read its batch through `index`, of shape (groups, B).
    `modules` and `optimizers` are what it trains; `extra` are other tensors it changes.
    """
    if not graphs_enabled(device, enabled):
        return step
    return GraphedStep(
        step,
        batch_sizes=batch_sizes,
        groups=groups,
        device=device,
        modules=modules,
        optimizers=optimizers,
        extra=extra,
    )
