"""The exercise's own way of training, kept as the baseline `make bench` measures against.

Faithful to the seed notebook's pipeline, inefficiencies included:
- the images as numpy float64 arrays (uint8 / 255.);
- a torch Dataset converting ONE item at a time (`transforms.ToTensor()` on an HWC float64
  array, `torch.tensor(label)`), batched by a `DataLoader(shuffle=True, batch_size=64)`;
- `x.float().to(device)` per batch, one eager step at a time, `.item()` per batch for accuracy;
- NLLLoss + Adam on the exercise's CNN (`mle6cli.models.CNNClassifier`), a fresh model per
  learning rate from the same seed; per epoch the train loss (of the last batch, as the
  exercise kept), train accuracy, val loss and accuracy; test accuracy at the end.
- `ae`: torchvision's MNIST dataset (PIL image -> ToTensor per item), a DataLoader, the
  ConvAutoencoder with MSELoss + Adam, one model per latent dimension.

Usage:
    python benchmarks/seed_pipeline.py cnn --data-dir sign_data --lrs 1e-1,1e-3,1e-4,1e-5 --epochs 50
    python benchmarks/seed_pipeline.py cnn --synthetic --epochs 2 --json
    python benchmarks/seed_pipeline.py ae --mnist-root data --latent-dims 3,10 --epochs 1

`--json` prints one document with `train_seconds` (the training loops, validation included)
and `total_seconds` (from the start of main, data loading included); `ae` also gives
`eval_seconds`, the part of `train_seconds` spent on the one test pass per model (so that a
one-epoch run can be scaled to more epochs without scaling that pass too). On CUDA the context
is created before the clock starts (ours does the same when it moves the data there).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

STARTED = time.perf_counter()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn, optim  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402
from torchvision import transforms  # noqa: E402

from mle6cli.models import CNNClassifier, ConvAutoencoder  # noqa: E402

SPLITS = ("train", "val", "test")


# ---------------------------------------------------------------- data, the seed's way


class SignsDataset(Dataset):
    """Float64 HWC images, converted to a tensor one item at a time."""

    def __init__(self, x: np.ndarray, y: np.ndarray, transform=None):
        self.x, self.y, self.transform = x, y, transform

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        image = self.x[i]
        if self.transform is not None:
            image = self.transform(image)  # (3, 64, 64) float64
        return image, torch.tensor(self.y[i])


def synthetic_signs_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """The project's synthetic SIGNS when it has one (mle6cli.data.synthetic), else a tiny stand-in here."""
    if importlib.util.find_spec("mle6cli.data") is not None and importlib.util.find_spec("mle6cli.data.synthetic"):
        from mle6cli.data import synthetic

        if hasattr(synthetic, "synthetic_arrays"):
            return synthetic.synthetic_arrays(seed)
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in zip(SPLITS, (960, 120, 120), strict=True):
        labels = rng.integers(0, 6, n)
        images = rng.integers(0, 60, (n, 64, 64, 3)).astype(np.uint8)
        for image, label in zip(images, labels, strict=True):  # `label` bright bars: learnable in a few epochs
            for bar in range(label):
                image[8:56, 6 + 10 * bar : 12 + 10 * bar] = 220
        arrays[f"X_{split}"], arrays[f"Y_{split}"] = images, labels.astype(np.int64)
    return arrays


def load_signs_arrays(data_dir: Path) -> dict[str, np.ndarray]:
    return {f"{k}_{s}": np.load(Path(data_dir) / f"{k}_{s}.npy") for s in SPLITS for k in ("X", "Y")}


def signs_loaders(arrays: dict[str, np.ndarray], batch_size: int) -> dict[str, DataLoader]:
    to_tensor = transforms.ToTensor()
    loaders = {}
    for split in SPLITS:
        x = arrays[f"X_{split}"] / 255.0  # float64, as the exercise
        y = arrays[f"Y_{split}"]
        loaders[split] = DataLoader(SignsDataset(x, y, to_tensor), batch_size=batch_size, shuffle=split == "train")
    return loaders


# ---------------------------------------------------------------- training, the seed's way


def warm_up(device) -> None:
    """Create the CUDA context before the clock starts (a no-op elsewhere)."""
    if device.type == "cuda":
        torch.zeros(1, device=device)
        torch.cuda.synchronize(device)


def evaluate(model: nn.Module, loader: DataLoader, criterion, device, classify: bool = True) -> tuple[float, float]:
    model.eval()
    loss_sum, correct, total = 0.0, 0, 0
    with torch.no_grad():
        for x, y in loader:
            x = x.float().to(device)
            out = model(x)
            if classify:
                y = y.to(device)
                loss_sum += criterion(out, y).item() * len(x)
                correct += (out.argmax(1) == y).sum().item()
            else:
                loss_sum += criterion(out, x).item() * len(x)
            total += len(x)
    return loss_sum / total, correct / total


