"""The engine: the one loop, its members, Adam and the fused CNN, each held to a plain torch oracle.

The oracle (`reference_run`) is the textbook loop written here with torch's own pieces: a
CNNClassifier, torch.optim.Adam, one seeded permutation per epoch, batch after batch. The
engine must give every member exactly (on the CPU, bit for bit) what that loop gives it alone.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mle6cli.data.splits import Split, rows
from mle6cli.engine import fused as fz
from mle6cli.engine.loop import MemberState, fit, position_groups
from mle6cli.engine.members import RECONSTRUCT, ModuleMembers
from mle6cli.engine.optim import Adam
from mle6cli.models import CNNClassifier, ConvAutoencoder

EPOCHS, BATCH, SEED = 2, 16, 5

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny convolutions: a second thread mostly waits


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (40, 3, 64, 64), generator=g, dtype=torch.uint8)  # 40 = 2 batches + a ragged 8
    y = torch.randint(0, 6, (40,), generator=g)
    xv = torch.randint(0, 256, (12, 3, 64, 64), generator=g, dtype=torch.uint8)
    yv = torch.randint(0, 6, (12,), generator=g)
    return Split(x, y), {"val": Split(xv, yv), "test": Split(xv[:5], yv[:5])}


def initial_states(k: int, seed: int = 3) -> list[dict]:
    torch.manual_seed(seed)
    return [CNNClassifier().state_dict() for _ in range(k)]


def _metric(model, split: Split) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        out = model(split.x.float().div(255.0))
    model.train()
    loss = (F.nll_loss(out, split.y).double() * len(split)).item() / len(split)
    return loss, (out.argmax(1) == split.y).sum().item() / len(split)


def reference_run(state: dict, lr: float, data, epochs: int = EPOCHS, seed: int = SEED, weight_decay: float = 0.0):
    """The oracle: torch.optim.Adam over one CNNClassifier, batches from a seeded permutation per epoch."""
    model = CNNClassifier()
    model.load_state_dict(state)
    train, evals = data
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    history = []
    for epoch in range(1, epochs + 1):
        perm = torch.randperm(len(train), generator=generator)
        loss_sum, correct = 0.0, 0
        for start in range(0, len(train), BATCH):
            index = perm[start : start + BATCH]
            xb, yb = train.x[index].float().div(255.0), train.y[index]
            out = model(xb)
            loss = F.nll_loss(out, yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach().double().item() * len(index)
            correct += (out.argmax(1) == yb).sum().item()
        if not math.isfinite(loss_sum):
            return history, model, "diverged"
        row = {"epoch": epoch, "train_loss": loss_sum / len(train), "train_acc": correct / len(train)}
        for name, split in evals.items():
            row[f"{name}_loss"], row[f"{name}_acc"] = _metric(model, split)
        history.append(row)
    return history, model, "completed"


def fused_members(states, lrs, per_member=None, weight_decays=None):
    models = []
    for state in states:
        model = CNNClassifier()
        model.load_state_dict(state)
        models.append(model)
    return fz.FusedCNNMembers(models, lrs, per_member=per_member, weight_decays=weight_decays)


def assert_rows_close(a: list[dict], b: list[dict], rel: float) -> None:
    assert len(a) == len(b)
    for ra, rb in zip(a, b, strict=True):
        assert ra.keys() == rb.keys()
        for key in ra:
            assert rb[key] == pytest.approx(ra[key], rel=rel, abs=rel), key


# ---------------------------------------------------------------- the pieces


def test_pack_unpack_round_trip_and_forward():
    torch.manual_seed(0)
    models = [CNNClassifier() for _ in range(3)]
    for j, model in enumerate(models):  # make the buffers differ per member too
        model.bn1.running_mean.normal_()
        model.bn2.running_var.uniform_(0.5, 2)
        model.bn2.num_batches_tracked.fill_(j)
    fused = fz.pack(models, per_member=True)
    for model, back in zip(models, fz.unpack(fused), strict=True):
        want, got = model.state_dict(), back.state_dict()
        assert want.keys() == got.keys()
        assert all(torch.equal(want[k], got[k]) for k in want)
    x = torch.rand(5, 3, 64, 64)
    for mode in ("train", "eval"):
        for m in [*models, fused]:
            getattr(m, mode)()
        out = fused(x)  # (M, B, K)
        assert out.shape == (3, 5, 6)
        for j, model in enumerate(models):
            assert torch.equal(out[j], model(x)), mode  # per-member layout: the same kernels, the same bits
    fused.per_member = False  # grouped convolution, batched matmuls
    fused.eval()
    out = fused(x)
    for j, model in enumerate(models):
        assert torch.allclose(out[j], model(x), atol=1e-5)
    # a batch per member (members of different seeds): the grouped conv1 reads each its own
    xs = torch.rand(2, 5, 3, 64, 64)
    out = fused(xs, [1, 0, 1])
    for j, row in enumerate([1, 0, 1]):
        assert torch.allclose(out[j], models[j](xs[row]), atol=1e-5)


def test_pack_refuses_other_models():
    with pytest.raises(TypeError, match="CNNClassifier"):
        fz.pack([torch.nn.Linear(2, 2)])
    with pytest.raises(ValueError, match="at least one"):
        fz.pack([])


def test_member_nll_is_nll_loss():
    out = torch.randn(3, 7, 6).log_softmax(-1)
    y = torch.randint(0, 6, (7,))
    assert torch.equal(fz.member_nll(out, y), torch.stack([F.nll_loss(o, y) for o in out]))
    ys = torch.randint(0, 6, (2, 7))
    assert torch.equal(
        fz.member_nll(out, ys, [1, 0, 1]), torch.stack([F.nll_loss(out[j], ys[g]) for j, g in enumerate([1, 0, 1])])
    )


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.int64])
def test_rows_is_advanced_indexing(dtype):
    t = torch.arange(7 * 3 * 2).reshape(7, 3, 2).to(dtype)
    for index in (torch.tensor([4, 0, 4, 6]), torch.tensor([[1, 2], [6, 1]]), torch.tensor([[5, 0, 3]])[:, 1:]):
        got = rows(t, index)
        assert got.dtype == dtype and torch.equal(got, t[index])


@pytest.mark.parametrize("stacked", [True, False])
def test_adam_is_torch_adam_bit_for_bit(stacked):
    torch.manual_seed(0)
    lrs = [1e-1, 1e-3, 0.5]
    start = torch.randn(3, 4, 5)
    singles = [torch.nn.Parameter(start[j].clone()) for j in range(3)]
    theirs = [torch.optim.Adam([p], lr=lr) for p, lr in zip(singles, lrs, strict=True)]
    if stacked:
        params = [start.clone().requires_grad_()]
        ours = Adam(params, [None], lrs)
    else:
        params = [start[j].clone().requires_grad_() for j in range(3)]
        ours = Adam(params, [0, 1, 2], lrs)
    active = torch.tensor([True, True, False])
    for _ in range(5):
        grads = torch.randn(3, 4, 5)
        grads[2, 0, 0] = math.nan  # a frozen member's NaN gradient must not be used
        if stacked:
            params[0].grad = grads.clone()
        else:
            for j in range(3):
                params[j].grad = grads[j].clone()
        ours.step(active=active)
        for j in range(2):
            singles[j].grad = grads[j].clone()
            theirs[j].step()
    got = [params[0][j] if stacked else params[j] for j in range(3)]
    for j in range(2):
        assert torch.equal(got[j], singles[j])
    assert torch.equal(got[2].detach(), start[2])  # frozen: never moved
    assert all(torch.isfinite(m).all() for m in ours.exp_avg)
    state = ours.member_state(1, ["w"] if stacked else ["w", "w", "w"])
    assert state["step"] == 5.0 and torch.equal(state["exp_avg"]["w"], theirs[1].state[singles[1]]["exp_avg"])
    with pytest.raises(ValueError, match="does not fit 2 members"):
        Adam([torch.zeros(3, 2, requires_grad=True)], [None], [1e-3, 1e-3])


@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (1, 2, 64, 64)])
def test_fast_max_pool_is_max_pool2d_bit_for_bit(shape):
    torch.manual_seed(0)
    for x in (torch.randn(shape), torch.randint(0, 3, shape).float()):  # the second is full of ties
        x.requires_grad_()
        grad = torch.randn(shape[0], shape[1], shape[2] // 2, shape[3] // 2)
        want = F.max_pool2d(x, 2)
        got = fz.max_pool2x2(x)
        assert torch.equal(got, want)
        assert torch.equal(torch.autograd.grad(got, x, grad)[0], torch.autograd.grad(want, x, grad)[0])
    odd = torch.randn(1, 1, 5, 5)
    assert torch.equal(fz.max_pool2x2(odd), F.max_pool2d(odd, 2))  # odd sizes: max_pool2d itself


# ---------------------------------------------------------------- the loop against the oracle


def test_one_member_is_the_plain_loop_bit_for_bit(data):
    """train-cnn's path: one fused member, per-member layout, the fast max-pooling, our Adam."""
    (state,) = initial_states(1, seed=7)
    members = fused_members([state], [1e-1])
    s = MemberState(seed=SEED)
    assert fit(members, [s], *data, epochs=EPOCHS, batch_size=BATCH) is False
    want, model, status = reference_run(state, 1e-1, data)
    assert s.status == status == "completed"
    assert s.history == want  # every float, exactly
    trained = members.export(0)["weights"]
    assert all(torch.equal(trained[k], v) for k, v in model.state_dict().items())


