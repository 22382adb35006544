"""`make gpu-check` is prepared on a CPU machine: its script parses, its data helper copies, its
summary judges only what was measured, and its whole flow runs end to end as a CPU rehearsal."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest

from tests.conftest import REPO, cli_env, load_benchmark

SCRIPT = REPO / "benchmarks" / "gpu_check.sh"
OUT_FILES = {
    "gpu_check.log",
    "pytest.log",
    "junit.xml",
    "cuda_checks.json",
    "bench.json",
    "summary.txt",
    "gpu_check.json",
}


@pytest.fixture(scope="module")
def summary():
    return load_benchmark("gpu_summary")


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_report")  # the rows, goals and table of bench.json


def test_the_script_parses_and_make_runs_it():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0
    dry = subprocess.run(["make", "-n", "gpu-check", "OUT=/x"], capture_output=True, text=True, cwd=REPO)
    assert dry.returncode == 0 and 'OUT="/x" bash benchmarks/gpu_check.sh' in dry.stdout
    text = SCRIPT.read_text()
    body = text.split("set -u -o pipefail")[1]
    # what a bare GPU box needs: no venv, no download, local wheels only, every step under a timeout
    assert "venv" not in body
    assert 'benchmarks/gpu_env.py install --wheels .whl --target "$SITE"' in body
    assert " pip " not in body.replace("no pip,", "")
    assert 'timeout -k 10 "$limit"' in text
    # the order: graph tests, then the other CUDA tests, torchrun's last, then the bench and the table
    order = re.findall(r"^step (\w+) ", body, flags=re.M)
    assert order == ["setup", "env", "graphs", "cuda", "torchrun", "bench", "tune", "summary"]
    # named files: collecting tests/ would import every test's optional packages
    assert 'pytest_step cuda -m "cuda and not torchrun" tests/test_cuda.py;' in body
    assert 'pytest_step torchrun -m "cuda and torchrun" tests/test_cuda.py tests/test_distributed.py;' in body
    assert 'MLE6_CHECK_DEADLINE="$STEP_DEADLINE"' in body  # the tests' subprocesses end before the step


def test_the_helpers_run_as_scripts():
    for name in ("gpu_data", "gpu_summary"):
        proc = subprocess.run(
            [sys.executable, str(REPO / "benchmarks" / f"{name}.py"), "--help"],
            capture_output=True,
            text=True,
            env=dict(cli_env(), PYTHONPATH=str(REPO)),
        )
        assert proc.returncode == 0 and proc.stdout.startswith("usage:"), (name, proc.stderr)


def test_gpu_data_copies_the_layout_and_refuses_what_does_not_fit(tmp_path):
    gpu_data = load_benchmark("gpu_data")
    signs, mnist = tmp_path / "signs", tmp_path / "mnist"
    signs.mkdir()
    for name in gpu_data.SIGNS_FILES:
        np.save(signs / name, np.zeros(3, dtype=np.uint8))
    raw = mnist / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in gpu_data.MNIST_NAMES[:3]:
        (raw / name).write_bytes(b"plain")
    (raw / f"{gpu_data.MNIST_NAMES[3]}.gz").write_bytes(b"packed")  # only .gz there: taken as it is
    with pytest.raises(FileNotFoundError, match="missing"):
        gpu_data.copy_data(tmp_path / "nothing", mnist, tmp_path / "x")
    with pytest.raises(ValueError, match="more than"):
        gpu_data.copy_data(signs, mnist, tmp_path / "x", limit=10)
    assert not (tmp_path / "x").exists()  # checked before anything is written
    argv = ["--signs", str(signs), "--mnist-root", str(mnist), "--dest", str(tmp_path / "gpu_data")]
    assert gpu_data.main(argv) == 0
    copied = sorted(
        str(p.relative_to(tmp_path / "gpu_data")) for p in (tmp_path / "gpu_data").rglob("*") if p.is_file()
    )
    assert copied == sorted(
        [f"sign_data/{n}" for n in gpu_data.SIGNS_FILES]
        + [f"mnist-mini/MNIST/raw/{n}" for n in gpu_data.MNIST_NAMES[:3]]
        + [f"mnist-mini/MNIST/raw/{gpu_data.MNIST_NAMES[3]}.gz"]
    )


def _job(train, wall, doc=None, graphs=True, ok=True, error=None):
    job = {"ok": ok, "train_seconds": train, "wall_seconds": wall, "doc": doc or {"train_seconds": train}}
    job["graphs"] = graphs
    return job if ok else {"ok": False, "exit_code": 1, "wall_seconds": wall, "error": error}


def _gpu_report(bench, rows=None, **sizes) -> dict:
    """A bench.json as a CUDA run at the goals' sizes writes it; `rows` replaces some rows' jobs."""
    sweep_doc = {"train_seconds": 0.9, "runs": [{"lr": 0.1, "test_acc": 0.2}, {"lr": 0.001, "test_acc": 0.9083}]}
    jobs = {
        # the defaults run's train_seconds (0.9) includes saving: the loop figure is the --save-every 0 run's
        "sweep-lr": {"ours": _job(0.9, 7.5, sweep_doc), "ours_loop": _job(0.4, 7.9), "seed": _job(24.0, 35.0)},
        "seeds": {"ours": _job(1.8, 10.0), "ours_loop": _job(1.3, 9.6), "seed": _job(0.4, 9.0)},
        "train-ae": {"ours": _job(9.0, 21.0), "ours_loop": _job(7.5, 20.0), "seed": _job(300.0, 320.0)},
    }
    for task, sides in (rows or {}).items():
        jobs[task] |= sides
    report = {"device": "cuda:0 (NVIDIA H200)", "device_name": "NVIDIA H200", "signs": "gpu_data/sign_data"}
    report |= {"epochs": 50, "ae_epochs": 10, "ae_images": 60000, "loop_runs": True, "complete": True} | sizes
    report["rows"] = [
        bench.build_row(task, {side: [job] for side, job in sides.items()}, None, 10, 10)
        for task, sides in jobs.items()
    ]
    return report


def _verdicts(goals) -> dict:
    return {g["key"]: g["verdict"] for g in goals}


def test_every_gpu_goal_is_judged_from_its_own_figure_or_said_not_measured(bench, summary):
    report = _gpu_report(bench)
    goals = {g["key"]: g for g in summary.gpu_goals(bench, report, dry_run=False)}
    assert list(goals) == list(bench.GPU_GOALS)
    assert _verdicts(goals.values()) == {
        "cuda_tests": "MISSED",  # no test step ran
        "sweep_train": "met",  # the loop run's 0.4 s, not the defaults run's 0.9 s
        "sweep_process": "met",  # the defaults run's 7.5 s from the shell
        "sweep_speedup": "met",  # 24 / 0.4 = 60x
        "seeds_train": "MISSED",  # 1.3 s > 1 s
        "ae_train": "met",
        "accuracy": "met",  # 0.9083 >= 0.89
    }
    assert goals["sweep_train"]["measured"] == "0.400 s" and goals["sweep_speedup"]["measured"] == "60.0x"
    assert all(g["card"] == "NVIDIA H200" for g in goals.values())
    # other sizes: the goals set at the goals' sizes are not judged, and say why
    small = _gpu_report(bench, epochs=10, ae_epochs=2)
    goals = {g["key"]: g for g in summary.gpu_goals(bench, small, dry_run=False)}
    assert all(g["verdict"] == "not measured" for k, g in goals.items() if k != "cuda_tests")
    assert goals["sweep_train"]["measured"] == "bench ran 10 epochs, the goal is set at 50"
    assert goals["ae_train"]["measured"] == "bench ran 2 epochs x 60000 images, the goal is 10 x 60000"
    cpu = dict(report, device="cpu", device_name="CPU (2 cores)")
    goals = {g["key"]: g for g in summary.gpu_goals(bench, cpu, dry_run=True)}
    assert (
        goals["sweep_train"]["verdict"] == "not measured" and goals["sweep_train"]["measured"] == "rehearsal on the CPU"
    )
    assert goals["cuda_tests"]["verdict"] == "not measured"


def test_a_failed_side_hides_only_the_goals_that_need_it(bench, summary):
    boom = _job(None, 3.0, ok=False, error="RuntimeError: boom")
    report = _gpu_report(bench, {"sweep-lr": {"seed": boom}})
    goals = {g["key"]: g for g in summary.gpu_goals(bench, report, dry_run=False)}
    assert [goals[k]["verdict"] for k in ("sweep_train", "sweep_process", "accuracy")] == ["met"] * 3
    assert goals["sweep_speedup"] == goals["sweep_speedup"] | {
        "verdict": "not measured",
        "measured": "seed pipeline failed: RuntimeError: boom",
    }
    table = "\n".join(bench.render_table(report))
    assert "sweep-lr: seed pipeline failed: RuntimeError: boom" in table
    sweep_line = next(line for line in table.splitlines() if line.startswith("sweep-lr "))
    assert "failed" in sweep_line and "7.50" in sweep_line and "0.400" in sweep_line  # ours still there

    report = _gpu_report(bench, {"sweep-lr": {"ours_loop": boom}})
    goals = {g["key"]: g for g in summary.gpu_goals(bench, report, dry_run=False)}
    assert goals["sweep_process"]["verdict"] == "met" and goals["sweep_train"]["verdict"] == "not measured"
    assert goals["sweep_train"]["measured"] == "mle6 sweep-lr --save-every 0 failed: RuntimeError: boom"
    cut = _gpu_report(bench)  # the bench was stopped after train-ae's defaults run
    cut["rows"][2] = bench.build_row("train-ae", {"ours": [_job(9.0, 21.0)], "ours_loop": [], "seed": []}, None, 1, 10)
    goals = {g["key"]: g for g in summary.gpu_goals(bench, cut, dry_run=False)}
    assert goals["ae_train"]["measured"] == "mle6 train-ae --save-every 0: not run (the bench was cut before it)"


def test_the_test_goal_needs_every_step_passed_and_graphs_in_every_cuda_row(bench, summary):
    steps = [{"step": s, "rc": "0", "seconds": 1.0, "limit": 60} for s in ("graphs", "cuda", "torchrun")]
    passed = {"ran": True, "tests": 5, "passed": 5, "failures": 0, "errors": 0, "skipped": 0}
    tests = {s["step"]: dict(passed) for s in steps}
    env = {"cuda_available": True, "device": "NVIDIA H200"}

    def judge(report, steps=steps, tests=tests, dry_run=False):
        goals = summary.gpu_goals(bench, report, dry_run, tests=tests, steps=steps, env=env)
        return next(g for g in goals if g["key"] == "cuda_tests")

    ok = judge(_gpu_report(bench))
    assert ok["verdict"] == "met" and "graphs in sweep-lr, seeds, train-ae" in ok["measured"]
    assert ok["card"] == "NVIDIA H200"
    eager = judge(_gpu_report(bench, {"train-ae": {"ours_loop": _job(7.5, 20.0, graphs=False)}}))
    assert eager["verdict"] == "MISSED" and "graphs: train-ae ran eagerly" in eager["measured"]
    silent = judge(_gpu_report(bench, {"seeds": {"ours": _job(1.8, 10.0, graphs=None)}}))
    assert silent["verdict"] == "MISSED" and "seeds not reported" in silent["measured"]
    timed_out = [*steps[:1], dict(steps[1], rc="124"), steps[2]]
    late = judge(_gpu_report(bench), steps=timed_out)
    assert late["verdict"] == "MISSED" and "cuda: timed out (rc 124)" in late["measured"]
    failing = dict(tests, torchrun=dict(tests["torchrun"], failures=1, passed=4))
    assert "torchrun: 1 failed" in judge(_gpu_report(bench), tests=failing)["measured"]
    assert judge(_gpu_report(bench), dry_run=True)["verdict"] == "not measured"  # a rehearsal judges nothing


def test_the_summary_reads_a_run_that_was_cut_short(tmp_path, summary):
    out, work = tmp_path / "out", tmp_path / "work"
    out.mkdir()
    work.mkdir()
    (work / "pytest-graphs.log").write_text("tests/test_graphs.py::test_g PASSED [100%]\n")
    (work / "junit-graphs.xml").write_text(
        '<testsuites><testsuite name="pytest" tests="1" failures="0" errors="0" skipped="0">'
        '<testcase classname="tests.test_graphs" name="test_g"/></testsuite></testsuites>'
    )
    (work / "pytest-cuda.log").write_text(
        "tests/test_cuda.py::test_a PASSED [ 10%]\n"
        "tests/test_cuda.py::test_b FAILED [ 20%]\n"
        "tests/test_cuda.py::test_c SKIPPED (no SIGNS arrays) [ 30%]\n"
    )
    steps = tmp_path / "steps.tsv"
    steps.write_text(
        "setup\t0\t1.0\t30\nenv\t0\t9.0\t40\ngraphs\t0\t20.0\t60\ncuda\t124\t150.0\t150\n"
        "torchrun\tskipped\t0\t0\nbench\toff\t0\t0\n"
    )
    argv = ["report", "--out", str(out), "--steps", str(steps), "--tests-dir", str(work), "--data", str(tmp_path)]
    assert summary.main(argv) == 0
    text = (out / "summary.txt").read_text()
    assert "cuda      TIMED OUT (rc 124)" in text and "torchrun  SKIPPED (no time left)" in text
    assert "bench     SKIPPED (cap 0)" in text
    assert "  graphs: 1 passed, 0 failed, 0 errors, 0 skipped" in text
    assert "  cuda: 1 passed, 1 failed, 0 errors, 1 skipped (cut short: counted from the log)" in text
    assert "  torchrun: no results" in text and "FAILED tests/test_cuda.py::test_b" in text
    assert "NO REAL DATA" in text and "bench: no rows" in text and "torchrun --nproc-per-node 1" in text
    # a step that timed out is a missed test goal; nothing else was measured
    assert "GPU goals: 0 met, 1 MISSED, 6 not measured (of 7)" in text
    doc = json.loads((out / "gpu_check.json").read_text())
    assert doc["tests"]["cuda"]["partial"] is True and not doc["bench_complete"]
    merged = (out / "junit.xml").read_text()  # the steps' junit files, merged into one
    assert 'name="graphs: pytest"' in merged and "test_g" in merged


def _rehearsal_env(out) -> dict:
    """A rehearsal on tiny stand-in data (no gpu_data/ there): the flow, not the check's sizes."""
    env = dict(cli_env(), GPU_CHECK_DRY_RUN="1", GPU_CHECK_PYTHON=sys.executable, OUT=str(out))
    env["GPU_CHECK_DATA"] = str(Path(out).parent / "no_data")
    for name in ("PYTHONPATH", "MLE6_TEST_DEVICE", "MLE6_CHECK_RECORD", "MLE6_GPU_DATA", "MLE6_CHECK_QUICK"):
        env.pop(name, None)
    env.pop("GPU_CHECK_CAPS", None)
    return env


