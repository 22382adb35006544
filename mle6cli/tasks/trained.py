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

from mle6cli.data.images import Layout
from mle6cli.engine.folder import RunDirError
from mle6cli.fmt import lr_label
from mle6cli.tasks.kinds import ModelKind
from mle6cli.tasks.schema import Summary, read
from mle6cli.tasks.specs import SPECS

# the commands whose runs leave a model, and its kind
KINDS = {name: spec.kind for name, spec in SPECS.items() if spec.kind is not None}


@dataclass
class Trained:
    """One trained model and where it came from."""

    kind: ModelKind  # classifier | autoencoder | linear-ae
    command: str
    run: Path
    checkpoint: Path
    model: object  # the nn.Module, eval mode
    layout: Layout
    options: dict  # the run's config.json options
    summary: Summary  # its summary.json
    member: dict = field(default_factory=dict)  # lr and seed, or latent_dim and seed
    classes: tuple[str, ...] | None = None

    @property
    def label(self) -> str:
        """'lr=1e-03,seed=42' or 'latent_dim=10,seed=0'."""
        return ",".join(f"{k}={lr_label(v) if k == 'lr' else v}" for k, v in self.member.items())

    @property
    def config(self):
        """The run's options as its command's config (`tasks.specs`), defaults filled in."""
        return SPECS[self.command].config.from_options(self.options)

    def describe(self) -> dict:
        return {
            "run": str(self.run),
            "command": self.command,
            "kind": self.kind.name,
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


def finished_run(run: Path) -> tuple[str, dict, Summary]:
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
        steps = [str(run / step) for step in KINDS if (run / step).is_dir()]  # run-all's step folders
        hint = f" (its steps: {', '.join(steps)})" if steps else ""
        names = list(KINDS)
        raise RunDirError(f"{run} is a {command} run; give a {', '.join(names[:-1])} or {names[-1]} run folder{hint}")
    if status["status"] != "finished":
        holder = f" (process {status['pid']})" if status.get("pid") else ""
        raise RunDirError(f"{run} is a {command} run that is {status['status']}{holder}, not finished")
    from mle6cli.files import read_json

    options = read_json(run / "config.json").get("options", {})
    summary = status.get("summary")
    typed = read(summary) if isinstance(summary, dict) else None
    return command, options if isinstance(options, dict) else {}, typed or SPECS[command].summary()


def open_trained(
    run: Path, member: dict | None = None, latent_dim: int | None = None, device="cpu", any_dim: bool = False
) -> Trained:
    """The model of a finished run: the best member of a sweep unless `member` names one (lr, seed),
    the autoencoder of `latent_dim` (needed when a train-ae run holds several, unless `any_dim`:
    then the smallest)."""
    run = Path(run)
    command, options, summary = finished_run(run)
    kind = KINDS[command]
    config = SPECS[command].config.from_options(options)
    path, chosen = kind.find(run, command, config, summary, dict(member or {}), latent_dim, any_dim)
    model, _ = kind.load(path, device)
    return Trained(kind, command, run, path, model, kind.layout, options, summary, chosen, kind.classes)
