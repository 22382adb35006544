"""The benchmark scripts still run: the seed pipeline, the MNIST tiling, and bench.py end to end on tiny data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench")


@pytest.fixture(scope="module")
def report():
    return load_benchmark("bench_report")


@pytest.fixture(scope="module")
def seed_pipeline():
    return load_benchmark("seed_pipeline")


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny convolutions: a second thread mostly waits


def tiny_signs(folder: Path, n=(12, 6, 6)) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir()
    for split, k in zip(("train", "val", "test"), n, strict=True):
        np.save(folder / f"X_{split}.npy", rng.integers(0, 256, (k, 64, 64, 3), dtype=np.uint8))
        np.save(folder / f"Y_{split}.npy", np.arange(k, dtype=np.int64) % 6)
    return folder


def tiny_mnist_source(root: Path, gz: bool = False) -> tuple[Path, np.ndarray]:
    """7 train / 3 test random digits under root/MNIST/raw/ (written here, plain or .gz); root and the train images."""
    import gzip

    from tests.mnist_helpers import FILES, idx_bytes

    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(1)
    arrays = [
        rng.integers(0, 256, (7, 28, 28), dtype=np.uint8),
        np.arange(7, dtype=np.uint8),
        rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        np.arange(3, dtype=np.uint8),
    ]
    for name, array in zip(FILES, arrays, strict=True):
        data = idx_bytes(array)
        (raw / (f"{name}.gz" if gz else name)).write_bytes(gzip.compress(data) if gz else data)
    return root, arrays[0]


@pytest.mark.parametrize("gz", [False, True])
def test_tiling_repeats_the_source_in_order(tmp_path, bench, gz):
    from torchvision.datasets import MNIST

    source, images = tiny_mnist_source(tmp_path / "src", gz)
    info = bench.tiled_mnist(source, tmp_path / "tiled", 20)
    assert info == {"root": str(tmp_path / "tiled"), "n_train": 20, "source_images": 7, "synthetic": False}
    tiled = MNIST(str(tmp_path / "tiled"), train=True, download=False)
    assert len(tiled) == 20
    assert np.array_equal(tiled.data.numpy()[7:14], images)  # the source, repeated in order
    assert tiled.targets.tolist()[:9] == [0, 1, 2, 3, 4, 5, 6, 0, 1]
    assert len(MNIST(str(tmp_path / "tiled"), train=False, download=False)) == 3


def test_without_a_source_the_tiles_are_the_projects_synthetic_digits(tmp_path, bench):
    from torchvision.datasets import MNIST

    from mle6cli.data.mnist import synthetic_mnist

    fake = bench.tiled_mnist(tmp_path / "absent", tmp_path / "fake", 30)
    assert fake["synthetic"] and fake["source_images"] == 30
    tiled = MNIST(str(tmp_path / "fake"), train=True, download=False)
    assert np.array_equal(tiled.data.numpy(), synthetic_mnist(0, 30, 2000).train_x[:, 0].numpy())
    assert len(MNIST(str(tmp_path / "fake"), train=False, download=False)) == 2000


def test_seed_pipeline_cnn_and_ae(tmp_path, bench, seed_pipeline):
    signs = tiny_signs(tmp_path / "signs")
    doc = seed_pipeline.main(
        ["cnn", "--data-dir", str(signs), "--lrs", "1e-3,1e-4", "--epochs", "2", "--device", "cpu"]
    )
    assert [r["lr"] for r in doc["runs"]] == [1e-3, 1e-4]
    assert doc["runs"][0]["final"]["epoch"] == 2 and 0 <= doc["test_acc"] <= 1
    assert 0 < doc["train_seconds"] < doc["total_seconds"]
    root = bench.tiled_mnist(tiny_mnist_source(tmp_path / "src")[0], tmp_path / "m", 10)["root"]
    doc = seed_pipeline.main(["ae", "--mnist-root", root, "--latent-dims", "2,3", "--epochs", "1", "--device", "cpu"])
    assert [r["latent_dim"] for r in doc["runs"]] == [2, 3] and doc["n_train"] == 10
    assert all(0 < r["test_mse"] < 1 for r in doc["runs"])


@pytest.mark.slow
def test_bench_end_to_end(tmp_path, bench, capsys):
    signs = tiny_signs(tmp_path / "signs")
    out = tmp_path / "bench.json"
    argv = ["--device", "cpu", "--epochs", "1", "--only", "train-cnn", "--threads", "1", "--data-dir", str(signs)]
    assert bench.main([*argv, "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    (row,) = report["rows"]
    assert row["task"] == "train-cnn" and row["seed"]["ok"], row["seed"]
    assert row["seed"]["doc"]["lrs"] == [1e-3] and row["seed"]["wall_seconds"] > row["seed"]["train_seconds"] > 0
    from mle6cli.commands import COMMANDS

    if "train-cnn" in dict(COMMANDS):  # the documented interface: --json gives train_seconds and test_acc
        assert row["ours"]["ok"], row["ours"]
        assert row["ratio_wall_seconds"] > 0 and row["ours"]["train_seconds"] > 0
    else:
        assert "not registered" in row["ours"]["skipped"]
    assert "ours_loop" not in row and not report["loop_runs"]  # on the CPU by default: one run of ours
    assert report["tf32"]["cudnn.allow_tf32"] in (True, False)
    printed = capsys.readouterr().out
    assert "ratio = seed / ours" in printed and "train-cnn" in printed and "ours train" in printed
    assert "\nTF32: cudnn.allow_tf32=" in printed


FAKE_SEED = """
import json, os, sys
report = json.loads(open(os.environ["BENCH_JSON"]).read())
ours = [r["task"] for r in report["rows"] if r["ours"].get("ok") and r["ours_loop"].get("ok")]
sys.exit(f"RuntimeError: boom; bench.json already had ours for {ours}")
"""


@pytest.mark.slow
def test_a_failing_seed_pipeline_leaves_our_rows(tmp_path, bench, capsys, monkeypatch):
    """Ours run first and are written at once; a seed side that fails is reported with its error's last
    line, and our figures stay in bench.json and the table."""
    signs = tiny_signs(tmp_path / "signs")
    fake = tmp_path / "fake_seed.py"
    fake.write_text(FAKE_SEED)
    out = tmp_path / "bench.json"
    monkeypatch.setenv("BENCH_JSON", str(out))
    argv = ["--device", "cpu", "--epochs", "1", "--only", "sweep-lr", "--threads", "1", "--data-dir", str(signs)]
    argv += ["--loop-runs", "on", "--seed-pipeline", str(fake), "--out", str(out)]
    assert bench.main(argv) == 0
    report = json.loads(out.read_text())
    (row,) = report["rows"]
    assert row["seed"]["ok"] is False
    assert row["seed"]["error"] == "RuntimeError: boom; bench.json already had ours for ['sweep-lr']"
    assert row["ours"]["ok"] and row["ours_loop"]["ok"] and row["ours_loop"]["train_seconds"] > 0
    loop_argv = row["ours_loop"]["argv"]
    assert loop_argv[loop_argv.index("--save-every") + 1] == "0" and "--save-every" not in row["ours"]["argv"]
    assert row["ratio_train_seconds"] is None and report["complete"]
    printed = capsys.readouterr().out
    started = [line for line in printed.splitlines() if line.startswith("-- ")]
    assert started == [
        "-- sweep-lr: mle6 sweep-lr ...",
        "-- sweep-lr: mle6 sweep-lr --save-every 0 ...",
        "-- sweep-lr: seed pipeline ...",
    ]
    table = printed[printed.index("ratio = seed / ours") :]
    line = next(x for x in table.splitlines() if x.startswith("sweep-lr "))
    assert line.split()[1] == "failed" and f"{row['ours']['wall_seconds']:.2f}" in line
    assert f"{row['ours_loop']['train_seconds']:.3f}" in line
    assert "sweep-lr: seed pipeline failed: RuntimeError: boom" in table


def test_a_row_keeps_each_sides_own_figure(report):
    """The whole command's fastest wall time; the loop's fastest train_seconds; graphs only if every run said so."""

    def job(train, wall, graphs=True):
        return {"ok": True, "train_seconds": train, "wall_seconds": wall, "graphs": graphs, "doc": {}}

    runs = {
        "ours": [job(0.9, 8.0), job(0.7, 7.0)],
        "ours_loop": [job(0.5, 7.5), job(0.4, 7.9)],
        "seed": [job(20.0, 30.0), {"ok": False, "error": "x", "wall_seconds": 1.0}],
    }
    row = report.build_row("sweep-lr", runs, None, 1, 1)
    assert row["ours"]["wall_seconds"] == 7.0 and row["ours_loop"]["train_seconds"] == 0.4
    assert row["seed"]["walls"] == [30.0, 1.0]
    assert row["ratio_wall_seconds"] == pytest.approx(30 / 7) and row["ratio_train_seconds"] == pytest.approx(50)
    assert row["graphs"] is True
    runs["ours_loop"][1]["graphs"] = False
    assert report.build_row("sweep-lr", runs, None, 1, 1)["graphs"] is False
    runs["ours_loop"][1]["graphs"] = None
    assert report.build_row("sweep-lr", runs, None, 1, 1)["graphs"] is None
    skipped = report.build_row("train-cnn", {"ours": [], "seed": [job(1.0, 2.0)]}, "not registered", 1, 1)
    assert skipped["ours"] == {"ok": False, "skipped": "not registered"} and skipped["ratio_wall_seconds"] is None


def test_graphs_come_from_the_json_or_the_run_folder(tmp_path, report):
    assert report.graphs_used({"graphs": True}) is True
    assert report.graphs_used({"train_seconds": 1.0}) is None  # an mle6 that does not say
    (tmp_path / "summary.json").write_text(json.dumps({"graphs": False}))
    assert report.graphs_used({"run_dir": str(tmp_path)}) is False


def test_the_seed_autoencoder_is_scaled_and_labelled(report):
    job = {"ok": True, "wall_seconds": 20.0, "doc": {"train_seconds": 12.0, "eval_seconds": 2.0}}
    report.scale_seed_side(job, 1, 10)
    assert job["train_seconds"] == pytest.approx(10.0 * 10 + 2.0)  # the loops x 10, the one test pass once
    assert job["wall_seconds"] == pytest.approx(20.0 + 102.0 - 12.0)
    assert (job["train_seconds_measured"], job["wall_seconds_measured"]) == (12.0, 20.0)
    assert job["scaled"]["label"] == "1 epoch x 10"
    row = {
        "task": "train-ae",
        "seed": job | {"metric": "mse 3:0.1"},
        "ours": {"ok": True, "wall_seconds": 15.0, "train_seconds": 6.0, "metric": "mse 3:0.05"},
        "seed_scaled": "1 epoch x 10",
        "ratio_wall_seconds": 1.0,
        "ratio_train_seconds": 17.0,
    }
    lines = report.render_table({"device": "cuda:0 (X)", "signs": "synthetic", "rows": [row]})
    assert lines[1] == "TF32: not recorded" and lines[2].startswith("task ")
    assert lines[3].startswith("train-ae (seed: 1 epoch x 10)") and "an estimate" in lines[-1]


def test_bench_runs_as_a_script():
    """`make bench` runs `python benchmarks/bench.py`: its __main__ guard must be there."""
    import subprocess
    import sys

    from tests.conftest import cli_env

    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench.py"), "--help"], capture_output=True, text=True, env=cli_env()
    )
    assert proc.returncode == 0 and proc.stdout.startswith("usage: bench.py"), proc.stderr


@pytest.mark.slow
def test_the_tune_benchmark_runs_every_part_and_judges_the_goals(tmp_path):
    """benchmarks/tune.py as docs/benchmarks.md runs it, at the smallest size: every part, one JSON
    document, each goal's figure from its parts; --only runs the parts named and judges what they allow."""
    import subprocess
    import sys

    from tests.conftest import subprocess_env

    script = [sys.executable, str(REPO / "benchmarks" / "tune.py"), "--synthetic", "--trials", "2", "--epochs", "1"]
    proc = subprocess.run([*script, "--parallel", "2", "--json"], capture_output=True, text=True,
                          env=subprocess_env(), timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert set(result["goals"]) == {"best_val_acc_vs_sweep", "member_epochs_pruned_vs_unpruned",
                                    "best_gap_to_unpruned", "wall_time_vs_usual_optuna",
                                    "kernel_floor_vs_usual_optuna"}  # fmt: skip
    assert result["tune_unpruned"]["member_epochs"] == 2  # 2 trials x 1 epoch
    assert result["usual_optuna"]["member_epochs"] <= 2
    assert 1e-6 <= result["tune"]["best_weight_decay"] <= 1e-2  # searched, in the default range
    assert result["goals"]["wall_time_vs_usual_optuna"] == result["tune"]["seconds"] / result["usual_optuna"]["seconds"]
    floor = result["floor"]
    assert floor["steps_per_epoch"] == 15  # 960 synthetic training images in batches of 64
    assert floor["seconds_per_member_epoch"] == floor["seconds_per_step"] * 15 + floor["seconds_per_validation"]
    expected = floor["seconds_per_member_epoch"] * result["tune"]["member_epochs"] / result["usual_optuna"]["seconds"]
    assert result["goals"]["kernel_floor_vs_usual_optuna"] == expected
    proc = subprocess.run([*script, "--only", "sweep", "--json"], capture_output=True, text=True,
                          env=subprocess_env(), timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert "sweep" in result and "tune" not in result and result["goals"] == {}