@pytest.mark.slow
def test_the_cpu_rehearsal_runs_the_whole_flow(tmp_path):
    """GPU_CHECK_DRY_RUN=1: setup, env, the three test steps in order on the CPU, a tiny bench, the one table."""
    out = tmp_path / "out"
    proc = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=_rehearsal_env(out), timeout=400)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    names = {p.name for p in out.iterdir()}
    assert names == OUT_FILES and all(p.is_file() for p in out.iterdir())  # plain files, no subfolders
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", name) for name in names)
    table = (out / "summary.txt").read_text()
    assert proc.stdout.endswith(table)  # the one table is the last thing printed
    assert table.startswith("==== GPU check: no CUDA device") and "DRY RUN on the CPU" in table
    assert "\nTF32: cudnn.allow_tf32=" in table
    for name in ("graphs", "cuda", "torchrun"):
        assert re.search(rf"\n  {name}: [1-9]\d* passed, 0 failed, 0 errors", table), name
    assert "seed wall" in table and "ours loop" in table and "train-ae (seed: 1 epoch x 2)" in table
    assert "GPU goals: 0 met, 0 MISSED, 7 not measured (of 7)" in table  # a rehearsal judges no GPU goal
    assert "recorded, not a goal" in table  # torchrun's overhead
    doc = json.loads((out / "gpu_check.json").read_text())
    assert [s["step"] for s in doc["steps"]] == ["setup", "env", "graphs", "cuda", "torchrun", "bench", "tune"]
    assert doc["dry_run"] and [s["rc"] for s in doc["steps"]] == ["0"] * 6 + ["optional"]  # tune: a run of its own
    assert "\ntune      not run (a run of its own)" in table and "tune's goal: " in table
    assert doc["tune_goal"]["verdict"] == "not measured" and "no tune.json" in doc["tune_goal"]["measured"]
    # graph tests first, then the other CUDA tests, torchrun's last
    ran = re.findall(r"^tests/(test_\w+)\.py::(\w+)", (out / "pytest.log").read_text(), flags=re.M)
    files = [f for i, (f, _) in enumerate(ran) if i == 0 or ran[i - 1][0] != f]
    assert files[:2] == ["test_graphs", "test_cuda"]
    assert ran[-3:] == [  # the torchrun step, from its two named files
        ("test_cuda", "test_torchrun_world_size_1_equals_the_plain_run"),
        ("test_cuda", "test_ddp_under_torchrun_equals_the_plain_run"),
        ("test_distributed", "test_one_gpu_under_torchrun_equals_the_plain_cuda_run"),  # skipped without CUDA
    ]
    assert sum(name.startswith("test_torchrun") for _, name in ran) == 1
    report = json.loads((out / "bench.json").read_text())
    assert report["complete"] and report["loop_runs"] and "cudnn.allow_tf32" in report["tf32"]
    assert [r["task"] for r in report["rows"]] == ["sweep-lr", "seeds", "train-ae"]
    assert all(r[side]["ok"] for r in report["rows"] for side in ("seed", "ours", "ours_loop"))
    assert all("--save-every" in r["ours_loop"]["argv"] for r in report["rows"])
    assert all(r["ours"]["graphs"] in (False, None) for r in report["rows"])  # on the CPU: eager, or not reported
    checks = json.loads((out / "cuda_checks.json").read_text())
    assert {"fused_sweep_grouped", "train_ae_cpu_vs_device", "cli_sweep-lr", "torchrun", "ddp_torchrun"} <= set(checks)
    assert all(c["device"] == "cpu" for c in checks.values())
    assert ElementTree.parse(out / "junit.xml").getroot().tag == "testsuites"
    log = (out / "gpu_check.log").read_text()
    assert "no .whl/ folder" in log or os.path.isdir(REPO / ".whl")
    assert "every module the check needs imports" in log and "tiny stand-ins" in log