def test_fused_members_equal_separate_runs(data):
    lrs = [1e-1, 1e-3, 1e-4, 1e-5]
    states = initial_states(len(lrs))
    members = fused_members(states, lrs)  # on the CPU the default layout is per member
    seen = []

    def on_epoch(rows):
        seen.append(rows)

    ms = [MemberState(seed=SEED) for _ in lrs]
    fit(members, ms, *data, epochs=EPOCHS, batch_size=BATCH, on_epoch=on_epoch)
    assert [len(rows) for rows in seen] == [len(lrs)] * EPOCHS
    for j, lr in enumerate(lrs):
        want, _, _ = reference_run(states[j], lr, data)
        assert ms[j].history == want
        assert [rows[j] for rows in seen] == want
        assert list(want[0]) == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc"]


def test_members_of_different_seeds_each_get_their_own_batches(data):
    """Seeds as an axis: member (lr, seed) equals a single run with that seed, in one fit."""
    states = initial_states(3)
    members = fused_members(states, [1e-3, 1e-3, 1e-4])
    ms = [MemberState(seed=s) for s in (5, 9, 5)]
    fit(members, ms, *data, epochs=EPOCHS, batch_size=BATCH)
    for j, (lr, seed) in enumerate([(1e-3, 5), (1e-3, 9), (1e-4, 5)]):
        want, _, _ = reference_run(states[j], lr, data, seed=seed)
        assert ms[j].history == want
    grouped = fused_members(states, [1e-3, 1e-3, 1e-4], per_member=False)
    gs = [MemberState(seed=s) for s in (5, 9, 5)]
    fit(grouped, gs, *data, epochs=1, batch_size=BATCH)
    for j in range(3):
        assert_rows_close(ms[j].history[:1], gs[j].history, rel=1e-3)


