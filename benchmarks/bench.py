"""`make bench`: the seed's pipeline and the project's commands side by side, as whole processes.

Each job runs as its own process, timed with a wall clock from the outside; its `--json`
document also gives the `train_seconds` it measured itself, and its accuracy (or MSE).
Pairs (seed vs ours, same device, same epochs, same data):

- train-cnn: the seed pipeline at lr 1e-3 vs `mle6 train-cnn --lr 1e-3`
- sweep-lr:  the seed pipeline over 4 lrs vs `mle6 sweep-lr --lrs 1e-1,1e-3,1e-4,1e-5`
- train-ae:  the seed AE pipeline (torchvision MNIST + DataLoader) vs `mle6 train-ae`, on
  mnist-mini tiled up to --ae-images training images in a temporary torchvision folder
- seeds:     `mle6 sweep-lr --seed 0` (4 members) vs `mle6 sweep-lr --seeds 0-4` (20 fused members):
  the "seed" columns of this row are the one-seed sweep (goal: 5 seeds cost at most 4.5x one)

Data: the real SIGNS arrays when --data-dir holds them (default ../shared/data/sign_data),
else `--synthetic` for both sides. A project command that is not registered is skipped with
its reason. Prints a table of times, ratios (seed/ours: above 1 means ours is faster) and
accuracies, checks the issue's goals, and writes bench.json. On a shared machine, use
`--repeat 3`: the pairs run alternately and each side's fastest run is reported.

    python benchmarks/bench.py --device cpu                # 50 SIGNS epochs; AE: 1 epoch on 4000 images
    python benchmarks/bench.py --device cpu --epochs 10 --repeat 3   # quicker; on a shared machine
    python benchmarks/bench.py --device cuda               # the issue's sizes: 50 epochs, 10 AE epochs on 60k
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = REPO.parent / "shared" / "data"
SWEEP_LRS = "1e-1,1e-3,1e-4,1e-5"
LATENT_DIMS = "3,10,100,250"
MNIST_FILES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}


# ---------------------------------------------------------------- MNIST in torchvision's layout


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (plain or .gz) as a uint8 array."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    _, _, dtype, ndim = struct.unpack(">BBBB", data[:4])
    if dtype != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def write_idx(path: Path, array: np.ndarray) -> None:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.tobytes())


def _find_raw(root: Path, name: str) -> Path | None:
    for candidate in (root / "MNIST" / "raw" / name, root / "MNIST" / "raw" / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def synthetic_mnist(n_train: int, n_test: int, seed: int = 0) -> dict:
    """Blurry strokes on black, 28x28 uint8: stands in for MNIST where no copy is at hand."""
    rng = np.random.default_rng(seed)

    def images(n: int) -> np.ndarray:
        out = np.zeros((n, 28, 28), dtype=np.uint8)
        for img in out:
            for _ in range(rng.integers(1, 4)):
                r0, c0 = rng.integers(4, 24, 2)
                r1, c1 = rng.integers(4, 24, 2)
                for t in np.linspace(0, 1, 20):
                    r, c = int(r0 + t * (r1 - r0)), int(c0 + t * (c1 - c0))
                    img[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2] = 255
        return out

    return {
        ("train", "images"): images(n_train),
        ("train", "labels"): rng.integers(0, 10, n_train).astype(np.uint8),
        ("test", "images"): images(n_test),
        ("test", "labels"): rng.integers(0, 10, n_test).astype(np.uint8),
    }


def tiled_mnist(source_root: Path | None, target_root: Path, n_train: int) -> dict:
    """Write MNIST/raw under `target_root` with the source's training images repeated up to n_train."""
    arrays, synthetic = None, True
    if source_root is not None and all(_find_raw(source_root, name) for name in MNIST_FILES.values()):
        arrays = {key: read_idx(_find_raw(source_root, name)) for key, name in MNIST_FILES.items()}
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


