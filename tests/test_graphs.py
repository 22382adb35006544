"""CUDA-graph-captured train steps: the CPU fallback always, graph == eager where a GPU exists."""

from __future__ import annotations

import re

import pytest
import torch

from mle6cli.data.splits import Split
from mle6cli.engine import fused as fz
from mle6cli.engine import graphs
from mle6cli.engine.loop import MemberState, fit
from mle6cli.engine.members import RECONSTRUCT, ModuleMembers
from mle6cli.models import CNNClassifier, ConvAutoencoder

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture
def no_tf32():
    """cuDNN convolutions and cuBLAS matmuls in full float32 while CUDA is compared with the CPU: with
    TF32 (cuDNN's default) a 10-bit mantissa makes a GPU run differ from the CPU's far beyond rounding."""
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


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
def test_graphed_fit_equals_eager(which, no_tf32):
    torch.backends.cudnn.deterministic = True
    data = signs_like(40, "cuda") if which == "cnn" else digits_like(40, "cuda")  # 16, 16 and a ragged 8
    lrs = (1e-3, 1e-4)
    results = {}
    for use_graphs in (False, True):
        members = _members(which, "cuda", lrs)
        states = [MemberState(seed=5), MemberState(seed=6)]  # two seed groups: (S, B) index buffers
        fit(members, states, data, {"val": data}, epochs=2, batch_size=16, use_graphs=use_graphs)
        assert members.graphed == [use_graphs]  # captured when asked, never fell back
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
def test_graphed_fused_sweep_equals_eager_and_the_cpu(no_tf32):
    torch.backends.cudnn.deterministic = True
    lrs = [1e10, 1e-3, 1e-5]  # the first diverges: masked inside the graph too
    out = {}
    for device, use_graphs in (("cuda", False), ("cuda", True), ("cpu", False)):
        data = signs_like(40, device)
        evals = {"val": signs_like(12, device, seed=2)}
        members = _members("cnn", device, lrs)
        states = [MemberState(seed=5) for _ in lrs]
        fit(members, states, data, evals, epochs=2, batch_size=16, use_graphs=use_graphs)
        assert all(members.graphed) == use_graphs  # once, then again when the diverged member is retired
        out[(device, use_graphs)] = states
    eager, graphed, cpu = out[("cuda", False)], out[("cuda", True)], out[("cpu", False)]
    assert [s.status for s in graphed] == [s.status for s in eager] == [s.status for s in cpu]
    assert graphed[0].status == "diverged"
    for a, b, c in zip(eager[1:], graphed[1:], cpu[1:], strict=True):
        _close(a.history, b.history, rel=1e-4)
        _close(c.history, b.history, rel=2e-3)  # grouped GPU layout vs per-member CPU kernels


# ---------------------------------------------------------------- a capture that fails is a note


class FailingCapture(graphs.GraphedStep):
    """Warms up for real (the weights, Adam state and sums move), then fails as CUDA would on a step
    that synchronises while capturing."""

    def _capture(self, step, snapshot, optimizers, warmup):
        for size, index in self.index.items():
            for _ in range(warmup):
                step(index, size)
        raise RuntimeError("CUDA error: operation not permitted when stream is capturing")


@pytest.fixture
def capture_fails(monkeypatch):
    monkeypatch.setattr(graphs, "graphs_enabled", lambda device, requested=None: requested is not False)
    monkeypatch.setattr(graphs, "GraphedStep", FailingCapture)


def test_a_failed_capture_trains_on_eagerly_from_the_same_state(capture_fails):
    data = signs_like(20)
    results = []
    for use_graphs in (False, None):
        torch.manual_seed(0)
        members = fz.FusedCNNMembers([CNNClassifier(), CNNClassifier()], [1e-3, 1e-2])
        states = [MemberState(seed=0), MemberState(seed=1)]
        notes = []
        fit(members, states, data, {"val": data}, epochs=2, batch_size=8, use_graphs=use_graphs, note=notes.append)
        results.append(([s.history for s in states], [members.export(j) for j in range(2)], notes, members.graphed))
    (eager, eager_weights, eager_notes, _), (fell_back, weights, notes, graphed) = results
    assert eager_notes == [] and graphed == [False]
    assert notes == [
        "Note: CUDA graph capture failed (RuntimeError: CUDA error: operation not permitted when stream is "
        "capturing); training continues without graphs."
    ]
    assert fell_back == eager  # the warm-up was undone: not one bit of it remains
    for a, b in zip(eager_weights, weights, strict=True):
        assert all(torch.equal(a["weights"][k], b["weights"][k]) for k in a["weights"])
        assert a["optimizer"]["step"] == b["optimizer"]["step"]
        for moment in ("exp_avg", "exp_avg_sq"):
            assert all(torch.equal(v, b["optimizer"][moment][k]) for k, v in a["optimizer"][moment].items())