def test_grouped_layout_matches_separate_runs(data):
    """The CUDA layout, run on the CPU: equal up to float rounding (Adam amplifies it at high lr)."""
    lrs = [1e-3, 1e-5]
    states = initial_states(len(lrs), seed=4)
    members = fused_members(states, lrs, per_member=False)
    ms = [MemberState(seed=SEED) for _ in lrs]
    fit(members, ms, *data, epochs=1, batch_size=BATCH)
    for j, lr in enumerate(lrs):
        want, _, _ = reference_run(states[j], lr, data, epochs=1)
        assert_rows_close(want, ms[j].history, rel=1e-3)


@pytest.mark.parametrize("per_member", [True, False])
def test_a_diverging_member_is_frozen_and_leaks_nothing(data, per_member):
    lrs = [1e10, 1e-3]  # 1e10 sends the loss to inf/NaN within the first epoch
    states = initial_states(2)
    members = fused_members(states, lrs, per_member=per_member)
    ms = [MemberState(seed=SEED) for _ in lrs]
    fit(members, ms, *data, epochs=EPOCHS, batch_size=BATCH)
    bad, _, status = reference_run(states[0], lrs[0], data)
    assert status == ms[0].status == "diverged" and ms[0].diverged_epoch == 1
    assert ms[0].history == bad == []
    good, _, _ = reference_run(states[1], lrs[1], data)
    assert ms[1].status == "completed"
    if per_member:
        assert ms[1].history == good
    assert_rows_close(good, ms[1].history, rel=1e-3)


