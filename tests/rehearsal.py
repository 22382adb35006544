"""A CPU rehearsal of a CUDA training step: would it survive CUDA-graph capture?

A captured step may not synchronise with the host: no `.item()` or `bool(tensor)`, no
data-dependent shapes (`nonzero`, a boolean-mask index), no copy between host and device (a
Python list or a CPU tensor used as an index on a CUDA tensor is copied to the device with a
blocking copy). On a real GPU any of these fails capture ("operation not permitted when stream
is capturing"). Here the members are built for real on the CPU (their constructors and `bind`
may synchronise: that happens before capture), then every parameter, buffer and optimizer
tensor is replaced by a fake CUDA tensor (`FakeTensorMode`: shapes, dtypes and devices, no
data), and the loop's step runs under a `TorchDispatchMode` that records every operation that
would synchronise.

What it leaves uncovered: autograd's backward needs a real device, so `Tensor.backward` is
replaced by one that gives every parameter a zero gradient; the backward kernels themselves
are ATen's (none of them synchronises), and the custom CPU max-pool's backward never runs on
CUDA. DistributedDataParallel's own hooks run in that backward and are not rehearsed either.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode

from mle6cli.data.splits import Split
from mle6cli.engine import loop

CUDA = torch.device("cuda", 0)

# operations that read a device value on the host, or whose output shape depends on the data
READS_THE_DEVICE = {
    "_local_scalar_dense",  # .item(), float(t), int(t), bool(t) of a device tensor
    "is_nonzero",
    "equal",
    "nonzero",
    "masked_select",
    "unique_consecutive",
    "_unique2",
    "unique_dim",
    "repeat_interleave",
}


def fake_cuda_works() -> bool:
    """Whether this torch makes fake CUDA tensors without a GPU (recent releases do)."""
    fake = FakeTensorMode(allow_non_fake_inputs=True)
    try:
        with fake:
            on_device = fake.from_tensor(torch.zeros(2)).to(CUDA)
            on_device.copy_(torch.tensor([1.0, 0.0]))  # a host value copied in, as `bind` does (torch 2.4 needs a GPU)
    except Exception:
        return False
    return True


class HostSyncWatch(TorchDispatchMode):
    """Records each operation that would synchronise a CUDA stream with the host."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        problem = _host_sync(func, args, kwargs)
        if problem is not None:
            self.found.append(problem)
        try:
            return func(*args, **kwargs)
        except Exception as exc:  # a fake tensor cannot give a data-dependent shape: record it, go on
            if problem is None:
                self.found.append(f"{func._schema.name}: {type(exc).__name__}")
            raise


def _devices(values) -> list[torch.device]:
    out = []
    for value in values:
        if isinstance(value, torch.Tensor):
            out.append(value.device)
        elif isinstance(value, (list, tuple)):
            out.extend(_devices(value))
    return out


def _host_sync(func, args, kwargs) -> str | None:
    name = func._schema.name.split("::")[-1]
    if name in READS_THE_DEVICE:
        return f"{name} (reads a device value on the host)"
    if name == "index" and any(
        isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in (args[1] or ())
    ):
        return "index with a boolean mask (nonzero)"
    if name == "_to_copy" and isinstance(args[0], torch.Tensor):
        target = kwargs.get("device")
        if target is not None and torch.device(target).type != args[0].device.type:
            return f"_to_copy {args[0].device.type} -> {torch.device(target).type} of shape {tuple(args[0].shape)}"
    if name == "copy_" and args[0].device.type != args[1].device.type:
        return f"copy_ {args[1].device.type} -> {args[0].device.type} of shape {tuple(args[1].shape)}"
    devices = _devices([*args, *kwargs.values()])
    if any(d.type == "cuda" for d in devices):
        host = [
            tuple(v.shape)
            for v in [*args, *kwargs.values()]
            if isinstance(v, torch.Tensor) and v.device.type == "cpu" and v.dim() > 0
        ]
        if host:
            return f"{name} with a host tensor of shape {host[0]} (copied to the device)"
    return None


