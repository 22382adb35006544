"""Adam with one learning rate (and L2 weight decay) per member: torch.optim.Adam's arithmetic, without torch.optim.

Two reasons not to use torch.optim.Adam: constructing one imports torch._dynamo (about 1.7 s
of start-up), and a sweep needs one learning rate per member inside one fused step. The
arithmetic is torch's single-tensor Adam (no amsgrad), operation for operation, so the numbers
are bit-identical to it on the CPU (tests/test_engine.py checks):

    g <- g + wd·p  (only for a member whose weight decay wd is not 0, as torch skips it for 0)
    m <- lerp(m, g, 1 - b1);  v <- b2·v + (1 - b2)·g²
    p <- p - (lr / (1 - b1^t)) · m / (sqrt(v) / sqrt(1 - b2^t) + eps)

Each parameter tensor either belongs to one member (`member_of[i] = j`) or stacks every member
along dim 0 (`member_of[i] = None`, the fused models). The step counts, learning rates and
moments are tensors on the device, so a step can be captured in a CUDA graph.
`step(active)` leaves the parameters of inactive members where they are (a diverged or
stopped member: its gradients are replaced by zeros and its step size by 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def sum_dtype(device: torch.device) -> torch.dtype:
    """float64 for running sums and optimizer scalars on the device, where it has it (MPS does not)."""
    return torch.float32 if torch.device(device).type == "mps" else torch.float64


def _stacked(p: torch.Tensor) -> tuple[int, ...]:
    """The view of an (M,) per-member vector that broadcasts over a stacked (M, ...) tensor."""
    return (-1,) + (1,) * (p.dim() - 1)


class _ScalarGroup:
    """Parameters (or slices) that take the same per-member scalar: member `member`'s, or with
    `member` None the (M,) vector viewed as `shape` (one stacked tensor)."""

    def __init__(self, dtype: torch.dtype, member: int | None, shape: tuple[int, ...] | None = None):
        self.dtype, self.member, self.shape = dtype, member, shape
        self.params, self.avgs, self.denoms = [], [], []

    def add(self, p: torch.Tensor, m: torch.Tensor, d: torch.Tensor) -> _ScalarGroup:
        self.params.append(p)
        self.avgs.append(m)
        self.denoms.append(d)
        return self

    def scalars(self, values: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """(M,) per-member values -> a 0-d view (one member) or [an (M, 1, ...) view] (stacked)."""
        return values[self.member] if self.member is not None else [values.view(self.shape)]


class Adam:
    capturable = True  # engine.graphs: no lazy state, no host sync

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        member_of: Sequence[int | None],
        lrs: Sequence[float],
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decays: Sequence[float] | None = None,
    ):
        self.params = list(params)
        self.member_of = list(member_of)
        if not self.params or len(self.member_of) != len(self.params):
            raise ValueError("Adam needs parameters and one member index (or None) for each")
        device = self.params[0].device
        self.members = len(lrs)
        self.lrs = torch.tensor([float(lr) for lr in lrs], dtype=torch.float64).to(device, sum_dtype(device))  # (M,)
        if not bool((self.lrs >= 0).all()):
            raise ValueError("learning rates must be non-negative")
        for p, j in zip(self.params, self.member_of, strict=True):
            if (j is None and p.shape[0] != self.members) or (j is not None and not 0 <= j < self.members):
                raise ValueError(f"a parameter of shape {tuple(p.shape)} does not fit {self.members} members")
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = float(eps)
        # plain floats, like betas and eps: torch adds the decay as add(p, alpha=wd), and a captured
        # graph keeps them; whether any member decays is decided here, once, not in the step
        self.weight_decays = [0.0] * self.members if weight_decays is None else [float(w) for w in weight_decays]
        if len(self.weight_decays) != self.members:
            raise ValueError(f"{len(self.weight_decays)} weight decays for {self.members} members")
        if not all(0 <= w < math.inf for w in self.weight_decays):
            raise ValueError("weight decays must be finite and non-negative")
        self.decays = any(w != 0 for w in self.weight_decays)
        self.step_count = torch.zeros(self.members, dtype=sum_dtype(device), device=device)  # (M,)
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, active: torch.Tensor | None = None) -> None:
        beta1, beta2 = self.betas
        if active is None:
            self.step_count += 1
        else:
            self.step_count += active.to(self.step_count.dtype)
        # float64 scalars, as torch.optim.Adam computes its bias corrections in Python floats; a member
        # that never stepped keeps step 0, so its corrections use 1 (finite; its step size is 0 anyway)
        steps = self.step_count.clamp_min(1)
        step_size = self.lrs / (1 - beta1**steps)  # (M,)
        bias_correction2_sqrt = (1 - beta2**steps).sqrt()  # (M,)
        if active is not None:
            step_size = torch.where(active, step_size, 0.0)
        scalars = {}  # per dtype: the (M,) step sizes and corrections, cast once per step
        params, grads, avgs, avg_sqs, owners = [], [], [], [], []
        for p, j, exp_avg, exp_avg_sq in zip(self.params, self.member_of, self.exp_avg, self.exp_avg_sq, strict=True):
            grad = p.grad
            if grad is None:
                continue
            if p.dtype not in scalars:
                scalars[p.dtype] = (step_size.to(p.dtype), bias_correction2_sqrt.to(p.dtype))
            params.append(p)
            grads.append(grad)
            avgs.append(exp_avg)
            avg_sqs.append(exp_avg_sq)
            owners.append(j)
        if not params:
            return
        if self.decays:  # before the masks below: a frozen member's moments never see its decay
            grads = self._decayed(params, grads, owners)
        if active is not None:  # a frozen member's gradient may be NaN: zeros instead
            grads = [
                torch.where(active.view(_stacked(p)) if j is None else active[j], g, 0.0)
                for p, g, j in zip(params, grads, owners, strict=True)
            ]
        # the module docstring's arithmetic, one dispatch per operation for every parameter at once
        # (on the CPU each _foreach_ op runs the same per-tensor kernel: the same bits)
        torch._foreach_lerp_(avgs, grads, 1 - beta1)  # m <- lerp(m, g, 1 - b1)
        torch._foreach_mul_(avg_sqs, beta2)
        torch._foreach_addcmul_(avg_sqs, grads, grads, value=1 - beta2)  # v <- b2·v + (1 - b2)·g²
        denoms = torch._foreach_sqrt(avg_sqs)
        groups = self._scalar_groups(params, avgs, denoms, owners)
        updates = []
        for group in groups:
            member_sizes, member_bc2s = scalars[group.dtype]
            torch._foreach_div_(group.denoms, group.scalars(member_bc2s))  # sqrt(v) / sqrt(1 - b2^t)
            updates.extend(torch._foreach_mul(group.avgs, group.scalars(member_sizes)))  # (lr / (1 - b1^t)) · m
        params = [t for group in groups for t in group.params]
        denoms = [t for group in groups for t in group.denoms]
        torch._foreach_add_(denoms, self.eps)
        torch._foreach_div_(updates, denoms)
        torch._foreach_sub_(params, updates)  # p <- p - (lr / (1 - b1^t)) · m / (sqrt(v) / sqrt(1 - b2^t) + eps)

    def _decayed(self, params, grads, owners) -> list[torch.Tensor]:
        """g + wd·p for every member whose decay wd is not 0, computed as torch.optim.Adam does it,
        `add(p, alpha=wd)`: into copies (p.grad stays as backward made it), one _foreach_ op per member
        over its tensors and its slices of the stacked ones; a member with wd 0 is left untouched."""
        out = [g.clone() if j is None or self.weight_decays[j] != 0 else g for g, j in zip(grads, owners, strict=True)]
        for k, wd in enumerate(self.weight_decays):
            if wd == 0:
                continue
            mine = [i for i, j in enumerate(owners) if j in (k, None)]
            targets = [out[i] if owners[i] == k else out[i][k] for i in mine]
            torch._foreach_add_(targets, [params[i] if owners[i] == k else params[i][k] for i in mine], alpha=wd)
        return out

    def _scalar_groups(self, params, avgs, denoms, owners) -> list[_ScalarGroup]:
        """The tensors grouped so that one per-member scalar, or one list of them, applies to each group.

        A _foreach_ op takes its one-kernel route only for a 0-d scalar tensor or for lists of equal
        shapes. Tensors of one member share its 0-d scalars: one group per member. Stacked tensors
        (M, ...) need an (M, 1, ...) view per tensor, one kernel each, unless they are cut into
        their members' slices: on a GPU that is done when it gives fewer groups (M < tensors); on
        the CPU every _foreach_ op is a loop of per-tensor kernels anyway, and slices would only
        add tensors.
        """
        groups: dict[tuple, _ScalarGroup] = {}
        stacked = [i for i, j in enumerate(owners) if j is None]
        slice_stacked = params[0].device.type == "cuda" and self.members < len(stacked)
        for i, j in enumerate(owners):
            p, m, d = params[i], avgs[i], denoms[i]
            if j is not None:
                groups.setdefault((p.dtype, j), _ScalarGroup(p.dtype, j)).add(p, m, d)
            elif slice_stacked:
                for k, (pk, mk, dk) in enumerate(zip(p.unbind(0), m.unbind(0), d.unbind(0), strict=True)):
                    groups.setdefault((p.dtype, k), _ScalarGroup(p.dtype, k)).add(pk, mk, dk)
            else:
                groups[(p.dtype, None, i)] = _ScalarGroup(p.dtype, None, _stacked(p)).add(p, m, d)
        return list(groups.values())

    # ---- one member's state, in plain tensors (checkpoints hold members, so a run can be re-sharded)

    def member_state(self, j: int, names: Sequence[str]) -> dict:
        """Member j's step count, hyperparameters and moments; `names[i]` names parameter i's slice of member j."""
        out = {
            "step": float(self.step_count[j]),
            "lr": float(self.lrs[j]),
            "weight_decay": self.weight_decays[j],
            "exp_avg": {},
            "exp_avg_sq": {},
        }
        for name, p_member, m, v in zip(names, self.member_of, self.exp_avg, self.exp_avg_sq, strict=True):
            if p_member is None:
                m, v = m[j], v[j]
            elif p_member != j:
                continue
            out["exp_avg"][name] = m.detach().cpu().clone()
            out["exp_avg_sq"][name] = v.detach().cpu().clone()
        return out

    @torch.no_grad()
    def load_member_state(self, j: int, names: Sequence[str], state: dict) -> None:
        """Copy member j's saved state in place (a captured CUDA graph keeps pointing at these tensors).

        The weight decay is the optimizer's own, fixed when it was made: a state saved with another one
        is refused, so a resumed member goes on with the decay it trained with (none in states saved
        before decays existed)."""
        saved = float(state.get("weight_decay", 0.0))
        if saved != self.weight_decays[j]:
            raise ValueError(f"member {j} was saved with weight decay {saved:g}, not {self.weight_decays[j]:g}")
        self.step_count[j] = float(state["step"])
        for name, p_member, m, v in zip(names, self.member_of, self.exp_avg, self.exp_avg_sq, strict=True):
            if p_member is None:
                m, v = m[j], v[j]
            elif p_member != j:
                continue
            m.copy_(state["exp_avg"][name])
            v.copy_(state["exp_avg_sq"][name])
