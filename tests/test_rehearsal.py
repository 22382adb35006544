"""Every training step, rehearsed on fake CUDA tensors on the CPU: nothing in it may synchronise
with the host, or CUDA-graph capture would fail on the first GPU run (tests/rehearsal.py says how).

The oracle is the list of operations CUDA forbids while a stream is capturing; the controls show
that the rehearsal finds each kind when it is added to the optimizer, the loop or a model.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from mle6cli.data.splits import ShardedSplit, Split
from mle6cli.engine import fused as fz
from mle6cli.engine import loop
from mle6cli.engine.members import RECONSTRUCT, ModuleMembers
from mle6cli.engine.optim import Adam
from mle6cli.models import CNNClassifier, ConvAutoencoder, LinearAutoencoder
from tests.rehearsal import fake_cuda_works, rehearse

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.skipif(not fake_cuda_works(), reason="this torch cannot make fake CUDA tensors without a GPU"),
]


def signs_like(n: int = 16) -> Split:
    g = torch.Generator().manual_seed(0)
    return Split(torch.randint(0, 256, (n, 3, 64, 64), generator=g, dtype=torch.uint8), torch.randint(0, 6, (n,)))


def digits_like(n: int = 16) -> Split:
    g = torch.Generator().manual_seed(0)
    return Split(torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8))


def cnns(count: int, per_member: bool | None = None, weight_decays=None) -> fz.FusedCNNMembers:
    torch.manual_seed(0)
    lrs = [1e-1, 1e-2, 1e-3, 1e-4][:count] if count <= 4 else [1e-3] * count
    models = [CNNClassifier() for _ in range(count)]
    return fz.FusedCNNMembers(models, lrs, per_member=per_member, weight_decays=weight_decays)


def autoencoders(dims, weight_decays=None) -> ModuleMembers:
    torch.manual_seed(0)
    return ModuleMembers([ConvAutoencoder(d) for d in dims], [1e-3] * len(dims), RECONSTRUCT, weight_decays)


def linear_autoencoders(count: int) -> ModuleMembers:
    torch.manual_seed(0)
    return ModuleMembers([LinearAutoencoder(10) for _ in range(count)], [1e-3] * count, RECONSTRUCT)


# (what runs it, members, seed group of each member, live members)
CASES = {
    "train-cnn": (lambda: cnns(1), [0], None),
    "sweep-lr, one seed (grouped layout)": (lambda: cnns(4), [0, 0, 0, 0], None),
    "sweep-lr, seeds (grouped layout)": (lambda: cnns(4, per_member=False), [0, 0, 1, 1], None),
    "sweep-lr, seeds (per-member layout)": (lambda: cnns(4, per_member=True), [0, 0, 1, 1], None),
    "sweep-lr, a frozen member (grouped)": (lambda: cnns(4, per_member=False), [0, 0, 1, 1], [1, 0, 1, 1]),
    "sweep-lr, a frozen member (per member)": (lambda: cnns(4, per_member=True), [0, 1, 0, 1], [1, 1, 0, 1]),
    "sweep-lr, 20 members (sliced Adam)": (lambda: cnns(20), [j % 5 for j in range(20)], None),
    "sweep-lr, weight decays, a frozen member (grouped)": (
        lambda: cnns(4, per_member=False, weight_decays=[1e-2, 0.0, 1e-4, 1e-2]),
        [0, 0, 1, 1],
        [1, 1, 0, 1],
    ),
    "sweep-lr, weight decays, 20 members (sliced Adam)": (
        lambda: cnns(20, weight_decays=[1e-3 * (j % 3) for j in range(20)]),
        [j % 5 for j in range(20)],
        None,
    ),
    "train-ae": (lambda: autoencoders([3, 10]), [0, 0], None),
    "train-ae, seeds and a stopped member": (lambda: autoencoders([3, 3, 10]), [0, 1, 0], [1, 0, 1]),
    "train-ae, weight decays": (lambda: autoencoders([3, 10], weight_decays=[1e-2, 0.0]), [0, 1], None),
    "pca-ae, seeds": (lambda: linear_autoencoders(2), [0, 1], None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_step_is_free_of_host_synchronisation(case):
    make, groups, live = CASES[case]
    members = make()
    data = digits_like() if members.task is RECONSTRUCT else signs_like()
    assert rehearse(members, data, groups=groups, live=None if live is None else [bool(v) for v in live]) == []


def test_the_data_parallel_step_is_free_of_host_synchronisation(tmp_path):
    """train-ae --ddp: a rank's share of each batch, its loss scaled for DistributedDataParallel. The
    process group is real (gloo, one process); DDP's wrappers are set aside once the members are fake:
    their forward bookkeeping and gradient all-reduce are torch's own, in the backward that the
    rehearsal replaces."""
    import torch.distributed as dist

    from mle6cli.engine.ddp import DataParallelMembers

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        models = [ConvAutoencoder(d) for d in (3, 10)]
        members = DataParallelMembers(models, [1e-3, 1e-3], RECONSTRUCT, group=None, world=2, rank=1)
        data = digits_like()

        def share(x, y):
            return ShardedSplit(x[1::2], len(x), rank=1, world=2)

        def plain_modules(m):
            m.parallel = m.models

        found = rehearse(members, data, groups=[0, 0], split=share, after_fake=plain_modules)
    finally:
        dist.destroy_process_group()
    assert found == []


# ---------------------------------------------------------------- the rehearsal can fail


def test_it_finds_the_list_index_of_a_grouped_sweep(monkeypatch):
    """Several seeds in the grouped layout once gathered their rows with a Python list inside the step."""

    def losses_with_a_list_index(self, x, y):
        out = self.model(x, self.groups)  # no device index: the model makes one from the list, in the step
        return out, fz.member_nll(out, y, self.groups)

    monkeypatch.setattr(fz.FusedCNNMembers, "_losses", losses_with_a_list_index)
    found = rehearse(cnns(4, per_member=False), signs_like(), groups=[0, 0, 1, 1])
    assert found and all("cpu -> cuda" in f or "host tensor" in f for f in found), found


def test_it_finds_an_item_added_to_the_optimizer(monkeypatch):
    step = Adam.step

    def step_and_read(self, active=None):
        step(self, active)
        float(self.step_count[0])  # e.g. a log line of the step count

    monkeypatch.setattr(Adam, "step", step_and_read)
    assert rehearse(cnns(1), signs_like(), groups=[0]) == ["_local_scalar_dense (reads a device value on the host)"]


def test_it_finds_a_list_index_added_to_the_optimizer(monkeypatch):
    step = Adam.step

    def step_with_a_list(self, active=None):
        step(self, active)
        self.lrs[[0]]

    monkeypatch.setattr(Adam, "step", step_with_a_list)
    found = rehearse(autoencoders([3]), digits_like(), groups=[0])
    assert len(found) == 1 and "cpu -> cuda" in found[0], found


def test_it_finds_a_host_read_and_a_list_index_added_to_the_loop(monkeypatch):
    make_step = loop.train_step

    def train_step(members, train, alive, loss_sum, correct):
        step = make_step(members, train, alive, loss_sum, correct)

        def logged(index, size):
            step(index, size)
            if bool(alive[[0, 1]].all()):  # a list index and a host read
                pass

        return logged

    monkeypatch.setattr(loop, "train_step", train_step)
    found = rehearse(cnns(2), signs_like(), groups=[0, 0])
    assert found == ["_to_copy cpu -> cuda of shape (2,)", "_local_scalar_dense (reads a device value on the host)"]


def test_it_finds_a_boolean_mask(monkeypatch):
    losses_of = ModuleMembers._losses

    def losses_of_finite(self, x, y):
        outputs, losses = losses_of(self, x, y)
        return outputs, losses[torch.isfinite(losses)].sum().expand(self.count)

    monkeypatch.setattr(ModuleMembers, "_losses", losses_of_finite)
    found = rehearse(autoencoders([3, 10]), digits_like(), groups=[0, 0])
    assert found and found[0] == "index with a boolean mask (nonzero)", found


# ---------------------------------------------------------------- Adam: one kernel per operation


class ForeachWatch(TorchDispatchMode):
    """Each _foreach_ operation, and whether CUDA can run it as one kernel over its lists: equal
    shapes and strides pairwise, contiguous tensors, and scalars as numbers or 0-d tensors (else
    it falls back to one kernel per tensor)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, bool]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._schema.name
        if name.startswith("aten::_foreach_"):
            lists = [a for a in args if isinstance(a, (list, tuple)) and a and isinstance(a[0], torch.Tensor)]
            scalars = [a for a in args if isinstance(a, torch.Tensor)]
            fast = (
                all(len({(tuple(t.shape), t.stride()) for t in column}) == 1 for column in zip(*lists, strict=True))
                and all(t.is_contiguous() for one in lists for t in one)
                and all(s.dim() == 0 for s in scalars)
            )
            self.calls.append((name.split("::")[1], fast))
        return func(*args, **(kwargs or {}))


def adam_kernels(members) -> list[tuple[str, bool]]:
    from torch._subclasses.fake_tensor import FakeTensorMode

    from tests.rehearsal import CUDA, fake_cuda_members

    fake = FakeTensorMode(allow_non_fake_inputs=True)
    fake_cuda_members(members, fake)
    with fake:
        for p in members.optimizer.params:
            p.grad = torch.zeros_like(p)
        active = torch.ones(members.count, dtype=torch.bool, device=CUDA)
        watch = ForeachWatch()
        with watch:
            members.optimizer.step(active)
    return watch.calls


@pytest.mark.parametrize("which", ["autoencoders", "fused CNNs"])
def test_adam_runs_each_operation_as_one_kernel_per_member_at_most(which):
    """Each parameter's per-member scalars come as one 0-d tensor for a whole list: the operations
    without them are one kernel for every parameter, the two with them one per member (M = 4 here,
    against 56 and 12 parameters)."""
    members = autoencoders([3, 10, 100, 250]) if which == "autoencoders" else cnns(4)
    calls = adam_kernels(members)
    assert all(fast for _, fast in calls), [c for c in calls if not c[1]]
    assert len(calls) == 7 + 2 * 4, calls
