"""The SIGNS classifier: train the exercise's CNN once (`train_cnn`) or once per learning rate (`sweep_lr`).

Both write a run folder through `mle6cli.runs` and report progress through a callback
`progress(label, done, metrics)`; neither prints. Every model of a sweep starts from the same
seeded initial weights and sees the same batch order as `train_cnn` with that seed, so a
sweep member's metrics.csv equals the separate run's.

The per-learning-rate training of a sweep is one call, a runner with the contract of
`train.train_members`: by default the fused `fused.run_members`, which trains every learning rate
as one horizontally fused model with exactly each member's own gradients; `sequential_runner`
is the plain reference.

Run folder of train-cnn: config.json, metrics.csv, curves.png, model.pt, summary.json (last).
Run folder of sweep-lr: config.json, lr_<lr>/metrics.csv and lr_<lr>/model.pt per learning rate,
sweep.csv, sweep_curves.png, summary.json (last). An interrupted run holds resume.pt instead of
summary.json.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import nn

from mle6cli import runs
from mle6cli.data.signs import STANDARD_PER_CLASS, SignsData, load_signs, synthetic_signs
from mle6cli.errors import ConfigError, Mle6Error
from mle6cli.interrupt import Interrupted, any_of, graceful_stop
from mle6cli.models import SIGNS_CLASSES, CNNClassifier
from mle6cli.train import (
    CLASSIFY,
    LoopState,
    TrainResult,
    check_loop_options,
    check_lr,
    evaluate,
    train_members,
    train_model,
)

METRICS_HEADER = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc"]
SWEEP_HEADER = [
    "lr",
    "status",
    "epochs_done",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "test_loss",
    "test_acc",
]
SYNTHETIC_SEED = 0  # the synthetic dataset is one fixed dataset, whatever the training seed

Progress = Callable[[str, int, dict], None]


class TrainingDiverged(Mle6Error):
    """The training loss became NaN or infinite."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a run; saved in config.json and reloaded by --resume."""

    lr: float = 1e-3
    epochs: int = 50
    batch_size: int = 64
    seed: int = 42
    device: str = "auto"  # the spec as given; config.json also records the resolved device
    deterministic: bool = False
    data_dir: str | None = "sign_data"
    synthetic: bool = False
    synthetic_per_class: tuple[int, int, int] = STANDARD_PER_CLASS  # (train, val, test) images per class

    def __post_init__(self):
        check_loop_options(self.epochs, self.batch_size, self.lr)
        if len(self.synthetic_per_class) != 3 or min(self.synthetic_per_class) < 1:
            raise ConfigError(f"synthetic_per_class must be three positive counts, got {self.synthetic_per_class!r}")
        if not self.synthetic and not self.data_dir:
            raise ConfigError("give a data folder or use synthetic data")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["synthetic_per_class"] = list(self.synthetic_per_class)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "synthetic_per_class" in values:
            values["synthetic_per_class"] = tuple(values["synthetic_per_class"])
        return cls(**values)


def check_lrs(lrs: Sequence[float]) -> list[float]:
    lrs = [check_lr(lr) for lr in lrs]
    if not lrs:
        raise ConfigError("give at least one learning rate")
    seen = set()
    for lr in lrs:
        if lr in seen:
            raise ConfigError(f"learning rate {lr:g} is listed twice")
        seen.add(lr)
    return lrs


def lr_label(lr: float) -> str:
    """The shortest exact scientific form: 1e-3 -> '1e-03', 2.5e-4 -> '2.5e-04' (folder names, labels)."""
    for digits in range(17):
        text = f"{lr:.{digits}e}"
        if float(text) == lr:
            return text
    return repr(lr)


# ---------------------------------------------------------------- data and models


def load_data(config: TrainConfig, device) -> SignsData:
    """The dataset a config names: the npy folder, or the built-in synthetic set."""
    if config.synthetic:
        return synthetic_signs(device, seed=SYNTHETIC_SEED, per_class=config.synthetic_per_class)
    return load_signs(config.data_dir, device)