@pytest.mark.parametrize("stop_at_call", [1, 5])  # mid-epoch 1 (a member already dead), and mid-epoch 2
def test_interrupt_and_resume_continue_exactly(data, stop_at_call):
    lrs = [1e10, 1e-3, 1e-4]
    states = initial_states(3)
    full = [MemberState(seed=SEED) for _ in lrs]
    fit(fused_members(states, lrs), full, *data, epochs=EPOCHS, batch_size=BATCH)

    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] >= stop_at_call

    first = fused_members(states, lrs)
    cut = [MemberState(seed=SEED) for _ in lrs]
    assert fit(first, cut, *data, epochs=EPOCHS, batch_size=BATCH, stop=stop) is True
    saved = [(first.export(j), s.to_dict()) for j, s in enumerate(cut)]  # what resume.pt holds, member by member
    again = fused_members(initial_states(3, seed=99), [0.0] * 3)  # other weights and lrs: all overwritten
    again.optimizer.lrs.copy_(torch.tensor(lrs, dtype=torch.float64))
    for j, (member, _) in enumerate(saved):
        again.load(j, member)
    resumed = [MemberState.from_dict(d) for _, d in saved]
    assert fit(again, resumed, *data, epochs=EPOCHS, batch_size=BATCH) is False
    for a, b in zip(full, resumed, strict=True):
        assert (b.status, b.diverged_epoch, b.history) == (a.status, a.diverged_epoch, a.history)


def test_members_at_different_points_are_fitted_apart(data):
    states = initial_states(2)
    a, b = MemberState(seed=SEED), MemberState(seed=SEED)
    assert fit(fused_members(states[:1], [1e-3]), [a], *data, epochs=2, batch_size=BATCH, stop=lambda: True)
    assert a.position == (0, 1, BATCH) and position_groups([a, b]) == [[0], [1]]
    with pytest.raises(ValueError, match="different points"):
        fit(fused_members(states, [1e-3, 1e-3]), [a, b], *data, epochs=2, batch_size=BATCH)
    b.status = "completed"
    assert position_groups([a, b]) == [[0]]


def test_retired_members_stop_and_the_others_go_on(data):
    lrs = [1e-3, 1e-4]
    states = initial_states(2)
    ms = [MemberState(seed=SEED) for _ in lrs]
    fit(fused_members(states, lrs), ms, *data, epochs=3, batch_size=BATCH, on_epoch=lambda rows: [0])
    assert ms[0].status == "stopped" and len(ms[0].history) == 1
    assert ms[1].status == "completed" and ms[1].history == reference_run(states[1], 1e-4, data, epochs=3)[0]