@pytest.mark.slow
def test_the_table_still_comes_after_a_step_timed_out(tmp_path):
    """A step that runs out of time is killed and recorded, and the table is still printed."""
    out = tmp_path / "out"
    # the CUDA tests take ~30 s here; the steps after them are the whole flow's test
    env = _rehearsal_env(out) | {"GPU_CHECK_CAPS": "graphs=0,cuda=5,torchrun=0,bench=0"}
    proc = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=200)
    assert proc.returncode == 1 and "gpu_check: steps not ok: cuda (see" in proc.stdout  # left out is not failed
    table = (out / "summary.txt").read_text()
    assert proc.stdout.rstrip().endswith("(see " + str(out / "gpu_check.log") + ")")
    assert table in proc.stdout
    assert "cuda      TIMED OUT (rc 124)" in table and "graphs    SKIPPED (cap 0)" in table
    assert "torchrun  SKIPPED (cap 0)" in table
    assert "GPU goals: 0 met, 0 MISSED, 7 not measured (of 7)" in table


@pytest.mark.slow
def test_the_tune_step_is_a_run_of_its_own(tmp_path):
    """GPU_CHECK_CAPS naming only tune: setup, env, benchmarks/tune.py (a rehearsal's 2 trials of 1 epoch),
    tune.json, and its goal's line, with no GPU verdict off CUDA; the steps left out are not failures."""
    out = tmp_path / "out"
    env = _rehearsal_env(out) | {"GPU_CHECK_CAPS": "graphs=0,cuda=0,torchrun=0,bench=0,tune=120"}
    proc = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=200)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert {p.name for p in out.iterdir()} == {"gpu_check.log", "tune.json", "summary.txt", "gpu_check.json"}
    report = json.loads((out / "tune.json").read_text())
    assert (report["trials"], report["epochs"], report["machine"]["device"]) == (2, 1, "cpu")
    assert report["tune"]["member_epochs"] == 2 and report["usual_optuna"]["member_epochs"] <= 2
    table = (out / "summary.txt").read_text()
    assert "\ntune      ok " in table and "\ngraphs    SKIPPED (cap 0)" in table
    ratio = report["goals"]["wall_time_vs_usual_optuna"]
    assert f"<= 0.1x: not measured ({report['tune']['seconds']:.1f} s / " in table
    assert f" = {ratio:.3g}x (2 against " in table and "on cpu: not a GPU result)" in table


