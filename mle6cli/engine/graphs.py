"""Whole training steps captured in CUDA graphs: one replay instead of hundreds of kernel launches.

The models here are so small that an eager step on a GPU is nearly all launch overhead and
Python. `make_step(step, ...)` takes the loop's step function — `step(index, size)` gathers the
batch `x[index]` ((S, B) indices: one row per seed group), runs forward, backward and the
optimizer, and accumulates the losses on the device — and, on CUDA, returns a drop-in
replacement that replays a CUDA graph:

- the batch is gathered inside the graph from a static index buffer, so shuffling stays
  outside (each call copies the epoch's index slice into that buffer);
- one graph per batch size: the full batch, and the ragged last one;
- the optimizer must be capturable (`engine.optim.Adam` is: its state lives in device tensors);
- warm-up steps run before capture (CUDA needs them) and are then undone: parameters, buffers,
  optimizer state and the `extra` tensors are restored, so the graphed run gives the same
  numbers as the eager one;
- the warm-up runs under `torch.cuda.set_sync_debug_mode("error")`: an operation that would
  synchronise with the host (`.item()`, a Python-list index, a blocking copy) fails there,
  naming its line, before capture could fail on it.

A capture never costs a run: if warm-up or capture fails, every tensor is put back as it was and
`make_step` returns the eager step, after telling `on_fallback` why (`is_graphed` says which
one a run got). A failure *inside* `torch.cuda.graph` is worse than one in the warm-up: torch's
context manager has no try/finally, so the capture stream stays current and the caching
allocator stays in capture mode; the stream and the allocator are put back here, and no step is
captured again in this process (`capture_broken` says why), so one failed capture costs only
its graph. Anywhere but CUDA the step function is used as it is (`graphs_enabled` says
which applies). Set MLE6_GRAPHS=0 to turn capture off everywhere. tests/test_rehearsal.py runs
every step function on fake CUDA tensors on a CPU and fails on any host synchronisation.
"""

from __future__ import annotations

import contextlib
import os
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

# why capture was turned off for the rest of this process (a failure inside capture), or None
capture_broken: str | None = None


class CaptureBroken(RuntimeError):
    """A step failed inside `torch.cuda.graph`; `reason` names the failure and the package line."""

    def __init__(self, cause: BaseException):
        self.reason = failure(cause)
        super().__init__(self.reason)


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
    """`step(index, size)` replayed from one CUDA graph per batch size (see the module docstring)."""

    def __init__(
        self,
        step: Callable[[torch.Tensor, int], None],
        *,
        batch_sizes: Sequence[int],
        groups: int = 1,
        device: torch.device,
        modules: Sequence[nn.Module],
        optimizers: Sequence,
        extra: Sequence[torch.Tensor] = (),
        warmup: int = 3,
    ):
        self.step = step
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        self.device = device
        for optimizer in optimizers:
            if not getattr(optimizer, "capturable", False):
                raise ValueError(f"{type(optimizer).__name__} cannot be captured in a CUDA graph")
        snapshot = _Snapshot(modules, optimizers, extra)
        self.index = {
            size: torch.arange(size, device=device).expand(groups, size).contiguous()
            for size in sorted(set(batch_sizes))
        }  # (S, B)
        try:
            with torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext():
                self._capture(step, snapshot, optimizers, warmup)  # on the device the tensors live on
        except BaseException:
            if device.type == "cuda":
                with contextlib.suppress(RuntimeError):  # a broken context fails again in the eager step, clearly
                    torch.cuda.synchronize(device)
            snapshot.restore()  # the eager run starts from the state the caller gave
            for optimizer in optimizers:
                optimizer.zero_grad()
            raise

    def _capture(self, step, snapshot: _Snapshot, optimizers, warmup: int) -> None:
        device = self.device
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side), _sync_is_an_error():  # warm-up on a side stream, as capture requires
            for size, index in self.index.items():
                for _ in range(warmup):
                    step(index, size)
        torch.cuda.current_stream(device).wait_stream(side)
        snapshot.restore()
        self.graphs = {}
        for size, index in self.index.items():
            for optimizer in optimizers:  # backward in the graph must allocate, not accumulate into, .grad
                optimizer.zero_grad()
            self.graphs[size] = self._capture_one(step, index, size)
        torch.cuda.synchronize(device)

    def _capture_one(self, step, index: torch.Tensor, size: int):
        graph = torch.cuda.CUDAGraph()
        stream = torch.cuda.current_stream(self.device)
        try:
            with torch.cuda.graph(graph):
                step(index, size)
        except BaseException as exc:
            _leave_capture(graph, self.device, stream)
            interrupt = _interrupt_in(exc)
            if interrupt is not None:  # torch's capture_end may have raised over it: it stays an interrupt
                raise interrupt from None
            raise CaptureBroken(exc) from exc
        return graph

    def __call__(self, index: torch.Tensor, size: int) -> None:
        if size not in self.graphs:  # a batch size nobody announced: run it eagerly
            self.step(index, size)
            return
        self.index[size].copy_(index, non_blocking=True)
        if torch.cuda.current_device() == self.device.index:
            self.graphs[size].replay()
        else:
            with torch.cuda.device(self.device):
                self.graphs[size].replay()


