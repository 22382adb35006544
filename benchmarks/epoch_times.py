"""Seconds per training epoch on SIGNS-sized data, in one process, for the paths a sweep can take.

    python benchmarks/epoch_times.py --device cpu --threads 1,2 --repeats 3

Rows (each one epoch of 960 images at batch 64, val evaluation included, after a warm-up epoch):
- seed:            the seed pipeline's epoch (float64 arrays, per-item ToTensor, DataLoader), 1 model
- mle6 x1:         engine.loop.fit with one fused member (train-cnn's path)
- mle6 x4:         4 learning rates as one fused model (sweep-lr's CPU path: per-member layout)
- mle6 grouped x4: the same with the CUDA layout (grouped conv2, batched matmuls)
- mle6 seeds 4x5:  4 learning rates x 5 seeds (each seed its own batch order)
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

from mle6cli.data.splits import Split  # noqa: E402
from mle6cli.engine.fused import FusedCNNMembers  # noqa: E402
from mle6cli.engine.loop import MemberState, fit  # noqa: E402
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
    parser.add_argument("--data-dir", type=Path, default=HERE.parent / "sign_data")
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
        for state in (states * 5)[:k]:
            m = CNNClassifier().to(device)
            m.load_state_dict(state)
            out.append(m)
        return out

    def mle6(lrs: list[float], seeds: list[int], per_member: bool | None = None):
        def run() -> None:
            members = FusedCNNMembers(models(len(lrs) * len(seeds)), [lr for lr in lrs for _ in seeds], per_member)
            states = [MemberState(seed=s) for _ in lrs for s in seeds]
            fit(members, states, train, evals, epochs=1, batch_size=64)

        return run

    rows = {
        "seed": seed_epoch,
        "mle6 x1": mle6([1e-3], [0]),
        "mle6 x4": mle6(LRS, [0]),
        "mle6 grouped x4": mle6(LRS, [0], per_member=False),
        "mle6 seeds 4x5": mle6(LRS, [0, 1, 2, 3, 4]),
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
