"""Batch machines: SIGKILL at any moment, one writer per folder, full disks, run folders that tell the truth."""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from mle6cli import files
from mle6cli.engine import runs
from mle6cli.engine.folder import LOCK
from mle6cli.engine.lock import RunLock
from mle6cli.engine.status import run_status
from mle6cli.tasks.classifier import sweep_lr, train_cnn
from tests.conftest import StopAfter, subprocess_env
from tests.mnist_helpers import TINY, subprocess_code, tiny_synthetic  # noqa: F401 (fixture)
from tests.signs_helpers import signs_options, train_args, write_layout

pytestmark = pytest.mark.usefixtures("one_torch_thread")

KILL_IN_SAVE = """
import os, signal
from mle6cli import files
_write, _count = files.atomic_write_bytes, [0]
def killing_write(path, data):
    if str(path).endswith("resume.pt"):
        _count[0] += 1
        if _count[0] == {n}:  # half a save: the temp file is written, the rename never happens
            tmp = path.with_name(f".{{path.name}}.tmp-{{os.getpid()}}")
            tmp.write_bytes(data[: len(data) // 2])
            os.kill(os.getpid(), signal.SIGKILL)
    return _write(path, data)
files.atomic_write_bytes = killing_write
"""


def _cli(args: list[str], prelude: str = "", sizes=None) -> subprocess.Popen:
    if sizes is not None:
        code = prelude + subprocess_code(args, sizes)
    else:
        code = prelude + f"from mle6cli.cli import app\napp({args!r}, prog_name='mle6')\n"
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env()
    )


def _killed_then_resumed(args, out, reference, names, rng, sizes=None):
    """SIGKILL a run at a seeded random moment (after some epoch lines, or inside a save), resume it,
    and compare its files with an uninterrupted run's, byte for byte."""
    if rng.random() < 0.5:
        proc = _cli([*args, "--out", str(out)], KILL_IN_SAVE.format(n=rng.randint(1, 3)), sizes)
        proc.communicate(timeout=300)
        where = "inside a save"
    else:
        proc = _cli([*args, "--out", str(out)], sizes=sizes)
        for _ in range(rng.randint(1, 3)):
            proc.stdout.readline()
        time.sleep(rng.uniform(0.0, 0.3))
        proc.kill()
        proc.communicate(timeout=60)
        where = "after some epochs"
    assert proc.returncode == -signal.SIGKILL, where
    assert not (out / "summary.json").exists()  # never looks finished when it is not
    status = run_status(out)
    assert status["status"] in ("crashed", "started"), status
    resumed = _cli([args[0], "--resume", str(out), "-q"], sizes=sizes)
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, f"{where}: {err}"
    for name in names:
        assert (out / name).read_bytes() == (reference / name).read_bytes(), f"{name} ({where})"
    assert run_status(out)["status"] == "finished"
    assert not [p.name for p in out.rglob(".*tmp*")]  # no half-written temp file is left


@pytest.mark.slow
def test_sigkill_then_resume_train_cnn_and_sweep_lr(small, tmp_path):
    rng = random.Random(15)

    def without_out(args):
        at = args.index("--out")
        return args[:at] + args[at + 2 :]

    cnn = without_out(["train-cnn", *train_args(small, tmp_path, "--seed", "3", epochs=5)])
    sweep = without_out(["sweep-lr", "--lrs", "1e-2,1e-3", *train_args(small, tmp_path, "--seeds", "1-2", epochs=5)])
    for name, args, files_ in (
        ("cnn", cnn, ["metrics.csv"]),
        ("sweep", sweep, ["lr_1e-02/seed_1/metrics.csv", "lr_1e-03/seed_2/metrics.csv", "sweep.csv"]),
    ):
        ref = tmp_path / f"{name}-ref"
        done = _cli([*args, "--out", str(ref), "-q"])
        assert done.wait(timeout=300) == 0
        for i in range(2):
            _killed_then_resumed(args, tmp_path / f"{name}-{i}", ref, files_, rng)