def _interrupt_in(exc: BaseException | None) -> BaseException | None:
    """A KeyboardInterrupt or SystemExit that `exc` is, or was raised while handling."""
    while exc is not None:
        if not isinstance(exc, Exception):
            return exc
        exc = exc.__context__
    return None


def _leave_capture(graph, device: torch.device, stream) -> None:
    """Undo what a failed `torch.cuda.graph` block leaves behind: its `__exit__` calls `capture_end()`
    with no try/finally, and when CUDA's end of capture fails (an invalidated capture),
    `capture_end` raises before it ends the allocator's routing to the graph's pool, and the
    stream context is never left. Both are put back; nothing else here can repair the graph."""
    torch.cuda.set_stream(stream)
    # renamed across releases; when capture_end did finish, the allocator answers "not recording"
    end = getattr(torch._C, "_cuda_endAllocateToPool", None) or getattr(
        torch._C, "_cuda_endAllocateCurrentStreamToPool", None
    )
    if end is not None:
        with contextlib.suppress(RuntimeError):
            end(device.index if device.index is not None else 0, graph.pool())


class _sync_is_an_error:
    """`torch.cuda.set_sync_debug_mode("error")` for the block, the previous mode restored after."""

    def __enter__(self):
        self.before = torch.cuda.get_sync_debug_mode()
        torch.cuda.set_sync_debug_mode("error")

    def __exit__(self, *exc) -> None:
        torch.cuda.set_sync_debug_mode(self.before)


def make_step(
    step: Callable[[torch.Tensor, int], None],
    *,
    enabled: bool | None = None,
    on_fallback: Callable[[str], None] | None = None,
    **capture,
) -> Callable[[torch.Tensor, int], None]:
    """`step` itself, or on CUDA its graph-replaying twin.

    `step(index, size)` must do all its work in tensors on the device (no `.item()`, no host sync,
    no new Python state between calls) and read its batch through `index`, of shape (groups, B),
    of `size` samples (B, but for a data-parallel rank's share). `capture` is `GraphedStep`'s:
    `batch_sizes`, `device`, `modules` and `optimizers` (what it trains), `extra` (other tensors
    it changes) and `groups`. When capture fails, `on_fallback(note)` hears why and the eager
    `step` is returned.
    """
    global capture_broken
    if capture_broken is not None or not graphs_enabled(capture["device"], enabled):
        return step
    try:
        return GraphedStep(step, **capture)
    except CaptureBroken as exc:
        capture_broken = exc.reason
        if on_fallback is not None:
            on_fallback(
                f"Note: CUDA graph capture failed ({exc.reason}); training continues without graphs, "
                "and no step is captured again in this process."
            )
        return step
    except (RuntimeError, ValueError, TypeError) as exc:  # CUDA's errors are RuntimeErrors; torch's own misuse checks
        if on_fallback is not None:
            on_fallback(f"Note: CUDA graph capture failed ({failure(exc)}); training continues without graphs.")
        return step


def is_graphed(step: Callable) -> bool:
    """Whether `make_step` gave a graph-replaying step."""
    return isinstance(step, GraphedStep)


def failure(exc: BaseException) -> str:
    """An exception in one line, with the package's innermost line that raised it (where to look).

    The line is looked for in the exception, then in what it was raised from or while handling
    (`__cause__`, `__context__`): a failed capture's RuntimeError comes from torch's `capture_end`,
    raised while handling the step's own error, which holds the line."""
    text = str(exc).strip().splitlines()
    where = ""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen and not where:
        seen.add(id(cause))
        where = _package_line(cause)
        cause = cause.__cause__ or cause.__context__
    return f"{type(exc).__name__}: {text[0] if text else ''}{where}"


def _package_line(exc: BaseException) -> str:
    package = Path(__file__).resolve().parents[1]
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        path = Path(frame.filename).resolve()
        if path.is_relative_to(package) and path != Path(__file__).resolve():
            return f" at {path.relative_to(package.parent)}:{frame.lineno}"
    return ""