def test_tune_s_goal_is_judged_only_on_cuda_at_its_size(summary):
    def report(ratio, device="cuda:0", trials=32, epochs=30):
        tune, usual = {"seconds": 10.0 * ratio, "member_epochs": 150}, {"seconds": 10.0, "member_epochs": 153}
        machine = {"device": device}
        return {"machine": machine, "trials": trials, "epochs": epochs, "tune": tune, "usual_optuna": usual,
                "goals": {"wall_time_vs_usual_optuna": ratio}}  # fmt: skip

    met = summary.tune_goal(report(0.08), False, "NVIDIA H200")
    assert (met["verdict"], met["measured"]) == ("met", "0.8 s / 10.0 s = 0.08x (150 against 153 epochs)")
    assert summary.tune_goal(report(0.25), False, "NVIDIA H200")["verdict"] == "MISSED"
    small = summary.tune_goal(report(0.08, trials=8), False, "NVIDIA H200")
    assert small["verdict"] == "not measured" and small["measured"].endswith(
        "ran 8 trials x 30 epochs, the goal is set at 32 x 30"
    )
    assert summary.tune_goal(report(0.08), True, "-")["verdict"] == "not measured"  # a rehearsal
    assert summary.tune_goal(report(0.08, device="cpu"), False, "-")["verdict"] == "not measured"
    assert "no tune.json" in summary.tune_goal(None, False, "-")["measured"]
    cut = report(0.08) | {"goals": {}}
    assert summary.tune_goal(cut, False, "-")["measured"] == "tune.json holds no wall-time ratio (a part failed)"