@pytest.mark.slow
def test_sigkill_then_resume_train_ae(tmp_path):
    rng = random.Random(16)
    args = ["train-ae", "--synthetic", "--latent-dims", "3,4", "--epochs", "4", "--batch-size", "64", "--device", "cpu"]
    ref = tmp_path / "ref"
    assert _cli([*args, "--out", str(ref), "-q"], sizes=TINY).wait(timeout=300) == 0
    for i in range(2):
        _killed_then_resumed(args, tmp_path / f"cut{i}", ref, ["metrics_d3.csv", "metrics_d4.csv"], rng, TINY)


# ---------------------------------------------------------------- one writer per folder


@pytest.mark.slow
def test_two_processes_one_folder(small, tmp_path):
    args = ["train-cnn", *train_args(small, tmp_path / "r", epochs=400)]
    first = _cli(args)
    line = first.stdout.readline()
    assert line.startswith("epoch 1/"), line + first.stderr.read()
    try:
        second = _cli([*args, "--overwrite"])  # the same --out: refused at once, nothing touched
        _, err = second.communicate(timeout=120)
        assert second.returncode == 1
        assert err.strip() == (
            f"Error: run folder {tmp_path / 'r'} is in use by process {first.pid}; "
            "wait for it, or choose another folder"
        )
        assert (tmp_path / "r" / "config.json").is_file()
        status = json.loads(subprocess.run(
            [sys.executable, "-m", "mle6cli", "runs", "status", str(tmp_path / "r"), "--json"],
            capture_output=True, text=True, env=subprocess_env(), check=True,
        ).stdout)  # fmt: skip
        assert status["status"] == "running" and status["pid"] == first.pid
    finally:
        first.kill()
        first.communicate(timeout=60)
    assert (tmp_path / "r" / LOCK).exists()  # a stale lock, left by SIGKILL, blocks nobody
    assert run_status(tmp_path / "r")["status"] == "crashed"
    resumed = _cli(["train-cnn", "--resume", str(tmp_path / "r")])
    try:
        line = resumed.stdout.readline()
        assert line.startswith("epoch "), line + resumed.stderr.read()
    finally:
        resumed.kill()
        resumed.communicate(timeout=60)


def test_the_lock_is_held_and_released_in_process(small, tmp_path):
    run = runs.Run.open("train-cnn", {"seeds": [1]}, out=tmp_path / "r")
    run.begin(device="cpu", data={})
    with pytest.raises(runs.RunDirError, match="is in use by process"):
        RunLock.take(tmp_path / "r")
    assert RunLock.held(tmp_path / "r") == os.getpid()
    run.release()
    assert RunLock.held(tmp_path / "r") is None
    RunLock.take(tmp_path / "r").release()


# ---------------------------------------------------------------- disks and permissions


def test_a_full_disk_during_a_save_keeps_the_last_good_state(small, tmp_path, monkeypatch):
    options = signs_options(small, epochs=4, seeds=[2])
    train_cnn(options, out=tmp_path / "ref")
    saves = {"n": 0}
    real_fsync = files.os.fsync

    def full_disk(fd):
        if os.readlink(f"/proc/self/fd/{fd}").split("/")[-1].startswith(".resume.pt"):
            saves["n"] += 1
            if saves["n"] == 4:  # after epoch 2's save
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(files.os, "fsync", full_disk)
    with pytest.raises(files.FileError) as err:
        train_cnn(options, out=tmp_path / "cut")
    assert str(err.value) == f"no space left on the device while writing {tmp_path / 'cut' / 'resume.pt'}"
    monkeypatch.setattr(files.os, "fsync", real_fsync)
    state = files.load_torch(tmp_path / "cut" / "resume.pt")  # the last good state is whole
    assert min(len(m["state"]["history"]) for m in state["members"]) == 2
    assert not list((tmp_path / "cut").glob(".*tmp*")) and not (tmp_path / "cut" / "summary.json").exists()
    train_cnn({}, resume=tmp_path / "cut")
    assert (tmp_path / "cut" / "metrics.csv").read_bytes() == (tmp_path / "ref" / "metrics.csv").read_bytes()


