"""Quality benchmark on the real SIGNS data (run by hand, not a test).

Runs `mle6 train-cnn` (lr 1e-3, 50 epochs, batch 64) and `mle6 sweep-lr` (1e-1,1e-3,1e-4,1e-5,
50 epochs) as separate processes on the CPU, and reports test accuracy, the sweep's ranking and
wall times. Targets from the exercise: test accuracy >= 0.89 at lr 1e-3; in the sweep 1e-3 is
best and 1e-1 fails.

    python benchmarks/signs_quality.py [--data-dir sign_data] [--epochs 50] [--threads N]

`--threads` sets OMP_NUM_THREADS for the runs (on a busy 2-core machine, 1 is much faster).
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

REPO = Path(__file__).resolve().parents[1]


def _epochs(count: int) -> str:
    """'1 epoch', '50 epochs' (mle6cli.fmt.plural, without importing the package here)."""
    return f"{count} epoch" + ("s" if count != 1 else "")


def run(args: list[str], env: dict) -> tuple[dict, float]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "mle6cli", *args, "--json", "--quiet"], capture_output=True, text=True, env=env
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return json.loads(done.stdout), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(REPO / "sign_data"))
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--json-out", default=None, help="Also write the results here.")
    opts = parser.parse_args()

    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if opts.threads:
        env["OMP_NUM_THREADS"] = str(opts.threads)
    common = ["--data-dir", opts.data_dir, "--epochs", str(opts.epochs), "--device", opts.device]
    results = {"epochs": opts.epochs, "device": opts.device, "threads": opts.threads}
    with tempfile.TemporaryDirectory() as tmp:
        train, wall = run(["train-cnn", *common, "--lr", "1e-3", "--batch-size", "64", "--out", f"{tmp}/t"], env)
        results["train_cnn"] = {
            "test_acc": train["test_acc"],
            "test_loss": train["test_loss"],
            "final": train["final"],
            "train_seconds": train["train_seconds"],
            "wall_seconds": wall,
        }
        print(
            f"train-cnn lr 1e-03, {_epochs(opts.epochs)}: test acc {train['test_acc']:.4f} "
            f"(target >= 0.89), val acc {train['final']['val_acc']:.4f}, "
            f"train {train['train_seconds']:.1f} s, wall {wall:.1f} s"
        )
        if not opts.skip_sweep:
            sweep, wall = run(["sweep-lr", *common, "--out", f"{tmp}/s"], env)
            ranking = sorted(sweep["runs"], key=lambda r: -(r["final"] or {}).get("val_acc", -1))
            results["sweep_lr"] = {
                "best_lr": sweep["best_lr"],
                "test_acc": sweep["test_acc"],
                "val_test_gap": sweep["val_test_gap"],
                "runs": [
                    {"lr": r["lr"], "diverged": r["diverged"], "final": r["final"], "test_acc": r["test_acc"]}
                    for r in sweep["runs"]
                ],
                "train_seconds": sweep["train_seconds"],
                "wall_seconds": wall,
            }
            print(f"sweep-lr, {_epochs(opts.epochs)}: train {sweep['train_seconds']:.1f} s, wall {wall:.1f} s")
            for r in ranking:
                final = r["final"] or {}
                print(
                    f"  lr {r['lr']:g}: val acc {final.get('val_acc', float('nan')):.4f}, "
                    f"val loss {final.get('val_loss', float('nan')):.4f}, test acc {r['test_acc']}, "
                    f"{'diverged' if r['diverged'] else 'completed'}"
                )
            print(
                f"  best lr {sweep['best_lr']:g}: test acc {sweep['test_acc']:.4f}, "
                f"|val - test| {sweep['val_test_gap']:.4f}"
            )
    if opts.json_out:
        Path(opts.json_out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
