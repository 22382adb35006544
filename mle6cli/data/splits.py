"""A dataset split held on the training device; batches are index gathers, never per-sample Python."""

from __future__ import annotations

from dataclasses import dataclass

import torch

FINGERPRINT_SCHEME = "v2"  # v2: the arrays as the dataset stores them (before v2: the float copies)


def fingerprint(arrays) -> str:
    """A hash of the arrays (numpy arrays or tensors) with their dtypes and shapes: `v2:<32 hex digits>`.
    A resume does not compare fingerprints of different schemes (`engine.checkpoints.check_same_data`)."""
    import hashlib

    import numpy as np

    digest = hashlib.blake2b(digest_size=16)
    for array in arrays:
        if isinstance(array, torch.Tensor):
            array = array.detach().cpu().numpy()
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(memoryview(array).cast("B"))
    return f"{FINGERPRINT_SCHEME}:{digest.hexdigest()}"


@dataclass
class Split:
    """`x` (N, C, H, W) float in [0, 1] or uint8; `y` (N,) int64 labels, or None when the target is the input."""

    x: torch.Tensor
    y: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.x.shape[0]

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The images (and targets) at `index`, of any shape: (B,) -> (B, C, H, W); (S, B) -> (S, B, C, H, W)."""
        xb = as_float(rows(self.x, index))
        return xb, (xb if self.y is None else rows(self.y, index))

    def epoch_batches(self, perms: torch.Tensor, batch_size: int) -> list[tuple[torch.Tensor, int]]:
        """An epoch's batches from its permutations (S, N) on the host: (index (S, B) on the device, B)
        each, views of one copy made here, so that no step copies anything from the host."""
        order = perms.to(self.x.device)  # (S, N)
        return [(order[:, i : i + batch_size], min(batch_size, len(self) - i)) for i in range(0, len(self), batch_size)]


class ShardedSplit:
    """One data-parallel rank's share of a split: the samples i with i % world == rank, on its device.

    It is ordered like the whole split (`len` is the whole split's size, `epoch_batches` takes the
    global permutation) and batches are the samples of each global batch that this rank holds, in
    batch order: a rank's share of a step's batch has about B / world samples, the ranks' shares
    together make the single-process batch.
    """

    def __init__(self, x_shard: torch.Tensor, total: int, rank: int, world: int):
        expected = len(range(rank, total, world))
        if x_shard.shape[0] != expected:
            raise ValueError(
                f"rank {rank} of {world} should hold {expected} of {total} samples, not {x_shard.shape[0]}"
            )
        self.x, self.y = x_shard, None
        self.total, self.rank, self.world = total, rank, world

    @classmethod
    def of(cls, x: torch.Tensor, rank: int, world: int, device) -> ShardedSplit:
        """This rank's share of the images `x` (wherever they are), moved to `device`."""
        return cls(x[rank::world].to(device), x.shape[0], rank, world)

    def __len__(self) -> int:
        return self.total

    def epoch_batches(self, perms: torch.Tensor, batch_size: int) -> list[tuple[torch.Tensor, int]]:
        """An epoch's batches from its permutation (1, N) of global sample numbers, on the host: for
        each, this rank's rows of the samples it holds, in batch order ((1, b) on the device), and the
        batch's size over every rank. The selection happens here, once an epoch, on the host: in a
        step it would need the count of a boolean mask, a host synchronisation."""
        if perms.shape[0] != 1:
            raise ValueError("a data-parallel batch is one seed group's: permutation of shape (1, N)")
        order = perms[0]
        held = order.remainder(self.world) == self.rank  # (N,)
        local = order[held].div(self.world, rounding_mode="floor").to(self.x.device).unsqueeze(0)  # (1, N / world)
        starts = range(0, self.total, batch_size)
        padded = torch.cat([held.long(), held.new_zeros((-self.total) % batch_size, dtype=torch.long)])
        counts = padded.view(-1, batch_size).sum(1).tolist()  # this rank's samples in each batch
        batches, at = [], 0
        for i, count in zip(starts, counts, strict=True):
            batches.append((local[:, at : at + count], min(batch_size, self.total - i)))
            at += count
        return batches

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """index (1, b) of this rank's rows (`epoch_batches`) -> its (1, b, C, H, W) images."""
        xb = as_float(rows(self.x, index))  # (1, b, C, H, W)
        return xb, xb


def rows(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """`t[index]` for an index of any shape: (S, B) -> (S, B, ...). The same values, through
    index_select: on the CPU advanced indexing costs 0.42 ms for a SIGNS batch, index_select 0.06 ms."""
    return t.index_select(0, index.reshape(-1)).view(*index.shape, *t.shape[1:])


def as_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images are scaled to [0, 1] per batch (as x/255 in float32); float tensors pass through."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x


def synthetic_note(what: str, sizes: dict[str, int], instead_of: str) -> str:
    """The one wording of the notice that a command runs on built-in synthetic data."""
    counts = " / ".join(f"{n} {split}" for split, n in sizes.items())
    return f"Note: the data are SYNTHETIC ({what}, {counts}), not {instead_of}."
