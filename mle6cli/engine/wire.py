"""Python objects between the ranks of the process group, as pickled byte tensors that stay referenced
until the group is destroyed.

Why not torch's `all_gather_object` and its kin: they let go of their tensors as they return, while
the gloo worker thread that ran the collective may still hold its work. That thread then frees the
tensors last, and freeing a tensor Python has let go takes the GIL. Some torch releases (2.4.1
among them; recent ones let go of the GIL there) destroy a gloo group holding the GIL while they
join those threads, so a rank that exits right after an exchange could wait there forever (more
often on a loaded machine). The tensors here are freed by the main thread once the group is gone;
their bytes are let go as soon as the exchange is read.

What travels is pickled, as with torch's own object collectives: the ranks are one run of one
program and trust each other.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from functools import partial

KINDS = ("all", "gather", "broadcast")  # every rank's value to all; to rank 0; rank 0's to all


class Wire:
    """The exchanges of one process group. `collective(what, call)` runs one collective and turns
    its failure into the caller's error."""

    def __init__(self, rank: int, world: int, collective: Callable[[str, Callable[[], None]], None]):
        self.rank, self.world = rank, world
        self._collective = collective
        self._held: list = []  # every tensor handed to the process group, until release()

    def exchange(self, what: str, kind: str, value) -> list | None:
        """Kind "all": every rank's value, by rank; "gather": the same on rank 0, None elsewhere;
        "broadcast": [rank 0's value] on every rank."""
        import torch
        import torch.distributed as dist

        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        data = pickle.dumps(value) if kind != "broadcast" or self.rank == 0 else b""
        size = torch.tensor([len(data)], dtype=torch.int64)
        sizes = [torch.zeros(1, dtype=torch.int64) for _ in range(self.world)]
        self._held += [size, *sizes]
        self._collective(what, partial(dist.all_gather, sizes, size))
        lengths = [int(s) for s in sizes]
        mine = torch.zeros(max(lengths), dtype=torch.uint8)
        if data:
            mine[: len(data)] = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        if kind == "broadcast":
            received, lengths = [mine], lengths[:1]
            call = partial(dist.broadcast, mine, src=0)
        elif kind == "all":
            received = [torch.empty_like(mine) for _ in lengths]
            call = partial(dist.all_gather, received, mine)
        else:  # gather: rank 0 alone receives
            lengths = lengths if self.rank == 0 else []
            received = [torch.empty_like(mine) for _ in lengths]
            call = partial(dist.gather, mine, received or None, dst=0)
        self._held += [mine, *received]
        self._collective(what, call)
        values = [pickle.loads(t[:n].numpy().tobytes()) for t, n in zip(received, lengths, strict=True)]
        for t in (mine, *received):  # read: keep the tensor, let its bytes go
            t.set_()
        return values if received else None

    def release(self) -> None:
        """After the process group is destroyed: no worker thread holds a tensor any more."""
        self._held.clear()
