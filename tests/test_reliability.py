"""Issue 5 across every command: help text, bad numbers, devices, data, run folders, OOM, determinism."""

from __future__ import annotations

import json
import sys

import pytest
import torch
import typer

from mle6cli import files
from mle6cli.commands import COMMANDS
from mle6cli.engine import runs
from tests.mnist_helpers import TINY, tiny_synthetic  # noqa: F401 (fixture)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TRAINING = ["train-cnn", "sweep-lr", "train-ae", "pca-ae"]


def _one_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]


# ---------------------------------------------------------------- help


@pytest.mark.parametrize("name", [name for name, _ in COMMANDS])
def test_every_option_has_help_text(runner, app, name):
    result = runner.invoke(app, [name, "--help"], terminal_width=200)
    assert result.exit_code == 0
    command = typer.main.get_command(app).get_command(None, name)
    for param in command.params:
        if param.name == "help":
            continue
        assert (param.help or "").strip(), f"{name} {param.opts} has no help text"
        for opt in param.opts if param.param_type_name == "option" else []:
            assert opt in result.stdout, f"{name} --help does not show {opt}"
        assert param.help.split()[0] in result.stdout


# ---------------------------------------------------------------- bad numbers: usage errors naming the option


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["train-cnn", "--synthetic", "--lr", "-1e-3"], "--lr"),
        (["train-cnn", "--synthetic", "--epochs", "0"], "--epochs"),
        (["train-cnn", "--synthetic", "--batch-size", "0"], "--batch-size"),
        (["train-cnn", "--synthetic", "--seed", "-1"], "--seed"),
        (["sweep-lr", "--synthetic", "--lrs", "1e-3,fast"], "--lrs"),
        (["sweep-lr", "--synthetic", "--lrs", ","], "--lrs"),
        (["sweep-lr", "--synthetic", "--lrs", "1e-3,inf"], "--lrs"),
        (["sweep-lr", "--synthetic", "--epochs", "0"], "--epochs"),
        (["sweep-lr", "--synthetic", "--batch-size", "-4"], "--batch-size"),
        (["train-ae", "--synthetic", "--latent-dims", "0"], "--latent-dims"),
        (["train-ae", "--synthetic", "--latent-dims", "3,ten"], "--latent-dims"),
        (["train-ae", "--synthetic", "--lr", "0"], "--lr"),
        (["train-ae", "--synthetic", "--epochs", "0"], "--epochs"),
        (["train-ae", "--synthetic", "--retries", "-1"], "--retries"),
        (["pca-ae", "--synthetic", "--latent-dim", "0"], "--latent-dim"),
        (["pca-ae", "--synthetic", "--lr", "nan"], "--lr"),
        (["pca-ae", "--synthetic", "--batch-size", "0"], "--batch-size"),
        (["latent-plot", "--run", "r", "--n", "0"], "--n"),
        (["gauss-conv", "--sigma2", "0"], "--sigma2"),
        (["gauss-conv", "--samples", "0"], "--samples"),
        (["gauss-conv", "--seed", "-1"], "--seed"),
        (["conv-size", "-i", "8", "-k", "3", "-d", "0"], "--dilation"),
        (["summary", "ae", "--latent-dim", "0"], "--latent-dim"),
        (["prepare-signs", "--val-per-class", "0"], "--val-per-class"),
    ],
)
def test_bad_numbers_are_usage_errors_naming_the_option(runner, app, tmp_path, args, option):
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    line = _one_line(result)
    assert line.startswith(f"Error: mle6 {args[0]}: Invalid value")
    assert option in line
    assert result.stdout == "" and list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- devices and data: exit 1, nothing written


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize(
    "args",
    [
        ["train-cnn", "--synthetic"],
        ["sweep-lr", "--synthetic"],
        ["train-ae", "--synthetic"],
        ["pca-ae", "--synthetic"],
        ["latent-plot", "--run", "r"],
    ],
)
def test_a_missing_cuda_device_is_one_line(runner, app, tmp_path, args):
    result = runner.invoke(app, [*args, "--device", "cuda:7"])
    assert result.exit_code == 1
    assert _one_line(result) == (
        "Error: device 'cuda:7' requested but CUDA is not available here; use --device cpu or auto"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", TRAINING)
def test_missing_data_is_one_line_and_leaves_no_run_folder(runner, app, tmp_path, command):
    extra = ["--no-download"] if command in ("train-ae", "pca-ae") else []
    result = runner.invoke(app, [command, "--data-dir", "nodata", "--device", "cpu", *extra])
    assert result.exit_code == 1
    line = _one_line(result)
    assert line.startswith("Error: MNIST not found: " if extra else "Error: data folder nodata does not exist; ")
    assert line.endswith("use --synthetic" if not extra else "use --synthetic for built-in stand-in digits")
    assert not (tmp_path / "runs").exists()


def test_signs_labels_out_of_range_stop_sweep_lr_too(runner, app, tmp_path, small):
    import numpy as np

    np.save(small / "Y_val.npy", np.full(12, 6))
    result = runner.invoke(app, ["sweep-lr", "--data-dir", str(small), "--device", "cpu", "--out", "s"])
    assert result.exit_code == 1
    assert _one_line(result) == f"Error: {small}/Y_val.npy has 12 label(s) outside 0..5, e.g. 6 at sample 0"
    assert not (tmp_path / "s").exists()


# ---------------------------------------------------------------- run folders


@pytest.mark.usefixtures("tiny_synthetic")
@pytest.mark.parametrize("command", TRAINING)
def test_a_non_empty_folder_needs_overwrite(runner, app, tmp_path, command):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    result = runner.invoke(app, [command, "--synthetic", "--device", "cpu", "--out", "busy"])
    assert result.exit_code == 1
    assert _one_line(result) == "Error: run folder busy is not empty; choose another --out or pass --overwrite"
    assert [p.name for p in (tmp_path / "busy").iterdir()] == ["notes.txt"]


def test_begin_clears_what_made_a_reused_folder_look_finished(tmp_path):
    (tmp_path / runs.SUMMARY).write_text("{}")
    (tmp_path / runs.RESUME).write_bytes(b"old")
    run = runs.Run.open("pca-ae", {"latent_dim": 1}, out=tmp_path, overwrite=True)
    run.begin(device="cpu", data={"sizes": {"train": 1}})
    assert not (tmp_path / runs.SUMMARY).exists() and not (tmp_path / runs.RESUME).exists()
    document = json.loads((tmp_path / runs.CONFIG).read_text())
    assert document["command"] == "pca-ae" and document["options"] == {"latent_dim": 1}
    assert {"device", "data", "packages", "created", "cpu_threads"} <= set(document)


def test_a_run_writes_only_the_files_its_outputs_name(tmp_path):
    """A command's Outputs are its one list of files: a write outside them fails at once (so a new
    file cannot be added without its glob), and an --overwrite clears exactly them."""
    from mle6cli.engine.folder import Outputs, UndeclaredOutput

    outputs = Outputs(files=("table.csv",), member_files=("model.pt",), member_folders=("", "seed_*"))
    for name in ("table.csv", "model.pt", "seed_3/model.pt", "seed_3/old.pt", "stray.csv"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("old")
    run = runs.Run.open("toy", {}, out=tmp_path, overwrite=True, outputs=outputs)
    run.begin(device="cpu", data={"sizes": {"train": 1}})
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert left == [".lock", "config.json", "seed_3/old.pt", "stray.csv"]
    run.write_csv("table.csv", ["a"], [{"a": 1}])
    run.write_bytes("seed_12/model.pt", b"x")
    for undeclared in ("other.csv", "seed_1/table.csv", "seed_1/deeper/model.pt", "lr_1/model.pt"):
        with pytest.raises(UndeclaredOutput, match=f"mle6 toy writes {undeclared}, which its Outputs do not name"):
            run.write_bytes(undeclared, b"x")
        assert not (tmp_path / undeclared).exists()
    with pytest.raises(UndeclaredOutput):
        run.tensorboard_dir("seed_1")
    run.release()


def test_run_all_clears_its_steps_folders_with_their_protocol_files():
    from mle6cli.tasks import sheet
    from mle6cli.tasks.specs import SWEEP_LR

    outputs = sheet.outputs()
    for name in ("report.html", "latent.png", "sweep-lr/config.json", "sweep-lr/resume.rank1.pt",
                 "sweep-lr/lr_1e-03/seed_2/model.pt", "train-ae/ae_d3.pt", "pca-ae/seed_1/linear_ae_k2.pt",
                 "train-ae/tensorboard/seed_0/events.out.tfevents.1.host"):  # fmt: skip
        assert outputs.declares(name), name
    for name in ("notes.txt", "sweep-lr/notes.txt", "model.pt", "train-ae/lr_1e-03/model.pt"):
        assert not outputs.declares(name), name
    assert SWEEP_LR.outputs.declares("lr_1e-03/metrics.csv") and SWEEP_LR.outputs.declares("curves.png")


@pytest.mark.usefixtures("tiny_synthetic")
@pytest.mark.slow
def test_a_failed_run_in_an_overwritten_folder_does_not_look_finished(runner, app, tmp_path):
    ok = runner.invoke(app, ["pca-ae", "--synthetic", "--epochs", "1", "--device", "cpu", "--out", "p", "-q"])
    assert ok.exit_code == 0 and (tmp_path / "p" / "summary.json").is_file()
    args = ["pca-ae", "--synthetic", "--epochs", "1", "--device", "cpu", "--out", "p", "--overwrite"]
    failed = runner.invoke(app, [*args, "--lr", "1e30"])
    assert failed.exit_code == 1
    assert failed.stderr.splitlines()[-1] == "Error: the linear autoencoder diverged (non-finite loss in epoch 1)"
    assert not (tmp_path / "p" / "summary.json").exists()


def test_writes_are_atomic(tmp_path, monkeypatch):
    """A write that fails half-way (a full disk, a kill) leaves the previous file and no temp file."""
    import os

    path = tmp_path / "metrics.csv"
    files.write_csv(path, ["epoch"], [{"epoch": 1}])

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(files.FileError, match=f"no space left on the device while writing {path}"):
        files.write_csv(path, ["epoch"], [{"epoch": 1}, {"epoch": 2}])
    assert path.read_text() == "epoch\n1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]


def _fake_run(folder, command: str, config: dict | None = None, state: dict | None = None):
    folder.mkdir()
    files.write_json(folder / runs.CONFIG, {"command": command, **(config or {})})
    files.save_torch(folder / runs.RESUME, {"command": command, "members": [], **(state or {})})
    return folder


@pytest.mark.parametrize("command", ["train-cnn", "sweep-lr", "train-ae"])
def test_resume_refuses_a_run_of_another_command(runner, app, tmp_path, command):
    other = "train-ae" if command != "train-ae" else "sweep-lr"
    _fake_run(tmp_path / "r", other)
    result = runner.invoke(app, [command, "--resume", "r"])
    assert result.exit_code == 1
    assert _one_line(result) == f"Error: --resume: r holds a {other} run; use mle6 {other} --resume r"


@pytest.mark.parametrize("command", ["train-cnn", "sweep-lr", "train-ae"])
def test_resume_with_an_unreadable_checkpoint_or_config(runner, app, tmp_path, command):
    _fake_run(tmp_path / "r", command)
    (tmp_path / "r" / runs.RESUME).write_bytes(b"half a checkpoint")
    result = runner.invoke(app, [command, "--resume", "r"])
    assert result.exit_code == 1
    assert _one_line(result).startswith("Error: --resume: checkpoint r/resume.pt cannot be read: ")
    _fake_run(tmp_path / "s", command)  # config.json without the run's options
    result = runner.invoke(app, [command, "--resume", "s"])
    assert result.exit_code == 1
    assert _one_line(result) == "Error: --resume: s/config.json lacks the run's options"


@pytest.mark.usefixtures("tiny_synthetic")
def test_compare_with_a_run_that_lost_its_checkpoint(runner, app, tmp_path):
    (tmp_path / "ae").mkdir()
    summary = {"command": "train-ae", "data": {"synthetic": True, "n_test": TINY[1]}}
    summary["runs"] = [{"latent_dim": 3, "checkpoint": "ae_d3.pt"}]
    files.write_json(tmp_path / "ae" / runs.SUMMARY, summary)
    result = runner.invoke(app, ["pca-ae", "--synthetic", "--device", "cpu", "--compare", "ae", "--out", "p"])
    assert result.exit_code == 1
    assert _one_line(result) == "Error: --compare: ae lacks ae_d3.pt, listed in its summary.json"
    files.write_json(tmp_path / "ae" / runs.SUMMARY, dict(summary, command="sweep-lr"))
    result = runner.invoke(app, ["pca-ae", "--synthetic", "--device", "cpu", "--compare", "ae", "--out", "p"])
    assert result.exit_code == 1
    assert _one_line(result) == "Error: --compare: ae is not a finished train-ae run (it holds a sweep-lr run)"
    assert not (tmp_path / "p").exists()


def test_latent_plot_on_a_folder_without_checkpoints(runner, app, tmp_path):
    (tmp_path / "r").mkdir()
    result = runner.invoke(app, ["latent-plot", "--run", "r", "--device", "cpu"])
    assert result.exit_code == 1
    assert _one_line(result) == "Error: --run: r is not a finished train-ae run (no summary.json)"
    assert not (tmp_path / "latent.png").exists()


# ---------------------------------------------------------------- systems other than Linux and macOS


NO_FILE_LOCKS = "Error: mle6 needs Linux or macOS: this system has no fcntl (file locks for run folders)"


def test_a_system_without_file_locks_is_told_so_in_one_line(runner, app, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "fcntl", None)  # `import fcntl` fails, as on Windows
    result = runner.invoke(app, ["train-cnn", "--synthetic", "--epochs", "1", "--out", str(tmp_path / "run")])
    assert result.exit_code == 1, result.output
    assert _one_line(result) == NO_FILE_LOCKS
    assert not (tmp_path / "run").exists()  # told before anything is written
    (tmp_path / "old").mkdir()  # a run folder without summary.json: `runs list` asks whether its lock is held
    (tmp_path / "old" / "config.json").write_text('{"command": "train-cnn", "options": {}}')
    result = runner.invoke(app, ["runs", "list", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert _one_line(result) == NO_FILE_LOCKS


# ---------------------------------------------------------------- out of memory


def _oom(*args, **kwargs):
    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


@pytest.mark.usefixtures("tiny_synthetic")
@pytest.mark.parametrize("command", ["train-cnn", "train-ae"])
def test_out_of_memory_is_one_line_suggesting_a_smaller_batch(runner, app, tmp_path, monkeypatch, command):
    from mle6cli.engine import loop

    monkeypatch.setattr(loop, "fit", _oom)
    result = runner.invoke(app, [command, "--synthetic", "--device", "cpu", "--out", "r", "--json"])
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if not line.startswith("Note: ")]
    assert errors == ["Error: the device ran out of memory; try a smaller --batch-size (or --device cpu)"]
    assert result.stdout == "" and not (tmp_path / "r" / runs.SUMMARY).exists()


def test_out_of_memory_in_a_command_without_batch_size(runner, app, monkeypatch):
    from mle6cli.tasks import autoencoders

    monkeypatch.setattr(autoencoders, "load_autoencoder", _oom)
    result = runner.invoke(app, ["latent-plot", "--checkpoint", "x.pt", "--device", "cpu"])
    assert result.exit_code == 1
    assert _one_line(result) == "Error: the device ran out of memory; try --device cpu"


# ---------------------------------------------------------------- determinism on CPU


@pytest.mark.slow
def test_sweep_lr_same_seed_same_bytes(runner, app, tmp_path, small):
    from tests.signs_helpers import train_args

    for out, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        args = ["sweep-lr", "--lrs", "1e-2,1e-3", *train_args(small, tmp_path / out, "--seed", seed, "-q")]
        assert runner.invoke(app, args).exit_code == 0
    for name in ("lr_1e-02/metrics.csv", "lr_1e-03/metrics.csv", "sweep.csv"):
        a, b, c = ((tmp_path / out / name).read_bytes() for out in "abc")
        assert a == b and a != c


@pytest.mark.usefixtures("tiny_synthetic")
@pytest.mark.slow
def test_pca_ae_same_seed_same_bytes(runner, app, tmp_path):
    for out, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        args = ["pca-ae", "--synthetic", "--latent-dim", "4", "--epochs", "2", "--seed", seed, "--device", "cpu"]
        assert runner.invoke(app, [*args, "--out", out, "-q"]).exit_code == 0
    a, b, c = ((tmp_path / out / "metrics.csv").read_bytes() for out in "abc")
    assert a == b and a != c
