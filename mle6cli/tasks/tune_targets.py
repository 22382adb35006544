"""What a study trains, per target command: its data and splits, its members (the target task's own
builders), the metric its trials report, its test of the best trial, and the best trial's model written
as a finished run of the target command (a sub-folder named after it), which predict, evaluate and
export take as they take any run of that command.

The test set is never seen while searching: the CNN reports SIGNS' validation split, the autoencoder a
validation split held out of MNIST's training images (the last sixth); only the best trial is tested.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from mle6cli.engine.folder import CONFIG, SUMMARY, Outputs
from mle6cli.files import write_json
from mle6cli.fmt import cell
from mle6cli.tasks.config import options_of
from mle6cli.tasks.specs import TRAIN_AE, TRAIN_CNN, CommandSpec

AE_VAL_FRACTION = 6  # the autoencoder's validation split: the last 1/6 of the training images (MNIST: 10,000)


# a member axis that the members' constructor takes per member (beside the learning rates): the trial's
# parameter -> the constructor's argument; an axis whose parameter no trial has is not passed
MEMBER_ARGUMENTS = {"weight_decay": "weight_decays"}


def member_arguments(group) -> dict:
    """The per-member arguments of a fused group's constructor, from its members' keys."""
    return {arg: [m.key[key] for m in group] for key, arg in MEMBER_ARGUMENTS.items() if key in group[0].key}


def mean(values) -> float:
    values = list(values)
    return math.fsum(values) / len(values)


@dataclass(frozen=True)
class Target:
    """A command a study tunes (see the module docstring)."""

    spec: CommandSpec
    metric: str  # the history row's entry a trial reports each epoch (its seeds' mean)
    direction: str  # maximize | minimize
    shown: tuple[str, ...]  # the final metrics trials.csv shows

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def command(self) -> str:
        return f"tune {self.spec.name}"

    def outputs(self) -> Outputs:
        """What a tune run folder holds: the study, its table and figures, each trial's metrics, the best model."""
        return Outputs(
            files=(
                "trials.csv",
                "study.journal",
                "study.journal.*",
                "history.png",
                "objective_*.png",
                "curves.png",
                "trials/*/metrics.csv",
                "trials/*/seed_*/metrics.csv",
            ),
            steps={self.spec.name: self.spec.outputs},
            tensorboard=True,
        )

    def better(self, value: float, than: float | None) -> bool:
        if than is None:
            return True
        return value > than if self.direction == "maximize" else value < than

    def write_model(self, run, config, params: dict, members, data, device) -> None:
        """The trial's members as a run of the target command in `run`/<command>/: models, metrics and
        config.json (the study's fixed options and the trial's parameters); no summary.json yet."""
        folder = Path(self.spec.name)
        options = self.options(config, params)
        target_config = self.spec.config.from_options(options)
        for m in members:
            member_folder = folder / target_config.member_dir(m.key)
            run.write_csv(member_folder / self.metrics_name(m.key), self.header, m.state.history)
            self.save_model(run, member_folder / self.checkpoint_name(m.key), options, m, data)
        document = {"command": self.spec.name, "options": options, "device": str(device), "data": data.describe()}
        write_json(run.output(folder / CONFIG), document)

    def reload(self, run, config, number: int, params: dict, finals: list[dict]) -> list[SimpleNamespace]:
        """The members `write_model` wrote: key, weights, final history row."""
        from mle6cli.files import load_torch

        target_config = self.spec.config.from_options(self.options(config, params))
        members = []
        for seed, final in zip(config.seeds, finals, strict=True):
            key = {"trial": number, **params, "seed": seed}
            path = run.path / self.spec.name / target_config.member_dir(key) / self.checkpoint_name(key)
            state = SimpleNamespace(history=[final], seed=seed)
            members.append(SimpleNamespace(key=key, weights=load_torch(path)["state_dict"], state=state))
        return members

    def write_summary(self, run, config, params: dict, members, test: dict) -> None:
        folder = Path(self.spec.name)
        summary = self.summary(self.options(config, params), members, test, run.path / folder)
        write_json(run.output(folder / SUMMARY), summary)

    def options(self, config, params: dict) -> dict:
        """The target command's options of a trial: the study's, with the trial's parameters on the axes."""
        options = {f.name: getattr(config, f.name) for f in options_of(self.spec.config)}
        for axis in (d.axis for d in config.dimensions):  # an axis not searched keeps its default
            value = params[axis.key]
            options[axis.field] = [value] if isinstance(options[axis.field], (tuple, list)) else value
        return {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}