def test_a_real_small_filesystem(runner, app, small, tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.decode().strip()})")
    try:
        result = runner.invoke(app, ["sweep-lr", "--lrs", "1e-2,1e-3", *train_args(small, disk / "r")])
        assert result.exit_code == 1
        assert result.stderr.strip().startswith("Error: no space left on the device while writing ")
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
        assert not (disk / "r" / "summary.json").exists()
    finally:
        subprocess.run(["umount", str(disk)], check=False)


@pytest.mark.parametrize("case", ["file in the way", "read-only folder"])
def test_an_unwritable_run_folder_is_refused_before_training(runner, app, small, tmp_path, case, monkeypatch):
    if case == "file in the way":
        (tmp_path / "blocker").write_text("a file")
        out, expected = tmp_path / "blocker" / "run", f"cannot create run folder {tmp_path / 'blocker' / 'run'}"
    else:
        (tmp_path / "ro").mkdir(mode=0o555)
        real_access = os.access
        # root may write anywhere: ask the permission check as an ordinary user would be answered
        monkeypatch.setattr(
            os, "access", lambda p, mode: False if str(p) == str(tmp_path / "ro") else real_access(p, mode)
        )
        out, expected = tmp_path / "ro" / "run", f"cannot write run folder {tmp_path / 'ro' / 'run'}: permission denied"
    result = runner.invoke(app, ["train-cnn", *train_args(small, out)])
    assert result.exit_code == 1 and result.stderr.startswith(f"Error: {expected}")
    assert "epoch" not in result.stdout


# ---------------------------------------------------------------- run folders that tell the truth


@pytest.mark.usefixtures("tiny_synthetic")
@pytest.mark.slow
def test_overwrite_clears_the_commands_own_outputs_and_nothing_else(runner, app, tmp_path):
    base = ["train-ae", "--synthetic", "--epochs", "1", "--batch-size", "64", "--device", "cpu", "--out", "r", "-q"]
    assert runner.invoke(app, [*base, "--latent-dims", "3"]).exit_code == 0
    (tmp_path / "r" / "notes.txt").write_text("mine")
    assert runner.invoke(app, [*base, "--latent-dims", "5", "--overwrite"]).exit_code == 0
    names = sorted(p.name for p in (tmp_path / "r").iterdir())
    assert "ae_d3.pt" not in names and "metrics_d3.csv" not in names and "notes.txt" in names
    result = runner.invoke(app, ["latent-plot", "--run", "r", "--device", "cpu"])
    assert result.exit_code == 1 and "has no d=3 model (it has d=5)" in result.stderr


@pytest.mark.slow
def test_sweep_overwrite_removes_the_old_lr_folders(runner, app, small, tmp_path):
    first = runner.invoke(app, ["sweep-lr", "--lrs", "1e-2,1e-3", *train_args(small, tmp_path / "s", epochs=1)])
    assert first.exit_code == 0
    again = ["sweep-lr", "--lrs", "1e-4", *train_args(small, tmp_path / "s", "--overwrite", epochs=1)]
    assert runner.invoke(app, again).exit_code == 0
    assert sorted(p.name for p in (tmp_path / "s").glob("lr_*")) == ["lr_1e-04"]


