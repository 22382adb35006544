"""Habits of people who script runs: config files, run listings, TensorBoard, completion, help, progress."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import time

import pytest

from tests.conftest import subprocess_env
from tests.signs_helpers import train_args

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TRAINING = ["train-cnn", "sweep-lr", "train-ae", "pca-ae"]


# ---------------------------------------------------------------- config files


@pytest.mark.slow
def test_a_run_folders_config_json_reproduces_the_run(runner, app, small, tmp_path):
    first = runner.invoke(app, ["train-cnn", *train_args(small, tmp_path / "a", "--seed", "5"), "-q"])
    assert first.exit_code == 0
    again = runner.invoke(app, ["train-cnn", "--config", str(tmp_path / "a" / "config.json"), "--out", "b", "-q"])
    assert again.exit_code == 0, again.output
    assert (tmp_path / "b" / "metrics.csv").read_bytes() == (tmp_path / "a" / "metrics.csv").read_bytes()
    saved = json.loads((tmp_path / "a" / "config.json").read_text())["options"]
    assert json.loads((tmp_path / "b" / "config.json").read_text())["options"] == saved


def test_toml_and_json_files_and_the_command_line_wins(runner, app, small, tmp_path):
    (tmp_path / "c.toml").write_text(f'data-dir = "{small}"\nepochs = 3\nbatch_size = 16\nseeds = [1, 2]\n')
    result = runner.invoke(app, ["train-cnn", "--config", "c.toml", "--epochs", "4", "--print-config"])
    assert result.exit_code == 0, result.output
    assert "epochs = 4\n" in result.stdout and "batch_size = 16\n" in result.stdout
    assert "seeds = [1, 2]\n" in result.stdout and 'device = "auto"\n' in result.stdout  # every option, defaults too
    (tmp_path / "c.json").write_text(json.dumps({"lrs": [0.1, 0.001], "epochs": 2, "seed": 7}))
    result = runner.invoke(app, ["sweep-lr", "--config", "c.json", "--print-config"])
    doc = json.loads(result.stdout)
    assert doc["lrs"] == [0.1, 0.001] and doc["seeds"] == [7] and doc["epochs"] == 2 and doc["batch_size"] == 64
    assert not (tmp_path / "runs").exists()  # --print-config runs nothing
    # seeds in the file, one --seed on the command line: the command line wins (and the other way round)
    result = runner.invoke(app, ["train-cnn", "--config", "c.toml", "--seed", "9", "--print-config"])
    assert result.exit_code == 0, result.output
    assert "seeds = [9]\n" in result.stdout
    result = runner.invoke(app, ["sweep-lr", "--config", "c.json", "--seeds", "3-4", "--print-config"])
    assert json.loads(result.stdout)["seeds"] == [3, 4]
    both = runner.invoke(app, ["train-cnn", "--seed", "1", "--seeds", "2-3", "--print-config"])
    assert both.exit_code == 2 and "give --seed or --seeds, not both" in both.output


@pytest.mark.parametrize(("value", "on"), [("1", True), ("yes", True), ("0", False), ("off", False), ("", False)])
def test_mle6_debug_reads_like_a_switch(monkeypatch, value, on):
    from mle6cli.errors import debug_from_env

    monkeypatch.setenv("MLE6_DEBUG", value)
    assert debug_from_env() is on


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("epochz = 3\n", "c.toml: unknown key 'epochz' for mle6 train-ae"),
        ("out = 'x'\n", "c.toml: unknown key 'out' for mle6 train-ae"),
        ("epochs = 0\n", "c.toml: key 'epochs': Invalid value: epochs must be at least 1, got 0"),
        ("lr = 'fast'\n", "c.toml: key 'lr': Invalid value for '--lr'"),
        ("lr = -1.0\n", "c.toml: key 'lr': Invalid value: the learning rate must be a positive number, got -1"),
        ("latent_dims = [3, 100000]\n", "latent size must be between 1 and 4096, got 100000"),
        ("epochs = \n", "c.toml is not valid TOML"),
    ],
)
def test_bad_config_files_are_usage_errors_naming_key_and_file(runner, app, tmp_path, text, message):
    (tmp_path / "c.toml").write_text(text)
    result = runner.invoke(app, ["train-ae", "--synthetic", "--config", "c.toml"])
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------- run listings


@pytest.mark.slow
def test_runs_lists_newest_first_and_compares(runner, app, small, tmp_path):
    for name, lr in (("old", "1e-3"), ("new", "1e-2")):
        assert (
            runner.invoke(
                app, ["train-cnn", "--lr", lr, *train_args(small, tmp_path / "runs" / name, epochs=1), "-q"]
            ).exit_code
            == 0
        )
        time.sleep(1.1)  # config.json's time has seconds
    (tmp_path / "runs" / "junk").mkdir()  # not a run: not listed
    listed = runner.invoke(app, ["runs", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert [r["run_dir"].split("/")[-1] for r in rows] == ["new", "old"]
    assert all(r["status"] == "finished" and r["command"] == "train-cnn" for r in rows)
    assert rows[0]["headline"].startswith("test acc ") and rows[0]["device"] == "cpu"
    human = runner.invoke(app, ["runs", str(tmp_path / "runs")])
    assert "2 run(s) under" in human.stdout and "finished" in human.stdout
    compared = runner.invoke(app, ["runs", "compare", "runs/old", "runs/new", "--json"])
    diff = json.loads(compared.stdout)["differences"]
    assert diff["options.lr"] == [0.001, 0.01] and "options.epochs" not in diff  # only what differs
    assert "final.test_acc" in diff or "final.final_train_loss" in diff
    one = runner.invoke(app, ["runs", "compare", "runs/old"])
    assert one.exit_code == 2


# ---------------------------------------------------------------- TensorBoard


@pytest.mark.slow
def test_tensorboard_events_hold_the_metrics_of_every_member(runner, app, small, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    args = ["sweep-lr", "--lrs", "1e-2,1e-3", "--seeds", "0-1", *train_args(small, tmp_path / "s"), "--tensorboard"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    runs_ = sorted(p.name for p in (tmp_path / "s" / "tensorboard").iterdir())
    assert runs_ == ["lr_1e-02_seed_0", "lr_1e-02_seed_1", "lr_1e-03_seed_0", "lr_1e-03_seed_1"]
    events = EventAccumulator(str(tmp_path / "s" / "tensorboard" / "lr_1e-03_seed_1")).Reload()
    assert set(events.Tags()["scalars"]) == {"train_loss", "train_acc", "val_loss", "val_acc"}
    val = events.Scalars("val_acc")
    import csv

    with open(tmp_path / "s" / "lr_1e-03" / "seed_1" / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [e.step for e in val] == [1, 2]
    assert [e.value for e in val] == pytest.approx([float(r["val_acc"]) for r in rows], rel=1e-6)


def test_tensorboard_missing_is_one_line(runner, app, small, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if the extra were not installed
    result = runner.invoke(app, ["train-cnn", *train_args(small, tmp_path / "r"), "--tensorboard"])
    assert result.exit_code == 1
    assert result.stderr == "Error: --tensorboard needs the tensorboard package: pip install 'mle6cli[tensorboard]'\n"
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------- completion, help, start-up


def _complete(words: str) -> list[str]:
    env = dict(
        subprocess_env(), COMP_WORDS=words, COMP_CWORD=str(len(words.split()) - 1), _MLE6_COMPLETE="complete_bash"
    )
    out = subprocess.run([sys.executable, "-m", "mle6cli"], capture_output=True, text=True, env=env)
    return out.stdout.split()


@pytest.mark.slow
def test_shell_completion_of_closed_choices(runner, app):
    assert _complete("mle6 train-cnn --device c") == ["cpu", "cuda"]
    assert _complete("mle6 summary l") == ["linear-ae"]
    assert _complete("mle6 train-ae --init p") == ["pytorch"]
    shown = runner.invoke(app, ["--show-completion", "bash"])
    assert shown.exit_code == 0 and "_MLE6_COMPLETE" in shown.stdout


@pytest.mark.parametrize("command", [*TRAINING, "run-all", "latent-plot", "gauss-conv", "conv-size", "runs"])
def test_help_has_no_bool_placeholders_and_shows_limits(runner, app, command):
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0
    assert "<bool>" not in result.stdout
    if command == "latent-plot":
        assert "20..1000000" in result.stdout
    if command == "pca-ae":
        assert "1..784" in result.stdout
    if command == "train-cnn":
        assert "per model, where there are several" not in result.stdout
    assert "<bool>" not in runner.invoke(app, ["--help"]).stdout


def test_help_imports_no_torch_with_completion_on():
    check = "import mle6cli.cli, sys; mle6cli.cli.app(['--help'], standalone_mode=False); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, env=subprocess_env())
    assert out.stdout.strip().endswith("False")  # the 0.3 s budget itself is timed by make bench, not here


# ---------------------------------------------------------------- the progress display


def test_the_terminal_progress_fits_80_columns_with_a_row_per_member():
    from rich.console import Console

    from mle6cli.commands._output import live_progress

    buf = io.StringIO()
    with live_progress(Console(file=buf, width=80, force_terminal=True, color_system=None)) as events:
        events.start(8, "sweep-lr")
        done = 0
        for epoch in (1, 2):
            for lr in ("1e-01", "1e-03", "1e-04", "1e-05"):
                done += 1
                metrics = {"train_loss": 1.79, "train_acc": 0.16, "val_loss": 1.7918, "val_acc": 0.9083}
                events.epoch(f"lr {lr} seed 42", epoch, 2, done, metrics)
    lines = [line for line in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "\n", buf.getvalue()).split("\n") if line.strip()]
    assert max(len(line) for line in lines) <= 80
    final = lines[-5:]
    assert final[0].startswith("sweep-lr") and "8/8" in final[0]
    for row, lr in zip(final[1:], ("1e-01", "1e-03", "1e-04", "1e-05"), strict=True):
        assert row.startswith(f"lr {lr} seed 42") and "━" in row and "2/2" in row and "val_acc 0.9083" in row