class CnnTarget(Target):
    def metrics_name(self, key: dict) -> str:
        return "metrics.csv"

    @property
    def header(self) -> list[str]:
        from mle6cli.tasks.classifier import METRICS_HEADER

        return METRICS_HEADER

    def load(self, config, device):
        from mle6cli.tasks.classifier import load_data

        return load_data(config, device)

    def splits(self, data, config):
        return data.train, {"val": data.val}

    def build(self, group, config, data, device):
        from mle6cli.engine.fused import FusedCNNMembers
        from mle6cli.tasks.classifier import initial_model

        models = [initial_model(m.key["seed"], device) for m in group]
        return FusedCNNMembers(models, [m.key["lr"] for m in group], **member_arguments(group))

    def test(self, members, data, device) -> dict:
        from mle6cli.tasks.classifier import test_weights

        losses, accs = test_weights([m.weights for m in members], [m.key["lr"] for m in members], data.test, device)
        return {"test_loss": mean(losses), "test_acc": mean(accs), "per_seed": list(zip(losses, accs, strict=True))}

    def checkpoint_name(self, key: dict) -> str:
        return "model.pt"

    def save_model(self, run, path: Path, options: dict, m, data) -> None:
        from mle6cli.tasks.classifier import save_model

        save_model(run, path, options, m)

    def summary(self, options: dict, members, test: dict, path: Path) -> dict:
        runs = [
            {
                "lr": m.key["lr"],
                "seed": m.key["seed"],
                "status": "completed",
                "test_loss": loss,
                "test_acc": acc,
                "final": m.state.history[-1],
            }
            for m, (loss, acc) in zip(members, test["per_seed"], strict=True)
        ]
        return {
            "command": self.spec.name,
            "lr": options["lr"],
            "seed": options["seeds"][0],
            "seeds": options["seeds"],
            "final": members[0].state.history[-1],
            "test_loss": test["test_loss"],
            "test_acc": test["test_acc"],
            "runs": runs if len(members) > 1 else [],
            "run_dir": str(path),
        }


class AeTarget(Target):
    @property
    def header(self) -> list[str]:
        from mle6cli.engine.members import RECONSTRUCT

        return RECONSTRUCT.header(["val"])

    def metrics_name(self, key: dict) -> str:
        return f"metrics_d{key['latent_dim']}.csv"

    def load(self, config, device):
        from mle6cli.data.mnist import open_mnist

        return open_mnist(config.spec(), device)

    def splits(self, data, config):
        from mle6cli.data.splits import Split

        held = max(1, len(data.train_x) // AE_VAL_FRACTION)
        return Split(data.train_x[:-held]), {"val": Split(data.train_x[-held:])}

    def build(self, group, config, data, device):
        from mle6cli.engine.members import RECONSTRUCT, ModuleMembers
        from mle6cli.tasks.collapse import build_autoencoder, mean_intensity

        train, _ = self.splits(data, config)
        mean_pixel = mean_intensity(train.x) if config.init == "mean" else None
        models = [build_autoencoder(m.key["latent_dim"], m.state.seed, device, mean_pixel) for m in group]
        return ModuleMembers(models, [m.key["lr"] for m in group], RECONSTRUCT, **member_arguments(group))

    def test(self, members, data, device) -> dict:
        from mle6cli.engine.members import RECONSTRUCT, ModuleMembers
        from mle6cli.tasks.collapse import build_autoencoder

        models = []
        for m in members:
            model = build_autoencoder(m.key["latent_dim"], m.state.seed, device)
            model.load_state_dict(m.weights)
            models.append(model)
        losses, _ = ModuleMembers(models, [m.key["lr"] for m in members], RECONSTRUCT).evaluate(data.test_split())
        return {"test_mse": mean(losses), "per_seed": losses}

    def checkpoint_name(self, key: dict) -> str:
        return f"ae_d{key['latent_dim']}.pt"

    def save_model(self, run, path: Path, options: dict, m, data) -> None:
        from mle6cli.tasks.autoencoders import save_checkpoint

        meta = {
            "latent_dim": m.key["latent_dim"],
            "seed": m.key["seed"],
            "train_seed": m.state.seed,
            "collapsed": False,
            "final_val_mse": m.state.history[-1]["val_loss"],
            "data": data.describe(),
        }
        save_checkpoint(run, path, m.weights, meta)

    def summary(self, options: dict, members, test: dict, path: Path) -> dict:
        target_config = self.spec.config.from_options(options)
        runs = []
        for m, mse in zip(members, test["per_seed"], strict=True):
            d = m.key["latent_dim"]
            runs.append(
                {
                    "latent_dim": d,
                    "seed": m.key["seed"],
                    "train_seed": m.state.seed,
                    "status": "completed",
                    "collapsed": False,
                    "final_test_mse": mse,
                    "history": m.state.history,
                    "checkpoint": str(target_config.member_dir(m.key) / f"ae_d{d}.pt"),
                }
            )
        return {
            "command": self.spec.name,
            "status": "completed",
            "seeds": options["seeds"],
            "runs": runs,
            "test_mse": test["test_mse"],
            "run_dir": str(path),
        }


TARGETS = {
    t.name: t
    for t in (
        CnnTarget(TRAIN_CNN, "val_acc", "maximize", ("val_acc", "val_loss")),
        AeTarget(TRAIN_AE, "val_loss", "minimize", ("val_loss",)),
    )
}


def _headline(summary: dict) -> str:
    """`mle6 runs`' one line of a finished study."""
    if summary.get("best_trial") is None:
        return "no trial completed"
    tested = next((f"{k.replace('_', ' ')} {cell(summary[k])}" for k in ("test_acc", "test_mse") if k in summary), "")
    return f"best trial {summary['best_trial']} of {summary['trials']}" + (f", {tested}" if tested else "")


def _task(target: Target):
    def task(options: dict, params=None, **given):
        from mle6cli.tasks.specs import RunParams
        from mle6cli.tasks.tune import tune

        return tune(target, options, RunParams.of(params, given))

    return task


def _spec(target: Target) -> CommandSpec:
    from mle6cli.tasks.tune_space import tune_config

    config = tune_config(target.spec)
    return CommandSpec(target.command, config, _task(target), headline=_headline, outputs=target.outputs())


# the tune commands' specs, by target: `mle6 tune train-cnn`, `mle6 tune train-ae`
TUNE_SPECS = {name: _spec(target) for name, target in TARGETS.items()}
