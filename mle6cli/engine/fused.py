"""Several CNNClassifiers trained as one model: a sweep's members, horizontally fused.

The SIGNS CNN is far too small to keep a GPU busy, so M models (learning rates × seeds) are
stacked into one `FusedCNN` (the HFTA idea) and trained together. On CUDA:

- conv1 reads a shared input once (its M weight blocks stacked into one Conv2d(3, 4M)), or,
  when the members' seeds give them different batches, is a grouped convolution over them;
- conv2 is a grouped convolution (groups=M) over the stacked channels;
- BatchNorm over the stacked 4M / 8M channels is per channel, hence per model;
- the Linear layers are batched matmuls over a leading model dimension.

On the CPU (by default) the members run one after another on views of the same stacked
weights: the very kernels a separate model runs, so the numbers are bit-for-bit those of
separate runs, with a max-pooling faster than ATen's (`per_member=False` takes the grouped
layout on the CPU too: faster, equal only up to float rounding). train-cnn is a one-member run
of this same path. Each block pools before its ReLU: max and ReLU commute exactly, values and
gradients alike (a window whose maximum is not positive sends back zeros either way), and the
ReLU then runs on a quarter of the values. Every parameter carries the model index as its leading dimension, `(M, ...)`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mle6cli.engine.members import CLASSIFY, Members
from mle6cli.engine.optim import Adam
from mle6cli.models import SIGNS_CLASSES, CNNClassifier

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
    corners (a b / c d) are strided views combined by elementwise maxima, and two boolean maps
    remember the winner: `lower` (c or d) and `right` (b or d); the backward turns them into
    the winner's flat index for ATen's own max_pool2d backward. Ties go to the first corner in
    row-major order, as max_pool2d's `val > maxval` scan does, so values AND gradients are
    bit-identical to max_pool2d's (windows holding a NaN aside: a diverged model's gradients
    do not matter).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H/2, W/2)
        a, b, c, d = x[..., ::2, ::2], x[..., ::2, 1::2], x[..., 1::2, ::2], x[..., 1::2, 1::2]
        top, bottom = torch.maximum(a, b), torch.maximum(c, d)
        if ctx.needs_input_grad[0]:
            lower = bottom > top  # (B, C, H/2, W/2)
            b_wins = b > a
            right = b_wins ^ (lower & ((d > c) ^ b_wins))  # where(lower, d > c, b > a): bool where is ~3x slower
            ctx.save_for_backward(lower, right)
            ctx.shape = x.shape
        return torch.maximum(top, bottom)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        lower, right = ctx.saved_tensors
        h, w = ctx.shape[-2:]
        rows = torch.arange(0, h, 2, device=grad.device).mul_(w).view(-1, 1)  # (H/2, 1)
        corner = rows + torch.arange(0, w, 2, device=grad.device)  # (H/2, W/2): the top-left's flat index
        index = torch.add(corner, lower, alpha=w).add_(right)  # flat index of each winner in its (H, W) plane
        empty = grad.new_empty(ctx.shape)  # max_pool2d's backward reads only the shape of its input
        return torch.ops.aten.max_pool2d_with_indices_backward(
            grad.contiguous(), empty, [2, 2], [2, 2], [0, 0], [1, 1], False, index
        )


def max_pool2x2(x: torch.Tensor) -> torch.Tensor:
    """2x2 max pooling, stride 2: `MaxPool2x2` on CPU (even sizes), F.max_pool2d elsewhere."""
    if x.device.type == "cpu" and x.dim() == 4 and x.shape[-1] % 2 == 0 and x.shape[-2] % 2 == 0:
        return MaxPool2x2.apply(x)
    return F.max_pool2d(x, 2)


class FusedCNN(nn.Module):
    """M CNNClassifiers as one module: input -> log-probabilities (M, B, classes).

    The input is one batch (B, 3, 64, 64) for every member, or one per seed group
    (S, B, 3, 64, 64) with `groups[j]` the row member j reads.
    """

    def __init__(
        self,
        members: int,
        num_classes: int = SIGNS_CLASSES,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
        per_member: bool | None = None,
    ):
        super().__init__()
        if members < 1:
            raise ValueError(f"a fused model needs at least one member, got {members}")
        # per_member: run the members one after another on their slices of the stacked weights:
        # the very kernels of M separate models, so their numbers bit for bit. Otherwise grouped
        # convolutions and batched matmuls: the GPU layout, also faster on CPU, equal to
        # separate runs up to float rounding. None: grouped on CUDA for several members, per
        # member otherwise (so a CPU sweep member is byte-identical to train-cnn).
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
        self.live: list[bool] | None = None  # set_live: members to skip (per-member layout)
        self.register_buffer("_counted", torch.ones(members, dtype=torch.int64), persistent=False)

    @torch.no_grad()
    def set_live(self, live: Sequence[bool] | None) -> None:
        """Skip the members whose entry is False (their forward, their BatchNorm batch count)."""
        self.live = None if live is None or all(live) else list(live)
        self._counted.copy_(torch.tensor([1 if v else 0 for v in (live or [True] * self.members)]))

    def layout_is_per_member(self, device: torch.device) -> bool:
        if self.per_member is not None:
            return self.per_member
        return self.members == 1 or torch.device(device).type != "cuda"

    def _batch_norm(self, x, mean, var, weight, bias) -> torch.Tensor:
        # mean/var are views of the (M, C) buffers: F.batch_norm updates them in place
        return F.batch_norm(x, mean, var, weight, bias, self.training, self.bn_momentum, self.bn_eps)

    def forward(
        self, x: torch.Tensor, groups: Sequence[int] | None = None, group_index: torch.Tensor | None = None
    ) -> torch.Tensor:
        """`group_index`: `groups` as an int64 tensor on x's device, made once by the caller, so that
        a captured step copies nothing from the host (the grouped layout gathers with it)."""
        if self.training:  # what nn.BatchNorm2d counts, per member
            self.bn1_num_batches_tracked.add_(self._counted)
            self.bn2_num_batches_tracked.add_(self._counted)
        if self.layout_is_per_member(x.device):
            return self._forward_members(x, groups, self.live if self.training else None)
        if groups is not None and group_index is None:
            group_index = torch.tensor(list(groups), device=x.device)
        return self._forward_grouped(x, group_index)

    def _forward_members(self, x, groups, live) -> torch.Tensor:
        # unbind: one view per member whose backward stacks the M gradients in one go
        p = {name: getattr(self, name).unbind(0) for name, _ in _PARAMS}
        stats = {name: getattr(self, name).unbind(0) for name in ("bn1_running_mean", "bn1_running_var")}
        stats |= {name: getattr(self, name).unbind(0) for name in ("bn2_running_mean", "bn2_running_var")}
        outs = []
        for j in range(self.members):
            xj = x if groups is None else x[groups[j]]  # (B, 3, 64, 64)
            if live is not None and not live[j]:
                outs.append(xj.new_zeros(xj.shape[0], self.num_classes))
                continue
            h = F.conv2d(xj, p["conv1_weight"][j], p["conv1_bias"][j], padding="same")  # (B, 4, 64, 64)
            h = self._batch_norm(
                h, stats["bn1_running_mean"][j], stats["bn1_running_var"][j], p["bn1_weight"][j], p["bn1_bias"][j]
            )
            h = F.relu(max_pool2x2(h))  # (B, 4, 32, 32): relu∘pool = pool∘relu, on 1/4 of the values
            h = F.conv2d(h, p["conv2_weight"][j], p["conv2_bias"][j], padding="same")  # (B, 8, 32, 32)
            h = self._batch_norm(
                h, stats["bn2_running_mean"][j], stats["bn2_running_var"][j], p["bn2_weight"][j], p["bn2_bias"][j]
            )
            h = F.relu(max_pool2x2(h))  # (B, 8, 16, 16)
            h = F.relu(F.linear(h.flatten(1), p["fc1_weight"][j], p["fc1_bias"][j]))  # (B, 64)
            outs.append(F.log_softmax(F.linear(h, p["fc2_weight"][j], p["fc2_bias"][j]), dim=1))  # (B, classes)
        return torch.stack(outs)  # (M, B, classes)

    def _forward_grouped(self, x, group_index) -> torch.Tensor:
        m = self.members
        w1, w2 = self.conv1_weight, self.conv2_weight

        def bn(h, prefix):
            return self._batch_norm(
                h,
                getattr(self, f"{prefix}_running_mean").view(-1),
                getattr(self, f"{prefix}_running_var").view(-1),
                getattr(self, f"{prefix}_weight").view(-1),
                getattr(self, f"{prefix}_bias").view(-1),
            )

        if group_index is None or x.dim() == 4:  # one shared batch: M stacked weight blocks are one convolution
            x = F.conv2d(x, w1.view(-1, *w1.shape[2:]), self.conv1_bias.view(-1), padding="same")  # (B, 4M, 64, 64)
        else:  # a batch per member: (S, B, 3, H, W) -> (M, B, 3, H, W) -> (B, 3M, H, W), one group per member
            xm = x.index_select(0, group_index)
            xm = xm.transpose(0, 1).reshape(xm.shape[1], -1, *xm.shape[3:])
            x = F.conv2d(xm, w1.view(-1, *w1.shape[2:]), self.conv1_bias.view(-1), padding="same", groups=m)
        batch = x.shape[0]
        x = F.relu(max_pool2x2(bn(x, "bn1")))  # (B, 4M, 32, 32)
        x = F.conv2d(x, w2.view(-1, *w2.shape[2:]), self.conv2_bias.view(-1), padding="same", groups=m)
        x = F.relu(max_pool2x2(bn(x, "bn2")))  # (B, 8M, 16, 16)
        x = x.reshape(batch, m, -1).transpose(0, 1)  # (M, B, 2048): member j's own 8 channels, as nn.Flatten
        x = F.relu(torch.baddbmm(self.fc1_bias.unsqueeze(1), x, self.fc1_weight.transpose(1, 2)))  # (M, B, 64)
        x = torch.baddbmm(self.fc2_bias.unsqueeze(1), x, self.fc2_weight.transpose(1, 2))  # (M, B, classes)
        return F.log_softmax(x, dim=-1)

    # ---- member j as a plain CNNClassifier state dict

    def member_state_dict(self, j: int) -> dict:
        return {source: getattr(self, name).detach()[j].cpu().clone() for name, source in _PARAMS + _BUFFERS}

    @torch.no_grad()
    def load_member_state_dict(self, j: int, state: dict) -> None:
        expected = {source for _, source in _PARAMS + _BUFFERS}
        if set(state) != expected:
            raise KeyError(f"not a CNNClassifier state dict (keys {sorted(set(state) ^ expected)[:3]} differ)")
        for name, source in _PARAMS + _BUFFERS:
            getattr(self, name)[j].copy_(state[source])


def member_nll(log_probs: torch.Tensor, y: torch.Tensor, groups: Sequence[int] | None = None) -> torch.Tensor:
    """Each member's mean NLL: (M, B, K) log-probabilities and labels (B,) or (S, B) -> (M,).

    One F.nll_loss per member, not one mean over (M, B): the same summation order as a
    separate model's loss, so its bits too.
    """
    labels = [y if groups is None or y.dim() == 1 else y[g] for g in (groups or [None] * len(log_probs))]
    return torch.stack([F.nll_loss(member, target) for member, target in zip(log_probs, labels, strict=True)])


def pack(models: Sequence[CNNClassifier], per_member: bool | None = None) -> FusedCNN:
    """Stack CNNClassifiers into one FusedCNN on the first model's device (exact copies)."""
    if not models:
        raise ValueError("pack needs at least one model")
    for model in models:
        if not isinstance(model, CNNClassifier):
            raise TypeError(f"pack fuses CNNClassifier models, got {type(model).__name__}")
    fused = FusedCNN(len(models), models[0].fc2.out_features, per_member=per_member)
    fused.to(models[0].fc2.weight.device)
    for j, model in enumerate(models):
        fused.load_member_state_dict(j, model.state_dict())
    return fused


