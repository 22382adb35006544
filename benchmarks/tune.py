"""The goals of `mle6 tune train-cnn`, measured on one machine in one run (docs/benchmarks.md):

- quality: a study over the learning rate and Adam's weight decay (TPE + successive halving) against
  the sheet's 4-learning-rate sweep at the same epochs and seed: its best validation accuracy, and
  its best trial's test accuracy;
- the cost of pruning: the same study with the pruner off: member-epochs trained, and its best;
- speed against the usual way: the same study as a user of Optuna writes it, `study.optimize` with
  one trial at a time, each trial the sheet's own training loop (benchmarks/seed_pipeline.py: a
  DataLoader, one eager step at a time) reporting its validation accuracy to the same pruner;
- the kernel floor: the seconds of the sheet's convolutions, batch norms and linear layers alone over
  the study's member-epochs (training steps and each epoch's validation), which any way of training
  the sheet's model to its own numbers spends.

Usage:
    python benchmarks/tune.py --data-dir sign_data --trials 32 --epochs 30 --parallel 8 --json
    python benchmarks/tune.py --synthetic --trials 8 --epochs 4 --parallel 4      (a quick look)

Every part trains on `--threads` CPU threads (default 1: the same for all, and steady on a shared
machine) or on `--device cuda`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mle6cli import drawing  # noqa: E402

drawing.start()  # as `mle6 tune` does: pyplot imported and the figures drawn on another core

import optuna  # noqa: E402
import seed_pipeline  # noqa: E402
import torch  # noqa: E402

from mle6cli.engine.device import resolve_device  # noqa: E402
from mle6cli.tasks.classifier import sweep_lr  # noqa: E402
from mle6cli.tasks.specs import RunParams  # noqa: E402
from mle6cli.tasks.tune_targets import TUNE_SPECS  # noqa: E402

SWEEP_LRS = [1e-1, 1e-3, 1e-4, 1e-5]  # the sheet's
PARTS = ("tune", "tune_unpruned", "sweep", "usual_optuna", "floor")  # in the order they run


def tune_study(args, out: Path, pruner: str) -> dict:
    options = {
        "data_dir": args.data_dir, "synthetic": args.synthetic, "epochs": args.epochs, "batch_size": args.batch_size,
        "seeds": [args.seed], "device": args.device, "trials": args.trials, "parallel": args.parallel,
        "space": [f"lr=log:{args.low}..{args.high}", f"weight-decay=log:{args.wd_low}..{args.wd_high}"],
        "sampler": "tpe", "pruner": pruner, "save_every": 0,
    }  # fmt: skip
    started = time.perf_counter()
    summary = TUNE_SPECS["train-cnn"].run(options, RunParams(out=out))
    return {
        "seconds": time.perf_counter() - started,
        "member_epochs": summary["member_epochs"],
        "states": summary["states"],
        "best_lr": summary["best_params"]["lr"],
        "best_weight_decay": summary["best_params"]["weight_decay"],
        "best_val_acc": summary["best_value"],
        "test_acc": summary["test_acc"],
    }


def sheet_sweep(args, out: Path) -> dict:
    options = {"data_dir": args.data_dir, "synthetic": args.synthetic, "lrs": SWEEP_LRS, "epochs": args.epochs,
               "batch_size": args.batch_size, "seeds": [args.seed], "device": args.device, "save_every": 0}  # fmt: skip
    summary = sweep_lr(options, out=out)
    return {"best_lr": summary["best_lr"], "best_val_acc": summary["best_val_acc"], "test_acc": summary["test_acc"]}


def usual_optuna(args) -> dict:
    """Optuna as its users write it: one trial at a time, the sheet's loop, reporting every epoch."""
    from mle6cli.data.synthetic import synthetic_signs
    from mle6cli.models import CNNClassifier

    device = resolve_device(args.device)  # as mle6 resolves it: "auto" is the GPU where there is one
    if args.synthetic:  # the same synthetic images mle6 trains on, as the seed's float64 arrays
        data = synthetic_signs("cpu", seed=0)
        arrays = {}
        for split in seed_pipeline.SPLITS:
            part = getattr(data, split)
            arrays[f"X_{split}"] = (part.x.permute(0, 2, 3, 1) * 255).round().byte().numpy()
            arrays[f"Y_{split}"] = part.y.numpy()
    else:
        arrays = seed_pipeline.load_signs_arrays(Path(args.data_dir))
    loaders = seed_pipeline.signs_loaders(arrays, args.batch_size)
    criterion = torch.nn.NLLLoss()
    epochs_trained = []

    def objective(trial) -> float:
        lr = trial.suggest_float("lr", args.low, args.high, log=True)
        weight_decay = trial.suggest_float("weight_decay", args.wd_low, args.wd_high, log=True)
        torch.manual_seed(args.seed)
        model = CNNClassifier().to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        for epoch in range(args.epochs):
            model.train()
            for x, y in loaders["train"]:
                x, y = x.float().to(device), y.to(device)
                optimizer.zero_grad()
                loss = criterion(model(x), y)
                loss.backward()
                optimizer.step()
            _, val_acc = seed_pipeline.evaluate(model, loaders["val"], criterion, device)
            trial.report(val_acc, epoch + 1)
            if trial.should_prune():
                epochs_trained.append(epoch + 1)
                raise optuna.TrialPruned()
        epochs_trained.append(args.epochs)
        return val_acc

    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=args.seed),
        pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=1),  # tune's `sha`
    )
    started = time.perf_counter()
    study.optimize(objective, n_trials=args.trials)
    return {
        "seconds": time.perf_counter() - started,
        "member_epochs": sum(epochs_trained),
        "best_lr": study.best_params["lr"],
        "best_weight_decay": study.best_params["weight_decay"],
        "best_val_acc": study.best_value,
    }


