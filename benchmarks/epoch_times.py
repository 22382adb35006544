"""Seconds per training epoch on SIGNS-sized data, in one process, for the paths a sweep can take.

    python benchmarks/epoch_times.py --device cpu --threads 1,2 --repeats 3

Rows (each one epoch of 960 images at batch 64, val evaluation included, after a warm-up epoch):
- seed:            the seed pipeline's epoch (float64 arrays, per-item ToTensor, DataLoader), 1 model
- train_model:     mle6cli.train.train_model, 1 model (data on the device, index-sliced batches)
- fused x1:        mle6cli.fused.fit_fused with one member (train-cnn through the fused code)
- sequential x4:   train_model for each of 4 learning rates, one after another
- fused x4:        mle6cli.fused.fit_fused, 4 learning rates as one model (per-member layout)
- fused-grouped x4: the same with the CUDA layout (grouped conv2, batched matmuls)
Repeats are interleaved (A B C A B C ...) so a machine that gets busier hurts every row alike;
the median is reported, with the process CPU time per epoch beside it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import seed_pipeline  # noqa: E402
from mle6cli.train import CLASSIFY, Split, train_model  # noqa: E402

from mle6cli import fused as fz  # noqa: E402
from mle6cli.models import CNNClassifier  # noqa: E402

LRS = [1e-1, 1e-3, 1e-4, 1e-5]


def arrays(data_dir: Path) -> dict:
    if (data_dir / "X_train.npy").is_file():
        return seed_pipeline.load_signs_arrays(data_dir)
    return seed_pipeline.synthetic_signs_arrays(0)


def to_split(x: np.ndarray, y: np.ndarray, device) -> Split:
    return Split(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().to(device), torch.from_numpy(y).to(device))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, default=HERE.parent.parent / "shared" / "data" / "sign_data")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    data = arrays(args.data_dir)
    train = to_split(data["X_train"], data["Y_train"], device)
    evals = {"val": to_split(data["X_val"], data["Y_val"], device)}
    loaders = seed_pipeline.signs_loaders(data, 64)
    torch.manual_seed(0)
    states = [CNNClassifier().state_dict() for _ in LRS]

    def seed_epoch() -> None:
        seed_pipeline.train_cnn(1e-3, loaders, 1, device, 0)

    def models(k: int):
        out = []
        for state in states[:k]:
            m = CNNClassifier().to(device)
            m.load_state_dict(state)
            out.append(m)
        return out

    def plain(k: int):
        def run() -> None:
            for model, lr in zip(models(k), LRS, strict=True):
                opt = torch.optim.Adam(model.parameters(), lr=lr)
                train_model(model, opt, CLASSIFY, train, evals, epochs=1, batch_size=64, seed=0, use_graphs=False)

        return run

    def fused(per_member: bool, k: int = 4):
        def run() -> None:
            f = fz.pack(models(k))
            f.per_member = per_member
            optimizer = fz.FusedAdam(list(f.parameters()), LRS[:k])
            fz.fit_fused(f, optimizer, train, evals, epochs=1, batch_size=64, seed=0)

        return run

    rows = {
        "seed": seed_epoch,
        "train_model": plain(1),
        "fused x1": fused(True, 1),
        "sequential x4": plain(4),
        "fused x4": fused(True),
        "fused-grouped x4": fused(False),
    }
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        wall = {k: [] for k in rows}
        cpu = {k: [] for k in rows}
        for fn in rows.values():  # warm-up
            fn()
        for _ in range(args.repeats):
            for name, fn in rows.items():
                w, c = time.perf_counter(), time.process_time()
                fn()
                wall[name].append(time.perf_counter() - w)
                cpu[name].append(time.process_time() - c)
        print(f"threads={threads} device={device} (seconds per epoch, median of {args.repeats}; cpu = process time)")
        for name in rows:
            print(f"  {name:18s} wall {statistics.median(wall[name]):7.3f}   cpu {statistics.median(cpu[name]):7.3f}")
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
