"""Several CNNClassifiers trained as one model: the learning-rate sweep, horizontally fused.

The SIGNS CNN is far too small to keep a GPU busy, so the sweep's M models are stacked into
one `FusedCNN` (the HFTA idea) and trained together on the same batches. On CUDA:

- conv1 reads the shared input once: its M weight blocks stacked into one Conv2d(3, 4M);
- conv2 is a grouped convolution (groups=M) over the stacked channels;
- BatchNorm over the stacked 4M / 8M channels is per channel, hence per model;
- the Linear layers are batched matmuls over a leading model dimension.

On CPU (by default) the members run one after another on views of the same stacked weights:
the very kernels a separate model runs, so the numbers are bit-for-bit those of separate runs,
with a max-pooling faster than ATen's (`per_member=False` takes the grouped layout on CPU too:
~20% faster again, equal only up to float rounding).
Either way the loss is the SUM of the per-model mean NLLs, so each model gets exactly its own
gradient, and `FusedAdam` is torch.optim.Adam's arithmetic with one learning rate per model.

Every parameter carries the model index as its leading dimension, `(M, ...)`, so `pack` and
`unpack` are exact copies and per-model quantities broadcast as `(M, 1, ...)`.

A model whose loss becomes NaN or infinite is frozen at that step (its loss is masked out of
the sum, its gradients zeroed, its learning rate zeroed) so nothing of it reaches the others,
and it is reported as diverged at the end of that epoch, exactly as `train.train_model` would.

Entry points: `run_members` (the sweep runner: torch models and Adam optimizers in and out),
`train_fused` (models in, results out), and `pack` / `FusedAdam` / `fit_fused` / `unpack`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mle6cli import graphs
from mle6cli.models import CNNClassifier
from mle6cli.train import CLASSIFY, LoopState, Split, TrainResult, sum_dtype, train_members

# (name in FusedCNN, name in CNNClassifier); parameters first, then buffers
_PARAMS = [
    ("conv1_weight", "conv1.weight"),
    ("conv1_bias", "conv1.bias"),
    ("bn1_weight", "bn1.weight"),
    ("bn1_bias", "bn1.bias"),
    ("conv2_weight", "conv2.weight"),
    ("conv2_bias", "conv2.bias"),
    ("bn2_weight", "bn2.weight"),
    ("bn2_bias", "bn2.bias"),
    ("fc1_weight", "fc1.weight"),
    ("fc1_bias", "fc1.bias"),
    ("fc2_weight", "fc2.weight"),
    ("fc2_bias", "fc2.bias"),
]
_BUFFERS = [
    ("bn1_running_mean", "bn1.running_mean"),
    ("bn1_running_var", "bn1.running_var"),
    ("bn1_num_batches_tracked", "bn1.num_batches_tracked"),
    ("bn2_running_mean", "bn2.running_mean"),
    ("bn2_running_var", "bn2.running_var"),
    ("bn2_num_batches_tracked", "bn2.num_batches_tracked"),
]


class MaxPool2x2(torch.autograd.Function):
    """F.max_pool2d(x, 2) on CPU, same numbers, faster.

    ATen's CPU max_pool2d forward walks each window in scalar code; here the window's four
    corners are strided views combined by elementwise maxima, and the winner's flat index is
    handed to ATen's own max_pool2d backward. Ties go to the first corner in row-major order,
    as max_pool2d's `val > maxval` scan does, so values AND gradients are bit-identical
    (windows holding a NaN aside: a diverged model's gradients do not matter).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H/2, W/2)
        a, b, c, d = x[..., ::2, ::2], x[..., ::2, 1::2], x[..., 1::2, ::2], x[..., 1::2, 1::2]
        top, bottom = torch.maximum(a, b), torch.maximum(c, d)
        out = torch.maximum(top, bottom)
        if ctx.needs_input_grad[0]:
            h, w = x.shape[-2:]
            rows = torch.arange(0, h, 2, device=x.device).mul_(w).view(-1, 1)  # (H/2, 1)
            corner = rows + torch.arange(0, w, 2, device=x.device)  # (H/2, W/2): top-left's flat index
            lower = bottom > top  # (B, C, H/2, W/2)
            right = torch.where(lower, d > c, b > a)
            index = corner + lower * w + right  # int64 flat index into each (H, W) plane
            ctx.save_for_backward(x, index)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        x, index = ctx.saved_tensors
        return torch.ops.aten.max_pool2d_with_indices_backward(
            grad.contiguous(), x, [2, 2], [2, 2], [0, 0], [1, 1], False, index
        )


def max_pool2x2(x: torch.Tensor) -> torch.Tensor:
    """2x2 max pooling, stride 2: `MaxPool2x2` on CPU (even sizes), F.max_pool2d elsewhere."""
    if x.device.type == "cpu" and x.dim() == 4 and x.shape[-1] % 2 == 0 and x.shape[-2] % 2 == 0:
        return MaxPool2x2.apply(x)
    return F.max_pool2d(x, 2)


class FusedCNN(nn.Module):
    """M CNNClassifiers as one module: input (B, 3, 64, 64) -> log-probabilities (M, B, classes)."""

    def __init__(
        self,
        members: int,
        num_classes: int = 6,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
        per_member: bool | None = None,
    ):
        super().__init__()
        if members < 1:
            raise ValueError(f"a fused model needs at least one member, got {members}")
        # per_member: run the members one after another on their slices of the stacked weights:
        # the very kernels of M separate models, so their numbers bit for bit. Otherwise grouped
        # convolutions and batched matmuls: the GPU layout, also ~20% faster on CPU, equal to
        # separate runs up to float rounding (of the size that changing torch's thread count
        # also causes, and that Adam then amplifies). None: grouped on CUDA for several members,
        # per member otherwise (so a CPU sweep member is byte-identical to train-cnn).
        self.per_member = per_member
        template = CNNClassifier(num_classes)
        self.members = members
        self.num_classes = num_classes
        self.bn_eps = bn_eps
        self.bn_momentum = bn_momentum
        shapes = template.state_dict()
        for name, source in _PARAMS:
            self.register_parameter(name, nn.Parameter(torch.empty(members, *shapes[source].shape)))
        for name, source in _BUFFERS:
            self.register_buffer(name, torch.zeros(members, *shapes[source].shape, dtype=shapes[source].dtype))

    def _count_batch(self) -> None:
        if self.training:  # what nn.BatchNorm2d counts, per member
            self.bn1_num_batches_tracked.add_(1)
            self.bn2_num_batches_tracked.add_(1)

    def _batch_norm(self, x, mean, var, weight, bias) -> torch.Tensor:
        # mean/var are views of the (M, C) buffers: F.batch_norm updates them in place
        return F.batch_norm(x, mean, var, weight, bias, self.training, self.bn_momentum, self.bn_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, 3, 64, 64)
        per_member = self.per_member
        if per_member is None:
            per_member = self.members == 1 or x.device.type != "cuda"
        self._count_batch()
        return self._forward_members(x) if per_member else self._forward_grouped(x)

    def _forward_members(self, x: torch.Tensor) -> torch.Tensor:
        # unbind: one view per member whose backward stacks the M gradients in one go
        p = {name: getattr(self, name).unbind(0) for name, _ in _PARAMS}
        stats = {name: getattr(self, name).unbind(0) for name in ("bn1_running_mean", "bn1_running_var")}
        stats |= {name: getattr(self, name).unbind(0) for name in ("bn2_running_mean", "bn2_running_var")}
        outs = []
        for j in range(self.members):
            h = F.conv2d(x, p["conv1_weight"][j], p["conv1_bias"][j], padding="same")  # (B, 4, 64, 64)
            h = self._batch_norm(
                h, stats["bn1_running_mean"][j], stats["bn1_running_var"][j], p["bn1_weight"][j], p["bn1_bias"][j]
            )
            h = max_pool2x2(F.relu(h))  # (B, 4, 32, 32)
            h = F.conv2d(h, p["conv2_weight"][j], p["conv2_bias"][j], padding="same")  # (B, 8, 32, 32)
            h = self._batch_norm(
                h, stats["bn2_running_mean"][j], stats["bn2_running_var"][j], p["bn2_weight"][j], p["bn2_bias"][j]
            )
            h = max_pool2x2(F.relu(h))  # (B, 8, 16, 16)
            h = F.relu(F.linear(h.flatten(1), p["fc1_weight"][j], p["fc1_bias"][j]))  # (B, 64)
            outs.append(F.log_softmax(F.linear(h, p["fc2_weight"][j], p["fc2_bias"][j]), dim=1))  # (B, classes)
        return torch.stack(outs)  # (M, B, classes)

    def _forward_grouped(self, x: torch.Tensor) -> torch.Tensor:
        m, batch = self.members, x.shape[0]
        w1, w2 = self.conv1_weight, self.conv2_weight

        def bn(h, prefix):
            return self._batch_norm(
                h,
                getattr(self, f"{prefix}_running_mean").view(-1),
                getattr(self, f"{prefix}_running_var").view(-1),
                getattr(self, f"{prefix}_weight").view(-1),
                getattr(self, f"{prefix}_bias").view(-1),
            )

        # conv1 reads the shared input once: M stacked weight blocks are one plain convolution
        x = F.conv2d(x, w1.view(-1, *w1.shape[2:]), self.conv1_bias.view(-1), padding="same")  # (B, 4M, 64, 64)
        x = max_pool2x2(F.relu(bn(x, "bn1")))  # (B, 4M, 32, 32)
        x = F.conv2d(x, w2.view(-1, *w2.shape[2:]), self.conv2_bias.view(-1), padding="same", groups=m)
        x = max_pool2x2(F.relu(bn(x, "bn2")))  # (B, 8M, 16, 16)
        x = x.reshape(batch, m, -1).transpose(0, 1)  # (M, B, 2048): member j's own 8 channels, as nn.Flatten
        x = F.relu(torch.baddbmm(self.fc1_bias.unsqueeze(1), x, self.fc1_weight.transpose(1, 2)))  # (M, B, 64)
        x = torch.baddbmm(self.fc2_bias.unsqueeze(1), x, self.fc2_weight.transpose(1, 2))  # (M, B, classes)
        return F.log_softmax(x, dim=-1)


def member_nll(log_probs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each member's mean NLL: (M, B, K) log-probabilities, (B,) labels -> (M,).

    One F.nll_loss per member, not one mean over (M, B): the same summation order as a
    separate model's loss, so its bits too.
    """
    return torch.stack([F.nll_loss(member, y) for member in log_probs])


def pack(models: Sequence[nn.Module | dict], per_member: bool | None = None) -> FusedCNN:
    """Stack CNNClassifiers (or their state dicts) into one FusedCNN on the first model's device.

    `per_member`: the layout (see FusedCNN); None: grouped on CUDA for several members, else per member.
    """
    if not models:
        raise ValueError("pack needs at least one model")
    states, bn = [], None
    for model in models:
        if isinstance(model, nn.Module):
            if not isinstance(model, CNNClassifier):
                raise TypeError(f"pack fuses CNNClassifier models, got {type(model).__name__}")
            hyper = [(b.eps, b.momentum) for b in (model.bn1, model.bn2)]
            if len(set(hyper)) != 1 or (bn is not None and hyper[0] != bn):
                raise ValueError("all fused BatchNorm layers need the same eps and momentum")
            bn = hyper[0]
            model = model.state_dict()
        states.append(model)
    eps, momentum = bn or (1e-5, 0.1)
    num_classes = states[0]["fc2.bias"].shape[0]
    fused = FusedCNN(len(states), num_classes, bn_eps=eps, bn_momentum=momentum, per_member=per_member)
    fused.to(states[0]["fc2.bias"].device)
    with torch.no_grad():
        for name, source in _PARAMS + _BUFFERS:
            getattr(fused, name).copy_(torch.stack([s[source] for s in states]))
    return fused


def unpack(fused: FusedCNN) -> list[CNNClassifier]:
    """The M members as separate CNNClassifiers (exact copies, on the fused model's device)."""
    models = []
    for j in range(fused.members):
        model = CNNClassifier(fused.num_classes)
        for layer in (model.bn1, model.bn2):
            layer.eps, layer.momentum = fused.bn_eps, fused.bn_momentum
        state = {source: getattr(fused, name).detach()[j].clone() for name, source in _PARAMS + _BUFFERS}
        model.load_state_dict(state)
        models.append(model.to(fused.conv1_weight.device))
    return models


class FusedAdam:
    """Adam over a fused model's (M, ...) parameters with one learning rate per member.

    The arithmetic is torch.optim.Adam's (no weight decay, no amsgrad): per parameter
    m <- lerp(m, g, 1-b1); v <- b2 v + (1-b2) g^2; p <- p - lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps).
    Everything, including the step count, lives in tensors on the device, so a step can be
    captured in a CUDA graph. `step(active)` skips members whose entry of `active` is False:
    their gradients are replaced by zeros (NaNs included) and their learning rate by 0.
    """

    capturable = True  # graphs.make_step: the state needs no lazy creation and no host sync

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        lrs: Sequence[float] | torch.Tensor,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ):
        self.params = list(params)
        if not self.params:
            raise ValueError("FusedAdam needs parameters")
        device = self.params[0].device
        members = self.params[0].shape[0]
        self.lrs = torch.as_tensor(lrs, dtype=torch.float64).to(device, sum_dtype(device)).reshape(-1)  # (M,)
        if self.lrs.shape[0] != members or any(p.shape[0] != members for p in self.params):
            raise ValueError(f"need one learning rate per member ({members}), got {self.lrs.shape[0]}")
        if not bool((self.lrs >= 0).all()):
            raise ValueError("learning rates must be non-negative")
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = float(eps)
        self.step_count = torch.zeros((), dtype=sum_dtype(device), device=device)
        self.state = {p: {"exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)} for p in self.params}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self, active: torch.Tensor | None = None) -> None:
        beta1, beta2 = self.betas
        self.step_count += 1
        # float64 scalars, as torch.optim.Adam computes its bias corrections in Python floats
        step_size = self.lrs / (1 - beta1**self.step_count)  # (M,)
        bias_correction2_sqrt = (1 - beta2**self.step_count).sqrt()
        if active is not None:
            step_size = step_size * active
        for p in self.params:
            grad = p.grad
            if grad is None:
                continue
            view = (-1,) + (1,) * (p.dim() - 1)
            if active is not None:
                grad = torch.where(active.view(view), grad, 0.0)
            state = self.state[p]
            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt.to(p.dtype)).add_(self.eps)
            p.sub_(step_size.to(p.dtype).view(view) * exp_avg / denom)

    def state_dict(self) -> dict:
        return {
            "lrs": self.lrs.clone(),
            "betas": self.betas,
            "eps": self.eps,
            "step": self.step_count.clone(),
            "exp_avg": [self.state[p]["exp_avg"].clone() for p in self.params],
            "exp_avg_sq": [self.state[p]["exp_avg_sq"].clone() for p in self.params],
        }

    def load_state_dict(self, state: dict) -> None:
        """Copy into the existing tensors (a captured CUDA graph keeps pointing at them)."""
        if len(state["exp_avg"]) != len(self.params):
            raise ValueError("optimizer state does not match these parameters")
        self.lrs.copy_(state["lrs"])
        self.betas, self.eps = tuple(state["betas"]), float(state["eps"])
        self.step_count.copy_(state["step"])
        for p, m, v in zip(self.params, state["exp_avg"], state["exp_avg_sq"]):
            self.state[p]["exp_avg"].copy_(m)
            self.state[p]["exp_avg_sq"].copy_(v)


@torch.no_grad()
def evaluate_fused(fused: FusedCNN, split: Split, batch_size: int = 1024) -> tuple[list[float], list[float]]:
    """Each member's mean loss and accuracy over a split, in eval mode (as train.evaluate)."""
    was_training = fused.training
    fused.eval()
    device = split.x.device
    loss_sum = torch.zeros(fused.members, device=device, dtype=sum_dtype(device))
    correct = torch.zeros(fused.members, device=device, dtype=torch.int64)
    for start in range(0, len(split), batch_size):
        index = torch.arange(start, min(start + batch_size, len(split)), device=device)
        xb, yb = split.batch(index)
        out = fused(xb)  # (M, B, K)
        loss_sum += member_nll(out, yb).to(loss_sum.dtype) * len(index)
        correct += (out.argmax(-1) == yb).sum(1)
    fused.train(was_training)
    return [v / len(split) for v in loss_sum.tolist()], [c / len(split) for c in correct.tolist()]


def fit_fused(
    fused: FusedCNN,
    optimizer: FusedAdam,
    train: Split,
    evals: dict[str, Split],
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    resume: Sequence[LoopState] | None = None,
    on_epoch: Callable[[list[dict | None]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    use_graphs: bool | None = None,
) -> list[TrainResult]:
    """Train every member of `fused` together; one TrainResult per member, as train.train_model's.

    Batches, history rows and statuses are those `train_model` gives each member alone from
    the same weights and seed: `train_loss` is the sample-weighted mean over the epoch,
    `train_acc`, then `<split>_loss`/`<split>_acc` for each split in `evals`, in eval mode.
    `on_epoch(rows)` gets, after each epoch, one row per member (None for a diverged one).
    `should_stop()` is asked after every step; on True the live members end "interrupted" and
    `resume=[r.state for r in results]` (with the model and optimizer states) continues exactly.
    `use_graphs`: capture each step in CUDA graphs (None: whenever the device is CUDA).
    """
    device = train.x.device
    members = fused.members
    n = len(train)
    states = [LoopState() for _ in range(members)] if resume is None else list(resume)
    if len(states) != members:
        raise ValueError(f"resume needs one LoopState per member ({members}), got {len(states)}")
    # A member whose loss went non-finite is dead (frozen) at once, but is reported diverged only
    # when that epoch ends, as train_model does; until then it is still "live" here.
    status = ["diverged" if s.perm is None and not math.isfinite(s.loss_sum) else "completed" for s in states]
    live = [j for j in range(members) if status[j] != "diverged"]
    if not live:
        return _results(states, status)
    loop = LoopState(**{**states[live[0]].to_dict(), "history": []})  # the fields the live members share
    generator = torch.Generator().manual_seed(seed)
    if loop.generator_state is not None:
        generator.set_state(loop.generator_state)
    steps_per_epoch = math.ceil(n / batch_size)

    alive = torch.tensor([j in live and math.isfinite(states[j].loss_sum) for j in range(members)], device=device)
    loss_sum = torch.zeros(members, device=device, dtype=sum_dtype(device))
    correct = torch.zeros(members, device=device, dtype=torch.int64)

    def step(index: torch.Tensor) -> None:
        xb, yb = train.batch(index)
        out = fused(xb)  # (M, B, K)
        losses = member_nll(out, yb)  # (M,)
        alive.logical_and_(torch.isfinite(losses))
        optimizer.zero_grad(set_to_none=True)
        torch.where(alive, losses, 0.0).sum().backward()  # a dead member's loss sends back zeros
        optimizer.step(active=alive)
        loss_sum.add_(losses.detach().to(loss_sum.dtype) * index.shape[0])
        correct.add_((out.detach().argmax(-1) == yb).sum(1))

    run_step = step
    if graphs.graphs_enabled(device, use_graphs):
        sizes = sorted({min(batch_size, n), n % batch_size} - {0})
        run_step = graphs.make_step(
            step,
            batch_sizes=sizes,
            device=device,
            modules=[fused],
            optimizers=[optimizer],
            extra=[alive, loss_sum, correct],
        )

    def sync_states() -> None:
        sums, counts = loss_sum.tolist(), correct.tolist()
        for j in live:
            s = states[j]
            s.loss_sum, s.correct = sums[j], int(counts[j])
            s.epoch, s.batch, s.perm, s.seen = loop.epoch, loop.batch, loop.perm, loop.seen
            s.generator_state = loop.generator_state

    fused.train()
    while loop.epoch < epochs:
        if loop.perm is None:  # a new epoch
            loop.perm = torch.randperm(n, generator=generator)
            loop.batch, loop.seen = 0, 0
            for j in live:
                states[j].loss_sum, states[j].correct = 0.0, 0
        perm = loop.perm.to(device)
        loss_sum.copy_(torch.tensor([s.loss_sum for s in states], dtype=loss_sum.dtype))
        correct.copy_(torch.tensor([s.correct for s in states], dtype=torch.int64))
        interrupted = False
        while loop.batch < steps_per_epoch:
            index = perm[loop.batch * batch_size : (loop.batch + 1) * batch_size]
            run_step(index)
            loop.batch += 1
            loop.seen += len(index)
            if should_stop is not None and should_stop() and loop.batch < steps_per_epoch:
                interrupted = True
                break
        loop.generator_state = generator.get_state()
        sync_states()
        if interrupted:
            return _results(states, ["interrupted" if j in live else st for j, st in enumerate(status)])
        for j in live:
            if not math.isfinite(states[j].loss_sum / loop.seen):
                states[j].perm = None
                status[j] = "diverged"
        live = [j for j in live if status[j] != "diverged"]
        rows: list[dict | None] = [None] * members
        metrics = {name: evaluate_fused(fused, split) for name, split in evals.items()} if live else {}
        for j in live:
            s = states[j]
            row = {"epoch": loop.epoch + 1, "train_loss": s.loss_sum / s.seen, "train_acc": s.correct / s.seen}
            for name, (losses, accs) in metrics.items():
                row[f"{name}_loss"], row[f"{name}_acc"] = losses[j], accs[j]
            s.history.append(row)
            rows[j] = row
        loop.epoch += 1
        loop.perm = None
        sync_states()
        if not live:
            break
        if on_epoch is not None:
            on_epoch(rows)
        if should_stop is not None and should_stop() and loop.epoch < epochs:
            return _results(states, ["interrupted" if j in live else st for j, st in enumerate(status)])
    return _results(states, status)


def _results(states: list[LoopState], status: list[str]) -> list[TrainResult]:
    return [
        TrainResult(s.history, st, s, diverged_epoch=s.epoch + 1 if st == "diverged" else None)
        for s, st in zip(states, status)
    ]


def train_fused(
    models_or_states: Sequence[nn.Module | dict],
    lrs: Sequence[float],
    train: Split,
    evals: dict[str, Split],
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    on_epoch: Callable[[list[dict | None]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    use_graphs: bool | None = None,
    per_member: bool | None = None,
) -> list[TrainResult]:
    """Train one CNNClassifier per learning rate, fused; the same results as separate `train_model` runs.

    Each `models_or_states[j]` (a CNNClassifier or its state dict) is trained with Adam at
    `lrs[j]`. Modules given are updated in place with their trained weights, as train_model
    does. The default layout gives bit-identical numbers on CPU; see FusedCNN for `per_member`.
    For interruption and resume use `run_members`, or `pack`, `FusedAdam` and `fit_fused`.
    """
    if len(models_or_states) != len(lrs):
        raise ValueError(f"need one learning rate per model: {len(models_or_states)} models, {len(lrs)} lrs")
    fused = pack(models_or_states, per_member=per_member).to(train.x.device)
    optimizer = FusedAdam(list(fused.parameters()), lrs, betas=betas, eps=eps)
    results = fit_fused(
        fused,
        optimizer,
        train,
        evals,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        on_epoch=on_epoch,
        should_stop=should_stop,
        use_graphs=use_graphs,
    )
    for model, trained in zip(models_or_states, unpack(fused)):
        if isinstance(model, nn.Module):
            model.load_state_dict(trained.state_dict())
    return results


# ---------------------------------------------------------------- the sweep's runner contract


def run_members(
    lrs: Sequence[float],
    models: Sequence[nn.Module],
    optimizers: Sequence[torch.optim.Optimizer],
    train: Split,
    evals: dict[str, Split],
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    resume: Sequence[TrainResult | None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_epoch: Callable[[int, dict], None] | None = None,
    use_graphs: bool | None = None,
    per_member: bool | None = None,
) -> list[TrainResult]:
    """Train model i with its torch Adam optimizer i (lr `lrs[i]`) in place, all unfinished members fused.

    The contract of the sequential runner (one `train_model` per member):
    - the same batches and history rows as `train.train_model` gives each member alone;
    - `on_epoch(i, row)` after each of member i's epochs;
    - `resume[i]`: None (start afresh), a finished result (returned as is), or an interrupted
      one whose state the member continues from;
    - when `should_stop()` turns true: status "interrupted" for every unfinished member, resumable;
    - on return the models and optimizers hold each member's weights and Adam state (the
      optimizers' `state_dict()` is what a separate run's would be).
    Members that cannot be fused (not a CNNClassifier with a plain single-group Adam, or
    resumed at different points of training) are trained one after another instead.
    `per_member`, `use_graphs`: see FusedCNN and fit_fused. With one learning rate this is
    train-cnn's loop, bit-identical to `train_model` and faster on CPU (its max-pooling).
    """
    previous = list(resume) if resume is not None else [None] * len(lrs)
    if not len(lrs) == len(models) == len(optimizers) == len(previous):
        raise ValueError("run_members needs as many models, optimizers and resume entries as learning rates")
    results: list[TrainResult | None] = [
        p if p is not None and p.status in ("completed", "diverged") else None for p in previous
    ]
    todo = [i for i, r in enumerate(results) if r is None]
    if not todo:
        return results
    if should_stop is not None and should_stop():
        for i in todo:
            state = previous[i].state if previous[i] is not None else LoopState()
            results[i] = TrainResult(state.history, "interrupted", state)
        return results
    states = [previous[i].state if previous[i] is not None else LoopState() for i in todo]
    adam = _fusable([models[i] for i in todo], [optimizers[i] for i in todo], [float(lrs[i]) for i in todo], states)
    if adam is None:
        return train_members(
            list(models),
            list(optimizers),
            CLASSIFY,
            train,
            evals,
            epochs=epochs,
            batch_size=batch_size,
            seed=seed,
            resume=previous,
            should_stop=should_stop,
            on_epoch=on_epoch,
        )
    betas, eps, step, moments = adam
    fused = pack([models[i] for i in todo], per_member=per_member)
    optimizer = FusedAdam(list(fused.parameters()), [float(lrs[i]) for i in todo], betas=betas, eps=eps)
    optimizer.step_count.fill_(step)
    with torch.no_grad():
        for name, _ in _PARAMS:
            p = getattr(fused, name)
            for key in ("exp_avg", "exp_avg_sq"):
                optimizer.state[p][key].copy_(torch.stack([m[name][key] for m in moments]))

    def rows_to_members(rows: list[dict | None]) -> None:
        for j, row in enumerate(rows):
            if row is not None and on_epoch is not None:
                on_epoch(todo[j], row)

    fused_results = fit_fused(
        fused,
        optimizer,
        train,
        evals,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        resume=states,
        on_epoch=rows_to_members,
        should_stop=should_stop,
        use_graphs=use_graphs,
    )
    for j, (i, trained) in enumerate(zip(todo, unpack(fused))):
        models[i].load_state_dict(trained.state_dict())
        _write_adam_state(optimizers[i], models[i], optimizer, fused, j)
        results[i] = fused_results[j]
    return results


def _adam_hyper(optimizer) -> tuple | None:
    if type(optimizer) is not torch.optim.Adam or len(optimizer.param_groups) != 1:
        return None
    group = optimizer.param_groups[0]
    if group["weight_decay"] or group["amsgrad"] or group["maximize"] or group.get("differentiable"):
        return None
    return tuple(group["betas"]), group["eps"]


def _fusable(models, optimizers, lrs, states) -> tuple | None:
    """(betas, eps, step, per-member moments) when these members can train as one; else None."""
    if not all(isinstance(m, CNNClassifier) for m in models):
        return None
    hyper = {_adam_hyper(o) for o in optimizers}
    if None in hyper or len(hyper) != 1:
        return None
    if len({(m.fc2.out_features, str(m.fc2.weight.device), m.bn1.eps, m.bn1.momentum) for m in models}) != 1:
        return None
    first = states[0]
    for s in states[1:]:  # fused members advance in lockstep: they must stand at the same point
        if (s.epoch, s.batch, s.seen) != (first.epoch, first.batch, first.seen):
            return None
        if (s.perm is None) != (first.perm is None) or (s.perm is not None and not torch.equal(s.perm, first.perm)):
            return None
        gen_a, gen_b = s.generator_state, first.generator_state
        if (gen_a is None) != (gen_b is None) or (gen_a is not None and not torch.equal(gen_a, gen_b)):
            return None
    steps, moments = set(), []
    names = dict(_PARAMS)
    for model, optimizer in zip(models, optimizers):
        params = dict(model.named_parameters())
        if [id(p) for p in optimizer.param_groups[0]["params"]] != [id(p) for p in params.values()]:
            return None
        member = {}
        for name, source in names.items():
            p = params[source]
            state = optimizer.state.get(p) or {}
            steps.add(float(state["step"]) if "step" in state else 0.0)
            member[name] = {
                key: state[key].detach().to(p.device) if key in state else torch.zeros_like(p)
                for key in ("exp_avg", "exp_avg_sq")
            }
        moments.append(member)
    if len(steps) != 1:
        return None
    betas, eps = hyper.pop()
    return betas, eps, steps.pop(), moments


def _write_adam_state(optimizer, model, fused_optimizer: FusedAdam, fused: FusedCNN, j: int) -> None:
    """Member j's moments and step count into its torch Adam, as a separate run would have left them."""
    group = optimizer.param_groups[0]
    params = dict(model.named_parameters())
    step = float(fused_optimizer.step_count)
    for name, source in _PARAMS:
        p = params[source]
        stacked = fused_optimizer.state[getattr(fused, name)]
        on_device = group.get("capturable") or group.get("fused")
        optimizer.state[p] = {
            "step": torch.tensor(step, dtype=torch.get_default_dtype(), device=p.device if on_device else "cpu"),
            "exp_avg": stacked["exp_avg"][j].detach().clone(),
            "exp_avg_sq": stacked["exp_avg_sq"][j].detach().clone(),
        }
