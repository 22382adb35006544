"""A finished run folder's model, found and loaded: what predict, evaluate and export start from.

A train-cnn run holds model.pt (seed_<s>/model.pt with several seeds); a sweep-lr run one per
learning rate, lr_<lr>/model.pt or lr_<lr>/seed_<s>/model.pt, and its summary names the best
learning rate; a train-ae run ae_d<k>.pt per latent size; a pca-ae run linear_ae_k<k>.pt. Every
checkpoint is read as data (`files.load_torch`, `weights_only=True`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from mle6cli.data.images import MNIST_LAYOUT, SIGNS_LAYOUT, Layout
from mle6cli.engine.folder import RunDirError
from mle6cli.fmt import lr_label

KINDS = {"train-cnn": "classifier", "sweep-lr": "classifier", "train-ae": "autoencoder", "pca-ae": "linear-ae"}
SIGNS_NAMES = ("0", "1", "2", "3", "4", "5")  # a sign is the number of raised fingers


@dataclass
class Trained:
    """One trained model and where it came from."""

    kind: str  # classifier | autoencoder | linear-ae
    command: str
    run: Path
    checkpoint: Path
    model: object  # the nn.Module, eval mode
    layout: Layout
    options: dict  # the run's config.json options
    summary: dict
    member: dict = field(default_factory=dict)  # lr and seed, or latent_dim and seed
    classes: tuple[str, ...] | None = None

    @property
    def label(self) -> str:
        """'lr=1e-03,seed=42' or 'latent_dim=10,seed=0'."""
        return ",".join(f"{k}={lr_label(v) if k == 'lr' else v}" for k, v in self.member.items())

    @property
    def config(self):
        """The run's options as its command's config (`tasks.specs`), defaults filled in."""
        from mle6cli.tasks.specs import SPECS

        return SPECS[self.command].config.from_options(self.options)

    def describe(self) -> dict:
        return {
            "run": str(self.run),
            "command": self.command,
            "kind": self.kind,
            "checkpoint": str(self.checkpoint),
            "member": self.member,
        }


def parse_member(text: str) -> dict:
    """'lr=1e-4,seed=2' -> {'lr': 0.0001, 'seed': 2}; ValueError naming the first bad part."""
    member: dict = {}
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        match = re.fullmatch(r"(lr|seed)=(\S+)", part)
        if not match:
            raise ValueError(f"{part!r} is not lr=<number> or seed=<whole number>; e.g. lr=1e-4,seed=2")
        key, value = match.groups()
        try:
            member[key] = float(value) if key == "lr" else int(value)
        except ValueError:
            raise ValueError(f"{part!r}: {value!r} is not a {'number' if key == 'lr' else 'whole number'}") from None
    if not member:
        raise ValueError("give lr=<number>, seed=<whole number> or both, e.g. lr=1e-4,seed=2")
    return member


def finished_run(run: Path) -> tuple[str, dict, dict]:
    """(command, config.json options, summary) of a finished run of a command that leaves a model."""
    from mle6cli.engine.status import run_status

    run = Path(run)
    if not run.is_dir():
        raise RunDirError(
            f"{run} is not a run folder" + (" (it is a file)" if run.exists() else " (it does not exist)")
        )
    status = run_status(run)
    command = status["command"]
    if command not in KINDS:
        steps = [str(run / step) for step in ("sweep-lr", "train-ae", "pca-ae") if (run / step).is_dir()]
        hint = f" (its steps: {', '.join(steps)})" if command == "run-all" and steps else ""
        raise RunDirError(f"{run} is a {command} run; give a train-cnn, sweep-lr, train-ae or pca-ae run folder{hint}")
    if status["status"] != "finished":
        holder = f" (process {status['pid']})" if status.get("pid") else ""
        raise RunDirError(f"{run} is a {command} run that is {status['status']}{holder}, not finished")
    from mle6cli.files import read_json

    options = read_json(run / "config.json").get("options", {})
    return command, options if isinstance(options, dict) else {}, status.get("summary") or {}


def open_trained(
    run: Path, member: dict | None = None, latent_dim: int | None = None, device="cpu", any_dim: bool = False
) -> Trained:
    """The model of a finished run: the best member of a sweep unless `member` names one (lr, seed),
    the autoencoder of `latent_dim` (needed when a train-ae run holds several, unless `any_dim`:
    then the smallest)."""
    run = Path(run)
    command, options, summary = finished_run(run)
    member = dict(member or {})
    kind = KINDS[command]
    if kind == "classifier":
        if latent_dim is not None:
            raise RunDirError(f"{run} is a {command} run: --latent-dim is for autoencoder runs")
        return _classifier(run, command, options, summary, member, device)
    if "lr" in member:
        raise RunDirError(f"{run} is a {command} run with one learning rate: pick a member by seed only")
    if kind == "autoencoder":
        return _autoencoder(run, options, summary, member, latent_dim, device, any_dim)
    return _linear(run, options, summary, member, latent_dim, device)


def _seed(run: Path, seeds: list, member: dict, default: int) -> int:
    seed = member.get("seed", default)
    if seed not in seeds:
        raise RunDirError(f"{run} has no member with seed {seed} (its seeds: {', '.join(map(str, seeds))})")
    return seed


def _classifier(run, command, options, summary, member, device) -> Trained:
    from mle6cli.tasks.classifier import load_classifier, member_dir

    sweep = command == "sweep-lr"
    lrs = list(options.get("lrs") or [options.get("lr")])
    seeds = list(options.get("seeds") or [summary.get("seed")])
    lr = member.get("lr", summary.get("best_lr") if sweep else lrs[0])
    if lr not in lrs:
        raise RunDirError(f"{run} has no member with lr {lr_label(lr)} (its learning rates: "
                          f"{', '.join(lr_label(v) for v in lrs)})")  # fmt: skip
    default = seeds[0]
    if sweep and len(seeds) > 1:  # the best lr's best seed by final val accuracy, the first of equals
        done = [r for r in summary.get("runs", []) if r.get("lr") == lr and r.get("status") == "completed"]
        if done:
            default = max(done, key=lambda r: (r["final"]["val_acc"], -seeds.index(r["seed"])))["seed"]
    seed = _seed(run, seeds, member, default)
    path = run / member_dir(lr, seed, sweep=sweep, several_seeds=len(seeds) > 1) / "model.pt"
    if not path.is_file():
        raise RunDirError(f"{run} has no model for lr={lr_label(lr)},seed={seed} (it diverged or was removed)")
    model, _ = load_classifier(path, device)
    return Trained(
        "classifier", command, run, path, model, SIGNS_LAYOUT, options, summary, {"lr": lr, "seed": seed}, SIGNS_NAMES
    )


def _pick_dim(run: Path, dims: list, latent_dim: int | None) -> int:
    if latent_dim is None:
        if len(dims) > 1:
            listed = ", ".join(map(str, dims))
            raise RunDirError(f"{run} holds autoencoders with latent sizes {listed}; pick one with --latent-dim")
        return dims[0]
    if latent_dim not in dims:
        raise RunDirError(f"{run} has no autoencoder with latent size {latent_dim} (its sizes: "
                          f"{', '.join(map(str, dims))})")  # fmt: skip
    return latent_dim


def _autoencoder(run, options, summary, member, latent_dim, device, any_dim=False) -> Trained:
    from mle6cli.tasks.autoencoders import load_autoencoder

    records = [r for r in summary.get("runs", []) if isinstance(r, dict)]
    dims = sorted({r["latent_dim"] for r in records})
    dim = _pick_dim(run, dims, dims[0] if any_dim and latent_dim is None and dims else latent_dim)
    seeds = [r["seed"] for r in records if r["latent_dim"] == dim]
    seed = _seed(run, seeds, member, seeds[0])
    (record,) = [r for r in records if r["latent_dim"] == dim and r["seed"] == seed]
    if not record.get("checkpoint"):
        raise RunDirError(f"{run} has no model for latent size {dim}, seed {seed}: it {record.get('status')}")
    path = run / record["checkpoint"]
    model, _ = load_autoencoder(path, device)
    member = {"latent_dim": dim, "seed": seed}
    return Trained("autoencoder", "train-ae", run, path, model, MNIST_LAYOUT, options, summary, member)


def _linear(run, options, summary, member, latent_dim, device) -> Trained:
    from mle6cli.tasks.pca import checkpoint_name, load_linear_autoencoder, member_folder

    dim = _pick_dim(run, [options.get("latent_dim")], latent_dim)
    seeds = list(options.get("seeds") or [0])
    seed = _seed(run, seeds, member, seeds[0])
    path = run / member_folder(seed, len(seeds) > 1) / checkpoint_name(dim)
    model = load_linear_autoencoder(path, device)
    member = {"latent_dim": dim, "seed": seed}
    return Trained("linear-ae", "pca-ae", run, path, model, MNIST_LAYOUT, options, summary, member)