# ---------------------------------------------------------------- the environment step, on a bare Python

GPU_ENV = REPO / "benchmarks" / "gpu_env.py"


def _bare_python(tmp_path, leave_out=()) -> dict:
    """An environment whose only packages are this venv's, less those starting with `leave_out` (the
    interpreter runs with -S: no site-packages but the PYTHONPATH made here)."""
    site = Path(next(p for p in sys.path if p.endswith("site-packages")))
    trimmed = tmp_path / "site"
    trimmed.mkdir()
    for entry in site.iterdir():
        if not entry.name.lower().startswith(tuple(leave_out)) or not leave_out:
            (trimmed / entry.name).symlink_to(entry)
    if not leave_out:
        trimmed = tmp_path / "empty"
        trimmed.mkdir()
    return dict(cli_env(), PYTHONPATH=str(trimmed))


@pytest.mark.slow
def test_the_environment_step_lists_every_missing_module_at_once(tmp_path):
    """A Python that lacks four of the modules: one run names the four, says how to bring them, exits 3."""
    env = _bare_python(tmp_path, leave_out=("typer", "h5py", "torchsummary", "torch_summary", "pytest", "_pytest"))
    proc = subprocess.run([sys.executable, "-S", str(GPU_ENV), "check"], capture_output=True, text=True, env=env)
    version = ".".join(map(str, sys.version_info[:3]))
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.splitlines() == [
        f"gpu_check: 4 modules missing for the check on Python {version} ({sys.executable}):",
        "  typer         typer          not installed",
        "  h5py          h5py           not installed",
        "  torchsummary  torch-summary  not installed",
        "  pytest        pytest         not installed",
        f"  bring them as wheels: where PyPI can be reached, `make gpu-wheels GPU_PYTHON={version.rsplit('.', 1)[0]}` "
        "writes them into .whl/; copy that folder into this repository here and run the check again "
        "(it unpacks them itself: no pip, no network)",
    ]


