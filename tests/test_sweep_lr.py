"""sweep-lr: one model per learning rate from one start, the best by val accuracy, divergence, resume."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys

import pytest
import torch

from mle6cli.engine import runs
from mle6cli.engine.interrupt import Interrupted
from mle6cli.fmt import lr_label
from mle6cli.tasks.classifier import config_stats, rank_configs, sweep_lr
from tests.conftest import StopAfter, subprocess_env
from tests.signs_helpers import signs_options, train_args

CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_sweep_through_the_cli(runner, app, small, tmp_path):
    result = runner.invoke(app, ["sweep-lr", "--lrs", "1e-2,1e-3,2.5e-4", *train_args(small, tmp_path / "s"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert {"runs", "best_lr", "best_val_acc", "test_acc", "val_test_gap", "run_dir"} <= set(summary)
    assert [r["lr"] for r in summary["runs"]] == [1e-2, 1e-3, 2.5e-4]
    for run in summary["runs"]:
        assert {"lr", "final", "test_acc", "diverged"} <= set(run) and run["diverged"] is False
        assert run["final"]["epoch"] == 2
    best = max(summary["runs"], key=lambda r: (r["final"]["val_acc"], -r["final"]["val_loss"]))
    assert summary["best_lr"] == best["lr"] and summary["test_acc"] == best["test_acc"]
    assert summary["val_test_gap"] == pytest.approx(abs(best["final"]["val_acc"] - best["test_acc"]))

    s = tmp_path / "s"
    names = sorted(p.name for p in s.iterdir())
    assert names == [
        "config.json",
        "lr_1e-02",
        "lr_1e-03",
        "lr_2.5e-04",
        "summary.json",
        "sweep.csv",
        "sweep_curves.png",
        "sweep_stats.csv",
    ]
    for label in ("1e-02", "1e-03", "2.5e-04"):
        lines = (s / f"lr_{label}" / "metrics.csv").read_text().splitlines()
        assert lines[0] == "epoch,train_loss,train_acc,val_loss,val_acc" and len(lines) == 3
        assert (s / f"lr_{label}" / "model.pt").is_file()
    with open(s / "sweep.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["lr"]) for r in rows] == [1e-2, 1e-3, 2.5e-4]
    assert float(rows[1]["test_acc"]) == summary["runs"][1]["test_acc"]
    assert float(rows[0]["val_acc"]) == summary["runs"][0]["final"]["val_acc"]
    config = json.loads((s / "config.json").read_text())
    assert config["command"] == "sweep-lr" and config["options"]["lrs"] == [1e-2, 1e-3, 2.5e-4]


@pytest.mark.slow
def test_a_sweep_member_equals_the_separate_run(runner, app, small, tmp_path):
    """Same seed -> same initial weights and batch order: lr 1e-3 in a sweep is train-cnn --lr 1e-3."""
    assert runner.invoke(app, ["sweep-lr", "--lrs", "1e-2,1e-3", *train_args(small, tmp_path / "s")]).exit_code == 0
    assert runner.invoke(app, ["train-cnn", "--lr", "1e-3", *train_args(small, tmp_path / "t")]).exit_code == 0
    member = (tmp_path / "s" / "lr_1e-03" / "metrics.csv").read_bytes()
    assert member == (tmp_path / "t" / "metrics.csv").read_bytes()
    assert member != (tmp_path / "s" / "lr_1e-02" / "metrics.csv").read_bytes()


@pytest.mark.slow
def test_human_output_names_the_best(runner, app, small, tmp_path):
    result = runner.invoke(app, ["sweep-lr", "--lrs", "1e-3,1e-4", *train_args(small, tmp_path / "s", epochs=1)])
    assert result.exit_code == 0, result.output
    assert "lr 1e-03 epoch 1/1" in result.stdout and "lr 1e-04 epoch 1/1" in result.stdout
    assert "best lr 1e-0" in result.stdout and "|val - test|" in result.stdout


@pytest.mark.slow
def test_a_diverging_lr_is_marked_and_the_sweep_goes_on(runner, app, small, tmp_path):
    result = runner.invoke(app, ["sweep-lr", "--lrs", "1e10,1e-3", *train_args(small, tmp_path / "s"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    bad, good = summary["runs"]
    assert bad["diverged"] is True and bad["diverged_epoch"] == 1 and bad["status"] == "diverged"
    assert bad["test_acc"] is None and bad["final"] is None
    assert good["diverged"] is False and good["final"]["epoch"] == 2
    assert summary["best_lr"] == 1e-3
    assert not (tmp_path / "s" / "lr_1e+10" / "model.pt").exists()
    assert "10000000000.0,42,diverged,0," in (tmp_path / "s" / "sweep.csv").read_text()

    result = runner.invoke(app, ["sweep-lr", "--lrs", "1e10,1e12", *train_args(small, tmp_path / "all")])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: every learning rate diverged (1e+10 at epoch 1, 1e+12 at epoch 1)")
    assert not (tmp_path / "all" / "summary.json").exists()


@pytest.mark.parametrize(
    ("lrs", "message"),
    [
        ("1e-3,abc", "Invalid value for '--lrs': 'abc' is not a number; give comma-separated learning rates"),
        ("1e-3,-1e-2", "Invalid value for '--lrs': the learning rate must be a positive number, got -0.01"),
        ("0", "Invalid value for '--lrs': the learning rate must be a positive number, got 0"),
        ("1e-3,1e-3", "Invalid value for '--lrs': the learning rate 0.001 is listed twice"),
    ],
)
def test_bad_learning_rate_lists_are_usage_errors(runner, app, lrs, message):
    result = runner.invoke(app, ["sweep-lr", "--synthetic", "--lrs", lrs])
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.splitlines()) == 1
    assert result.stdout == ""


def test_the_best_lr_is_the_best_mean_val_accuracy_ties_to_the_lower_val_loss():
    def run(lr, seed, acc, loss, status="completed"):
        final = {"val_acc": acc, "val_loss": loss, "train_loss": 1.0}
        return {"lr": lr, "seed": seed, "status": status, "final": final, "test_acc": acc, "test_loss": loss}

    def best(records, lrs):
        return rank_configs(config_stats(records, lrs))[0]["lr"]

    assert best([run(1, 0, 0.9, 0.5), run(2, 0, 0.9, 0.3), run(3, 0, 0.8, 0.1)], [1, 2, 3]) == 2
    assert best([run(1, 0, 0.9, 0.3), run(2, 0, 0.9, 0.3)], [1, 2]) == 1  # full tie: the first listed
    assert best([run(1, 0, 1.0, 0.1, "diverged"), run(2, 0, 0.5, 0.9)], [1, 2]) == 2
    # over seeds: the mean decides, not the best single seed
    records = [run(1, 0, 0.99, 0.1), run(1, 1, 0.5, 0.1), run(2, 0, 0.8, 0.1), run(2, 1, 0.8, 0.1)]
    assert best(records, [1, 2]) == 2
    assert rank_configs(config_stats([run(1, 0, float("nan"), 0.1)], [1])) == []  # no usable accuracy


def test_lr_labels_are_exact_and_distinct():
    assert [lr_label(x) for x in (1e-1, 1e-3, 2.5e-4, 2.4e-4, 3e-2)] == [
        "1e-01", "1e-03", "2.5e-04", "2.4e-04", "3e-02",
    ]  # fmt: skip


def _sweep_options(small, **overrides):
    options = signs_options(small, seeds=[1], **overrides)
    options["lrs"] = [options.pop("lr")] if "lrs" not in options else options["lrs"]
    options.pop("lr", None)
    return options


@pytest.mark.parametrize("stop_at", [2, 4, 5])  # mid first epoch, mid second epoch, at the first epoch's end
@pytest.mark.slow
def test_sweep_resume_is_byte_identical(tmp_path, small, stop_at):
    options = _sweep_options(small, lrs=[1e-2, 1e-3])
    expected = sweep_lr(options, out=tmp_path / "ref")
    cut = tmp_path / "cut"
    with pytest.raises(Interrupted) as err:
        sweep_lr(options, out=cut, stop=StopAfter(stop_at))
    assert f"Continue with: mle6 sweep-lr --resume {cut}" in str(err.value)
    assert not (cut / "summary.json").exists()
    document, checkpoint = runs.load_resume(cut, "sweep-lr")
    assert document["options"]["lrs"] == [1e-2, 1e-3]
    assert [m["key"] for m in checkpoint["members"]] == [{"lr": 1e-2, "seed": 1}, {"lr": 1e-3, "seed": 1}]
    summary = sweep_lr({}, resume=cut)
    for label in ("1e-02", "1e-03"):
        ref = tmp_path / "ref" / f"lr_{label}" / "metrics.csv"
        assert (cut / f"lr_{label}" / "metrics.csv").read_bytes() == ref.read_bytes()
    assert (cut / "sweep.csv").read_bytes() == (tmp_path / "ref" / "sweep.csv").read_bytes()
    assert summary["best_lr"] == expected["best_lr"] and summary["resumed"] == 1


@pytest.mark.slow
def test_resume_through_the_cli_uses_the_saved_lrs(runner, app, small, tmp_path):
    cut = tmp_path / "cut"
    with pytest.raises(Interrupted):
        sweep_lr(_sweep_options(small, lrs=[1e-3, 1e-4]), out=cut, stop=StopAfter(4))
    result = runner.invoke(app, ["train-cnn", "--resume", str(cut)])
    assert result.exit_code == 1
    assert result.stderr == f"Error: --resume: {cut} holds a sweep-lr run; use mle6 sweep-lr --resume {cut}\n"
    result = runner.invoke(app, ["sweep-lr", "--resume", str(cut), "--json"])
    assert result.exit_code == 0, result.output
    assert [r["lr"] for r in json.loads(result.stdout)["runs"]] == [1e-3, 1e-4]


@pytest.mark.slow
def test_sigint_mid_sweep_then_resume_matches_an_uninterrupted_sweep(runner, app, small, tmp_path):
    """Subprocess: SIGINT after the first member's first epoch -> exit 130 + resume.pt; --resume -> same bytes."""
    args = ["--lrs", "1e-2,1e-3", *train_args(small, tmp_path / "cut", "--seed", "5", epochs=8)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mle6cli", "sweep-lr", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )
    first = proc.stdout.readline()
    assert first.startswith("lr 1e-02 epoch 1/8"), first + proc.stderr.read()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    cut = tmp_path / "cut"
    assert proc.returncode == 130, err
    assert err.splitlines()[-1].endswith(f"Continue with: mle6 sweep-lr --resume {cut}")
    assert "Traceback" not in err
    assert (cut / "resume.pt").is_file() and not (cut / "summary.json").exists()

    resumed = runner.invoke(app, ["sweep-lr", "--resume", str(cut), "--json"])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["resumed"] == 1 and not (cut / "resume.pt").exists()
    reference = ["sweep-lr", "--lrs", "1e-2,1e-3", *train_args(small, tmp_path / "ref", "--seed", "5", epochs=8)]
    assert runner.invoke(app, reference).exit_code == 0
    for name in ("lr_1e-02/metrics.csv", "lr_1e-03/metrics.csv", "sweep.csv"):
        assert (cut / name).read_bytes() == (tmp_path / "ref" / name).read_bytes(), name
    assert len((cut / "lr_1e-03" / "metrics.csv").read_text().splitlines()) == 9