def test_module_members_train_autoencoders_side_by_side():
    """Two autoencoders of different latent sizes in one fit equal each trained alone."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (24, 1, 28, 28), generator=g, dtype=torch.uint8)
    train, test = Split(x[:16]), Split(x[16:])

    def build(d):
        torch.manual_seed(d)
        return ConvAutoencoder(d)

    together = ModuleMembers([build(3), build(5)], [1e-3, 1e-3], RECONSTRUCT)
    ms = [MemberState(seed=1), MemberState(seed=2)]
    fit(together, ms, train, {"test": test}, epochs=2, batch_size=8)
    for j, (d, seed) in enumerate([(3, 1), (5, 2)]):
        alone = ModuleMembers([build(d)], [1e-3], RECONSTRUCT)
        s = MemberState(seed=seed)
        fit(alone, [s], train, {"test": test}, epochs=2, batch_size=8)
        assert s.history == ms[j].history and list(s.history[0]) == ["epoch", "train_loss", "test_loss"]


# ---------------------------------------------------------------- weight decay against torch.optim.Adam(weight_decay=)


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal bit for bit, NaNs in the same places."""
    return torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(0.0), b.nan_to_num(0.0))


@pytest.mark.parametrize("stacked", [True, False])
def test_adam_weight_decay_is_torch_adam_bit_for_bit(stacked):
    """Each member's decay as torch's, moments included; a member with decay 0 is torch's plain Adam;
    a frozen member (NaN gradient and weights) is not moved and its moments stay finite; .grad is left alone."""
    torch.manual_seed(0)
    lrs, wds = [1e-1, 1e-3, 0.5, 1e-2], [1e-2, 0.0, 0.5, 1e-2]
    start = torch.randn(4, 33, 17)  # 561 values a member: vectorised kernels and their scalar tails alike
    singles = [torch.nn.Parameter(start[j].clone()) for j in range(3)]
    theirs = [torch.optim.Adam([p], lr=lr, weight_decay=wd) for p, lr, wd in zip(singles, lrs, wds, strict=False)]
    start[3, 1, 1] = math.nan  # a diverged member's weights
    if stacked:
        params = [start.clone().requires_grad_()]
        ours = Adam(params, [None], lrs, weight_decays=wds)
    else:
        params = [start[j].clone().requires_grad_() for j in range(4)]
        ours = Adam(params, [0, 1, 2, 3], lrs, weight_decays=wds)
    active = torch.tensor([True, True, True, False])
    steps = [torch.randn(4, 33, 17) for _ in range(5)]
    for grads in steps:
        grads[3, 0, 0] = math.nan
        given = [grads.clone()] if stacked else [grads[j].clone() for j in range(4)]
        for p, g in zip(params, given, strict=True):
            p.grad = g.clone()
        ours.step(active=active)
        assert all(_same(p.grad, g) for p, g in zip(params, given, strict=True))
        for j in range(3):
            singles[j].grad = grads[j].clone()
            theirs[j].step()
    got = [params[0][j] if stacked else params[j] for j in range(4)]
    names = ["w"] if stacked else ["w"] * 4
    for j in range(3):
        assert torch.equal(got[j], singles[j]), j
        state, want = ours.member_state(j, names), theirs[j].state[singles[j]]
        assert state["weight_decay"] == wds[j] and state["step"] == 5.0
        assert torch.equal(state["exp_avg"]["w"], want["exp_avg"])
        assert torch.equal(state["exp_avg_sq"]["w"], want["exp_avg_sq"])
    assert _same(got[3].detach(), start[3])  # frozen: never moved
    assert all(torch.isfinite(m).all() for m in ours.exp_avg + ours.exp_avg_sq)
    plain = torch.nn.Parameter(start[1].clone())  # the decay-0 member is Adam without any decay
    adam = torch.optim.Adam([plain], lr=lrs[1])
    for grads in steps:
        plain.grad = grads[1].clone()
        adam.step()
    assert torch.equal(got[1], plain)


def test_adam_refuses_bad_weight_decays():
    p = [torch.zeros(2, 3, requires_grad=True)]
    for bad in ([-1e-3, 0.0], [math.nan, 0.0], [math.inf, 0.0]):
        with pytest.raises(ValueError, match="finite and non-negative"):
            Adam(p, [None], [1e-3, 1e-3], weight_decays=bad)
    with pytest.raises(ValueError, match="1 weight decays for 2 members"):
        Adam(p, [None], [1e-3, 1e-3], weight_decays=[0.0])
    assert Adam(p, [None], [1e-3, 1e-3]).decays is False
    assert Adam(p, [None], [1e-3, 1e-3], weight_decays=[0, 0]).decays is False