def test_resume_refuses_options_that_change_the_run(runner, app, small, tmp_path):
    with pytest.raises(Exception):  # noqa: B017 (Interrupted: what matters is the folder it leaves)
        train_cnn(signs_options(small, epochs=3), out=tmp_path / "cut", stop=StopAfter(2))
    result = runner.invoke(app, ["train-cnn", "--resume", str(tmp_path / "cut"), "--epochs", "10", "--lr", "0.5"])
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: mle6 train-cnn: Invalid value for '--resume': --lr, --epochs would change the run being resumed; "
        "a resumed run keeps its options (only --device, --save-every, --tensorboard may change)\n"
    )
    same = runner.invoke(app, ["train-cnn", "--resume", str(tmp_path / "cut"), "--epochs", "3", "--device", "cpu"])
    assert same.exit_code == 0, same.output  # the same value, and the device: allowed


def test_resume_refuses_other_data_of_the_same_size(small, tmp_path):
    import numpy as np

    with pytest.raises(Exception):  # noqa: B017
        train_cnn(signs_options(small), out=tmp_path / "cut", stop=StopAfter(2))
    arrays = {p.stem: np.load(p) for p in small.glob("*.npy")}
    arrays["X_val"] = arrays["X_val"][::-1].copy()  # same sizes, other contents
    write_layout(small, arrays)
    with pytest.raises(runs.RunDirError, match="the data changed since the run .* started \\(other contents\\)"):
        train_cnn({}, resume=tmp_path / "cut")


def test_the_data_fingerprint_is_of_the_stored_arrays(small):
    """SIGNS is fingerprinted as stored (uint8, a quarter of the float copies' bytes): any pixel counts."""
    import numpy as np

    from mle6cli.data.signs import load_signs
    from mle6cli.data.splits import fingerprint
    from mle6cli.tasks.jobs import fingerprint as job_fingerprint

    data = load_signs(small, "cpu")
    arrays = {p.stem: np.load(p) for p in small.glob("*.npy")}
    stored = [
        arrays[f"{kind}_{split}"].astype(dtype)
        for split in ("train", "val", "test")
        for kind, dtype in (("X", np.uint8), ("Y", np.int64))
    ]
    assert job_fingerprint(data) == data.fingerprint == fingerprint(stored)
    assert data.fingerprint.startswith("v2:") and len(data.fingerprint) == 3 + 32
    stored[2] = stored[2].copy()
    stored[2][0, 0, 0, 0] ^= 1
    assert fingerprint(stored) != data.fingerprint


def test_a_fingerprint_of_the_earlier_kind_is_not_compared(small, tmp_path):
    """A run begun by a version that hashed the float copies still resumes (sizes are still checked)."""
    import json

    with pytest.raises(Exception):  # noqa: B017
        train_cnn(signs_options(small, epochs=2), out=tmp_path / "cut", stop=StopAfter(2))
    config = tmp_path / "cut" / "config.json"
    document = json.loads(config.read_text())
    document["data"]["fingerprint"] = "0" * 32  # the earlier, unprefixed kind
    config.write_text(json.dumps(document))
    summary = train_cnn({}, resume=tmp_path / "cut")
    assert summary["final"]["epoch"] == 2


def test_run_status_tells_each_state(small, tmp_path, runner, app):
    with pytest.raises(runs.RunDirError, match="is not a run folder"):
        run_status(tmp_path)
    with pytest.raises(Exception):  # noqa: B017
        sweep_lr(dict(signs_options(small), lrs=[1e-3]), out=tmp_path / "i", stop=StopAfter(4))
    assert run_status(tmp_path / "i")["status"] == "interrupted"
    assert run_status(tmp_path / "i")["epochs_done"] == 1
    train_cnn(signs_options(small, epochs=1), out=tmp_path / "f")
    assert run_status(tmp_path / "f")["status"] == "finished"
    human = runner.invoke(app, ["runs", "status", str(tmp_path / "i")])
    assert human.exit_code == 0 and f"continue with: mle6 sweep-lr --resume {tmp_path / 'i'}" in human.stdout
    never = runner.invoke(app, ["train-cnn", "--resume", str(tmp_path)])
    assert never.exit_code == 1 and "no checkpoint in" in never.stderr


