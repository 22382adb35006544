"""Device resolution, seeding, and the CLI's error boundary (exit codes, one-line errors)."""

from __future__ import annotations

import json
import signal

import pytest
import torch
import typer
from typer.testing import CliRunner

from mle6cli.cli import BoundaryGroup
from mle6cli.engine.device import configure_threads, resolve_device, set_seed
from mle6cli.engine.interrupt import Interrupted, graceful_stop
from mle6cli.errors import DataError, DeviceError


def test_cpu_and_auto():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type in (expected, "mps")


@pytest.mark.parametrize(
    ("spec", "message"),
    [("tpu", "unknown device 'tpu'; use auto, cpu, cuda, cuda:N or mps"), ("cuda:x", "unknown device 'cuda:x'")],
)
def test_unknown_device_names(spec, message):
    with pytest.raises(DeviceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve_device(spec)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_cuda():
    with pytest.raises(DeviceError, match="device 'cuda:7' requested but CUDA is not available here"):
        resolve_device("cuda:7")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_index_out_of_range():
    with pytest.raises(DeviceError, match="does not exist"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")


@pytest.mark.usefixtures("one_torch_thread")  # restores the count afterwards
def test_cpu_threads_policy(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.delenv("MLE6_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch.set_num_threads(2)
    assert configure_threads(cpu) == 2 and torch.get_num_threads() == 2  # torch's own choice stays
    torch.set_num_threads(1)
    assert configure_threads(cpu) == 1
    assert configure_threads(cpu, 2) == 2 and torch.get_num_threads() == 2
    monkeypatch.setenv("MLE6_THREADS", "3")
    assert configure_threads(cpu) == 3 and torch.get_num_threads() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setenv("MLE6_THREADS", "auto")
    assert configure_threads(cpu) == 2
    monkeypatch.delenv("MLE6_THREADS")
    torch.set_num_threads(2)
    assert configure_threads(torch.device("meta")) == 2  # not the CPU: left as it is
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("MLE6_THREADS", bad)
        with pytest.raises(DeviceError) as err:
            configure_threads(cpu)
        assert str(err.value) == f"MLE6_THREADS must be a whole number of at least 1 or 'auto', got '{bad}'"


@pytest.mark.usefixtures("one_torch_thread")
def test_training_commands_use_the_thread_policy(runner, app, monkeypatch, tmp_path, small):
    monkeypatch.setenv("MLE6_THREADS", "many")
    result = runner.invoke(app, ["train-cnn", "--data-dir", str(small), "--device", "cpu", "--out", "r"])
    assert result.exit_code == 1
    assert result.stderr == "Error: MLE6_THREADS must be a whole number of at least 1 or 'auto', got 'many'\n"
    assert not (tmp_path / "r").exists()
    monkeypatch.setenv("MLE6_THREADS", "1")
    torch.set_num_threads(2)
    args = ["--data-dir", str(small), "--device", "cpu", "--epochs", "1", "--batch-size", "48", "--out", "s"]
    assert runner.invoke(app, ["sweep-lr", "--lrs", "1e-3", *args]).exit_code == 0
    assert torch.get_num_threads() == 1
    assert json.loads((tmp_path / "s" / "config.json").read_text())["cpu_threads"] == 1


def test_set_seed_repeats_draws():
    set_seed(5)
    a = torch.rand(3)
    set_seed(5)
    assert torch.equal(a, torch.rand(3))


def _app_raising(exc: BaseException) -> typer.Typer:
    app = typer.Typer(cls=BoundaryGroup)

    @app.command()
    def boom(batch_size: int = 64) -> None:  # an OOM line suggests the option when the command has it
        raise exc

    @app.command()
    def other() -> None:  # a second command keeps typer from collapsing the group
        pass

    return app


@pytest.mark.parametrize(
    ("exc", "code", "line"),
    [
        (DataError("X_train.npy is missing"), 1, "Error: X_train.npy is missing"),
        (Interrupted(signal.SIGTERM, "stopped; resume with mle6 train-cnn --resume r"), 143, "Error: stopped;"),
        (Interrupted(signal.SIGINT, "stopped"), 130, "Error: stopped"),
        (
            RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"),
            1,
            "Error: the device ran out of memory; try a smaller --batch-size (or --device cpu)",
        ),
        (ValueError("boom"), 1, "Error: unexpected ValueError: boom (rerun with --debug for the traceback)"),
    ],
)
def test_boundary_turns_exceptions_into_one_line(exc, code, line):
    result = CliRunner().invoke(_app_raising(exc), ["boom"])
    assert result.exit_code == code
    assert result.stderr.startswith(line)
    assert len(result.stderr.strip().splitlines()) == 1


def test_boundary_broken_pipe_exits_quietly():
    """`mle6 ... | head`: the reader left; no 'unexpected BrokenPipeError' line."""
    result = CliRunner().invoke(_app_raising(BrokenPipeError(32, "Broken pipe")), ["boom"])
    assert result.exit_code == 1 and result.stderr == ""


def test_boundary_keyboard_interrupt_exits_130():
    result = CliRunner().invoke(_app_raising(KeyboardInterrupt()), ["boom"])
    assert result.exit_code == 130


def test_graceful_stop_sets_a_flag_instead_of_raising():
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with graceful_stop() as stop:
        assert not stop()
        signal.raise_signal(signal.SIGTERM)
        assert stop() and stop.signal_number == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):  # a second signal stops at once
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) == before[signal.SIGINT]  # Ctrl-C's handler is back
    # a process that was asked to stop takes no more SIGTERMs on its way out (engine.interrupt)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