def test_without_optuna_the_check_goes_on_and_says_what_skips(tmp_path):
    env = _bare_python(tmp_path, leave_out=("optuna",))
    proc = subprocess.run([sys.executable, "-S", str(GPU_ENV), "check"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[1:] == [
        "optional: optuna (optuna) not installed: what uses it skips (make gpu-wheels brings it)"
    ]
    gpu_env = load_benchmark("gpu_env")
    assert "optuna>=3.6" in gpu_env.requirements("3.12")  # make gpu-wheels brings it


def test_on_the_standard_library_alone_torch_is_named_as_the_boxs_own(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-S", str(GPU_ENV), "check"], capture_output=True, text=True, env=_bare_python(tmp_path)
    )
    assert proc.returncode == 3
    lines = proc.stdout.splitlines()
    missing = [line.split()[0] for line in lines[1:] if line.startswith("  ") and line.split()[0].isidentifier()]
    assert missing[:2] == ["torch", "torchvision"] and {"numpy", "typer", "pytest", "torchsummary"} <= set(missing)
    assert any("torch and torchvision are the box's own" in line for line in lines)
    assert lines[-1].startswith("  bring the others as wheels")


def _wheel(folder: Path, name: str, module: str, tag: str = "py3-none-any", data: bool = False) -> Path:
    """A wheel as an installer sees it: a zip of the package, its .dist-info, maybe a .data folder."""
    import zipfile

    path = folder / f"{name}-1.0-{tag}.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        inside = f"{name}-1.0.data/purelib/{module}/__init__.py" if data else f"{module}/__init__.py"
        wheel.writestr(inside, f"WHERE = {name!r}\n")
        wheel.writestr(f"{name}-1.0.dist-info/METADATA", f"Name: {name}\nVersion: 1.0\n")
        wheel.writestr(f"{name}-1.0.dist-info/WHEEL", f"Tag: {tag}\n")
        wheel.writestr(f"{name}-1.0.dist-info/RECORD", "")
        if data:
            wheel.writestr(f"{name}-1.0.data/scripts/tool", "#!/bin/sh\n")
    return path


def test_wheels_that_bring_a_missing_module_are_unpacked_and_no_others(tmp_path):
    wheels, target = tmp_path / "whl", tmp_path / "site"
    wheels.mkdir()
    _wheel(wheels, "brand_new", "mle6_test_brand_new")
    _wheel(wheels, "in_data", "mle6_test_in_data", data=True)
    _wheel(wheels, "json_again", "json")  # the standard library's own: already importable, left alone
    _wheel(wheels, "other_python", "mle6_test_other", tag="cp27-cp27m-manylinux1_x86_64")
    env = dict(cli_env(), PYTHONPATH="")
    argv = [sys.executable, "-S", str(GPU_ENV), "install", "--wheels", str(wheels), "--target", str(target)]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (
        f"unpacked into {target}: brand_new-1.0-py3-none-any.whl in_data-1.0-py3-none-any.whl"
    )
    assert sorted(p.name for p in target.iterdir()) == [
        "brand_new-1.0.dist-info",
        "in_data-1.0.dist-info",
        "mle6_test_brand_new",
        "mle6_test_in_data",
    ]  # fmt: skip  (no scripts folder: a .data folder's scripts are not what the check runs)
    code = "import mle6_test_brand_new as a, mle6_test_in_data as b; print(a.WHERE, b.WHERE)"
    ran = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, env=dict(env, PYTHONPATH=str(target))
    )
    assert ran.stdout.split() == ["brand_new", "in_data"]
    again = subprocess.run(argv, capture_output=True, text=True, env=env)  # a second run: nothing left to do
    assert "nothing to unpack" in again.stdout


def test_the_summary_needs_nothing_but_the_standard_library(tmp_path, bench):
    """gpu_summary.py report under `python -S` (no site-packages): the same table as in this process."""
    out, work = tmp_path / "out", tmp_path / "work"
    out.mkdir()
    work.mkdir()
    (out / "bench.json").write_text(json.dumps(_gpu_report(bench)))
    env = {"python": "3.12.3", "torch": "2.11.0", "cuda_available": True, "device": "NVIDIA H200"}
    (work / "env.json").write_text(json.dumps(env | {"tf32": {"cudnn.allow_tf32": False}}))
    steps = tmp_path / "steps.tsv"
    steps.write_text("setup\t0\t1.0\t30\nenv\t0\t9.0\t40\ngraphs\t0\t20.0\t60\n")
    argv = [
        "report",
        "--out",
        str(out),
        "--steps",
        str(steps),
        "--tests-dir",
        str(work),
        "--env",
        str(work / "env.json"),
    ]
    script = REPO / "benchmarks" / "gpu_summary.py"
    proc = subprocess.run([sys.executable, "-S", "-E", str(script), *argv], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    table = (out / "summary.txt").read_text()
    assert table.startswith("==== GPU check: NVIDIA H200; torch 2.11.0, Python 3.12.3")
    assert "sweep-lr" in table and "GPU goals:" in table
    assert load_benchmark("gpu_summary").main(argv) == 0
    assert (out / "summary.txt").read_text() == table