@pytest.mark.slow
def test_a_failed_capture_is_one_note_and_summary_says_no_graphs(capture_fails, runner, app, tmp_path):
    import json

    result = runner.invoke(app, ["train-cnn", "--synthetic", "--epochs", "1", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "Note: CUDA graph capture failed (RuntimeError: CUDA error: operation not permitted" in result.output
    assert "Traceback" not in result.output
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["graphs"] is False


def test_the_failure_names_the_line_that_raised():
    def step(index, size):
        torch.zeros(2)[[0, 1, 2]]

    try:
        step(None, 0)
    except IndexError as exc:
        text = graphs.failure(exc)
    assert text.startswith("IndexError: index 2 is out of bounds") and " at " not in text  # not in the package
    with pytest.raises(ValueError) as info:
        fz.FusedCNN(0)
    assert graphs.failure(info.value).endswith(f"at mle6cli/engine/fused.py:{info.tb.tb_next.tb_lineno}")


@cuda
@pytest.mark.cuda
def test_a_step_that_synchronises_falls_back_on_a_gpu(monkeypatch):
    """On a real GPU: the warm-up runs with synchronising operations made errors, so an `.item()` in
    the optimizer is named before capture, the weights are put back, and the run goes on eagerly."""
    from mle6cli.engine.optim import Adam

    adam_step = Adam.step

    def step_and_read(self, active=None):
        adam_step(self, active)
        float(self.step_count[0])

    data = signs_like(24, "cuda")
    torch.manual_seed(0)
    eager = fz.FusedCNNMembers([CNNClassifier().to("cuda")], [1e-3])
    eager_state = MemberState(seed=0)
    fit(eager, [eager_state], data, {}, epochs=1, batch_size=8, use_graphs=False)
    monkeypatch.setattr(Adam, "step", step_and_read)
    torch.manual_seed(0)
    members = fz.FusedCNNMembers([CNNClassifier().to("cuda")], [1e-3])
    state, notes = MemberState(seed=0), []
    fit(members, [state], data, {}, epochs=1, batch_size=8, use_graphs=True, note=notes.append)
    assert members.graphed == [False] and len(notes) == 1
    assert "synchroniz" in notes[0] and "mle6cli/engine/" in notes[0], notes
    assert state.history == eager_state.history


# ---------------------------------------------------------------- a failure inside capture costs only its graph


class FakeStream:
    def __init__(self, name: str):
        self.name = name

    def wait_stream(self, other) -> None:
        pass


class FakeCuda:
    """torch.cuda's streams and graphs as torch runs them, on the CPU. `torch.cuda.graph`'s exit ends
    the capture with no try/finally: when the body failed (CUDA then invalidates the capture),
    `capture_end` raises before the allocator stops routing to the graph's pool, and the stream
    context is never left, so the capture stream stays current."""

    def __init__(self):
        self.default = self.current = FakeStream("default")
        self.capturing = False
        self.routing: set[tuple] = set()  # pools the allocator is routing allocations to
        self.captures = 0
        fake = self

        class CUDAGraph:
            pools = 0

            def __init__(self):
                CUDAGraph.pools += 1
                self._pool = (CUDAGraph.pools, 0)

            def pool(self):
                return self._pool

        class graph:
            def __init__(self, cuda_graph):
                self.cuda_graph = cuda_graph

            def __enter__(self):
                fake.captures += 1
                self.before, fake.current = fake.current, FakeStream("capture")
                fake.routing.add(self.cuda_graph.pool())
                fake.capturing = True

            def __exit__(self, kind, value, tb):
                fake.capturing = False
                if kind is not None:
                    raise RuntimeError("CUDA error: operation failed due to a previous error during capture")
                fake.routing.discard(self.cuda_graph.pool())
                fake.current = self.before

        class stream:
            def __init__(self, s):
                self.s = s

            def __enter__(self):
                self.before, fake.current = fake.current, self.s

            def __exit__(self, *exc):
                fake.current = self.before

        def end_allocating(device, pool):
            if pool not in fake.routing:
                raise RuntimeError("not currently recording to that pool")
            fake.routing.discard(pool)

        def set_stream(s):
            fake.current = s

        self.patches = {
            "CUDAGraph": CUDAGraph,
            "graph": graph,
            "stream": stream,
            "Stream": lambda device=None: FakeStream("side"),
            "current_stream": lambda device=None: fake.current,
            "set_stream": set_stream,
            "synchronize": lambda device=None: None,
            "get_sync_debug_mode": lambda: 0,
            "set_sync_debug_mode": lambda mode: None,
        }
        self.end_allocating = end_allocating


@pytest.fixture
def fake_cuda(monkeypatch):
    fake = FakeCuda()
    for name, value in fake.patches.items():
        monkeypatch.setattr(torch.cuda, name, value)
    for name in ("_cuda_endAllocateToPool", "_cuda_endAllocateCurrentStreamToPool"):
        monkeypatch.setattr(torch._C, name, fake.end_allocating, raising=False)
    monkeypatch.setattr(graphs, "graphs_enabled", lambda device, requested=None: requested is not False)
    monkeypatch.setattr(graphs, "capture_broken", None, raising=False)  # this process's flag, put back after the test
    return fake


def _fails_while_capturing(monkeypatch, fake):
    """Adam's step reads a device value while a capture is underway, as a careless change would."""
    from mle6cli.engine.optim import Adam

    adam_step = Adam.step

    def step(self, active=None):
        adam_step(self, active)
        if fake.capturing:
            raise RuntimeError("CUDA error: operation not permitted when stream is capturing")

    monkeypatch.setattr(Adam, "step", step)


def test_a_failure_inside_capture_costs_only_its_graph(fake_cuda, monkeypatch):
    """The step fails inside `torch.cuda.graph`: the stream and the allocator are put back, graphs stay
    off for the rest of the process (one note, naming the package line), and training goes on
    eagerly from the state before the warm-up: the same numbers as a run that never tried."""
    _fails_while_capturing(monkeypatch, fake_cuda)
    data = signs_like(20)
    lrs = [1e10, 1e-3, 1e-2]  # the first diverges in epoch 1: the loop binds again for the other two
    results = []
    for use_graphs in (False, None):
        torch.manual_seed(0)
        members = fz.FusedCNNMembers([CNNClassifier() for _ in lrs], lrs)
        states = [MemberState(seed=0) for _ in lrs]
        notes = []
        fit(members, states, data, {"val": data}, epochs=2, batch_size=8, use_graphs=use_graphs, note=notes.append)
        results.append(([s.history for s in states], [members.export(j) for j in range(3)], notes, members.graphed))
    (eager, eager_weights, eager_notes, _), (fell_back, weights, notes, graphed) = results
    assert eager_notes == [] and fake_cuda.captures == 1  # one capture tried, never again
    assert graphed == [False, False]  # the first bind and the one after the divergence
    assert len(notes) == 1, notes
    assert re.fullmatch(
        r"Note: CUDA graph capture failed \(RuntimeError: CUDA error: operation failed due to a previous error "
        r"during capture at mle6cli/engine/\w+\.py:\d+\); training continues without graphs, and no step is "
        r"captured again in this process\.",
        notes[0],
    ), notes[0]
    assert graphs.capture_broken is not None and graphs.capture_broken in notes[0]
    assert fake_cuda.current is fake_cuda.default  # the stream the step ran on is current again
    assert fake_cuda.routing == set()  # the allocator left capture mode
    assert fell_back[0] == [] and len(fell_back[1]) == 2  # lr 1e10 diverged in epoch 1, the others went on
    assert fell_back == eager
    for a, b in zip(eager_weights[1:], weights[1:], strict=True):  # the diverged member's weights are NaN
        assert all(torch.equal(a["weights"][k], b["weights"][k]) for k in a["weights"])
        for moment in ("exp_avg", "exp_avg_sq"):
            assert all(torch.equal(v, b["optimizer"][moment][k]) for k, v in a["optimizer"][moment].items())

    # a later fit in the same process (the next group, another test) does not try again, nor say so twice
    again, notes = fz.FusedCNNMembers([CNNClassifier()], [1e-3]), []
    fit(again, [MemberState(seed=0)], data, {}, epochs=1, batch_size=8, note=notes.append)
    assert again.graphed == [False] and notes == [] and fake_cuda.captures == 1


def test_an_interrupt_inside_capture_stays_an_interrupt(fake_cuda):
    """Ctrl-C during capture: the stream and the allocator are put back, and the interrupt goes on up."""

    def step(index, size):
        if fake_cuda.capturing:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        graphs.make_step(step, batch_sizes=[4], device=torch.device("cpu"), modules=[], optimizers=[])
    assert fake_cuda.current is fake_cuda.default and fake_cuda.routing == set()
    assert graphs.capture_broken is None


def test_the_first_capture_sees_training_mode(monkeypatch):
    """Members handed over in eval mode train exactly as fresh ones, and every capture is made in
    training mode (a graph replays the BatchNorm mode it was captured in)."""
    modes = []
    make_step = graphs.make_step

    def recording(step, **kwargs):
        modes.append([module.training for module in kwargs["modules"]])
        return make_step(step, **kwargs)

    monkeypatch.setattr(graphs, "make_step", recording)
    data = signs_like(20)
    results = []
    for handed_over_in_eval in (False, True):
        torch.manual_seed(0)
        members = fz.FusedCNNMembers([CNNClassifier()], [1e-3])
        if handed_over_in_eval:
            members.train(False)
        state = MemberState(seed=0)
        fit(members, [state], data, {"val": data}, epochs=2, batch_size=8)
        results.append((state.history, members.export(0)["weights"]))
    assert modes == [[True], [True]]
    assert results[0][0] == results[1][0]
    assert all(torch.equal(v, results[1][1][k]) for k, v in results[0][1].items())


@cuda
@pytest.mark.cuda
def test_a_failure_inside_capture_costs_only_its_graph_on_a_gpu(monkeypatch, no_tf32):
    """The CUDA twin: a host read inside capture invalidates it for real. Afterwards the stream is the
    one the step ran on, the allocator is out of capture mode (empty_cache raises otherwise), the
    run went on eagerly with the eager run's numbers, and the process can still capture."""
    from mle6cli.engine.optim import Adam

    torch.backends.cudnn.deterministic = True
    monkeypatch.setattr(graphs, "capture_broken", None)
    data = signs_like(24, "cuda")
    lrs = [1e10, 1e-3]

    def run(use_graphs, notes=None):
        torch.manual_seed(0)
        members = fz.FusedCNNMembers([CNNClassifier().to("cuda") for _ in lrs], lrs)
        states = [MemberState(seed=0) for _ in lrs]
        note = None if notes is None else notes.append
        fit(members, states, data, {}, epochs=2, batch_size=8, use_graphs=use_graphs, note=note)
        return members, states

    _, eager = run(False)
    adam_step = Adam.step

    def step_and_read_while_capturing(self, active=None):
        adam_step(self, active)
        if torch.cuda.is_current_stream_capturing():
            float(self.step_count[0])

    monkeypatch.setattr(Adam, "step", step_and_read_while_capturing)
    stream = torch.cuda.current_stream()
    notes = []
    members, states = run(True, notes)
    assert torch.cuda.current_stream() == stream
    torch.cuda.empty_cache()  # raises while the allocator believes a capture is underway
    assert members.graphed == [False, False] and len(notes) == 1, notes
    assert "no step is captured again" in notes[0] and graphs.capture_broken
    for a, b in zip(eager, states, strict=True):
        assert a.status == b.status
        _close(a.history, b.history, rel=1e-4)
    monkeypatch.setattr(Adam, "step", adam_step)
    monkeypatch.setattr(graphs, "capture_broken", None)
    members, _ = run(True)
    assert members.graphed[0] is True  # a new capture works in the same process
