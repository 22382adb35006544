"""Benchmark of the MNIST autoencoders on real digits (CPU): quality, the collapse census, PCA.

    PYTHONPATH=. python benchmarks/mnist_ae.py --mnist-root ../shared/data/mnist-mini --json-out bench.json

- collapse census: seeds × latent dims, `--epochs` epochs each, once with PyTorch's default
  initialisation and no restarts (how often the exercise's model dies), once with the fix and
  the default restarts (how many needed one; none may stay collapsed);
- final test MSE at d=3 and d=100 (targets: < 0.09 and < 0.04 after 5 epochs);
- the exact optimum (Gram-matrix eigenvectors) against numpy's SVD of the training matrix;
- conv AE (seed 0, with the fix) against exact PCA at each dim.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mle6cli.autoencoders import AeConfig, train_autoencoders  # noqa: E402
from mle6cli.pca import projection_mse, singular_basis  # noqa: E402

from mle6cli.data.mnist import load_mnist  # noqa: E402


def census(data, dims, seeds, epochs, live_init: bool, retries: int) -> list[dict]:
    rows = []
    for d in dims:
        for seed in seeds:
            config = AeConfig(latent_dims=[d], epochs=epochs, seed=seed, retries=retries, live_init=live_init)
            start = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp:
                result = train_autoencoders(config, data, torch.device("cpu"), Path(tmp))
            r = result.runs[0]
            rows.append(
                {
                    "latent_dim": d,
                    "seed": seed,
                    "final_test_mse": r.final_test_mse,
                    "collapsed": r.collapsed,
                    "restarts": r.retries,
                    "attempts": r.attempts,
                    "seconds": time.perf_counter() - start,
                }
            )
            print(
                f"  live_init={live_init} d={d:3d} seed={seed} test MSE {r.final_test_mse:.4f} "
                f"collapsed={r.collapsed} restarts={r.retries} ({rows[-1]['seconds']:.0f} s)",
                flush=True,
            )
    return rows


def pca_agreement(data, dims) -> dict:
    basis, _ = singular_basis(data.train_x)
    ours = projection_mse(data.test_x, basis, dims)
    x = data.train_x.reshape(len(data.train_x), -1).double().numpy() / 255.0
    t = data.test_x.reshape(len(data.test_x), -1).double().numpy() / 255.0
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    out = {}
    for k in dims:
        v = vt[:k].T
        reference = float(((t - t @ v @ v.T) ** 2).mean())
        out[k] = {"ours": ours[k], "numpy_svd": reference, "abs_diff": abs(ours[k] - reference)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist-root", default="../shared/data/mnist-mini")
    parser.add_argument("--dims", default="3,10,100,250")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--skip-plain", action="store_true", help="skip the census without the fix")
    parser.add_argument("--json-out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    dims = [int(v) for v in args.dims.split(",")]
    seeds = [int(v) for v in args.seeds.split(",")]
    data = load_mnist(args.mnist_root, torch.device("cpu"), download=False)
    report = {"data": data.describe(), "epochs": args.epochs, "dims": dims, "seeds": seeds}

    print("PCA optimum vs numpy SVD", flush=True)
    report["pca"] = pca_agreement(data, dims)
    for k, row in report["pca"].items():
        print(f"  k={k}: ours {row['ours']:.6f} numpy {row['numpy_svd']:.6f} |diff| {row['abs_diff']:.2e}")

    if not args.skip_plain:
        print("census WITHOUT the fix (PyTorch default init, no restarts)", flush=True)
        report["census_plain"] = census(data, dims, seeds, args.epochs, live_init=False, retries=0)
    print("census WITH the fix (live output init, default restarts)", flush=True)
    report["census_fixed"] = census(data, dims, seeds, args.epochs, live_init=True, retries=AeConfig().retries)

    print("summary")
    for name in ("census_plain", "census_fixed"):
        if name not in report:
            continue
        rows = report[name]
        first_try = sum(1 for r in rows if r["attempts"][0]["status"] == "collapsed")
        per_dim = {
            d: sum(1 for r in rows if r["latent_dim"] == d and r["attempts"][0]["status"] == "collapsed") for d in dims
        }
        print(
            f"  {name}: {first_try}/{len(rows)} first tries collapsed {per_dim}; "
            f"restarts {sum(r['restarts'] for r in rows)}; still collapsed {sum(r['collapsed'] for r in rows)}"
        )
    fixed = report["census_fixed"]
    for d in dims:
        values = [r["final_test_mse"] for r in fixed if r["latent_dim"] == d]
        print(
            f"  d={d}: test MSE after {args.epochs} epochs, seeds {seeds}: "
            f"max {max(values):.4f} mean {np.mean(values):.4f}"
        )
    pca_all = projection_mse(data.test_x, singular_basis(data.train_x)[0], dims)
    report["conv_vs_pca"] = []
    for d in dims:
        conv = [r["final_test_mse"] for r in fixed if r["latent_dim"] == d]
        row = {"latent_dim": d, "conv_ae_mean": float(np.mean(conv)), "pca": pca_all[d]}
        report["conv_vs_pca"].append(row)
        better = "conv AE" if row["conv_ae_mean"] < row["pca"] else "PCA"
        print(f"  d={d}: conv AE mean {row['conv_ae_mean']:.4f} vs exact PCA {row['pca']:.4f} -> {better}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2, default=float) + "\n")


if __name__ == "__main__":
    main()