def run_job(argv: list[str], env: dict, timeout: float) -> dict:
    started = time.perf_counter()
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout:.0f} s", "wall_seconds": time.perf_counter() - started}
    wall = time.perf_counter() - started
    job = {"ok": proc.returncode == 0, "exit_code": proc.returncode, "wall_seconds": wall, "argv": argv[1:]}
    if proc.returncode != 0:
        job["error"] = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return job
    try:
        job["doc"] = json.loads(proc.stdout)
    except json.JSONDecodeError:
        job.update(ok=False, error="its --json output is not one JSON document")
    return job


def _metric(task: str, doc: dict | None) -> str:
    if not doc:
        return "-"
    if task == "train-ae":
        mses = []
        for run in doc.get("runs", []):
            value = next((run[k] for k in ("final_test_mse", "test_mse") if run.get(k) is not None), None)
            mses.append(f"{run.get('latent_dim')}:{value:.4f}" if value is not None else f"{run.get('latent_dim')}:-")
        return "mse " + " ".join(mses)
    acc = doc.get("test_acc")
    text = f"test acc {acc:.4f}" if isinstance(acc, (int, float)) else "test acc -"
    if task == "sweep-lr" and doc.get("best_lr") is not None:
        text += f" (best lr {doc['best_lr']:g})"
    return text