def unpack(fused: FusedCNN) -> list[CNNClassifier]:
    """The M members as separate CNNClassifiers (exact copies, on the fused model's device)."""
    models = []
    for j in range(fused.members):
        model = CNNClassifier(fused.num_classes)
        model.load_state_dict(fused.member_state_dict(j))
        models.append(model.to(fused.conv1_weight.device))
    return models


class FusedCNNMembers(Members):
    """M SIGNS CNNs as one FusedCNN with one Adam learning rate (and weight decay, default none) each."""

    task = CLASSIFY

    def __init__(
        self,
        models: Sequence[CNNClassifier],
        lrs: Sequence[float],
        per_member: bool | None = None,
        weight_decays: Sequence[float] | None = None,
    ):
        self.model = pack(models, per_member=per_member)
        self.count = self.model.members
        self.device = self.model.conv1_weight.device
        self.names = [source for _, source in _PARAMS]
        params = [getattr(self.model, name) for name, _ in _PARAMS]
        self.optimizer = Adam(params, [None] * len(_PARAMS), lrs, weight_decays=weight_decays)
        super().__init__()

    def modules(self) -> list[nn.Module]:
        return [self.model]

    @property
    def leaves_retired(self) -> bool:
        return self.model.layout_is_per_member(self.device)  # the grouped layout's numbers depend on its members

    def _shared(self) -> bool:
        return len(set(self.groups)) == 1

    def bind(self, groups: Sequence[int], live: Sequence[bool]) -> None:
        super().bind(groups, live)
        self.model.set_live(live)
        # made here, before any capture: a Python list as an index would be copied to the device in the step
        self.group_index = torch.tensor(self.groups, device=self.model.conv1_weight.device)  # (M,)

    def _losses(self, x, y):
        if self._shared():  # every member reads the same batch: no per-member gather
            out = self.model(x[self.groups[0]])
            return out, member_nll(out, y[self.groups[0]])
        out = self.model(x, self.groups, self.group_index)
        return out, member_nll(out, y, self.groups)

    def _correct(self, outputs, y) -> torch.Tensor:
        if self._shared():
            return (outputs.detach().argmax(-1) == y[self.groups[0]]).sum(1)
        return (outputs.detach().argmax(-1) == y.index_select(0, self.group_index)).sum(1)  # (M, B) -> (M,)

    def _eval_outputs(self, x):
        out = self.model(x)  # (M, B, K)
        yield from enumerate(out)

    def export(self, j: int) -> dict:
        return {"weights": self.model.member_state_dict(j), "optimizer": self.optimizer.member_state(j, self.names)}

    def load(self, j: int, member: dict) -> None:
        self.model.load_member_state_dict(j, member["weights"])
        if member.get("optimizer") is not None:
            self.optimizer.load_member_state(j, self.names, member["optimizer"])
