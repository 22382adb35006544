"""CUDA-graph-captured train steps: the CPU fallback always, graph == eager where a GPU exists."""

from __future__ import annotations

import pytest
import torch

from mle6cli.data.splits import Split
from mle6cli.engine import fused as fz
from mle6cli.engine import graphs
from mle6cli.engine.loop import MemberState, fit
from mle6cli.engine.members import RECONSTRUCT, ModuleMembers
from mle6cli.models import CNNClassifier, ConvAutoencoder

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny convolutions: a second thread mostly waits


def signs_like(n: int, device="cpu", seed: int = 1) -> Split:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, 64, 64), generator=g, dtype=torch.uint8)
    return Split(x.to(device), torch.randint(0, 6, (n,), generator=g).to(device))


def digits_like(n: int, device="cpu", seed: int = 0) -> Split:
    g = torch.Generator().manual_seed(seed)
    return Split(torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8).to(device))


def test_graphs_only_on_cuda(monkeypatch):
    cpu = torch.device("cpu")
    for requested in (None, True, False):
        assert graphs.graphs_enabled(cpu, requested) is False

    def step(index):
        return None

    assert graphs.make_step(step, batch_sizes=[4], device=cpu, modules=[], optimizers=[], enabled=True) is step
    if torch.cuda.is_available():
        gpu = torch.device("cuda")
        assert graphs.graphs_enabled(gpu, None) and not graphs.graphs_enabled(gpu, False)
        monkeypatch.setenv("MLE6_GRAPHS", "0")
        assert not graphs.graphs_enabled(gpu, None) and graphs.graphs_enabled(gpu, True)


def test_only_capturable_optimizers_are_captured():
    model = torch.nn.Linear(3, 2)
    if not torch.cuda.is_available():
        pytest.skip("capture needs CUDA")
    with pytest.raises(ValueError, match="cannot be captured"):
        graphs.GraphedStep(
            lambda index: None,
            batch_sizes=[2],
            groups=1,
            device=torch.device("cuda"),
            modules=[model],
            optimizers=[torch.optim.SGD(model.parameters(), lr=0.1)],
        )


def test_warm_up_steps_are_undone_exactly():
    """What GraphedStep does around its warm-up, checked on the CPU: restore, then train as if never warmed up."""
    torch.manual_seed(0)
    data = signs_like(16)
    model = CNNClassifier()
    members = fz.FusedCNNMembers([model], [1e-2])
    reference = fz.FusedCNNMembers([CNNClassifier()], [1e-2])
    reference.load(0, {"weights": model.state_dict()})
    alive = torch.ones(1, dtype=torch.bool)
    accumulator = torch.zeros(1, dtype=torch.float64)

    def step(m, acc):
        xb, yb = data.batch(torch.arange(16).view(1, -1))
        losses, _ = m.step(xb, yb, alive)
        acc.add_(losses.double())

    snapshot = graphs._Snapshot(members.modules(), [members.optimizer], [accumulator])
    for _ in range(3):
        step(members, accumulator)
    assert not torch.equal(members.model.fc1_weight, reference.model.fc1_weight)
    snapshot.restore()
    assert float(accumulator) == 0.0
    assert all(
        torch.equal(a, b)
        for a, b in zip(members.export(0)["weights"].values(), reference.export(0)["weights"].values(), strict=True)
    )
    assert float(members.optimizer.step_count[0]) == 0 and float(members.optimizer.exp_avg[0].abs().max()) == 0.0
    scratch = torch.zeros(1, dtype=torch.float64)
    for _ in range(2):
        step(members, scratch)
        step(reference, scratch)
    assert all(
        torch.equal(a, b)
        for a, b in zip(members.export(0)["weights"].values(), reference.export(0)["weights"].values(), strict=True)
    )


def test_fit_falls_back_on_the_cpu():
    data = signs_like(20)
    histories = []
    for use_graphs in (None, True):
        torch.manual_seed(0)
        state = MemberState(seed=0)
        fit(
            fz.FusedCNNMembers([CNNClassifier()], [1e-3]),
            [state],
            data,
            {"val": data},
            epochs=1,
            batch_size=8,
            use_graphs=use_graphs,
        )
        histories.append(state.history)
    assert histories[0] == histories[1]


def _close(a: list[dict], b: list[dict], rel: float) -> None:
    assert len(a) == len(b) > 0
    for ra, rb in zip(a, b, strict=True):
        assert ra.keys() == rb.keys()
        for key in ra:
            assert rb[key] == pytest.approx(ra[key], rel=rel, abs=rel), key


def _members(which: str, device: str, lrs=(1e-3,)):
    torch.manual_seed(3)
    if which == "cnn":
        return fz.FusedCNNMembers([CNNClassifier().to(device) for _ in lrs], list(lrs))
    return ModuleMembers([ConvAutoencoder(d).to(device) for d in (3, 10)[: len(lrs)]], list(lrs), RECONSTRUCT)


@cuda
@pytest.mark.cuda
@pytest.mark.parametrize("which", ["cnn", "ae"])
def test_graphed_fit_equals_eager(which):
    torch.backends.cudnn.deterministic = True
    data = signs_like(40, "cuda") if which == "cnn" else digits_like(40, "cuda")  # 16, 16 and a ragged 8
    lrs = (1e-3, 1e-4)
    results = {}
    for use_graphs in (False, True):
        members = _members(which, "cuda", lrs)
        states = [MemberState(seed=5), MemberState(seed=6)]  # two seed groups: (S, B) index buffers
        fit(members, states, data, {"val": data}, epochs=2, batch_size=16, use_graphs=use_graphs)
        results[use_graphs] = (states, [members.export(j)["weights"] for j in range(2)])
    (eager, eager_w), (graphed, graphed_w) = results[False], results[True]
    for a, b in zip(eager, graphed, strict=True):
        assert a.status == b.status == "completed"
        _close(a.history, b.history, rel=1e-4)
    for wa, wb in zip(eager_w, graphed_w, strict=True):
        for key in wa:
            assert torch.allclose(wa[key].float(), wb[key].float(), rtol=1e-3, atol=1e-4), key


@cuda
@pytest.mark.cuda
def test_graphed_fused_sweep_equals_eager_and_the_cpu():
    torch.backends.cudnn.deterministic = True
    lrs = [1e10, 1e-3, 1e-5]  # the first diverges: masked inside the graph too
    out = {}
    for device, use_graphs in (("cuda", False), ("cuda", True), ("cpu", False)):
        data = signs_like(40, device)
        evals = {"val": signs_like(12, device, seed=2)}
        members = _members("cnn", device, lrs)
        states = [MemberState(seed=5) for _ in lrs]
        fit(members, states, data, evals, epochs=2, batch_size=16, use_graphs=use_graphs)
        out[(device, use_graphs)] = states
    eager, graphed, cpu = out[("cuda", False)], out[("cuda", True)], out[("cpu", False)]
    assert [s.status for s in graphed] == [s.status for s in eager] == [s.status for s in cpu]
    assert graphed[0].status == "diverged"
    for a, b, c in zip(eager[1:], graphed[1:], cpu[1:], strict=True):
        _close(a.history, b.history, rel=1e-4)
        _close(c.history, b.history, rel=2e-3)  # grouped GPU layout vs per-member CPU kernels
