"""The fused sweep gives each learning rate exactly what its own `train_model` run gives."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mle6cli import fused as fz
from mle6cli.models import CNNClassifier
from mle6cli.train import CLASSIFY, LoopState, Split, train_model

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


def separate_run(state: dict, lr: float, data, epochs: int = EPOCHS):
    model = CNNClassifier()
    model.load_state_dict(state)
    train, evals = data
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    result = train_model(model, optimizer, CLASSIFY, train, evals, epochs=epochs, batch_size=BATCH, seed=SEED)
    return result, model


def assert_rows_close(a: list[dict], b: list[dict], rel: float) -> None:
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for key in ra:
            assert rb[key] == pytest.approx(ra[key], rel=rel, abs=rel), key


def test_pack_unpack_round_trip_and_forward():
    torch.manual_seed(0)
    models = [CNNClassifier() for _ in range(3)]
    for j, model in enumerate(models):  # make the buffers differ per member too
        model.bn1.running_mean.normal_()
        model.bn2.running_var.uniform_(0.5, 2)
        model.bn2.num_batches_tracked.fill_(j)
    fused = fz.pack(models, per_member=True)
    for model, back in zip(models, fz.unpack(fused)):
        want, got = model.state_dict(), back.state_dict()
        assert want.keys() == got.keys()
        assert all(torch.equal(want[k], got[k]) for k in want)
    x = torch.rand(5, 3, 64, 64)
    for mode in ("train", "eval"):
        for m in models + [fused]:
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


def test_pack_refuses_other_models():
    with pytest.raises(TypeError, match="CNNClassifier"):
        fz.pack([torch.nn.Linear(2, 2)])
    with pytest.raises(ValueError, match="at least one"):
        fz.pack([])


def test_member_nll_is_nll_loss():
    out = torch.randn(3, 7, 6).log_softmax(-1)
    y = torch.randint(0, 6, (7,))
    assert torch.allclose(fz.member_nll(out, y), torch.stack([F.nll_loss(o, y) for o in out]))


def test_fused_adam_is_torch_adam_per_member():
    torch.manual_seed(0)
    lrs = [1e-1, 1e-3, 0.5]
    stacked = torch.randn(3, 4, 5, requires_grad=True)
    singles = [torch.nn.Parameter(stacked[j].detach().clone()) for j in range(3)]
    ours = fz.FusedAdam([stacked], lrs, betas=(0.8, 0.99), eps=1e-6)
    theirs = [torch.optim.Adam([p], lr=lr, betas=(0.8, 0.99), eps=1e-6) for p, lr in zip(singles, lrs)]
    active = torch.tensor([True, True, False])
    for _ in range(5):
        grads = torch.randn(3, 4, 5)
        grads[2, 0, 0] = math.nan  # a frozen member's NaN gradient must not be used
        stacked.grad = grads.clone()
        ours.step(active=active)
        for j in range(2):
            singles[j].grad = grads[j].clone()
            theirs[j].step()
    for j in range(2):
        assert torch.allclose(stacked[j], singles[j], rtol=1e-6, atol=1e-7)
    assert torch.equal(stacked[2], singles[2].detach())  # frozen: never moved
    assert torch.isfinite(ours.state[stacked]["exp_avg"]).all()
    with pytest.raises(ValueError, match="one learning rate per member"):
        fz.FusedAdam([stacked], [1e-3])


def test_fused_histories_equal_separate_runs(data):
    """Per member (the same kernels as separate models): equal up to the last bits, even at lr 1e-1."""
    lrs = [1e-1, 1e-3, 1e-4, 1e-5]
    states = initial_states(len(lrs))
    models = [CNNClassifier() for _ in lrs]
    for model, state in zip(models, states):
        model.load_state_dict(state)
    seen = []
    results = fz.train_fused(
        models, lrs, *data, epochs=EPOCHS, batch_size=BATCH, seed=SEED, on_epoch=seen.append
    )  # on CPU the default layout is per member
    assert [len(rows) for rows in seen] == [len(lrs)] * EPOCHS
    for j, lr in enumerate(lrs):
        want, want_model = separate_run(states[j], lr, data)
        got = results[j]
        assert got.status == want.status == "completed"
        columns = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc"]
        assert list(got.history[0]) == columns
        assert_rows_close(want.history, got.history, rel=1e-5)
        assert [rows[j] for rows in seen] == got.history
        assert got.state.epoch == EPOCHS and got.state.seen == 40
        trained, reference = models[j].state_dict(), want_model.state_dict()
        for key in reference:  # the models given were updated in place
            assert torch.allclose(trained[key].float(), reference[key].float(), rtol=1e-5, atol=1e-6), (lr, key)


def test_grouped_layout_matches_separate_runs(data):
    """The CUDA layout, run on CPU: equal up to float rounding (Adam amplifies it at high lr)."""
    lrs = [1e-3, 1e-5]
    states = initial_states(len(lrs), seed=4)
    fused = fz.pack(states, per_member=False)  # the default on CUDA
    optimizer = fz.FusedAdam(list(fused.parameters()), lrs)
    results = fz.fit_fused(fused, optimizer, *data, epochs=1, batch_size=BATCH, seed=SEED)
    for j, lr in enumerate(lrs):
        want, _ = separate_run(states[j], lr, data, epochs=1)
        assert_rows_close(want.history, results[j].history, rel=1e-3)


@pytest.mark.parametrize("per_member", [True, False])
def test_a_diverging_member_is_frozen_and_leaks_nothing(data, per_member):
    lrs = [1e10, 1e-3]  # 1e10 sends the loss to inf/NaN within the first epoch
    states = initial_states(2)
    results = fz.train_fused(states, lrs, *data, epochs=EPOCHS, batch_size=BATCH, seed=SEED, per_member=per_member)
    bad, _ = separate_run(states[0], lrs[0], data)
    assert bad.status == "diverged"
    assert results[0].status == "diverged"
    assert results[0].diverged_epoch == bad.diverged_epoch == 1
    assert results[0].history == bad.history == []
    good, _ = separate_run(states[1], lrs[1], data)
    assert results[1].status == "completed"
    assert_rows_close(good.history, results[1].history, rel=1e-5 if per_member else 1e-3)
    assert all(math.isfinite(v) for row in results[1].history for v in row.values())


@pytest.mark.parametrize("stop_at_call", [1, 5])  # mid-epoch 1 (a member already dead), and mid-epoch 2
def test_interrupt_and_resume_continue_exactly(data, stop_at_call):
    lrs = [1e10, 1e-3, 1e-4]
    states = initial_states(3)
    full = fz.train_fused(states, lrs, *data, epochs=EPOCHS, batch_size=BATCH, seed=SEED)

    calls = {"n": 0}

    def should_stop() -> bool:
        calls["n"] += 1
        return calls["n"] >= stop_at_call

    fused = fz.pack(states)
    optimizer = fz.FusedAdam(list(fused.parameters()), lrs)
    first = fz.fit_fused(fused, optimizer, *data, epochs=EPOCHS, batch_size=BATCH, seed=SEED, should_stop=should_stop)
    assert first[1].status == first[2].status == "interrupted"
    checkpoint = {  # what a command saves with runs.save_resume
        "model": fused.state_dict(),
        "optimizer": optimizer.state_dict(),
        "loops": [r.state.to_dict() for r in first],
    }
    fused2 = fz.FusedCNN(3)
    fused2.load_state_dict(checkpoint["model"])
    optimizer2 = fz.FusedAdam(list(fused2.parameters()), [0.0, 0.0, 0.0])
    optimizer2.load_state_dict(checkpoint["optimizer"])
    resumed = fz.fit_fused(
        fused2,
        optimizer2,
        *data,
        epochs=EPOCHS,
        batch_size=BATCH,
        seed=SEED,
        resume=[LoopState.from_dict(d) for d in checkpoint["loops"]],
    )
    for a, b in zip(full, resumed):
        assert (b.status, b.diverged_epoch, b.history) == (a.status, a.diverged_epoch, a.history)


def test_train_fused_checks_its_arguments(data):
    with pytest.raises(ValueError, match="one learning rate per model"):
        fz.train_fused(initial_states(2), [1e-3], *data, epochs=1, batch_size=BATCH, seed=SEED)


def _members(states: list[dict], lrs: list[float]):
    models = [CNNClassifier() for _ in states]
    for model, state in zip(models, states):
        model.load_state_dict(state)
    return models, [torch.optim.Adam(m.parameters(), lr=lr) for m, lr in zip(models, lrs)]


def _assert_same_members(a, b, results_a, results_b):
    (models_a, opts_a), (models_b, opts_b) = a, b
    for ra, rb in zip(results_a, results_b):
        assert (ra.status, ra.diverged_epoch) == (rb.status, rb.diverged_epoch)
        assert_rows_close(ra.history, rb.history, rel=1e-5)
    for ma, mb, oa, ob in zip(models_a, models_b, opts_a, opts_b):
        for key, value in ma.state_dict().items():
            assert torch.allclose(value.float(), mb.state_dict()[key].float(), rtol=1e-5, atol=1e-6), key
        sa, sb = oa.state_dict()["state"], ob.state_dict()["state"]
        assert sa.keys() == sb.keys()
        for k in sa:
            assert float(sa[k]["step"]) == float(sb[k]["step"])
            for key in ("exp_avg", "exp_avg_sq"):
                assert torch.allclose(sa[k][key], sb[k][key], rtol=1e-5, atol=1e-9), key


def test_run_members_fulfils_the_sequential_contract(data):
    lrs = [1e-2, 1e-3, 1e-5]
    states = initial_states(3)
    calls = []
    fused_members = _members(states, lrs)
    got = fz.run_members(
        lrs,
        *fused_members,
        *data,
        epochs=EPOCHS,
        batch_size=BATCH,
        seed=SEED,
        on_epoch=lambda i, r: calls.append(i),
    )
    assert sorted(calls) == [0, 0, 1, 1, 2, 2]
    separate = _members(states, lrs)
    want = [train_model(m, o, CLASSIFY, *data, epochs=EPOCHS, batch_size=BATCH, seed=SEED) for m, o in zip(*separate)]
    _assert_same_members(separate, fused_members, want, got)


def test_run_members_resumes_a_checkpoint_and_falls_back_when_members_differ(data, monkeypatch):
    sequential = []
    real = fz.train_members
    monkeypatch.setattr(fz, "train_members", lambda *a, **k: sequential.append(1) or real(*a, **k))
    lrs = [1e-3, 1e-4]
    states = initial_states(2)
    full_members = _members(states, lrs)
    full = fz.run_members(lrs, *full_members, *data, epochs=EPOCHS, batch_size=BATCH, seed=SEED, per_member=True)

    calls = {"n": 0}

    def stop_after_four() -> bool:
        calls["n"] += 1
        return calls["n"] >= 4

    members = _members(states, lrs)
    first = fz.run_members(
        lrs, *members, *data, epochs=EPOCHS, batch_size=BATCH, seed=SEED, should_stop=stop_after_four, per_member=True
    )
    assert [r.status for r in first] == ["interrupted", "interrupted"]
    # the sweep saves state dicts and reloads them into fresh models and optimizers
    saved = [(m.state_dict(), o.state_dict()) for m, o in zip(*members)]
    resumed_members = _members([s for s, _ in saved], lrs)
    for optimizer, (_, opt_state) in zip(resumed_members[1], saved):
        optimizer.load_state_dict(opt_state)
    resumed = fz.run_members(
        lrs, *resumed_members, *data, epochs=EPOCHS, batch_size=BATCH, seed=SEED, resume=first, per_member=True
    )
    _assert_same_members(full_members, resumed_members, full, resumed)
    assert sequential == []  # all of that was fused

    # members at different points (as a sequential run leaves them): trained one after another
    members = _members(states, lrs)
    calls["n"] = 2
    half = train_model(
        *members[0][:1],
        members[1][0],
        CLASSIFY,
        *data,
        epochs=EPOCHS,
        batch_size=BATCH,
        seed=SEED,
        should_stop=stop_after_four,
    )
    assert half.status == "interrupted" and half.state.batch == 2
    mixed = fz.run_members(lrs, *members, *data, epochs=EPOCHS, batch_size=BATCH, seed=SEED, resume=[half, None])
    _assert_same_members(full_members, members, full, mixed)
    assert sequential == [1]


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


def test_run_members_with_one_lr_is_train_model_bit_for_bit(data):
    """train-cnn through the fused code: one member, per-member layout, the fast max-pooling."""
    (state,) = initial_states(1, seed=7)
    fused_members = _members([state], [1e-1])
    got = fz.run_members([1e-1], *fused_members, *data, epochs=EPOCHS, batch_size=BATCH, seed=SEED)
    separate = _members([state], [1e-1])
    want = [train_model(*separate[0], *separate[1], CLASSIFY, *data, epochs=EPOCHS, batch_size=BATCH, seed=SEED)]
    assert got[0].history == want[0].history
    _assert_same_members(separate, fused_members, want, got)
