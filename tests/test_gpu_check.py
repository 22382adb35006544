"""`make gpu-check` is prepared on a CPU machine: its script parses, its data helper copies, its
summary judges only what was measured, and its whole flow runs end to end as a CPU rehearsal."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from argparse import Namespace

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
    return load_benchmark("bench")


def test_the_script_parses_and_make_runs_it():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0
    dry = subprocess.run(["make", "-n", "gpu-check", "OUT=/x"], capture_output=True, text=True, cwd=REPO)
    assert dry.returncode == 0 and 'OUT="/x" bash benchmarks/gpu_check.sh' in dry.stdout
    text = SCRIPT.read_text()
    # what a device call needs: no venv, no download, only carried wheels, every step under a timeout
    assert "venv" not in text.split("set -u -o pipefail")[1]
    assert "--no-index --no-deps --no-compile --no-cache-dir --upgrade --target" in text
    assert 'timeout -k 10 "$limit"' in text
    assert 'carry:   [".whl", "gpu_data"]' in text and "timeout_s: 480" in text


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


def _gpu_report(bench, **sizes) -> dict:
    def job(train, wall, doc=None):
        return {"ok": True, "train_seconds": train, "wall_seconds": wall, "doc": doc or {"train_seconds": train}}

    sweep_doc = {"train_seconds": 0.4, "runs": [{"lr": 0.1, "test_acc": 0.2}, {"lr": 0.001, "test_acc": 0.9083}]}
    rows = [
        {"task": "sweep-lr", "seed": job(24.0, 35.0), "ours": job(0.4, 9.5, sweep_doc), "ratio_train_seconds": 60.0},
        {"task": "seeds", "seed": job(0.4, 9.0), "ours": job(1.3, 10.0)},
        {"task": "train-ae", "seed": job(300.0, 320.0), "ours": job(7.5, 20.0)},
    ]
    report = {"device": "cuda:0 (NVIDIA H100)", "signs": "gpu_data/sign_data", "epochs": 50, "ae_epochs": 10}
    report |= {"ae_images": 60000, "rows": rows, "complete": True} | sizes
    report["goals"] = bench.goals(report, on_gpu=True)
    return report


def test_every_gpu_goal_is_judged_from_a_number_or_said_not_measured(tmp_path, bench, summary):
    report = _gpu_report(bench)
    verdicts = {g["key"]: g["verdict"] for g in report["goals"] if g.get("key")}
    assert verdicts == {
        "accuracy": "met",  # 0.9083 >= 0.89
        "sweep_train": "met",
        "sweep_process": "MISSED",  # 9.5 s > 8 s
        "sweep_speedup": "met",
        "seeds_train": "MISSED",  # 1.3 s > 1 s
        "ae_train": "met",
    }
    checks = {"torchrun": {"device": "cuda", "overhead_seconds": 1.7, "plain_wall_seconds": 9.0}}
    checks["torchrun"]["torchrun_wall_seconds"] = 10.7
    goals = summary.gpu_goals(bench, report, checks, dry_run=False)
    assert [g["key"] for g in goals] == list(bench.GPU_GOALS)
    assert {g["key"]: g["verdict"] for g in goals}["torchrun_overhead"] == "MISSED"
    # other sizes: the goals set at the sizes are not judged, and say why
    small = _gpu_report(bench, epochs=10, ae_epochs=2)
    goals = {g["key"]: g for g in summary.gpu_goals(bench, small, None, dry_run=False)}
    assert all(g["verdict"] == "not measured" for g in goals.values())
    assert goals["sweep_train"]["measured"] == "bench ran 10 epochs, the goal is set at 50"
    assert goals["ae_train"]["measured"] == "bench ran 2 epochs x 60000 images, the goal is 10 x 60000"
    assert goals["torchrun_overhead"]["measured"].startswith("its test did not run")
    cpu = dict(report, device="cpu", goals=bench.goals(dict(report, device="cpu"), on_gpu=False))
    goals = {g["key"]: g for g in summary.gpu_goals(bench, cpu, None, dry_run=True)}
    assert goals["sweep_train"] == {
        **goals["sweep_train"],
        "verdict": "not measured",
        "measured": "rehearsal on the CPU",
    }


def test_the_summary_reads_a_run_that_was_cut_short(tmp_path, summary):
    out = tmp_path / "out"
    out.mkdir()
    (out / "pytest.log").write_text(
        "tests/test_cuda.py::test_a PASSED [ 10%]\n"
        "tests/test_cuda.py::test_b FAILED [ 20%]\n"
        "tests/test_graphs.py::test_c SKIPPED (needs a CUDA GPU) [ 30%]\n"
    )
    steps = tmp_path / "steps.tsv"
    steps.write_text("setup\t0\t1.0\t30\nenv\t0\t9.0\t40\ntests\t124\t180.0\t180\nbench\tskipped\t0\t0\n")
    args = Namespace(out=out, steps=steps, env=None, data=tmp_path / "none", started=None, budget=455, dry_run=False)
    lines, doc = summary.report_lines(args)
    text = "\n".join(lines)
    assert "tests  TIMED OUT (rc 124)" in text and "bench  SKIPPED (no time left)" in text
    assert "1 passed, 1 failed, 0 errors, 1 skipped (cut short: counted from the log)" in text
    assert "FAILED tests/test_cuda.py::test_b" in text and "NO REAL DATA" in text
    assert "bench: no rows" in text and "GPU goals: 0 met, 0 MISSED, 7 not measured (of 7)" in text
    assert doc["tests"]["partial"] is True and not doc["bench_complete"]


@pytest.mark.slow
def test_the_cpu_rehearsal_runs_the_whole_flow(tmp_path):
    """GPU_CHECK_DRY_RUN=1: setup, env, the CUDA tests on the CPU, a tiny bench, the one table."""
    out = tmp_path / "out"
    env = dict(cli_env(), GPU_CHECK_DRY_RUN="1", GPU_CHECK_PYTHON=sys.executable, OUT=str(out))
    for name in ("PYTHONPATH", "MLE6_TEST_DEVICE", "MLE6_CHECK_RECORD", "MLE6_GPU_DATA", "MLE6_CHECK_QUICK"):
        env.pop(name, None)
    proc = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=400)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    names = {p.name for p in out.iterdir()}
    assert names == OUT_FILES and all(p.is_file() for p in out.iterdir())  # <= 8 plain files: all come back
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", name) for name in names)
    table = (out / "summary.txt").read_text()
    assert proc.stdout.endswith(table)  # the one table is the last thing printed
    assert table.startswith("==== GPU check: no CUDA device") and "DRY RUN on the CPU" in table
    assert re.search(r"tests \(-m cuda\): \d+ passed, 0 failed, 0 errors", table)
    assert "seed wall" in table and "train-ae (seed: 1 epoch x 2)" in table
    assert "GPU goals: 0 met, 0 MISSED, 7 not measured (of 7)" in table  # a rehearsal judges no GPU goal
    report = json.loads((out / "bench.json").read_text())
    assert report["complete"] and [r["task"] for r in report["rows"]] == ["sweep-lr", "seeds", "train-ae"]
    assert all(r["seed"]["ok"] and r["ours"]["ok"] for r in report["rows"])
    doc = json.loads((out / "gpu_check.json").read_text())
    assert doc["dry_run"] and [s["rc"] for s in doc["steps"]] == ["0"] * 4 and doc["tests"]["failures"] == 0
    checks = json.loads((out / "cuda_checks.json").read_text())
    assert {"fused_sweep_grouped", "train_ae_cpu_vs_device", "torchrun"} <= set(checks)
    assert all(c["device"] == "cpu" for c in checks.values())
    assert "no .whl/ folder" in (out / "gpu_check.log").read_text() or os.path.isdir(REPO / ".whl")
