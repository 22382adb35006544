"""mle6 tune: the search space, the study (real Optuna), fused trials against trials trained alone, pruning
inside the fused batch, several processes on one journal, resume."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from mle6cli.errors import ConfigError
from mle6cli.tasks.specs import TRAIN_AE, TRAIN_CNN
from mle6cli.tasks.tune_space import parse_space, tunable_axes
from tests.conftest import StopAfter, subprocess_env
from tests.mnist_helpers import tiny_synthetic  # noqa: F401 (a fixture)
from tests.test_slurm import slurm  # noqa: F401 (a fixture: a one-node SLURM on localhost)

optuna = pytest.importorskip("optuna")  # a dev dependency: `make install` brings it

CNN_AXES = tunable_axes(TRAIN_CNN.config)
AE_AXES = tunable_axes(TRAIN_AE.config)


# ---------------------------------------------------------------- the space


@pytest.mark.parametrize(
    "texts, axes, expected",
    [
        (["lr=log:1e-5..1e-1"], CNN_AXES, [("lr", "log", 1e-5, 1e-1, ())]),
        (["lr=float: 1e-4 .. 1e-2"], CNN_AXES, [("lr", "float", 1e-4, 1e-2, ())]),
        (["lr=choice:1e-3,1e-2"], CNN_AXES, [("lr", "choice", None, None, (1e-3, 1e-2))]),
        (
            ["latent-dim=int:2..64", "lr=log:1e-4..1e-2"],
            AE_AXES,
            [("latent-dim", "int", 2, 64, ()), ("lr", "log", 1e-4, 1e-2, ())],
        ),
        (["latent-dim=choice:3,10,100"], AE_AXES, [("latent-dim", "choice", None, None, (3, 10, 100))]),
    ],
)
def test_good_spaces(texts, axes, expected):
    dims = parse_space(texts, axes, "tune x")
    assert [(d.name, d.kind, d.low, d.high, d.choices) for d in dims] == expected
    assert all(isinstance(v, int) for d in dims if d.axis.rule.whole for v in (d.low, d.high, *d.choices) if v)


BAD_SPACES = [
    (
        ["latent-dim=int:2..8"],
        CNN_AXES,
        "--space latent-dim: mle6 tune x has no member axis 'latent-dim' (its axes: lr, weight-decay)",
    ),
    (["seed=int:0..4"], CNN_AXES, "--space seed: mle6 tune x has no member axis 'seed' (its axes: lr, weight-decay)"),
    (["lr"], CNN_AXES, "--space 'lr': give NAME=KIND:LOW..HIGH, e.g. lr=log:1e-5..1e-1"),
    (
        ["lr=1e-5..1e-1"],
        CNN_AXES,
        "--space lr: unknown kind '1e-5..1e-1'; give log:, float:, int: or choice: before the range",
    ),
    (["lr=log:1e-1..1e-5"], CNN_AXES, "--space lr: the range 1e-1..1e-5 runs backwards"),
    (["lr=log:1e-3..1e-3"], CNN_AXES, "--space lr: the range 1e-3..1e-3 is empty"),
    (["lr=log:0..1e-1"], CNN_AXES, "--space lr: log: needs bounds above 0, got 0"),
    (["lr=float:-1..1"], CNN_AXES, "--space lr: the learning rate must be a positive number, got -1"),
    (["lr=log:1e-5"], CNN_AXES, "--space lr: give a range log:LOW..HIGH, e.g. lr=log:1e-5..1e-1"),
    (["lr=log:a..1"], CNN_AXES, "--space lr: 'a' is not a number"),
    (["lr=int:1..3"], CNN_AXES, "--space lr: the learning rate takes log: or float:, not int:"),
    (["latent-dim=log:2..64"], AE_AXES, "--space latent-dim: latent size takes int:, not log:"),
    (["latent-dim=int:0..8"], AE_AXES, "--space latent-dim: latent size must be between 1 and 4096, got 0"),
    (["latent-dim=int:2.5..8"], AE_AXES, "--space latent-dim: '2.5' is not a whole number"),
    (
        ["latent-dim=choice:"],
        AE_AXES,
        "--space latent-dim: choice: needs at least one value, e.g. latent-dim=choice:a,b",
    ),
    (["latent-dim=choice:3,3"], AE_AXES, "--space latent-dim: latent size 3 is listed twice"),
    (["lr=log:1e-4..1e-2", "lr=log:1e-3..1e-1"], CNN_AXES, "--space lr is given twice"),
    ([], CNN_AXES, "give the search space, e.g. --space lr=log:1e-5..1e-1 --space weight-decay=log:1e-6..1e-2"),
]  # noqa: E501


@pytest.mark.parametrize("texts, axes, message", BAD_SPACES)
def test_bad_spaces(texts, axes, message):
    with pytest.raises(ConfigError) as err:
        parse_space(texts, axes, "tune x")
    assert str(err.value) == message


PREFIX = "Error: mle6 tune train-cnn: Invalid value for "


@pytest.mark.parametrize(
    "args, message",
    [
        (["--space", "latent-dim=int:2..8"],
         PREFIX + "'--space': --space latent-dim: mle6 tune train-cnn has no member axis 'latent-dim' "
                  "(its axes: lr, weight-decay)"),
        (["--space", "lr=log:1e-1..1e-5"], PREFIX + "'--space': --space lr: the range 1e-1..1e-5 runs backwards"),
        (["--space", "lr=log:0..1"], PREFIX + "'--space': --space lr: log: needs bounds above 0, got 0"),
        ([], PREFIX + "'--space': give the search space, e.g. --space lr=log:1e-5..1e-1 "
                      "--space weight-decay=log:1e-6..1e-2"),
        (["--space", "lr=log:1e-4..1e-1", "--trials", "0"],
         PREFIX + "'--trials': trials must be between 1 and 100000, got 0"),
        (["--space", "lr=log:1e-4..1e-1", "--sampler", "grid"],
         PREFIX + "'--sampler': --sampler grid needs int: or choice: axes; --space lr is a continuous range "
         "(list its values, e.g. lr=choice:1e-4,1e-3,1e-2)"),
        (["--space", "lr=log:1e-4..1e-1", "--storage", "nowhere/study.journal"],
         "Error: --storage {cwd}/nowhere/study.journal: the folder {cwd}/nowhere does not exist"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_exit_2_and_nothing_written(runner, app, tmp_path, args, message):
    out = tmp_path / "run"
    message = message.format(cwd=Path.cwd())  # a journal's path is recorded absolute
    result = runner.invoke(app, ["tune", "train-cnn", "--synthetic", "--out", str(out), *args])
    assert result.exit_code == 2, result.output
    assert result.stderr == message + "\n"
    assert not out.exists()
    if "--storage" not in args:  # what a job script checks before it launches anything
        result = runner.invoke(app, ["tune", "train-cnn", "--synthetic", "--out", str(out), *args, "--print-config"])
        assert (result.exit_code, result.stderr, result.stdout) == (2, message + "\n", "")


def test_a_database_that_cannot_be_opened_is_one_line_exit_2_and_nothing_written(runner, app, tmp_path):
    pytest.importorskip("sqlalchemy")
    out, url = tmp_path / "run", f"sqlite:///{tmp_path / 'nowhere' / 'study.db'}"
    result = runner.invoke(app, ["tune", "train-cnn", "--synthetic", "--space", "lr=log:1e-4..1e-1", "--storage", url,
                                 "--out", str(out)])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        f"Error: --storage {url}: cannot open it (OperationalError: (sqlite3.OperationalError) unable to open "
        "database file)\n"
    )
    assert not out.exists() and not (tmp_path / "nowhere").exists()


def test_a_library_caller_meets_the_same_checks_as_a_usage_error(small, tmp_path):
    from mle6cli.tasks.tune_space import SpaceError

    with pytest.raises(SpaceError) as err:
        _tune(_options(small, space=["lr=log:1e-1..1e-5"]), out=tmp_path / "run")
    assert str(err.value) == "--space lr: the range 1e-1..1e-5 runs backwards" and err.value.exit_code == 2
    assert not (tmp_path / "run").exists()


def test_without_optuna_the_command_says_what_to_install(runner, app, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # as if it were not installed
    result = runner.invoke(app, ["tune", "train-cnn", "--synthetic", "--space", "lr=log:1e-4..1e-1"])
    assert result.exit_code == 1
    assert result.stderr == "Error: mle6 tune needs Optuna: pip install 'mle6cli[tune]'\n"


# ---------------------------------------------------------------- the study


def _options(small, **changes) -> dict:
    options = {
        "data_dir": str(small), "epochs": 2, "batch_size": 16, "seeds": [1], "device": "cpu", "trials": 2,
        "parallel": 2, "space": ["lr=log:1e-4..1e-1"], "sampler": "random", "pruner": "none",
    }  # fmt: skip
    return dict(options, **changes)


# the study every cut one must end as: 8 trials of 4 epochs, 4 at a time, pruned by Hyperband
CUT_STUDY = {"epochs": 4, "trials": 8, "parallel": 4, "sampler": "tpe", "pruner": "hyperband"}


@pytest.fixture(scope="module")
def study_data(tmp_path_factory):
    """One small SIGNS folder for the tests that compare a cut study with `reference_study`."""
    from tests.signs_helpers import write_layout

    return write_layout(tmp_path_factory.mktemp("tune") / "small")


@pytest.fixture(scope="module")
def reference_study(study_data, tmp_path_factory):
    """(folder, summary) of CUT_STUDY uninterrupted, in process at one thread: the bytes a CLI run at one
    thread writes too, so every cut study, in process or a killed subprocess, is compared with this one."""
    from tests.conftest import one_thread

    out = tmp_path_factory.mktemp("tune") / "ref"
    with one_thread():
        summary = _tune(_options(study_data, **CUT_STUDY), out=out)
    return out, summary


def _tune(options, **run):
    from mle6cli.tasks.specs import RunParams
    from mle6cli.tasks.tune_targets import TUNE_SPECS

    return TUNE_SPECS["train-cnn"].run(options, RunParams(**run))


def _as_a_server(monkeypatch) -> None:
    """A sqlite database opened as a database server is: with no file to lock."""
    from mle6cli.tasks import tune

    opened = tune.open_storage
    monkeypatch.setattr(tune, "open_storage", lambda *args: (opened(*args)[0], None))


def _rows(path) -> list[dict]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


def _weights(path):
    from mle6cli.files import load_torch

    return load_torch(path)["state_dict"]


def _same_weights(a, b) -> bool:
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and a[k].equal(b[k]) for k in a)


@pytest.mark.usefixtures("one_torch_thread")
def test_a_fused_trial_equals_the_same_configuration_trained_alone(small, tmp_path):
    from mle6cli.tasks.classifier import train_cnn

    space = ["lr=log:1e-4..1e-1", "weight-decay=log:1e-3..1e-1"]  # decays large enough to change the weights
    summary = _tune(_options(small, space=space), out=tmp_path / "study")
    study = tmp_path / "study"
    rows = _rows(study / "trials.csv")
    assert [r["number"] for r in rows] == ["0", "1"] and {r["state"] for r in rows} == {"complete"}
    assert rows[0]["weight_decay"] != rows[1]["weight_decay"]  # two members, two decays, one fused model
    for row in rows:  # each trial was member 0 or 1 of one fused model
        alone = tmp_path / f"alone{row['number']}"
        train_cnn({"data_dir": str(small), "lr": float(row["lr"]), "weight_decay": float(row["weight_decay"]),
                   "epochs": 2, "batch_size": 16, "seed": 1, "device": "cpu"}, out=alone)  # fmt: skip
        assert (study / "trials" / row["number"] / "metrics.csv").read_bytes() == (alone / "metrics.csv").read_bytes()
    best = tmp_path / f"alone{summary['best_trial']}"
    assert _same_weights(_weights(study / "train-cnn" / "model.pt"), _weights(best / "model.pt"))
    alone_summary = __import__("json").loads((best / "summary.json").read_text())
    assert summary["test_acc"] == alone_summary["test_acc"] and summary["test_loss"] == alone_summary["test_loss"]
    assert summary["best_value"] == max(float(r["value"]) for r in rows)


@pytest.mark.usefixtures("one_torch_thread")
def test_the_best_trial_is_a_run_that_predict_and_evaluate_take(small, tmp_path, runner, app):
    summary = _tune(_options(small), out=tmp_path / "study")
    result = runner.invoke(app, ["evaluate", str(tmp_path / "study" / "train-cnn"), "--json"])
    assert result.exit_code == 0, result.output
    evaluation = __import__("json").loads(result.stdout)
    assert evaluation["accuracy"] == summary["test_acc"]


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_a_pruned_trial_leaves_the_batch_without_changing_the_others(small, tmp_path):
    options = _options(small, epochs=4, trials=8, parallel=4)
    pruned = _tune(dict(options, pruner="hyperband"), out=tmp_path / "pruned")
    full = _tune(options, out=tmp_path / "full")
    assert pruned["states"]["pruned"] > 0 and full["states"]["pruned"] == 0
    assert pruned["member_epochs"] < full["member_epochs"]
    assert pruned["figures"] == {"history": "history.png", "objective_lr": "objective_lr.png", "curves": "curves.png"}
    for name in pruned["figures"].values():
        assert (tmp_path / "pruned" / name).read_bytes().startswith(b"\x89PNG")
    rows = _rows(tmp_path / "pruned" / "trials.csv")
    rounds = [rows[i : i + 4] for i in range(0, 8, 4)]
    assert any({r["state"] for r in batch} == {"pruned", "complete"} for batch in rounds)  # both in one fused batch
    for row in rows:  # the random sampler draws the same trials; pruning only cuts some short
        mine = (tmp_path / "pruned" / "trials" / row["number"] / "metrics.csv").read_bytes()
        theirs = (tmp_path / "full" / "trials" / row["number"] / "metrics.csv").read_bytes()
        if row["state"] == "complete":
            assert mine == theirs
        else:
            assert row["state"] == "pruned" and theirs.startswith(mine) and int(row["epochs"]) < 4


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize(
    "stop_at, storage",  # the first round's first epoch; the second round; the study in a database
    [(3, None), (21, None), ("between rounds", None), (21, "sqlite"), (3, "server")],
)
def test_a_cut_study_resumes_to_the_same_trials_and_best_model(
    study_data, reference_study, tmp_path, stop_at, storage, monkeypatch
):
    from mle6cli.engine.interrupt import Interrupted

    options = _options(study_data, **CUT_STUDY)
    ref, expected = reference_study  # in its own journal
    if storage is not None:
        pytest.importorskip("sqlalchemy")
        options["storage"] = f"sqlite:///{tmp_path / 'study.db'}"
        if storage == "server":
            _as_a_server(monkeypatch)
    cut = tmp_path / "cut"
    if stop_at == "between rounds":  # true once the first round is told: asked right after it
        stop = (cut / "trials.csv").is_file
    else:
        stop = StopAfter(stop_at)
    with pytest.raises(Interrupted) as err:
        _tune(options, out=cut, stop=stop)
    assert f"Continue with: mle6 tune train-cnn --resume {cut}" in str(err.value)
    if stop_at == "between rounds":
        assert str(err.value).startswith("interrupted between rounds; ") and len(_rows(cut / "trials.csv")) == 4
    summary = _tune({}, resume=cut)
    assert (cut / "trials.csv").read_bytes() == (ref / "trials.csv").read_bytes()
    assert (cut / "train-cnn" / "model.pt").read_bytes() == (ref / "train-cnn" / "model.pt").read_bytes()
    assert (summary["best_trial"], summary["test_acc"]) == (expected["best_trial"], expected["test_acc"])
    assert summary["resumed"] == 1


def _storage(kind: str, tmp_path: Path) -> tuple[str, object]:
    """--storage of a journal file or a sqlite database, and the same storage as Optuna opens it (the oracle)."""
    if kind == "sqlite":
        pytest.importorskip("sqlalchemy")
        url = f"sqlite:///{tmp_path / 'shared.db'}"
        return url, url
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    journal = str(tmp_path / "shared.journal")
    return journal, JournalStorage(JournalFileBackend(journal))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_two_processes_share_one_storage_and_run_n_trials_once(small, tmp_path, kind):
    storage, oracle = _storage(kind, tmp_path)
    args = ["--data-dir", str(small), "--epochs", "2", "--batch-size", "16", "--seed", "1", "--device", "cpu",
            "--trials", "6", "--parallel", "2", "--space", "lr=log:1e-4..1e-1", "--storage", storage,
            "--quiet"]  # fmt: skip
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "mle6cli", "tune", "train-cnn", *args, "--out", str(tmp_path / f"p{i}")],
            env=subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
    trials = optuna.load_study(study_name="mle6-train-cnn", storage=oracle).get_trials()
    assert sorted(t.number for t in trials) == list(range(6))  # none asked past --trials
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)  # none left running
    owners = {t.user_attrs["run"] for t in trials}
    assert owners <= {str(tmp_path / "p0"), str(tmp_path / "p1")}
    # each trial trained by one process, once (a process that started late may have found none left)
    trained = [n for i in range(2) for n in (tmp_path / f"p{i}").glob("trials/*")]
    assert sorted(int(p.name) for p in trained) == list(range(6))


@pytest.mark.usefixtures("one_torch_thread")
def test_a_trial_asked_past_the_total_on_a_database_server_is_never_trained_nor_counted(small, tmp_path, monkeypatch):
    pytest.importorskip("sqlalchemy")
    import json

    from mle6cli.engine.events import Events
    from mle6cli.engine.interrupt import Interrupted
    from mle6cli.tasks.listing import describe

    url = f"sqlite:///{tmp_path / 'study.db'}"
    _as_a_server(monkeypatch)
    ask, rivals = optuna.study.Study.ask, []

    def race(study, *args, **kwargs):  # another process counted the same trials and asks first
        if not rivals:
            rivals.append(ask(optuna.load_study(study_name="mle6-train-cnn", storage=url)))
            rivals[0].set_user_attr("run", "elsewhere")
            rivals[0].study.tell(rivals[0], -1.0)  # trained there, worse than any accuracy
        return ask(study, *args, **kwargs)

    monkeypatch.setattr(optuna.study.Study, "ask", race)
    notes, out = [], tmp_path / "study"
    with pytest.raises(Interrupted):  # 2 trials, 2 a round; cut while its round trains, after the race
        _tune(_options(small, storage=url), out=out, stop=StopAfter(3))
    summary = _tune({}, resume=out, events=Events(note=notes.append))
    assert summary["resumed"] == 1
    trials = optuna.load_study(study_name="mle6-train-cnn", storage=url).get_trials()
    assert [(t.number, t.state.name, t.user_attrs.get("run")) for t in trials] == [
        (0, "COMPLETE", "elsewhere"), (1, "COMPLETE", str(out)), (2, "FAIL", None)
    ]  # fmt: skip
    assert trials[2].user_attrs == {"surplus": True} and trials[2].params == {}  # never drawn
    assert sorted(p.name for p in (out / "trials").iterdir()) == ["1"]  # trained: this process's one trial
    assert [r["number"] for r in _rows(out / "trials.csv")] == ["0", "1"]
    assert summary["trials"] == 2 and summary["states"] == {"complete": 2, "pruned": 0, "diverged": 0, "failed": 0}
    assert summary["best_trial"] == 1 and summary["member_epochs"] == 2  # trial 1's epochs; 0 reported none here
    assert json.loads((out / "summary.json").read_text())["trials"] == 2
    assert notes[-1] == "trials: 2/2 done (0 pruned, 0 diverged), 0 running"
    assert describe(out)["headline"].startswith("best trial 1 of 2, ")  # mle6 runs


def test_a_trial_s_place_in_the_study_leaves_out_those_already_surplus():
    from types import SimpleNamespace

    from mle6cli.tasks.tune_study import surplus

    def trials(*marked):  # trials 0..4, those numbered in `marked` found surplus
        return [SimpleNamespace(number=n, user_attrs={"surplus": True} if n in marked else {}) for n in range(5)]

    assert [surplus(trials(), n, 3) for n in range(5)] == [False, False, False, True, True]
    # a process of --trials 4 after one of --trials 2 found trial 2 surplus: 3 is the study's third, 4 its fourth
    assert [surplus(trials(2), n, 4) for n in (3, 4)] == [False, False]
    assert surplus(trials(2), 4, 3) and not surplus(trials(2), 3, 3)
    # while trial 2 is not yet found surplus it is counted: a study may stop one short, never go past --trials
    assert surplus(trials(), 4, 4)


@pytest.mark.usefixtures("one_torch_thread", "tiny_synthetic")
def test_tune_train_ae_searches_lr_and_latent_size_on_a_held_out_split(runner, app, tmp_path):
    out = tmp_path / "ae"
    args = ["tune", "train-ae", "--synthetic", "--epochs", "1", "--batch-size", "64", "--trials", "2",
            "--parallel", "2",
            "--space", "lr=log:1e-3..1e-2", "--space", "latent-dim=int:2..8", "--space", "weight-decay=float:0..1e-3",
            "--pruner", "none", "--sampler", "random",
            "--device", "cpu", "--out", str(out), "--json"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = __import__("json").loads(result.stdout)
    assert summary["direction"] == "minimize" and summary["metric"] == "val_loss"
    rows = _rows(out / "trials.csv")
    assert [r["state"] for r in rows] == ["complete", "complete"] and summary["best_value"] == min(
        float(r["value"]) for r in rows
    )
    assert all(0 <= float(r["weight_decay"]) <= 1e-3 for r in rows) and "weight_decay" in summary["best_params"]
    dim = summary["best_params"]["latent_dim"]
    assert 2 <= dim <= 8 and (out / "train-ae" / f"ae_d{dim}.pt").is_file()
    result = runner.invoke(app, ["evaluate", str(out / "train-ae"), "--json"])
    assert result.exit_code == 0, result.output
    assert __import__("json").loads(result.stdout)["mse"][0]["mse"] == summary["test_mse"]


@pytest.mark.slow
@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGTERM", "SIGINT"])
def test_a_signal_mid_study_then_resume_matches_an_uninterrupted_study(
    study_data, reference_study, tmp_path, signal_name
):
    import os
    import signal
    import time

    study = CUT_STUDY  # the reference's options on the command line
    args = ["tune", "train-cnn", "--data-dir", str(study_data), "--epochs", str(study["epochs"]), "--batch-size", "16",
            "--seed", "1", "--device", "cpu", "--trials", str(study["trials"]), "--parallel", str(study["parallel"]),
            "--space", "lr=log:1e-4..1e-1", "--sampler", study["sampler"], "--pruner", study["pruner"],
            "--quiet"]  # fmt: skip
    ref, _ = reference_study
    cut = tmp_path / "cut"
    victim = subprocess.Popen([sys.executable, "-m", "mle6cli", *args, "--out", str(cut)], env=subprocess_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while not (cut / "trials.csv").is_file() and time.monotonic() < deadline:  # the first round is told
        time.sleep(0.05)
    os.kill(victim.pid, getattr(signal, signal_name))
    _, err = victim.communicate(timeout=120)
    # SIGTERM and SIGINT while a round trains: saved, 143 or 130 with the resume line; between rounds
    # (asking, telling) SIGTERM ends the process as SIGKILL does, which the resume handles alike
    expected = {"SIGKILL": {-9}, "SIGTERM": {143, -15}, "SIGINT": {130}}[signal_name]
    assert victim.returncode in expected, err
    if victim.returncode in (130, 143) and "interrupted" in err:
        assert err.strip().endswith(f"Continue with: mle6 tune train-cnn --resume {cut}"), err
    assert not (cut / "summary.json").exists()
    resumed = subprocess.run([sys.executable, "-m", "mle6cli", "tune", "train-cnn", "--resume", str(cut), "--quiet"],
                             env=subprocess_env(), capture_output=True, text=True, timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert (cut / "trials.csv").read_bytes() == (ref / "trials.csv").read_bytes()
    assert (cut / "train-cnn" / "model.pt").read_bytes() == (ref / "train-cnn" / "model.pt").read_bytes()


@pytest.mark.usefixtures("one_torch_thread")
def test_resuming_with_another_space_or_joining_a_study_of_other_options_is_refused(small, tmp_path, runner, app):
    from mle6cli.engine.interrupt import Interrupted

    cut = tmp_path / "cut"
    with pytest.raises(Interrupted):
        _tune(_options(small, epochs=1), out=cut, stop=StopAfter(2))
    result = runner.invoke(app, ["tune", "train-cnn", "--resume", str(cut), "--space", "lr=log:1e-3..1e-2"])
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: mle6 tune train-cnn: Invalid value for '--resume': --space would change the run being resumed; "
        "a resumed run keeps its options (only --device, --save-every, --tensorboard may change)\n"
    )
    journal = str(cut / "study.journal")  # a second process on the same study, with other epochs
    other = tmp_path / "other"
    args = ["tune", "train-cnn", "--data-dir", str(small), "--epochs", "3", "--space", "lr=log:1e-4..1e-1",
            "--storage", journal, "--sampler", "random", "--pruner", "none", "--seed", "1",
            "--out", str(other)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: --storage {journal}: its study was started with other options (batch_size, epochs differ); "
        "give the same ones, or another storage\n"
    )
    assert not other.exists()


@pytest.mark.usefixtures("one_torch_thread")
def test_tensorboard_holds_one_hparams_record_per_trial(small, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    _tune(_options(small, epochs=1, tensorboard=True), out=tmp_path / "study")
    rows = _rows(tmp_path / "study" / "trials.csv")
    for row in rows:
        events = EventAccumulator(str(tmp_path / "study" / "tensorboard" / f"trial_{row['number']}"))
        events.Reload()
        content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
        hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
        assert hparams["lr"].number_value == float(row["lr"]) and hparams["state"].string_value == "complete"
        assert events.Scalars("hparam/val_acc")[0].value == pytest.approx(float(row["val_acc"]))


def test_config_files_and_print_config_carry_the_space(runner, app, tmp_path):
    (tmp_path / "study.toml").write_text('space = ["lr=log:1e-4..1e-1", "latent-dim=int:2..8"]\nepochs = 3\n')
    args = ["tune", "train-ae", "--synthetic", "--config", str(tmp_path / "study.toml"), "--print-config"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert 'space = ["lr=log:1e-4..1e-1", "latent-dim=int:2..8"]\n' in result.stdout and "epochs = 3\n" in result.stdout
    result = runner.invoke(app, [*args, "--space", "lr=log:1e-3..1e-2"])  # the command line wins, as a whole
    assert 'space = ["lr=log:1e-3..1e-2"]\n' in result.stdout


@pytest.mark.slow
@pytest.mark.xdist_group("slurm")  # its cluster is asked for in the test (skipped without SLURM)
def test_an_array_job_shares_one_study_runs_n_trials_once_and_never_requeues_a_typo(small, tmp_path, request):
    import os

    from tests.conftest import REPO

    cluster = request.getfixturevalue("slurm")  # a one-node SLURM on localhost
    script = REPO / "examples" / "slurm" / "tune.sbatch"
    runs = tmp_path / "runs"
    base = subprocess_env()
    args = (f"--data-dir {small} --epochs 2 --batch-size 16 --seed 1 --device cpu --trials 6 --parallel 2 "
            "--space lr=log:1e-4..1e-1 --quiet")  # fmt: skip
    env = dict(base, PATH=os.pathsep.join([str(Path(sys.executable).parent), base.get("PATH", "")]), RUNS=str(runs),
               STUDY="lr", COMMAND="tune train-cnn", MLE6_ARGS=args)  # fmt: skip
    one_node = ["--gpus=0", "--cpus-per-task=1", "--array=0-1", f"--output={tmp_path}/task-%a.out"]
    job = cluster.submit([*one_node, "--time=5", str(script)], env)
    for task in (0, 1):
        fields = cluster.wait(f"{job}_{task}", timeout=300)
        log = (tmp_path / f"task-{task}.out").read_text()
        assert (fields["JobState"], fields["ExitCode"], fields["Restarts"]) == ("COMPLETED", "0:0", "0"), (fields, log)
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    storage = JournalStorage(JournalFileBackend(str(runs / "lr" / "study.journal")))
    trials = optuna.load_study(study_name="mle6-train-cnn", storage=storage).get_trials()
    assert sorted(t.number for t in trials) == list(range(6))
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    trained = [p for task in (0, 1) for p in (runs / "lr" / f"task-{task}" / "trials").glob("*")]
    assert sorted(int(p.name) for p in trained) == list(range(6))  # each trial trained once, by one task

    # a typo: mle6's one line, the task FAILED with its exit code, never requeued, in a job shorter than NEAR_END
    bad = dict(env, STUDY="typo", MLE6_ARGS=args.replace("lr=log:1e-4..1e-1", "lr=log:1e-1..1e-4"))
    job = cluster.submit(["--gpus=0", "--cpus-per-task=1", "--array=0", f"--output={tmp_path}/typo.out", "--time=1",
                        str(script)], bad)  # fmt: skip
    fields = cluster.wait(f"{job}_0", timeout=120)
    log = (tmp_path / "typo.out").read_text()
    assert (fields["JobState"], fields["ExitCode"], fields["Restarts"]) == ("FAILED", "2:0", "0"), (fields, log)
    assert log == (
        "Error: mle6 tune train-cnn: Invalid value for '--space': --space lr: the range 1e-1..1e-4 runs backwards\n"
    )
    assert not (runs / "typo").exists()


def test_a_new_member_axis_is_searchable_from_its_declaration():
    from dataclasses import dataclass
    from types import SimpleNamespace

    from mle6cli.tasks.config import Number, option
    from mle6cli.tasks.specs import TrainCnnConfig
    from mle6cli.tasks.tune_targets import member_arguments

    @dataclass(frozen=True)
    class WithMomentum(TrainCnnConfig):  # an axis a command might gain: one declaration, nothing else
        momentum: float = option(0.9, "Momentum.", Number("momentum", whole=False, minimum=0, maximum=1), axis=True)

    axes = tunable_axes(WithMomentum)
    assert list(axes) == ["lr", "weight-decay", "momentum"] and axes["weight-decay"].key == "weight_decay"
    (dim,) = parse_space(["momentum=float:0.5..0.99"], axes, "tune x")
    assert (dim.kind, dim.low, dim.high, dim.axis.field) == ("float", 0.5, 0.99, "momentum")
    members = [
        SimpleNamespace(key={"trial": n, "lr": 1e-3, "weight_decay": wd, "seed": 0}) for n, wd in enumerate((0.0, 1e-4))
    ]
    assert member_arguments(members) == {"weight_decays": [0.0, 1e-4]}  # what the fused members' constructor takes
    assert member_arguments([SimpleNamespace(key={"trial": 0, "lr": 1e-3, "seed": 0})]) == {}  # not searched


def test_tune_is_listed_with_its_commands_and_examples(runner, app):
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and " tune " in result.stdout
    result = runner.invoke(app, ["tune", "--help"])
    assert result.exit_code == 0 and "train-cnn" in result.stdout and "train-ae" in result.stdout
    for name in ("train-cnn", "train-ae"):
        result = runner.invoke(app, ["tune", name, "--help"])
        assert result.exit_code == 0 and f"Example: mle6 tune {name} " in " ".join(result.stdout.split())


@pytest.mark.usefixtures("one_torch_thread")
def test_diverged_trials_are_told_fail_and_named_diverged(small, tmp_path):
    from mle6cli.tasks.tune import NoTrialCompleted

    with pytest.raises(NoTrialCompleted) as err:  # learning rates no CNN survives
        _tune(_options(small, epochs=2, space=["lr=log:1e10..1e12"]), out=tmp_path / "study")
    assert str(err.value) == f"no trial of the study completed (see {tmp_path / 'study' / 'trials.csv'})"
    rows = _rows(tmp_path / "study" / "trials.csv")
    assert [(r["state"], r["value"]) for r in rows] == [("diverged", ""), ("diverged", "")]
    summary = __import__("json").loads((tmp_path / "study" / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["states"]["diverged"] == 2 and summary["best_trial"] is None
    assert not (tmp_path / "study" / "resume.pt").exists()


@pytest.mark.usefixtures("one_torch_thread")
def test_a_grid_study_with_a_diverging_member_goes_on_and_stops_at_the_grid(small, tmp_path):
    options = _options(small, sampler="grid", trials=5, space=["lr=choice:1e-3,1e10"])
    summary = _tune(options, out=tmp_path / "study")
    rows = _rows(tmp_path / "study" / "trials.csv")
    assert sorted((float(r["lr"]), r["state"]) for r in rows) == [(1e-3, "complete"), (1e10, "diverged")]
    assert summary["trials"] == 2 and summary["best_params"] == {"lr": 1e-3}  # the grid's two points, once each
    assert summary["states"] == {"complete": 1, "pruned": 0, "diverged": 1, "failed": 0}


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_a_trial_over_several_seeds_reports_their_mean_and_leaves_a_model_per_seed(small, tmp_path, runner, app):
    import json

    summary = _tune(_options(small, seeds=[1, 2], trials=2), out=tmp_path / "study")
    study = tmp_path / "study"
    for row in _rows(study / "trials.csv"):
        finals = [_rows(study / "trials" / row["number"] / f"seed_{s}" / "metrics.csv")[-1] for s in (1, 2)]
        assert float(row["value"]) == (float(finals[0]["val_acc"]) + float(finals[1]["val_acc"])) / 2
    assert summary["member_epochs"] == 2 * 2 * 2  # trials x epochs x seeds
    best = study / "train-cnn"
    assert (best / "seed_1" / "model.pt").is_file() and (best / "seed_2" / "model.pt").is_file()
    result = runner.invoke(app, ["evaluate", str(best), "--member", "seed=2", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["member"] == {"lr": summary["best_params"]["lr"], "seed": 2}
