"""`make bench`: the seed's pipeline and the project's commands side by side, as whole processes.

Each job runs as its own process, timed with a wall clock from the outside; its `--json`
document also gives the `train_seconds` it measured itself, its accuracy (or MSE), and whether
its training steps replayed CUDA graphs (`graphs`). Pairs (seed vs ours, same device, same
epochs, same data):

- train-cnn: the seed pipeline at lr 1e-3 vs `mle6 train-cnn --lr 1e-3`
- sweep-lr:  the seed pipeline over 4 lrs vs `mle6 sweep-lr --lrs 1e-1,1e-3,1e-4,1e-5`
- train-ae:  the seed AE pipeline (torchvision MNIST + DataLoader) vs `mle6 train-ae`, on
  MNIST tiled up to --ae-images training images in a temporary torchvision folder;
  `--seed-ae-epochs 1` runs the seed side for one epoch per latent size only and scales its
  training time to --ae-epochs (labelled "seed: 1 epoch x 10" in the table and bench.json)
- seeds:     `mle6 sweep-lr --seed 0` (4 members) vs `mle6 sweep-lr --seeds 0-4` (20 fused members):
  the "seed" columns of this row are the one-seed sweep (goal: 5 seeds cost at most 4.5x one)

Two figures for our side of every row:

- whole command: the wall time of `mle6 ...` with its defaults (`--save-every 1`: every epoch
  also writes resume.pt), as a user's shell sees it, imports and figures included;
- training loop: the `train_seconds` that the same command reports when run with
  `--save-every 0` (steps and per-epoch evaluation, no per-epoch saving), the counterpart of
  the seed pipeline's `train_seconds` (its loop alone). These "loop runs" are made on CUDA by
  default (`--loop-runs on|off|auto`); elsewhere the loop figure is the default run's
  `train_seconds` (saving costs 2-3% of an epoch on the CPU).

Every one of our jobs runs before every seed-pipeline job (with --repeat, the rounds alternate
which side goes first), so a bench cut short keeps our figures; a job that fails is reported as
failed with the last line of its error, and every other job is still run and printed.

Data: the SIGNS arrays in --data-dir (default sign_data/, the Makefile's SIGNS_DATA) when they
are there, else `--synthetic` for both sides; MNIST from --mnist-root (default data/, the
Makefile's MNIST_DIR), else synthetic digits. A project command that is not registered is
skipped with its reason. Prints a table of times, ratios (seed/ours: above 1 means ours is
faster), whether graphs were used, and accuracies; checks the goals measured at their sizes,
and writes bench.json. On a shared machine, use `--repeat 3`: each side's fastest run is kept.

    python benchmarks/bench.py --device cpu                # 50 SIGNS epochs; AE: 1 epoch on 4000 images
    python benchmarks/bench.py --device cpu --epochs 10 --repeat 3   # quicker; on a shared machine
    python benchmarks/bench.py --device cuda               # the GPU goals' sizes: 50 epochs; AE 10 epochs on 60k
    python benchmarks/bench.py --device cuda --seed-ae-epochs 1   # the same, the seed's AE timed for 1 epoch

bench.json is rewritten after every job ("complete": false until the end), so a run cut short
still leaves what it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SWEEP_LRS = "1e-1,1e-3,1e-4,1e-5"
LATENT_DIMS = "3,10,100,250"
MNIST_FILES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}


# ---------------------------------------------------------------- MNIST in torchvision's layout


def _mnist():
    """mle6cli.data.mnist of this checkout: MNIST is read, written and made up as the project does."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from mle6cli.data import mnist

    return mnist


def write_idx(path: Path, array: np.ndarray) -> None:
    path.write_bytes(_mnist().idx_bytes(array))


