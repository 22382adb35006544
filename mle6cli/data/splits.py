"""A dataset split held on the training device; batches are index gathers, never per-sample Python."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Split:
    """`x` (N, C, H, W) float in [0, 1] or uint8; `y` (N,) int64 labels, or None when the target is the input."""

    x: torch.Tensor
    y: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.x.shape[0]

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The images (and targets) at `index`, of any shape: (B,) -> (B, C, H, W); (S, B) -> (S, B, C, H, W)."""
        xb = as_float(self.x[index])
        return xb, (xb if self.y is None else self.y[index])


def as_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images are scaled to [0, 1] per batch (as x/255 in float32); float tensors pass through."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x


def synthetic_note(what: str, sizes: dict[str, int], instead_of: str) -> str:
    """The one wording of the notice that a command runs on built-in synthetic data."""
    counts = " / ".join(f"{n} {split}" for split, n in sizes.items())
    return f"Note: the data are SYNTHETIC ({what}, {counts}), not {instead_of}."