def _fmt(value, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Seed pipeline vs mle6 commands, side by side.")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="SIGNS epochs (default: 50, the commands' default and the issue's goals)",
    )
    parser.add_argument("--ae-epochs", type=int, default=None, help="AE epochs (default: 10 on CUDA, 1 elsewhere)")
    parser.add_argument(
        "--ae-images", type=int, default=None, help="AE training images (default: 60000 on CUDA, 4000 elsewhere)"
    )
    parser.add_argument("--data-dir", type=Path, default=SHARED / "sign_data")
    parser.add_argument("--mnist-root", type=Path, default=SHARED / "mnist-mini")
    parser.add_argument(
        "--only",
        default="train-cnn,sweep-lr,train-ae",
        help="comma-separated subset of train-cnn,sweep-lr,train-ae,seeds",
    )
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for every job (default: unset)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per job")
    parser.add_argument(
        "--repeat", type=int, default=1, help="run each pair N times, alternating; report each side's fastest run"
    )
    parser.add_argument("--out", type=Path, default=Path("bench.json"))
    args = parser.parse_args(argv)

    import torch

    from mle6cli.commands import COMMANDS
    from mle6cli.engine.device import describe_device, resolve_device
    from mle6cli.fmt import plural

    device = resolve_device(args.device)
    on_gpu = device.type == "cuda"
    epochs = args.epochs or 50
    ae_epochs = args.ae_epochs or (10 if on_gpu else 1)
    ae_images = args.ae_images or (60000 if on_gpu else 4000)
    registered = {name for name, _ in COMMANDS}
    tasks = [t.strip() for t in args.only.split(",") if t.strip()]

    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    real_signs = (args.data_dir / "X_train.npy").is_file()
    signs = ["--data-dir", str(args.data_dir)] if real_signs else ["--synthetic"]
    py, seed_script, mle6 = sys.executable, str(HERE / "seed_pipeline.py"), [sys.executable, "-m", "mle6cli"]
    dev = ["--device", str(device)]

    report = {
        "device": describe_device(device),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "threads": args.threads,
        "repeat": args.repeat,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "epochs": epochs,
        "ae_epochs": ae_epochs,
        "ae_images": ae_images,
        "signs": str(args.data_dir) if real_signs else "synthetic",
        "rows": [],
    }
    print(
        f"bench on {report['device']}: SIGNS {report['signs']}, {plural(epochs, 'epoch')}; "
        f"AE {plural(ae_epochs, 'epoch')}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="mle6-bench-") as tmp:
        tmp = Path(tmp)
        jobs = {}
        if "train-cnn" in tasks:
            jobs["train-cnn"] = (
                [py, seed_script, "cnn", *signs, "--lrs", "1e-3", "--epochs", str(epochs), *dev, "--json"],
                [*mle6, "train-cnn", *signs, "--lr", "1e-3", "--epochs", str(epochs), "--batch-size", "64", *dev]
                + ["--out", str(tmp / "train-cnn-@RUN@"), "--json"],
            )
        if "sweep-lr" in tasks:
            jobs["sweep-lr"] = (
                [py, seed_script, "cnn", *signs, "--lrs", SWEEP_LRS, "--epochs", str(epochs), *dev, "--json"],
                [*mle6, "sweep-lr", *signs, "--lrs", SWEEP_LRS, "--epochs", str(epochs), "--batch-size", "64", *dev]
                + ["--out", str(tmp / "sweep-lr-@RUN@"), "--json"],
            )
        if "train-ae" in tasks:
            mnist = tiled_mnist(args.mnist_root, tmp / "mnist", ae_images)
            report["mnist"] = mnist
            jobs["train-ae"] = (
                [py, seed_script, "ae", "--mnist-root", mnist["root"], "--latent-dims", LATENT_DIMS]
                + ["--epochs", str(ae_epochs), *dev, "--json"],
                [*mle6, "train-ae", "--data-dir", mnist["root"], "--latent-dims", LATENT_DIMS]
                + ["--epochs", str(ae_epochs), *dev, "--out", str(tmp / "train-ae-@RUN@"), "--json"],
            )
        if "seeds" in tasks:
            sweep = [*mle6, "sweep-lr", *signs, "--lrs", SWEEP_LRS, "--epochs", str(epochs), *dev, "--json"]
            jobs["seeds"] = (
                [*sweep, "--seed", "0", "--out", str(tmp / "seeds1-@RUN@")],
                [*sweep, "--seeds", "0-4", "--out", str(tmp / "seeds5-@RUN@")],
            )
        for task, (seed_argv, ours_argv) in jobs.items():
            row = {"task": task}
            runs = {"seed": [], "ours": []}
            for r in range(args.repeat):
                order = ("seed", "ours") if r % 2 == 0 else ("ours", "seed")  # alternate: drift hits both
                for side in order:
                    if side == "ours" and task not in registered and task != "seeds":
                        continue
                    print(f"-- {task}: {'seed pipeline' if side == 'seed' else 'mle6 ' + task} ...", flush=True)
                    argv = [a.replace("@RUN@", str(r)) for a in (seed_argv if side == "seed" else ours_argv)]
                    runs[side].append(run_job(argv, env, args.timeout))
            for side, jobs_done in runs.items():
                ok = [j for j in jobs_done if j.get("ok")]
                best = min(ok, key=lambda j: j["wall_seconds"]) if ok else (jobs_done[0] if jobs_done else None)
                row[side] = dict(best) if best else {}
                row[side]["walls"] = [j.get("wall_seconds") for j in jobs_done]
                row[side]["trains"] = [(j.get("doc") or {}).get("train_seconds") for j in jobs_done]
            if task not in registered and task != "seeds":
                row["ours"] = {"ok": False, "skipped": f"`mle6 {task}` is not registered in this checkout"}
                print(f"   skipped ours: {row['ours']['skipped']}", flush=True)
            for side in ("seed", "ours"):
                job = row[side]
                job["train_seconds"] = (job.get("doc") or {}).get("train_seconds")
                job["metric"] = _metric(task, job.get("doc"))
                if not job.get("ok") and "error" in job:
                    print(f"   {side} failed: {job['error']}", flush=True)
            for key in ("wall_seconds", "train_seconds"):
                a, b = row["seed"].get(key), row["ours"].get(key)
                row[f"ratio_{key}"] = a / b if row["ours"].get("ok") and a and b else None
            report["rows"].append(row)

    header = ["task", "seed wall", "ours wall", "ratio", "seed train", "ours train", "ratio", "seed", "ours"]
    table = [header]
    for row in report["rows"]:
        s, o = row["seed"], row["ours"]
        table.append(
            [
                row["task"],
                _fmt(s.get("wall_seconds")) if s.get("ok") else "failed",
                _fmt(o.get("wall_seconds")) if o.get("ok") else ("skipped" if "skipped" in o else "failed"),
                _fmt(row["ratio_wall_seconds"]) + ("x" if row["ratio_wall_seconds"] else ""),
                _fmt(s.get("train_seconds")),
                _fmt(o.get("train_seconds"), 3),
                _fmt(row["ratio_train_seconds"]) + ("x" if row["ratio_train_seconds"] else ""),
                s.get("metric", "-"),
                o.get("metric", "-"),
            ]
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    print()
    best = f", best of {args.repeat} alternating runs" if args.repeat > 1 else ""
    print(f"{report['device']}, SIGNS {report['signs']}, times in seconds{best}, ratio = seed / ours")
    for r in table:
        print(
            "  ".join(
                c.ljust(w) if i in (0, 7, 8) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    report["goals"] = goals(report, on_gpu)
    if report["goals"]:
        print()
    for goal in report["goals"]:
        print(f"goal {goal['goal']}: {goal['verdict']} ({goal['measured']})")
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nwrote {args.out}")
    return 0


# (task, epochs) -> the most ours may cost as a share of the seed pipeline's wall time (CPU goals)
CPU_WALL_GOALS = {("train-cnn", 15): 0.75, ("train-cnn", 50): 0.7, ("sweep-lr", 4): 0.7, ("sweep-lr", 50): 0.7}
FIXED_COST_GOAL = 0.3  # s: `mle6 train-cnn --epochs 1` at most this much slower than the seed's one epoch
SEEDS_GOAL = 4.5  # 5 seeds (20 members) at most this many times one seed's sweep (train seconds)


def goals(report: dict, on_gpu: bool) -> list[dict]:
    """The issues' targets, checked where this run measured them."""
    rows = {r["task"]: r for r in report["rows"] if r["ours"].get("ok") and r["seed"].get("ok")}
    epochs = report["epochs"]
    out = []

    def check(goal: str, value, ok: bool, measured: str) -> None:
        if value is not None:
            out.append({"goal": goal, "verdict": "met" if ok else "MISSED", "measured": measured})

    seeds = rows.get("seeds")
    if seeds:
        r = seeds["ours"]["train_seconds"] / seeds["seed"]["train_seconds"]
        check(f"5 seeds <= {SEEDS_GOAL} x one seed (train seconds)", r, r <= SEEDS_GOAL, f"{r:.2f} x")
    if on_gpu:
        sweep = rows.get("sweep-lr")
        if sweep:
            t, w, r = sweep["ours"]["train_seconds"], sweep["ours"]["wall_seconds"], sweep["ratio_train_seconds"]
            check("sweep-lr train_seconds <= 0.5 s", t, t is not None and t <= 0.5, f"{_fmt(t, 3)} s")
            check("sweep-lr whole process <= 8 s", w, w <= 8, f"{_fmt(w)} s")
            check("seed >= 30x slower in training (sweep)", r, r is not None and r >= 30, f"{_fmt(r, 1)}x")
        if seeds:
            t = seeds["ours"]["train_seconds"]
            check("4 lrs x 5 seeds train_seconds <= 1 s", t, t <= 1, f"{_fmt(t, 3)} s")
        ae = rows.get("train-ae")
        if ae:
            t = ae["ours"]["train_seconds"]
            check("train-ae train_seconds <= 8 s", t, t is not None and t <= 8, f"{_fmt(t)} s")
        return out
    for task in ("train-cnn", "sweep-lr"):
        row = rows.get(task)
        if not row:
            continue
        share = row["ours"]["wall_seconds"] / row["seed"]["wall_seconds"]
        limit = CPU_WALL_GOALS.get((task, epochs))
        if limit is not None:
            check(f"{task} wall <= {limit} x seed at {epochs} epochs", share, share <= limit, f"{share:.2f} x")
        if task == "train-cnn" and epochs == 1:
            extra = row["ours"]["wall_seconds"] - row["seed"]["wall_seconds"]
            check(
                f"train-cnn --epochs 1 <= seed + {FIXED_COST_GOAL} s",
                extra,
                extra <= FIXED_COST_GOAL,
                f"{extra:+.2f} s",
            )
    return out


if __name__ == "__main__":
    sys.exit(main())