def initial_model(seed: int, device) -> CNNClassifier:
    """The CNN with weights drawn from `seed` alone (the global RNG is left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CNNClassifier()  # initialised on the CPU, so every device starts from the same weights
    return model.to(device)


def new_optimizer(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=lr)


def load_classifier(path: Path | str, device="cpu") -> tuple[CNNClassifier, dict]:
    """Load a trained classifier from a run's model.pt (or from the run folder holding it).

    Returns `(model, config)`: the CNN in eval mode on `device`, and the run's options
    (`lr`, `epochs`, `seed`, …). The model maps (B, 3, 64, 64) floats in [0, 1] to
    log-probabilities of the six classes.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "model.pt"
    payload = runs.load_torch(path, map_location="cpu")
    if not isinstance(payload, dict) or payload.get("model") != "cnn" or "state_dict" not in payload:
        raise runs.RunDirError(f"{path} is not a classifier saved by mle6 train-cnn or sweep-lr")
    model = CNNClassifier(payload.get("classes", SIGNS_CLASSES))
    model.load_state_dict(payload["state_dict"])
    return model.to(device).eval(), payload.get("config", {})


def _save_model(path: Path, model: nn.Module, config: dict) -> None:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    runs.save_torch(path, {"model": "cnn", "classes": SIGNS_CLASSES, "state_dict": state, "config": config})


# ---------------------------------------------------------------- the training of one or many models


def sequential_runner(lrs, models, optimizers, train, evals, **kwargs) -> list[TrainResult]:
    """The plain sweep runner: one `train_model` per learning rate (the reference the fused runner matches)."""
    return train_members(list(models), list(optimizers), CLASSIFY, train, evals, **kwargs)


def default_runner(*args, **kwargs) -> list[TrainResult]:
    """The fused runner (`fused.run_members`): every learning rate trained as one model, same numbers."""
    from mle6cli.fused import run_members

    return run_members(*args, **kwargs)


def _result_to_dict(result: TrainResult) -> dict:
    return {"status": result.status, "diverged_epoch": result.diverged_epoch, "loop": result.state.to_dict()}


def _result_from_dict(data: dict) -> TrainResult:
    state = LoopState.from_dict(data["loop"])
    return TrainResult(state.history, data["status"], state, data.get("diverged_epoch"))


def _start(run_dir: Path, command: str, config: TrainConfig, data: SignsData, device, **extra) -> None:
    """config.json of a fresh run: the options (those in `extra` added), device and data."""
    from mle6cli.device import describe_device

    options = config.to_dict()
    options["data_dir"] = None if config.synthetic else str(Path(config.data_dir).resolve())
    if "lrs" in extra:  # a sweep has no single lr
        options.pop("lr")
    runs.start(
        run_dir,
        command,
        options=dict(options, **extra),
        device=describe_device(device),
        synthetic=data.synthetic,
        data=data.source,
    )


def read_resume(run_dir: Path | str, command: str) -> tuple[TrainConfig, dict, dict]:
    """(config, checkpoint, config.json) of an interrupted `command` run in `run_dir`."""
    document, checkpoint = runs.load_resume(run_dir, command)
    try:
        config = TrainConfig.from_dict(document["options"])
    except (KeyError, TypeError) as exc:
        raise runs.RunDirError(f"--resume: {Path(run_dir) / runs.CONFIG} lacks the run's options ({exc})") from None
    return config, checkpoint, document


@dataclass
class OpenedRun:
    """What a command needs before training: the (saved) config, device, data and run folder."""

    config: TrainConfig
    device: object
    data: SignsData
    run_dir: Path
    checkpoint: dict | None  # the resume checkpoint, when continuing
    extra: dict  # command-specific saved options (e.g. the sweep's lrs)