def train_cnn(lr: float, loaders: dict[str, DataLoader], epochs: int, device, seed: int) -> dict:
    torch.manual_seed(seed)
    model = CNNClassifier().to(device)
    criterion = nn.NLLLoss()
    optimizer = optim.Adam(model.parameters(), lr=lr)
    history = []
    for epoch in range(epochs):
        model.train()
        correct, total = 0, 0
        for x, y in loaders["train"]:
            x, y = x.float().to(device), y.to(device)
            optimizer.zero_grad()
            out = model(x)
            loss = criterion(out, y)
            loss.backward()
            optimizer.step()
            correct += (out.argmax(1) == y).sum().item()
            total += len(y)
        val_loss, val_acc = evaluate(model, loaders["val"], criterion, device)
        history.append(
            {
                "epoch": epoch + 1,
                "train_loss": loss.item(),
                "train_acc": correct / total,
                "val_loss": val_loss,
                "val_acc": val_acc,
            }
        )
    test_loss, test_acc = evaluate(model, loaders["test"], criterion, device)
    return {"lr": lr, "final": history[-1], "test_loss": test_loss, "test_acc": test_acc}


def run_cnn(args, device) -> dict:
    arrays = synthetic_signs_arrays(args.seed) if args.synthetic else load_signs_arrays(args.data_dir)
    loaders = signs_loaders(arrays, args.batch_size)
    warm_up(device)
    started = time.perf_counter()
    runs = [train_cnn(lr, loaders, args.epochs, device, args.seed) for lr in args.lrs]
    train_seconds = time.perf_counter() - started
    finite = [r for r in runs if np.isfinite(r["final"]["val_loss"])]
    best = max(finite or runs, key=lambda r: (r["final"]["val_acc"], -r["final"]["val_loss"]))
    return {
        "task": "cnn",
        "lrs": args.lrs,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "synthetic": args.synthetic,
        "runs": runs,
        "best_lr": best["lr"],
        "test_acc": best["test_acc"],
        "train_seconds": train_seconds,
    }


def run_ae(args, device) -> dict:
    from torchvision.datasets import MNIST

    train_set = MNIST(str(args.mnist_root), train=True, download=False, transform=transforms.ToTensor())
    test_set = MNIST(str(args.mnist_root), train=False, download=False, transform=transforms.ToTensor())
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True)
    test_loader = DataLoader(test_set, batch_size=args.batch_size, shuffle=False)
    criterion = nn.MSELoss()
    runs = []
    eval_seconds = 0.0
    warm_up(device)
    started = time.perf_counter()
    for dim in args.latent_dims:
        torch.manual_seed(args.seed)
        model = ConvAutoencoder(dim).to(device)
        optimizer = optim.Adam(model.parameters(), lr=args.lr)
        for _ in range(args.epochs):
            model.train()
            for x, _ in train_loader:
                x = x.float().to(device)
                optimizer.zero_grad()
                loss = criterion(model(x), x)
                loss.backward()
                optimizer.step()
        train_loss = loss.item()
        evaluated = time.perf_counter()
        test_mse, _ = evaluate(model, test_loader, criterion, device, classify=False)
        eval_seconds += time.perf_counter() - evaluated
        runs.append({"latent_dim": dim, "train_loss": train_loss, "test_mse": test_mse})
    return {
        "task": "ae",
        "latent_dims": args.latent_dims,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "n_train": len(train_set),
        "runs": runs,
        "train_seconds": time.perf_counter() - started,
        "eval_seconds": eval_seconds,
    }


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("task", choices=["cnn", "ae"])
    parser.add_argument("--data-dir", type=Path, default=Path("sign_data"), help="SIGNS npy folder (cnn)")
    parser.add_argument("--synthetic", action="store_true", help="synthetic SIGNS instead of --data-dir (cnn)")
    parser.add_argument("--mnist-root", type=Path, default=Path("data"), help="torchvision MNIST root (ae)")
    parser.add_argument("--lrs", type=_floats, default=[1e-1, 1e-3, 1e-4, 1e-5], help="comma-separated (cnn)")
    parser.add_argument("--latent-dims", type=_ints, default=[3, 10, 100, 250], help="comma-separated (ae)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (ae)")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=None, help="default: 64 (cnn), 128 (ae)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    if args.batch_size is None:
        args.batch_size = 64 if args.task == "cnn" else 128
    from mle6cli.engine.device import resolve_device

    device = resolve_device(args.device)
    result = run_cnn(args, device) if args.task == "cnn" else run_ae(args, device)
    result["device"] = str(device)
    result["torch_threads"] = torch.get_num_threads()
    result["total_seconds"] = time.perf_counter() - STARTED
    if args.json:
        print(json.dumps(result, indent=2, default=float))
    else:
        for run in result["runs"]:
            print(json.dumps(run, default=float))
        print(f"train {result['train_seconds']:.2f} s, total {result['total_seconds']:.2f} s on {device}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