@pytest.mark.slow
def test_run_all_resumes_the_whole_sheet(tmp_path):
    from mle6cli.tasks import sheet
    from tests.test_run_all import tiny_run_all

    calls = {"n": 0}
    real = sheet._job

    def stop_in_the_autoencoders(run, spec, *args, **kwargs):
        if spec.name == "train-ae" and calls["n"] == 0:
            calls["n"] += 1
            raise sheet.Interrupted(signal.SIGTERM, "stopped")
        return real(run, spec, *args, **kwargs)

    mp = pytest.MonkeyPatch()
    mp.setattr(sheet, "_job", stop_in_the_autoencoders)
    try:
        cut = tiny_run_all("--out", str(tmp_path / "sheet"))
    finally:
        mp.undo()
    assert cut.exit_code == 143
    assert cut.stderr.strip().endswith(f"Continue with: mle6 run-all --resume {tmp_path / 'sheet'}")
    assert (tmp_path / "sheet" / "sweep-lr" / "summary.json").is_file() and not (
        tmp_path / "sheet" / "report.html"
    ).exists()
    sweep_before = (tmp_path / "sheet" / "sweep-lr" / "summary.json").read_bytes()
    resumed = tiny_run_all("--resume", str(tmp_path / "sheet"), "--json")
    assert resumed.exit_code == 0, resumed.output
    assert (tmp_path / "sheet" / "report.html").is_file()
    assert (tmp_path / "sheet" / "sweep-lr" / "summary.json").read_bytes() == sweep_before  # kept, not rerun


def test_a_repeated_sigterm_does_not_cut_the_save_short_but_a_second_ctrl_c_does():
    """torchrun's agent sends every rank a SIGTERM when the first one exits; a rank still saving
    must finish. Ctrl-C twice stays the way to give up on the orderly path."""
    import os
    import signal

    from mle6cli.engine.interrupt import graceful_stop

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with graceful_stop() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)  # the second: ignored
        assert stop() and stop.signal_number == signal.SIGTERM
    # on its way out the process takes no more SIGTERMs (torchrun's agent sends one when a rank exits)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    signal.signal(signal.SIGTERM, before[0])
    with graceful_stop():
        pass
    assert signal.getsignal(signal.SIGTERM) == before[0]  # no signal, no stop: the handler is given back
    with pytest.raises(KeyboardInterrupt), graceful_stop() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.signal_number == signal.SIGINT
        os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) == before[1]  # Ctrl-C acts as before; SIGTERM is ignored from here
    signal.signal(signal.SIGTERM, before[0])


def test_a_signal_after_the_last_step_still_stops_the_run(small, tmp_path, monkeypatch):
    """A SIGTERM caught after the loop's last look at its stop (while the last epoch is logged) is not
    lost: the run saves, stops with 143, and its resume ends as the uninterrupted run."""
    from mle6cli.engine import strategies
    from mle6cli.engine.interrupt import Interrupted

    options = signs_options(small, epochs=2, seeds=[3])
    expected = train_cnn(options, out=tmp_path / "ref")
    fit_groups = strategies.fit_groups

    def then_a_signal(*args, **kwargs):
        stopped = fit_groups(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # the handlers are still in place: caught, answered by nobody yet
        return stopped

    monkeypatch.setattr(strategies, "fit_groups", then_a_signal)
    before = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(Interrupted) as err:
            train_cnn(options, out=tmp_path / "cut")
    finally:
        signal.signal(signal.SIGTERM, before)
    assert err.value.exit_code == 143
    assert run_status(tmp_path / "cut")["status"] == "interrupted"
    monkeypatch.setattr(strategies, "fit_groups", fit_groups)
    summary = train_cnn({}, resume=tmp_path / "cut")
    assert (tmp_path / "cut" / "metrics.csv").read_bytes() == (tmp_path / "ref" / "metrics.csv").read_bytes()
    assert summary["test_acc"] == expected["test_acc"] and summary["resumed"] == 1