def open_run(
    command: str,
    config: TrainConfig | None,
    *,
    out: Path | str | None = None,
    overwrite: bool = False,
    resume_dir: Path | str | None = None,
) -> OpenedRun:
    """Resolve the device, seed everything, load and validate the data, then create the run folder.

    With `resume_dir`, the config comes from that folder's config.json and training continues
    there. The folder is created only after the data passed validation, so bad input leaves
    nothing behind.
    """
    from mle6cli.device import resolve_device, set_seed

    checkpoint, extra = None, {}
    if resume_dir is not None:
        config, checkpoint, document = read_resume(resume_dir, command)
        extra = {k: v for k, v in document["options"].items() if k not in {f.name for f in fields(TrainConfig)}}
    device = resolve_device(config.device)
    set_seed(config.seed, config.deterministic)
    data = load_data(config, device)
    run_dir = Path(resume_dir) if resume_dir is not None else runs.prepare_run_dir(out, command, overwrite)
    return OpenedRun(config, device, data, run_dir, checkpoint, extra)


def _check_same_data(document: dict, data: SignsData, run_dir: Path) -> None:
    saved = (document.get("data") or {}).get("sizes")
    if saved is not None and saved != data.source.get("sizes"):
        raise Mle6Error(
            f"--resume: the data changed since the run in {run_dir} started (sizes {saved} then, "
            f"{data.source.get('sizes')} now)"
        )


def _resume_hint(command: str, run_dir: Path, where: str) -> str:
    return (
        f"interrupted {where}; progress saved in {run_dir / runs.RESUME}. "
        f"Continue with: mle6 {command} --resume {run_dir}"
    )


def _diverged_message(result: TrainResult) -> str:
    loss = result.state.loss_sum / max(result.state.seen, 1)
    return f"training diverged at epoch {result.diverged_epoch}: the training loss became {loss}"


def train_cnn(
    config: TrainConfig,
    data: SignsData,
    device,
    run_dir: Path | str,
    progress: Progress | None = None,
    *,
    resume: dict | None = None,
    stop: Callable[[], bool] | None = None,
) -> dict:
    """Train the CNN with Adam and NLL loss, evaluate on the test split, fill `run_dir`; return the summary.

    `resume` is the checkpoint of an interrupted run in `run_dir` (see `read_resume`). `stop`
    may end training early like a signal does (e.g. a time budget). SIGINT/SIGTERM finish the
    current step, save resume.pt and raise `Interrupted`; a NaN/infinite loss raises
    `TrainingDiverged`.
    """
    run_dir = Path(run_dir)
    model = initial_model(config.seed, device)
    optimizer = new_optimizer(model, config.lr)
    state = None
    if resume is None:
        _start(run_dir, "train-cnn", config, data, device)
    else:
        _check_same_data(runs.read_json(run_dir / runs.CONFIG), data, run_dir)
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        state = LoopState.from_dict(resume["loop"])
        runs.restore_rng(resume)
    history = list(state.history) if state is not None else []

    def on_epoch(row: dict) -> None:
        history.append(row)
        runs.write_csv(run_dir / "metrics.csv", METRICS_HEADER, history)
        if progress is not None:
            progress(f"epoch {row['epoch']}/{config.epochs}", row["epoch"], _shown(row))

    clock = runs.TrainClock.resumed(resume)
    with graceful_stop() as signal_stop:
        result = train_model(
            model,
            optimizer,
            CLASSIFY,
            data.train,
            {"val": data.val},
            epochs=config.epochs,
            batch_size=config.batch_size,
            seed=config.seed,
            resume=state,
            on_epoch=on_epoch,
            should_stop=any_of(signal_stop, stop),
        )
    train_seconds = clock.seconds()

    if result.status == "interrupted":
        s = result.state
        where = f"after epoch {s.epoch}" if s.perm is None else f"in epoch {s.epoch + 1} (batch {s.batch})"
        runs.save_resume(
            run_dir,
            {
                "command": "train-cnn",
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "loop": s.to_dict(),
                **clock.to_state(),
            },
        )
        raise Interrupted(signal_stop.signal_number, _resume_hint("train-cnn", run_dir, where))
    if result.status == "diverged":
        (run_dir / runs.RESUME).unlink(missing_ok=True)  # nothing left to resume
        raise TrainingDiverged(
            f"{_diverged_message(result)}; try a smaller --lr (metrics so far: {run_dir / 'metrics.csv'})"
        )

    test = evaluate(model, CLASSIFY, data.test)
    runs.write_csv(run_dir / "metrics.csv", METRICS_HEADER, history)
    _save_model(run_dir / "model.pt", model, config.to_dict())
    from mle6cli.plots import curves_figure

    title = f"SIGNS CNN, lr {config.lr:g}" + (" (synthetic data)" if data.synthetic else "")
    curves_figure(history, run_dir / "curves.png", title)
    summary = {
        "command": "train-cnn",
        "lr": config.lr,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "seed": config.seed,
        "device": str(device),
        "synthetic": data.synthetic,
        "data": data.source.get("path", "synthetic"),
        "train_seconds": train_seconds,
        "final": history[-1],
        "test_loss": test["loss"],
        "test_acc": test["acc"],
        "resumed": clock.resumes,
        "run_dir": str(run_dir),
    }
    runs.finish(run_dir, summary)
    return summary