def fake_cuda_members(members, fake: FakeTensorMode) -> None:
    """Put every parameter, buffer and optimizer tensor of `members` on fake CUDA, in place
    (`module.to()` cannot move fake parameters; new nn.Parameters are set into `_parameters`)."""

    moved: dict[int, torch.Tensor] = {}

    def fake_of(t: torch.Tensor) -> torch.Tensor:
        if id(t) not in moved:
            with fake:
                twin = fake.from_tensor(t.detach()).to(CUDA)
            moved[id(t)] = nn.Parameter(twin, requires_grad=t.requires_grad) if isinstance(t, nn.Parameter) else twin
        return moved[id(t)]

    for module in members.modules():
        for sub in module.modules():
            for name, p in list(sub._parameters.items()):
                if p is not None:
                    sub._parameters[name] = fake_of(p)
            for name, b in list(sub._buffers.items()):
                if b is not None:
                    sub._buffers[name] = fake_of(b)
    optimizer = members.optimizer
    for attr, value in list(vars(optimizer).items()):
        if isinstance(value, torch.Tensor):
            setattr(optimizer, attr, fake_of(value))
        elif isinstance(value, list) and value and all(isinstance(v, torch.Tensor) for v in value):
            setattr(optimizer, attr, [fake_of(v) for v in value])
    members.device = CUDA


@contextmanager
def zero_gradients_for_backward(params):
    """`Tensor.backward` replaced: every parameter gets a zero gradient (see the module docstring)."""
    original = torch.Tensor.backward

    def backward(self, *args, **kwargs):
        for p in params:
            p.grad = torch.zeros_like(p)

    torch.Tensor.backward = backward
    try:
        yield
    finally:
        torch.Tensor.backward = original


def rehearse(
    members, train: Split, *, groups, live=None, batch_size: int = 8, split=None, after_fake=None
) -> list[str]:
    """Run the loop's step once for `members` on fake CUDA tensors; return what would synchronise.

    `train` is a small real CPU split (its tensors go to fake CUDA too); `groups[j]` is member j's
    seed group (one batch row per group), `live[j]` False skips member j. `split(x, y)`
    may wrap the data (a data-parallel rank's share); `after_fake(members)` may adjust the members
    once they are fake.
    """
    live = [True] * members.count if live is None else list(live)
    wrap = Split if split is None else split
    perms = torch.stack([torch.randperm(len(train), generator=torch.Generator().manual_seed(g)) for g in set(groups)])
    first_index, size = wrap(train.x, train.y).epoch_batches(perms, batch_size)[0]  # on the host, as the loop does
    fake = FakeTensorMode(allow_non_fake_inputs=True)
    fake_cuda_members(members, fake)
    if after_fake is not None:
        after_fake(members)
    with fake:
        x = fake.from_tensor(train.x).to(CUDA)
        y = None if train.y is None else fake.from_tensor(train.y).to(CUDA)
        data = wrap(x, y)
        members.bind(groups, live)  # before capture: may copy from the host
        alive = torch.tensor(live, device=CUDA)
        loss_sum = torch.zeros(members.count, dtype=torch.float64, device=CUDA)
        correct = torch.zeros(members.count, dtype=torch.int64, device=CUDA)
        step = loop.train_step(members, data, alive, loss_sum, correct)
        index = fake.from_tensor(first_index).to(CUDA)  # (S, B), as the loop gives it
        watch = HostSyncWatch()
        with zero_gradients_for_backward(members.optimizer.params), watch:
            try:
                step(index, size)
            except Exception as exc:  # what stopped it is a finding too (already named when the watch saw it)
                if not watch.found:
                    watch.found.append(f"the step failed: {type(exc).__name__}: {exc}")
    return watch.found
