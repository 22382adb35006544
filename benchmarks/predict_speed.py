"""How fast `mle6 predict` is on the CPU: a whole process on one PNG against `python -c "import torch"`
(the floor any torch program pays), and images per second on 1,000 images in one call.

    python benchmarks/predict_speed.py RUN [--repeats 5]

RUN is a finished train-cnn run folder. Prints medians; writes nothing but temporary files.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def seconds(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--images", type=int, default=1000)
    args = parser.parse_args()

    import numpy as np
    from PIL import Image

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        one = Path(tmp) / "one.png"
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(one)
        many = Path(tmp) / "many.npy"
        np.save(many, rng.integers(0, 256, (args.images, 64, 64, 3), dtype=np.uint8))
        predict = [sys.executable, "-m", "mle6cli", "predict", str(args.run), "--device", "cpu", "--json"]
        torch_only, single = [], []
        for _ in range(args.repeats):  # interleaved, so a busy moment of the machine hits both
            torch_only.append(seconds([sys.executable, "-c", "import torch"], env))
            single.append(seconds([*predict, str(one)], env))
        batch = [seconds([*predict, str(many)], env) for _ in range(args.repeats)]
        code = (
            "import time, numpy as np, torch; from mle6cli.tasks.predict import batches; "
            "from mle6cli.tasks.trained import open_trained; "
            f"t = open_trained({str(args.run)!r}); x = np.load({str(many)!r}); s = time.perf_counter()\n"
            "with torch.inference_mode():\n  [t.model(b) for b in batches(x, 'cpu')]\n"
            "print(time.perf_counter() - s)"
        )
        forward = [
            float(
                subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True).stdout
            )
            for _ in range(args.repeats)
        ]
    t, p = statistics.median(torch_only), statistics.median(single)
    print(f"python -c 'import torch':     median {t:.3f} s  ({', '.join(f'{v:.2f}' for v in torch_only)})")
    print(f"mle6 predict RUN one.png:     median {p:.3f} s  ({', '.join(f'{v:.2f}' for v in single)})")
    print(f"predict minus import torch:   {p - t:+.3f} s (budget +0.5 s)")
    b = statistics.median(batch)
    print(f"mle6 predict RUN {args.images} images: median {b:.3f} s whole process, {args.images / b:.0f} images/s")
    f = statistics.median(forward)
    print(f"forward passes alone:         median {f:.3f} s, {args.images / f:.0f} images/s (threads: torch's default)")


if __name__ == "__main__":
    main()