def _shown(row: dict) -> dict:
    return {k: row[k] for k in METRICS_HEADER[1:] if k in row}


def best_member(runs_: list[dict]) -> dict | None:
    """Highest final val accuracy; ties go to the lower val loss, then to the earlier lr in the list."""
    candidates = [
        r for r in runs_ if r["status"] == "completed" and r["final"] and math.isfinite(r["final"]["val_acc"])
    ]
    if not candidates:
        return None

    def key(r):
        loss = r["final"]["val_loss"]
        return (-r["final"]["val_acc"], loss if math.isfinite(loss) else math.inf)

    return min(candidates, key=key)  # min is stable: the first of equals wins


def sweep_lr(
    config: TrainConfig,
    lrs: Sequence[float],
    data: SignsData,
    device,
    run_dir: Path | str,
    progress: Progress | None = None,
    *,
    resume: dict | None = None,
    stop: Callable[[], bool] | None = None,
    runner: Callable[..., list[TrainResult]] = default_runner,
) -> dict:
    """Train one CNN per learning rate (same initial weights, same batches), pick the best by val accuracy.

    `config.lr` is ignored; every other option applies to each member. A member that diverges
    is marked and the others go on. Returns the summary (also in summary.json).
    """
    run_dir = Path(run_dir)
    lrs = check_lrs(lrs)
    labels = [lr_label(lr) for lr in lrs]
    models = [initial_model(config.seed, device) for _ in lrs]
    optimizers = [new_optimizer(m, lr) for m, lr in zip(models, lrs)]
    previous = None
    if resume is None:
        _start(run_dir, "sweep-lr", config, data, device, lrs=lrs)
    else:
        _check_same_data(runs.read_json(run_dir / runs.CONFIG), data, run_dir)
        members = resume["members"]
        if [m["lr"] for m in members] != lrs:
            raise runs.RunDirError(f"--resume: the checkpoint in {run_dir} does not match the sweep's learning rates")
        for model, optimizer, member in zip(models, optimizers, members):
            model.load_state_dict(member["model"])
            optimizer.load_state_dict(member["optimizer"])
        previous = [_result_from_dict(m["result"]) for m in members]
        runs.restore_rng(resume)
    histories = [list(r.history) if r is not None else [] for r in (previous or [None] * len(lrs))]
    done = [len(h) for h in histories]

    def on_epoch(i: int, row: dict) -> None:
        histories[i].append(row)
        runs.write_csv(run_dir / f"lr_{labels[i]}" / "metrics.csv", METRICS_HEADER, histories[i])
        done[i] = row["epoch"]
        if progress is not None:
            progress(f"lr {labels[i]} epoch {row['epoch']}/{config.epochs}", sum(done), _shown(row))

    clock = runs.TrainClock.resumed(resume)
    with graceful_stop() as signal_stop:
        results = runner(
            lrs,
            models,
            optimizers,
            data.train,
            {"val": data.val},
            epochs=config.epochs,
            batch_size=config.batch_size,
            seed=config.seed,
            resume=previous,
            should_stop=any_of(signal_stop, stop),
            on_epoch=on_epoch,
        )
    train_seconds = clock.seconds()

    if any(r.status == "interrupted" for r in results):
        members = [
            {"lr": lr, "model": m.state_dict(), "optimizer": o.state_dict(), "result": _result_to_dict(r)}
            for lr, m, o, r in zip(lrs, models, optimizers, results)
        ]
        current = next(i for i, r in enumerate(results) if r.status == "interrupted")
        runs.save_resume(
            run_dir,
            {"command": "sweep-lr", "members": members, **clock.to_state()},
        )
        where = f"at lr {labels[current]} after {results[current].state.epoch}/{config.epochs} epochs"
        raise Interrupted(signal_stop.signal_number, _resume_hint("sweep-lr", run_dir, where))

    members = []
    for lr, label, model, result in zip(lrs, labels, models, results):
        lr_dir = run_dir / f"lr_{label}"
        runs.write_csv(lr_dir / "metrics.csv", METRICS_HEADER, result.history)
        member = {
            "lr": lr,
            "status": result.status,
            "diverged": result.status == "diverged",
            "diverged_epoch": result.diverged_epoch,
            "epochs_done": len(result.history),
            "final": result.history[-1] if result.history else None,
            "test_loss": None,
            "test_acc": None,
            "metrics": str(Path(lr_dir.name) / "metrics.csv"),
        }
        if result.status == "completed":
            test = evaluate(model, CLASSIFY, data.test)
            member["test_loss"], member["test_acc"] = test["loss"], test["acc"]
            _save_model(lr_dir / "model.pt", model, dict(config.to_dict(), lr=lr))
        members.append(member)

    rows = [
        dict(
            {k: m[k] for k in ("lr", "status", "epochs_done", "test_loss", "test_acc")},
            **{k: (m["final"] or {}).get(k, "") for k in METRICS_HEADER[1:]},
        )
        for m in members
    ]
    runs.write_csv(
        run_dir / "sweep.csv", SWEEP_HEADER, [{k: ("" if v is None else v) for k, v in r.items()} for r in rows]
    )
    from mle6cli.plots import sweep_curves_figure

    title = f"Learning-rate sweep, {config.epochs} epochs" + (" (synthetic data)" if data.synthetic else "")
    sweep_curves_figure([(label, r.history) for label, r in zip(labels, results)], run_dir / "sweep_curves.png", title)

    best = best_member(members)
    if best is None:
        (run_dir / runs.RESUME).unlink(missing_ok=True)  # nothing left to resume
        raise TrainingDiverged(
            "every learning rate diverged ("
            + ", ".join(f"{label} at epoch {r.diverged_epoch}" for label, r in zip(labels, results))
            + f"); see {run_dir / 'sweep.csv'}"
        )
    summary = {
        "command": "sweep-lr",
        "lrs": lrs,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "seed": config.seed,
        "device": str(device),
        "synthetic": data.synthetic,
        "data": data.source.get("path", "synthetic"),
        "train_seconds": train_seconds,
        "runs": members,
        "best_lr": best["lr"],
        "best_val_acc": best["final"]["val_acc"],
        "best_val_loss": best["final"]["val_loss"],
        "test_acc": best["test_acc"],
        "test_loss": best["test_loss"],
        "val_test_gap": abs(best["final"]["val_acc"] - best["test_acc"]),
        "resumed": clock.resumes,
        "run_dir": str(run_dir),
    }
    runs.finish(run_dir, summary)
    return summary
