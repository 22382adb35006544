"""train-cnn: metric bookkeeping, run folders, determinism, bad input, divergence, interruption and resume."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys

import pytest
import torch
from torch import nn

from mle6cli.data.signs import load_signs
from mle6cli.data.splits import Split
from mle6cli.engine import runs
from mle6cli.engine.interrupt import Interrupted
from mle6cli.engine.loop import MemberState, fit
from mle6cli.engine.members import CLASSIFY, ModuleMembers
from mle6cli.errors import ConfigError, Mle6Error
from mle6cli.files import load_torch, save_torch
from mle6cli.tasks.classifier import load_classifier, train_cnn
from mle6cli.tasks.specs import SweepLrConfig, TrainCnnConfig
from tests.conftest import StopAfter, shared_path, subprocess_env
from tests.signs_helpers import signs_options, train_args, write_layout

CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------- bookkeeping against a hand-computed case


class FixedLogits(nn.Module):
    """Outputs log_softmax of the input itself; one parameter so an optimizer exists (lr 0 keeps it)."""

    def __init__(self):
        super().__init__()
        self.p = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return torch.log_softmax(x + 0 * self.p, dim=1)


def test_epoch_metrics_are_means_over_every_sample():
    logits = [[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0], [1.0, 0.0, 0.0], [0.0, 2.0, 1.0]]
    labels = [0, 2, 2, 1, 1]  # argmax right for samples 0, 2, 4
    split = Split(torch.tensor(logits), torch.tensor(labels))
    members = ModuleMembers([FixedLogits()], [0.0], CLASSIFY)
    state = MemberState(seed=0)
    assert fit(members, [state], split, {"val": split}, epochs=2, batch_size=2) is False

    def nll(row, label):  # by hand: -log softmax
        return -(row[label] - math.log(sum(math.exp(v) for v in row)))

    losses = [nll(r, y) for r, y in zip(logits, labels, strict=True)]
    expected_loss = sum(losses) / 5  # every sample counts once, in batches of 2, 2 and 1
    assert [row["epoch"] for row in state.history] == [1, 2] and state.status == "completed"
    for row in state.history:
        assert row["train_loss"] == pytest.approx(expected_loss, rel=1e-6)
        assert row["train_acc"] == 0.6
        assert row["val_loss"] == pytest.approx(expected_loss, rel=1e-6) and row["val_acc"] == 0.6
    # neither the mean of the batch means nor the last batch's loss (what the exercise printed)
    batch_means = [(losses[0] + losses[1]) / 2, (losses[2] + losses[3]) / 2, losses[4]]
    assert abs(sum(batch_means) / 3 - expected_loss) > 0.05
    assert all(abs(loss - expected_loss) > 0.05 for loss in losses)
    losses, accs = members.evaluate(split)
    assert losses == [pytest.approx(expected_loss, rel=1e-6)] and accs == [0.6]


# ---------------------------------------------------------------- the command


@pytest.mark.slow
def test_train_cnn_on_synthetic_data_through_the_cli(runner, app, tmp_path):
    result = runner.invoke(app, ["train-cnn", "--synthetic", "--epochs", "1", "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert {"lr", "epochs", "device", "train_seconds", "final", "test_loss", "test_acc", "run_dir"} <= set(summary)
    assert summary["lr"] == 1e-3 and summary["epochs"] == 1 and summary["device"] == "cpu"
    assert summary["synthetic"] is True and summary["data"] == "synthetic"
    assert "data are SYNTHETIC" in result.stderr and "epoch 1/1" in result.stderr  # notes/progress off stdout
    run_dir = tmp_path / summary["run_dir"]
    assert run_dir.parent == tmp_path / "runs" / "train-cnn"
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "config.json", "curves.png", "metrics.csv", "model.pt", "summary.json",
    ]  # fmt: skip
    assert json.loads((run_dir / "summary.json").read_text()) == summary
    config = json.loads((run_dir / "config.json").read_text())
    assert config["options"]["synthetic"] is True and config["data"]["synthetic"] is True
    assert config["options"]["seeds"] == [42] and config["device"] == "cpu"
    assert {"python", "torch", "numpy", "mle6cli"} <= set(config["packages"])
    lines = (run_dir / "metrics.csv").read_text().splitlines()
    assert lines[0] == "epoch,train_loss,train_acc,val_loss,val_acc" and lines[1].startswith("1,")
    assert (run_dir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_folder_model_and_human_output(runner, app, small, tmp_path):
    result = runner.invoke(app, ["train-cnn", *train_args(small, tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "epoch 1/2 train_loss=" in result.stdout and "test accuracy" in result.stdout
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["synthetic"] is False and summary["data"] == str(small.resolve())
    model, config = load_classifier(tmp_path / "r")
    assert not model.training and config["lr"] == 1e-3 and config["epochs"] == 2 and config["seed"] == 42
    test = load_signs(small, CPU).test
    with torch.no_grad():  # an independent evaluation: the plain torch model
        out = model(test.x)
    assert (out.argmax(1) == test.y).float().mean().item() == pytest.approx(summary["test_acc"], abs=1e-12)
    assert torch.nn.functional.nll_loss(out, test.y).item() == pytest.approx(summary["test_loss"], rel=1e-6)
    save_torch(tmp_path / "other.pt", {"weights": 1})
    with pytest.raises(runs.RunDirError, match="is not a classifier saved by mle6"):
        load_classifier(tmp_path / "other.pt")


@pytest.mark.slow
def test_same_seed_gives_byte_identical_metrics(runner, app, small, tmp_path):
    for name, seed in (("a", "7"), ("b", "7"), ("c", "8")):
        result = runner.invoke(app, ["train-cnn", *train_args(small, tmp_path / name, "--seed", seed, "--quiet")])
        assert result.exit_code == 0 and result.stdout == ""
    a, b, c = ((tmp_path / n / "metrics.csv").read_bytes() for n in "abc")
    assert a == b
    assert a != c


def test_deterministic_flag_is_applied_and_recorded(runner, app, small, tmp_path):
    try:
        result = runner.invoke(app, ["train-cnn", *train_args(small, tmp_path / "r", "--deterministic", epochs=1)])
        assert result.exit_code == 0, result.output
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)  # set_seed turned it on for the whole process
    assert json.loads((tmp_path / "r" / "config.json").read_text())["options"]["deterministic"] is True


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--lr", "-1e-3"], 2, "Invalid value for '--lr': the learning rate must be a positive number, got -0.001"),
        (["--lr", "0"], 2, "Invalid value for '--lr': the learning rate must be a positive number, got 0"),
        (["--lr", "nan"], 2, "Invalid value for '--lr': the learning rate must be a finite number, got nan"),
        (["--lr", "fast"], 2, "Invalid value for '--lr': "),
        (["--epochs", "0"], 2, "Invalid value for '--epochs': "),
        (["--batch-size", "0"], 2, "Invalid value for '--batch-size': "),
        (
            ["--device", "cuda:7"] if not torch.cuda.is_available() else ["--device", "cuda:99"],
            1,
            "Error: device 'cuda:",
        ),
        (["--device", "tpu"], 1, "Error: unknown device 'tpu'; use auto, cpu, cuda, cuda:N or mps"),
        (["--resume", "r", "--out", "x"], 2, "--resume continues in its own folder; leave out --out"),
    ],
)
def test_bad_options_are_one_line(runner, app, args, code, message):
    result = runner.invoke(app, ["train-cnn", "--synthetic", *args])
    assert result.exit_code == code
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert result.stdout == ""


def test_config_validation_in_the_library():
    for bad in ({"lr": -1.0}, {"lr": float("inf")}, {"epochs": 0}, {"batch_size": 0}, {"seeds": [-1]}):
        with pytest.raises(ConfigError):
            TrainCnnConfig.from_options(bad)
    with pytest.raises(ConfigError, match="learning rate 0.001 is listed twice"):
        SweepLrConfig.from_options({"lrs": [1e-3, 1e-3]})


def test_a_non_empty_run_folder_is_refused_without_overwrite(runner, app, small, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = runner.invoke(app, ["train-cnn", *train_args(small, out), "--epochs", "1"])
    assert result.exit_code == 1
    assert result.stderr == f"Error: run folder {out} is not empty; choose another --out or pass --overwrite\n"
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    result = runner.invoke(app, ["train-cnn", *train_args(small, out, "--overwrite"), "--epochs", "1"])
    assert result.exit_code == 0 and (out / "summary.json").is_file()


def test_divergence_exits_1_naming_the_epoch(runner, app, small, tmp_path):
    result = runner.invoke(app, ["train-cnn", *train_args(small, tmp_path / "r", "--lr", "1e10")])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: training diverged at epoch 1: the training loss became ")
    assert "try a smaller --lr" in result.stderr and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "r" / "summary.json").exists() and not (tmp_path / "r" / "resume.pt").exists()


# ---------------------------------------------------------------- interruption and resume


@pytest.mark.parametrize(  # mid-epoch 1, after epoch 1, mid-epoch 3
    "stop_at", [2, pytest.param(4, marks=pytest.mark.slow), pytest.param(9, marks=pytest.mark.slow)]
)
def test_resume_after_a_stop_is_byte_identical(tmp_path, small, stop_at):
    options = signs_options(small, epochs=3, seeds=[3])
    expected = train_cnn(options, out=tmp_path / "ref")

    run_dir = tmp_path / "cut"
    with pytest.raises(Interrupted) as err:
        train_cnn(options, out=run_dir, stop=StopAfter(stop_at))
    assert err.value.exit_code == 130
    assert f"Continue with: mle6 train-cnn --resume {run_dir}" in str(err.value)
    assert (run_dir / "resume.pt").is_file() and not (run_dir / "summary.json").exists()

    summary = train_cnn({}, resume=run_dir)  # the saved options, not these
    for name in ("metrics.csv", "model.pt"):  # model.pt's pickle too: its config came from config.json here
        assert (run_dir / name).read_bytes() == (tmp_path / "ref" / name).read_bytes(), name
    assert summary["test_acc"] == expected["test_acc"] and summary["resumed"] == 1
    assert not (run_dir / "resume.pt").exists()


def test_resume_needs_an_interrupted_run(runner, app, small, tmp_path):
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["train-cnn", "--resume", "empty"])
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: --resume: no checkpoint in empty (resume.pt is missing); only an interrupted run can be resumed\n"
    )
    result = runner.invoke(app, ["train-cnn", "--resume", "missing"])
    assert result.exit_code == 1 and result.stderr == "Error: --resume: missing is not a run folder\n"
    assert runner.invoke(app, ["train-cnn", *train_args(small, tmp_path / "done"), "--epochs", "1"]).exit_code == 0
    result = runner.invoke(app, ["train-cnn", "--resume", "done"])
    assert result.exit_code == 0  # for scripts: resuming a finished run is a no-op, with a note
    assert result.stderr == "Note: the run in done already finished; nothing to resume (see done/summary.json)\n"


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mle6cli", "train-cnn", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )


def _signal_after_first_epoch(proc: subprocess.Popen, signum: int) -> tuple[str, str]:
    first = proc.stdout.readline()
    assert first.startswith("epoch 1/"), first + proc.stderr.read()
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    return first + out, err


@pytest.mark.slow
def test_sigint_saves_and_resume_matches_an_uninterrupted_run(runner, app, small, tmp_path):
    """Subprocess: SIGINT after the first epoch line -> exit 130 + resume.pt; --resume -> identical metrics.csv."""
    args = train_args(small, tmp_path / "cut", "--seed", "5", epochs=40)
    proc = _start(args)
    out, err = _signal_after_first_epoch(proc, signal.SIGINT)
    assert proc.returncode == 130, err
    cut = tmp_path / "cut"
    assert (cut / "resume.pt").is_file() and not (cut / "summary.json").exists()
    assert err.splitlines()[-1].startswith("Error: interrupted ")
    assert err.splitlines()[-1].endswith(f"Continue with: mle6 train-cnn --resume {cut}")
    assert "Traceback" not in err

    resumed = runner.invoke(app, ["train-cnn", "--resume", str(cut), "--json"])
    assert resumed.exit_code == 0, resumed.output
    assert "Resuming the run" in resumed.stderr
    reference = runner.invoke(app, ["train-cnn", *train_args(small, tmp_path / "ref", "--seed", "5", epochs=40)])
    assert reference.exit_code == 0
    metrics = (cut / "metrics.csv").read_bytes()
    assert metrics == (tmp_path / "ref" / "metrics.csv").read_bytes()
    assert len(metrics.splitlines()) == 41
    assert json.loads(resumed.stdout)["resumed"] == 1 and not (cut / "resume.pt").exists()


@pytest.mark.slow
def test_sigterm_exits_143_with_a_checkpoint(small, tmp_path):
    proc = _start(train_args(small, tmp_path / "cut", epochs=40))
    _, err = _signal_after_first_epoch(proc, signal.SIGTERM)
    assert proc.returncode == 143, err
    assert (tmp_path / "cut" / "resume.pt").is_file() and not (tmp_path / "cut" / "summary.json").exists()
    config, checkpoint = runs.load_resume(tmp_path / "cut", "train-cnn")
    assert config["options"]["epochs"] == 40 and checkpoint["members"][0]["state"]["epoch"] >= 1


def test_resume_refuses_changed_data(small, tmp_path):
    options = signs_options(small)
    with pytest.raises(Interrupted):
        train_cnn(options, out=tmp_path / "cut", stop=StopAfter(2))
    write_layout(small, _shrunk(small))  # the same folder, other arrays
    with pytest.raises(Mle6Error, match="--resume: the data changed since the run"):
        train_cnn({}, resume=tmp_path / "cut")


def _shrunk(folder):
    import numpy as np

    arrays = {p.stem: np.load(p) for p in folder.glob("*.npy")}
    arrays["X_train"], arrays["Y_train"] = arrays["X_train"][:40], arrays["Y_train"][:40]
    return arrays


@pytest.mark.realdata
@pytest.mark.slow
def test_real_data_beats_chance(runner, app):
    folder = shared_path("sign_data")
    if not folder.is_dir():
        pytest.skip("../shared/data/sign_data is absent")
    result = runner.invoke(
        app, ["train-cnn", "--data-dir", str(folder), "--epochs", "2", "--device", "cpu", "--json", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["synthetic"] is False and summary["final"]["epoch"] == 2
    assert summary["test_acc"] > 0.35  # chance is 1/6; two epochs reach about 0.6-0.7
    assert summary["final"]["train_loss"] < math.log(6)


def test_an_overwritten_folder_does_not_look_finished_until_it_is(small, tmp_path):
    options = signs_options(small, epochs=1)
    train_cnn(options, out=tmp_path / "r")
    assert (tmp_path / "r" / "summary.json").is_file()
    with pytest.raises(Interrupted):
        train_cnn(options, out=tmp_path / "r", overwrite=True, stop=StopAfter(1))
    assert not (tmp_path / "r" / "summary.json").exists() and (tmp_path / "r" / "resume.pt").is_file()
    assert load_torch(tmp_path / "r" / "resume.pt")["command"] == "train-cnn"


def test_weight_decay_is_torch_adams_weight_decay(tmp_path, small):
    """--weight-decay reaches every step as torch.optim.Adam's weight_decay: the run's model equals the
    oracle loop (tests.test_engine.reference_run) given the same decay, and differs from the decay-free run."""
    from mle6cli.tasks.classifier import initial_model
    from tests.test_engine import BATCH, EPOCHS, reference_run

    options = signs_options(small, epochs=EPOCHS, seeds=[3], lr=1e-2, weight_decay=0.1, batch_size=BATCH)
    train_cnn(options, out=tmp_path / "decayed")
    data = load_signs(small, CPU)
    as_bytes = [Split((s.x * 255).round().byte(), s.y) for s in (data.train, data.val)]  # as the oracle takes them
    _, model, status = reference_run(
        initial_model(3).state_dict(), 1e-2, (as_bytes[0], {"val": as_bytes[1]}), seed=3, weight_decay=0.1
    )
    trained = load_torch(tmp_path / "decayed" / "model.pt")["state_dict"]
    assert status == "completed" and all(torch.equal(trained[k], v) for k, v in model.state_dict().items())
    assert json.loads((tmp_path / "decayed" / "config.json").read_text())["options"]["weight_decay"] == 0.1
    train_cnn(dict(options, weight_decay=0.0), out=tmp_path / "plain")
    plain = load_torch(tmp_path / "plain" / "model.pt")["state_dict"]
    assert not torch.equal(plain["fc1.weight"], trained["fc1.weight"])


def test_a_run_folder_older_than_the_weight_decay_option_resumes_without_it(runner, app, small, tmp_path):
    """config.json written before --weight-decay existed lacks it; such a run had no decay and resumes
    as one (a missing option of any other kind is still refused: tests/test_bad_data.py)."""
    with pytest.raises(Interrupted):
        train_cnn(signs_options(small, epochs=3, seeds=[3], weight_decay=0.0, save_every=1), out=tmp_path / "cut",
                  stop=StopAfter(4))  # fmt: skip
    config = json.loads((tmp_path / "cut" / "config.json").read_text())
    del config["options"]["weight_decay"]
    (tmp_path / "cut" / "config.json").write_text(json.dumps(config))
    resumed = runner.invoke(app, ["train-cnn", "--resume", str(tmp_path / "cut"), "--json"])
    assert resumed.exit_code == 0, resumed.output
    train_cnn(signs_options(small, epochs=3, seeds=[3]), out=tmp_path / "ref")
    assert (tmp_path / "cut" / "metrics.csv").read_bytes() == (tmp_path / "ref" / "metrics.csv").read_bytes()
    assert "weight_decay" not in json.loads((tmp_path / "cut" / "config.json").read_text())["options"]