def test_one_member_with_weight_decay_is_the_plain_loop_bit_for_bit(data):
    (state,) = initial_states(1, seed=7)
    members = fused_members([state], [1e-2], weight_decays=[0.1])
    s = MemberState(seed=SEED)
    fit(members, [s], *data, epochs=EPOCHS, batch_size=BATCH)
    want, model, _ = reference_run(state, 1e-2, data, weight_decay=0.1)
    assert s.history == want
    trained = members.export(0)["weights"]
    assert all(torch.equal(trained[k], v) for k, v in model.state_dict().items())
    _, undecayed, _ = reference_run(state, 1e-2, data)  # the decay did change the weights
    assert not torch.equal(trained["fc1.weight"], undecayed.state_dict()["fc1.weight"])


def test_fused_members_with_different_weight_decays_equal_separate_runs(data):
    """Each member equals torch's Adam with its own decay, alone; the decay-0 members equal runs with
    no decay at all (every bit), beside members that decay; seeds give them their own batches."""
    lrs, wds, seeds = [1e-2, 1e-2, 1e-3, 1e-2], [0.0, 0.1, 1e-3, 0.0], [5, 5, 9, 9]
    states = initial_states(len(lrs))
    members = fused_members(states, lrs, weight_decays=wds)
    ms = [MemberState(seed=s) for s in seeds]
    fit(members, ms, *data, epochs=EPOCHS, batch_size=BATCH)
    plain = fused_members(states, lrs)  # the same run, no decay anywhere
    ps = [MemberState(seed=s) for s in seeds]
    fit(plain, ps, *data, epochs=EPOCHS, batch_size=BATCH)
    for j, (lr, wd, seed) in enumerate(zip(lrs, wds, seeds, strict=True)):
        want, model, _ = reference_run(states[j], lr, data, seed=seed, weight_decay=wd)
        assert ms[j].history == want, j
        trained = members.export(j)["weights"]
        assert all(torch.equal(trained[k], v) for k, v in model.state_dict().items()), j
        same = plain.export(j)["weights"]
        assert (ms[j].history == ps[j].history) is (wd == 0), j
        assert all(torch.equal(trained[k], v) for k, v in same.items()) is (wd == 0), j


def test_a_resumed_member_keeps_its_weight_decay(data):
    lrs, wds = [1e-2, 1e-3], [0.1, 0.0]
    states = initial_states(2)
    full = [MemberState(seed=SEED) for _ in lrs]
    fit(fused_members(states, lrs, weight_decays=wds), full, *data, epochs=EPOCHS, batch_size=BATCH)
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] >= 4  # mid-epoch 2

    first = fused_members(states, lrs, weight_decays=wds)
    cut = [MemberState(seed=SEED) for _ in lrs]
    assert fit(first, cut, *data, epochs=EPOCHS, batch_size=BATCH, stop=stop) is True
    saved = [first.export(j) for j in range(2)]
    assert [m["optimizer"]["weight_decay"] for m in saved] == wds
    with pytest.raises(ValueError, match="member 0 was saved with weight decay 0.1, not 0"):
        fused_members(states, lrs).load(0, saved[0])
    again = fused_members(initial_states(2, seed=99), lrs, weight_decays=wds)
    for j, member in enumerate(saved):
        again.load(j, member)
    resumed = [MemberState.from_dict(s.to_dict()) for s in cut]
    assert fit(again, resumed, *data, epochs=EPOCHS, batch_size=BATCH) is False
    assert [s.history for s in resumed] == [s.history for s in full]
    old = {k: v for k, v in saved[1]["optimizer"].items() if k != "weight_decay"}  # saved before decays existed
    fused_members(states[1:], lrs[1:]).load(0, {"weights": saved[1]["weights"], "optimizer": old})


