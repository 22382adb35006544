"""CUDA-graph-captured train steps: the CPU fallback always, graph == eager where a GPU exists."""

from __future__ import annotations

import pytest
import torch

from mle6cli import fused as fz
from mle6cli import graphs
from mle6cli.models import CNNClassifier, ConvAutoencoder
from mle6cli.train import CLASSIFY, RECONSTRUCT, Split, train_model

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny convolutions: a second thread mostly waits


def signs_like(n: int, device="cpu", seed: int = 1) -> Split:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, 64, 64), generator=g, dtype=torch.uint8)
    return Split(x.to(device), torch.randint(0, 6, (n,), generator=g).to(device))


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


def test_make_capturable():
    model = torch.nn.Linear(3, 2)
    adam = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.ones(1, 3)).sum().backward()
    adam.step()  # state exists, with its step count
    assert graphs.make_capturable(adam)
    assert all(group["capturable"] for group in adam.param_groups)
    step = adam.state[model.weight]["step"]
    assert isinstance(step, torch.Tensor) and step.device == model.weight.device and float(step) == 1.0
    assert not graphs.make_capturable(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    assert graphs.make_capturable(fz.FusedAdam([torch.zeros(2, 3, requires_grad=True)], [1e-3, 1e-4]))


def test_warm_up_steps_are_undone_exactly():
    """What GraphedStep does around its warm-up, checked on CPU: restore, then train as if never warmed up."""
    torch.manual_seed(0)
    data = signs_like(16)
    model = CNNClassifier()
    reference = CNNClassifier()
    reference.load_state_dict(model.state_dict())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    accumulator = torch.zeros((), dtype=torch.float64)

    def step(opt, net, acc):
        xb, yb = data.batch(torch.arange(16))
        loss = CLASSIFY.loss(net(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if acc is not None:
            acc.add_(loss.detach().double())

    snapshot = graphs._Snapshot([model], [optimizer], [accumulator])
    for _ in range(3):
        step(optimizer, model, accumulator)
    assert not torch.equal(model.fc1.weight, reference.fc1.weight)
    snapshot.restore()
    assert float(accumulator) == 0.0
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values()))
    assert all(float(s["exp_avg"].abs().max()) == 0.0 and float(s["step"]) == 0 for s in optimizer.state.values())
    fresh = torch.optim.Adam(reference.parameters(), lr=1e-2)
    for _ in range(2):
        step(optimizer, model, None)
        step(fresh, reference, None)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values()))


def test_train_model_falls_back_on_cpu():
    data = signs_like(20)
    histories = []
    for use_graphs in (None, True):
        torch.manual_seed(0)
        model = CNNClassifier()
        result = train_model(
            model,
            torch.optim.Adam(model.parameters(), lr=1e-3),
            CLASSIFY,
            data,
            {"val": data},
            epochs=1,
            batch_size=8,
            seed=0,
            use_graphs=use_graphs,
        )
        histories.append(result.history)
    assert histories[0] == histories[1]


def _train(model_fn, task, data, use_graphs, lr=1e-3, before_step=None, optimizer_fn=None):
    torch.manual_seed(0)
    model = model_fn().to(data.x.device)
    optimizer = (optimizer_fn or (lambda p: torch.optim.Adam(p, lr=lr)))(model.parameters())
    result = train_model(
        model,
        optimizer,
        task,
        data,
        {"val": data},
        epochs=2,
        batch_size=16,
        seed=3,
        use_graphs=use_graphs,
        before_step=before_step,
    )
    return result, model


def _close(a: list[dict], b: list[dict], rel: float) -> None:
    assert len(a) == len(b) > 0
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for key in ra:
            assert rb[key] == pytest.approx(ra[key], rel=rel, abs=rel), key


@cuda
@pytest.mark.cuda
@pytest.mark.parametrize("which", ["cnn", "ae"])
def test_graphed_train_model_equals_eager(which):
    torch.backends.cudnn.deterministic = True
    if which == "cnn":
        data, task, model_fn = signs_like(40, "cuda"), CLASSIFY, CNNClassifier  # 16, 16 and a ragged 8
    else:
        g = torch.Generator().manual_seed(0)
        data, task = Split(torch.rand(40, 1, 28, 28, generator=g).cuda()), RECONSTRUCT
        model_fn = ConvAutoencoder
    eager, eager_model = _train(model_fn, task, data, use_graphs=False)
    graphed, graphed_model = _train(model_fn, task, data, use_graphs=True)
    assert eager.status == graphed.status == "completed"
    _close(eager.history, graphed.history, rel=1e-4)
    for a, b in zip(eager_model.state_dict().values(), graphed_model.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), rtol=1e-3, atol=1e-4)


@cuda
@pytest.mark.cuda
def test_graphed_before_step_with_a_tensor_lr():
    data = signs_like(40, "cuda")
    lr = torch.tensor(1e-3, device="cuda")
    seen = []

    def warm_up(step: int) -> None:  # in place: the graph reads this very tensor
        seen.append(step)
        lr.fill_(1e-3 * min(1.0, (step + 1) / 4))

    def adam(p):
        return torch.optim.Adam(p, lr=lr, capturable=True)

    graphed, _ = _train(CNNClassifier, CLASSIFY, data, True, before_step=warm_up, optimizer_fn=adam)
    lr.fill_(1e-3)
    eager, _ = _train(CNNClassifier, CLASSIFY, data, False, before_step=warm_up, optimizer_fn=adam)
    assert seen == list(range(6)) * 2
    _close(eager.history, graphed.history, rel=1e-4)

    def replace(step: int) -> None:  # a float lr baked into the graph cannot change
        for group in optimizer_holder[0].param_groups:
            group["lr"] = 1e-4

    optimizer_holder = []

    def adam_float(p):
        optimizer_holder.append(torch.optim.Adam(p, lr=1e-3))
        return optimizer_holder[0]

    with pytest.raises(RuntimeError, match="before_step replaced a learning rate"):
        _train(CNNClassifier, CLASSIFY, data, True, before_step=replace, optimizer_fn=adam_float)


@cuda
@pytest.mark.cuda
def test_graphed_fused_sweep_equals_eager_and_separate_runs():
    torch.backends.cudnn.deterministic = True
    data = signs_like(40, "cuda")
    evals = {"val": signs_like(12, "cuda", seed=2)}
    torch.manual_seed(3)
    states = [CNNClassifier().cuda().state_dict() for _ in range(3)]
    lrs = [1e10, 1e-3, 1e-5]  # the first diverges: masked inside the graph too
    runs = {}
    for use_graphs in (False, True):
        fused = fz.pack(states)
        optimizer = fz.FusedAdam(list(fused.parameters()), lrs)
        runs[use_graphs] = fz.fit_fused(
            fused, optimizer, data, evals, epochs=2, batch_size=16, seed=5, use_graphs=use_graphs
        )
    eager, graphed = runs[False], runs[True]
    assert [r.status for r in graphed] == [r.status for r in eager] == ["diverged", "completed", "completed"]
    for a, b in zip(eager[1:], graphed[1:]):
        _close(a.history, b.history, rel=1e-4)
    for j in (1, 2):  # grouped convolutions and batched matmuls vs the plain model, on the GPU
        model = CNNClassifier().cuda()
        model.load_state_dict(states[j])
        separate = train_model(
            model,
            torch.optim.Adam(model.parameters(), lr=lrs[j]),
            CLASSIFY,
            data,
            evals,
            epochs=2,
            batch_size=16,
            seed=5,
            use_graphs=False,
        )
        _close(separate.history, graphed[j].history, rel=2e-3)