def _find_raw(root: Path, name: str) -> Path | None:
    for candidate in (root / "MNIST" / "raw" / name, root / "MNIST" / "raw" / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _as_files(data) -> dict:
    """An `MnistData` as the four arrays of MNIST's files (keys as in MNIST_FILES)."""
    return {
        ("train", "images"): data.train_x[:, 0].numpy(),
        ("train", "labels"): data.train_y.numpy().astype(np.uint8),
        ("test", "images"): data.test_x[:, 0].numpy(),
        ("test", "labels"): data.test_y.numpy().astype(np.uint8),
    }


def synthetic_mnist(n_train: int, n_test: int, seed: int = 0) -> dict:
    """The project's stand-in digits (`--synthetic`), 28x28 uint8: for where no copy of MNIST is at hand."""
    return _as_files(_mnist().synthetic_mnist(seed, n_train, n_test))


def tiled_mnist(source_root: Path | None, target_root: Path, n_train: int) -> dict:
    """Write MNIST/raw under `target_root` with the source's training images repeated up to n_train."""
    arrays, synthetic = None, True
    if source_root is not None and all(_find_raw(source_root, name) for name in MNIST_FILES.values()):
        arrays = _as_files(_mnist().load_mnist(source_root, "cpu", download=False))
        synthetic = False
    if arrays is None:
        arrays = synthetic_mnist(min(n_train, 8000), 2000)
    raw = target_root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    n_source = len(arrays[("train", "images")])
    for key, name in MNIST_FILES.items():
        array = arrays[key]
        if key[0] == "train":
            array = np.resize(array, (n_train, *array.shape[1:]))  # repeats the images in order
        write_idx(raw / name, array)
    return {"root": str(target_root), "n_train": n_train, "source_images": n_source, "synthetic": synthetic}


# ---------------------------------------------------------------- running one job

sys.path.insert(0, str(HERE))  # bench_report beside this file, when run as a script or loaded by path
from bench_report import (  # noqa: E402
    OURS,
    SIDE_ORDER,
    _last_line,
    build_row,
    device_name,
    goals,
    graphs_line,
    graphs_used,
    render_table,
    scale_label,
    side_label,
    tf32_line,
    tf32_state,
    write_report,
)


def run_job(argv: list[str], env: dict, timeout: float) -> dict:
    started = time.perf_counter()
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        wall = time.perf_counter() - started
        return {"ok": False, "error": f"timed out after {timeout:.0f} s", "wall_seconds": wall, "argv": argv[1:]}
    except OSError as err:
        return {"ok": False, "error": f"{type(err).__name__}: {err}", "argv": argv[1:]}
    wall = time.perf_counter() - started
    job = {"ok": proc.returncode == 0, "exit_code": proc.returncode, "wall_seconds": wall, "argv": argv[1:]}
    notes = [line.strip() for line in proc.stderr.splitlines() if line.strip().startswith("Note:")]
    if notes:  # e.g. "Note: CUDA graph capture failed (...)": the reason a row ran without graphs
        job["notes"] = notes
    if proc.returncode != 0:
        job["error"] = _last_line(proc.stderr, proc.stdout)
        return job
    try:
        job["doc"] = json.loads(proc.stdout)
    except json.JSONDecodeError:
        job.update(ok=False, error="its --json output is not one JSON document: " + _last_line(proc.stdout))
        return job
    job["train_seconds"] = job["doc"].get("train_seconds")
    job["graphs"] = graphs_used(job["doc"])
    return job


# ---------------------------------------------------------------- the bench


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Seed pipeline vs mle6 commands, side by side.")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="SIGNS epochs (default: 50, the commands' default and the size the goals are set at)",
    )
    parser.add_argument("--ae-epochs", type=int, default=None, help="AE epochs (default: 10 on CUDA, 1 elsewhere)")
    parser.add_argument(
        "--seed-ae-epochs",
        type=int,
        default=None,
        help="AE epochs the seed pipeline really runs (default: --ae-epochs); fewer are scaled up to --ae-epochs",
    )
    parser.add_argument(
        "--ae-images", type=int, default=None, help="AE training images (default: 60000 on CUDA, 4000 elsewhere)"
    )
    parser.add_argument("--data-dir", type=Path, default=REPO / "sign_data", help="SIGNS npy folder")
    parser.add_argument("--mnist-root", type=Path, default=REPO / "data", help="folder holding MNIST/raw/")
    parser.add_argument(
        "--only",
        default="train-cnn,sweep-lr,train-ae",
        help="comma-separated subset of train-cnn,sweep-lr,train-ae,seeds, run in this order",
    )
    parser.add_argument(
        "--loop-runs",
        choices=("auto", "on", "off"),
        default="auto",
        help="also run our commands with --save-every 0 for the training-loop figure (auto: on CUDA only)",
    )
    parser.add_argument(
        "--seed-pipeline", type=Path, default=HERE / "seed_pipeline.py", help="the baseline script (its CLI)"
    )
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for every job (default: unset)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per job")
    parser.add_argument(
        "--repeat", type=int, default=1, help="run each job N times, alternating sides; report each side's fastest"
    )
    parser.add_argument("--out", type=Path, default=Path("bench.json"))
    args = parser.parse_args(argv)

    import torch

    if str(REPO) not in sys.path:  # this checkout's mle6cli, as the jobs get it (PYTHONPATH below)
        sys.path.insert(0, str(REPO))
    from mle6cli.commands import COMMANDS
    from mle6cli.engine.device import describe_device, resolve_device
    from mle6cli.fmt import plural

    device = resolve_device(args.device)
    on_gpu = device.type == "cuda"
    epochs = args.epochs or 50
    ae_epochs = args.ae_epochs or (10 if on_gpu else 1)
    ae_images = args.ae_images or (60000 if on_gpu else 4000)
    seed_ae_epochs = min(args.seed_ae_epochs or ae_epochs, ae_epochs)
    loop_runs = args.loop_runs == "on" or (args.loop_runs == "auto" and on_gpu)
    registered = {name for name, _ in COMMANDS}
    tasks = [t.strip() for t in args.only.split(",") if t.strip()]

    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    data_dir = args.data_dir.resolve()  # the jobs run in the repository
    real_signs = (data_dir / "X_train.npy").is_file()
    signs = ["--data-dir", str(data_dir)] if real_signs else ["--synthetic"]
    py, seed_script, mle6 = sys.executable, str(args.seed_pipeline.resolve()), [sys.executable, "-m", "mle6cli"]
    dev = ["--device", str(device)]
    no_saving = ["--save-every", "0"]

    report = {
        "schema": 2,
        "device": describe_device(device),
        "device_name": device_name(device),
        "torch": torch.__version__,
        "tf32": tf32_state(),
        "cpu_count": os.cpu_count(),
        "threads": args.threads,
        "repeat": args.repeat,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "epochs": epochs,
        "ae_epochs": ae_epochs,
        "seed_ae_epochs": seed_ae_epochs,
        "ae_images": ae_images,
        "latent_dims": [int(d) for d in LATENT_DIMS.split(",")],
        "lrs": [float(v) for v in SWEEP_LRS.split(",")],
        "loop_runs": loop_runs,
        "complete": False,
        "signs": str(data_dir) if real_signs else "synthetic",
        "rows": [],
    }
    print(
        f"bench on {report['device']}: SIGNS {report['signs']}, {plural(epochs, 'epoch')}; "
        f"AE {plural(ae_epochs, 'epoch')}"
        + (f" (seed: {scale_label(seed_ae_epochs, ae_epochs)})" if seed_ae_epochs < ae_epochs else ""),
        flush=True,
    )
    print(tf32_line(report["tf32"]), flush=True)
    write_report(args.out, report)
    with tempfile.TemporaryDirectory(prefix="mle6-bench-") as tmp:
        tmp = Path(tmp)
        jobs: dict[str, dict[str, list[str]]] = {}  # task -> side -> argv (mle6 sides get --out when run)
        if "train-cnn" in tasks:
            jobs["train-cnn"] = {
                "seed": [py, seed_script, "cnn", *signs, "--lrs", "1e-3", "--epochs", str(epochs), *dev, "--json"],
                "ours": [*mle6, "train-cnn", *signs, "--lr", "1e-3", "--epochs", str(epochs), "--batch-size", "64"]
                + [*dev, "--json"],
            }
        if "sweep-lr" in tasks:
            jobs["sweep-lr"] = {
                "seed": [py, seed_script, "cnn", *signs, "--lrs", SWEEP_LRS, "--epochs", str(epochs), *dev, "--json"],
                "ours": [*mle6, "sweep-lr", *signs, "--lrs", SWEEP_LRS, "--epochs", str(epochs), "--batch-size", "64"]
                + [*dev, "--json"],
            }
        if "train-ae" in tasks:
            mnist = tiled_mnist(args.mnist_root, tmp / "mnist", ae_images)
            report["mnist"] = mnist
            jobs["train-ae"] = {
                "seed": [py, seed_script, "ae", "--mnist-root", mnist["root"], "--latent-dims", LATENT_DIMS]
                + ["--epochs", str(seed_ae_epochs), *dev, "--json"],
                "ours": [*mle6, "train-ae", "--data-dir", mnist["root"], "--latent-dims", LATENT_DIMS]
                + ["--epochs", str(ae_epochs), *dev, "--json"],
            }
        if "seeds" in tasks:
            sweep = [*mle6, "sweep-lr", *signs, "--lrs", SWEEP_LRS, "--epochs", str(epochs), *dev, "--json"]
            # the one-seed baseline is timed as our loop is: with loop runs, at --save-every 0
            jobs["seeds"] = {
                "seed": [*sweep, "--seed", "0", *(no_saving if loop_runs else [])],
                "ours": [*sweep, "--seeds", "0-4"],
            }
        skipped = {}
        for task, sides in jobs.items():
            if loop_runs:
                sides["ours_loop"] = [*sides["ours"], *no_saving]
            if task not in registered and task != "seeds":
                skipped[task] = f"`mle6 {task}` is not registered in this checkout"
        order = sorted(jobs, key=tasks.index)  # in the order --only names them
        runs = {task: {side: [] for side in SIDE_ORDER if side in jobs[task]} for task in order}
        for r in range(args.repeat):
            # ours first: a bench cut short keeps the figures the goals need; alternate rounds so drift hits both
            phases = [OURS, ("seed",)] if r % 2 == 0 else [("seed",), OURS]
            for sides in phases:
                for task in order:
                    for side in sides:
                        if side not in jobs[task] or (side in OURS and task in skipped):
                            continue
                        argv = list(jobs[task][side])
                        if argv[:3] == mle6:
                            argv += ["--out", str(tmp / f"{task}-{side}-{r}")]
                        print(f"-- {task}: {side_label(task, side)} ...", flush=True)
                        job = run_job(argv, env, args.timeout)
                        if not job["ok"]:
                            print(f"   failed: {job['error']}", flush=True)
                        runs[task][side].append(job)
                        report["rows"] = [
                            build_row(t, runs[t], skipped.get(t), seed_ae_epochs, ae_epochs)
                            for t in order
                            if t in skipped or any(runs[t].values())
                        ]
                        write_report(args.out, report)  # after every job: a run cut short keeps what it measured
        for task in skipped:
            print(f"   skipped ours: {skipped[task]}", flush=True)
        report["rows"] = [build_row(t, runs[t], skipped.get(t), seed_ae_epochs, ae_epochs) for t in order]

    print()
    for line in render_table(report):
        print(line)
    report["goals"] = goals(report, on_gpu)
    if report["goals"]:
        print()
    for goal in report["goals"]:
        print(f"goal {goal['goal']}: {goal['verdict']} ({goal['measured']} on {goal['card']})")
    if on_gpu:
        print(f"graphs: {graphs_line(report)}")
    report["complete"] = True
    write_report(args.out, report)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