def kernel_floor(args) -> dict:
    """What the wall-time goal is up against: the seconds of the sheet's convolutions, batch norms and linear
    layers alone for one member-epoch, on the benchmark's device and threads: forward and backward in training mode on
    every batch, then forward in eval mode on the validation split (which both ways evaluate every epoch).
    Every way of training the sheet's model to its own numbers runs these kernels, tune and the usual way
    alike; the pooling, ReLU, loss and optimizer come on top."""
    import math

    from mle6cli.models import CNNClassifier

    device = resolve_device(args.device)
    model = CNNClassifier().to(device)
    if args.synthetic:
        train_size, val_size = 960, 120  # synthetic_signs' splits
    else:
        arrays = seed_pipeline.load_signs_arrays(Path(args.data_dir))
        train_size, val_size = len(arrays["X_train"]), len(arrays["X_val"])

    def layers(batch: int, grad: bool) -> list:
        on = {"device": device, "requires_grad": grad}
        return [
            ((model.conv1, model.bn1), torch.rand(batch, 3, 64, 64, device=device)),  # the images (B, 3, 64, 64)
            ((model.conv2, model.bn2), torch.rand(batch, 4, 32, 32, **on)),  # conv2's input
            ((model.fc1,), torch.rand(batch, 2048, **on)),  # fc1's input (B, 2048)
            ((model.fc2,), torch.rand(batch, 64, **on)),  # fc2's input (B, 64)
        ]

    training, validation = layers(args.batch_size, True), layers(val_size, False)

    def step() -> None:
        model.train()
        for modules, source in training:
            out = source
            for module in modules:
                out = module(out)
            weights = [p for module in modules for p in module.parameters()]
            inputs = [source] if source.requires_grad else []
            torch.autograd.grad(out, [*inputs, *weights], torch.ones_like(out))

    @torch.no_grad()
    def validate() -> None:  # one batch: tune evaluates up to 1024 samples at a time
        model.eval()
        for modules, source in validation:
            for module in modules:
                source = module(source)

    per_step, per_validation = _seconds_per_call(step, device), _seconds_per_call(validate, device)
    steps = math.ceil(train_size / args.batch_size)
    return {
        "seconds_per_step": per_step,
        "steps_per_epoch": steps,
        "seconds_per_validation": per_validation,
        "seconds_per_member_epoch": per_step * steps + per_validation,
    }


def _seconds_per_call(fn, device, warmup: int = 5, count: int = 40) -> float:
    def finished() -> float:  # a GPU's queued kernels done
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter()

    for _ in range(warmup):
        fn()
    started = finished()
    for _ in range(count):
        fn()
    return (finished() - started) / count


def goals(parts: dict) -> dict:
    """Each goal's figure, from the parts it needs (those that ran)."""
    pruned, unpruned, sweep, usual, floor = (parts.get(name) for name in PARTS)
    out = {}
    if pruned and sweep:
        out["best_val_acc_vs_sweep"] = pruned["best_val_acc"] - sweep["best_val_acc"]  # >= 0
    if pruned and unpruned:
        out["member_epochs_pruned_vs_unpruned"] = pruned["member_epochs"] / unpruned["member_epochs"]  # <= 0.4
        out["best_gap_to_unpruned"] = unpruned["best_val_acc"] - pruned["best_val_acc"]  # <= 1/120
    if pruned and usual:
        out["wall_time_vs_usual_optuna"] = pruned["seconds"] / usual["seconds"]  # <= 0.6 on the CPU
    if floor and pruned and usual:  # tune's member-epochs in the conv, batch-norm and linear kernels alone
        out["kernel_floor_vs_usual_optuna"] = (
            floor["seconds_per_member_epoch"] * pruned["member_epochs"] / usual["seconds"]
        )
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--synthetic", action="store_true")
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--low", type=float, default=1e-5)
    parser.add_argument("--high", type=float, default=1e-1)
    parser.add_argument("--wd-low", type=float, default=1e-6)
    parser.add_argument("--wd-high", type=float, default=1e-2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--only", default=",".join(PARTS), help=f"comma-separated parts to run ({', '.join(PARTS)}); goals need theirs"
    )
    args = parser.parse_args(argv)
    if not args.synthetic and args.data_dir is None:
        parser.error("give --data-dir or --synthetic")
    only = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = sorted(set(only) - set(PARTS))
    if unknown:
        parser.error(f"--only: no part {', '.join(unknown)} (parts: {', '.join(PARTS)})")
    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    parts = {}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        runs = {
            "tune": lambda: tune_study(args, folder / "pruned", "sha"),
            "tune_unpruned": lambda: tune_study(args, folder / "unpruned", "none"),
            "sweep": lambda: sheet_sweep(args, folder / "sweep"),
            "usual_optuna": lambda: usual_optuna(args),
            "floor": lambda: kernel_floor(args),
        }
        for name in PARTS:
            if name in only:
                parts[name] = runs[name]()
    result = {
        "machine": {"device": args.device, "threads": args.threads, "torch": torch.__version__,
                    "optuna": optuna.__version__},  # fmt: skip
        "trials": args.trials, "epochs": args.epochs, "parallel": args.parallel, **parts, "goals": goals(parts),
    }  # fmt: skip
    drawing.shutdown()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for name, value in result["goals"].items():
            print(f"{name}: {value:.4g}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