def test_module_members_weight_decay_is_torch_adam():
    """The autoencoders' members: each equals torch.optim.Adam(weight_decay=) on its model alone."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (16, 1, 28, 28), generator=g, dtype=torch.uint8)
    wds = [1e-2, 0.0]

    def build(d):
        torch.manual_seed(d)
        return ConvAutoencoder(d)

    together = ModuleMembers([build(3), build(5)], [1e-3, 1e-3], RECONSTRUCT, weight_decays=wds)
    ms = [MemberState(seed=1), MemberState(seed=1)]
    fit(together, ms, Split(x), {}, epochs=2, batch_size=8)
    for j, (d, wd) in enumerate(zip([3, 5], wds, strict=True)):
        model = build(d)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=wd)
        generator = torch.Generator().manual_seed(1)
        for _ in range(2):
            perm = torch.randperm(len(x), generator=generator)
            for start in range(0, len(x), 8):
                xb = x[perm[start : start + 8]].float().div(255.0)
                optimizer.zero_grad()
                F.mse_loss(model(xb), xb).backward()
                optimizer.step()
        trained = together.export(j)["weights"]
        assert all(torch.equal(trained[k], v) for k, v in model.state_dict().items()), j


def test_a_stop_keeps_the_signal_of_whichever_handler_caught_it():
    """The run's own handler and a caller's (a study's, between its rounds) are joined by any_of: the
    interrupt must report the caller's SIGTERM as 143, not as an unnamed stop (130)."""
    import signal

    from mle6cli.engine.interrupt import StopRequest, any_of

    own, callers = StopRequest(), StopRequest()
    joined = any_of(own, None, any_of(lambda: False, callers))
    assert not joined() and joined.signal_number is None
    callers.request(signal.SIGTERM)
    assert joined() and joined.signal_number == signal.SIGTERM
    own.request(signal.SIGINT)
    assert joined.signal_number == signal.SIGINT  # the run's own handler first


# ---------------------------------------------------------------- retired members leave the backend


@pytest.mark.parametrize("device_layout", ["per member (CPU)", "grouped"])
def test_members_that_retire_leave_the_backend_and_the_rest_train_on_in_a_new_one(data, device_layout):
    """On the CPU's per-member layout a member that retires (a pruned trial, a diverged member) costs
    nothing more: the others go on in a backend of their own, from their exported state, and train
    exactly as if nobody had retired (the oracle loop); the grouped layout keeps the slot."""
    from types import SimpleNamespace

    from mle6cli.engine.checkpoints import Member
    from mle6cli.engine.strategies import Fit, fit_groups

    per_member = device_layout == "per member (CPU)"
    states, lrs = initial_states(3), [1e-2, 1e-3, 1e-4]
    built = []

    def build(group):
        built.append([m.key["j"] for m in group])
        return fused_members([states[m.key["j"]] for m in group], [m.key["lr"] for m in group], per_member=per_member)

    def retire_the_second(group, rows, backend):  # after its first epoch
        return [j for j, m in enumerate(group) if m.key["j"] == 1 and rows[j] is not None]

    members = [Member({"j": j, "lr": lr}, MemberState(seed=SEED)) for j, lr in enumerate(lrs)]
    fit_ = Fit(build, data[0], data[1], epochs=3, batch_size=BATCH, on_epoch=retire_the_second, save_every=0, note=None)
    assert fit_groups(SimpleNamespace(graphed=[]), members, fit_, None, lambda ms: None) is False
    assert built == ([[0, 1, 2], [0, 2]] if per_member else [[0, 1, 2]])
    assert members[1].state.status == "stopped" and len(members[1].state.history) == 1
    for j in (0, 2):
        assert members[j].state.status == "completed"
        if per_member:  # the grouped layout equals separate runs up to float rounding only
            assert members[j].state.history == reference_run(states[j], lrs[j], data, epochs=3)[0], j
