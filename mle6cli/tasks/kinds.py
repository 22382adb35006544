"""The three kinds of model a training command leaves: what each is, how its checkpoint is written and
read (one validation skeleton), where a run keeps its members, and what predict, evaluate and export
do with it. A spec (`tasks.specs`) names its command's kind; the rest dispatches through these methods.

Nothing heavy is imported here: torch, the models and the datasets are imported inside the methods.
"""

from __future__ import annotations

from pathlib import Path

from mle6cli.engine.folder import RunDirError
from mle6cli.fmt import lr_label

ARCHITECTURE = "exercise-conv-ae"  # the conv autoencoder's checkpoints carry it; those of an earlier model do not
SIGNS_NAMES = ("0", "1", "2", "3", "4", "5")  # a sign is the number of raised fingers


class ModelKind:
    """One kind of trained model. `name`: what predict/evaluate/export call it; `tag`: its checkpoints'
    `model` entry; `saved_by`, `fits`, `damaged`: how a wrong checkpoint is named in messages."""

    name: str
    tag: str
    saved_by: str
    fits: str
    damaged: str = "; the model diverged or the file is damaged"
    classifies = False  # predicts classes (else: encodes and reconstructs)
    splits: tuple[str, ...] = ("test", "train")  # what evaluate can measure it on

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<model kind {self.name}>"

    @property
    def layout(self):
        """The images the model takes (`data.images.Layout`)."""
        from mle6cli.data.images import MNIST_LAYOUT

        return MNIST_LAYOUT

    classes: tuple[str, ...] | None = None

    # ---------------------------------------------------------------- checkpoints

    def payload(self, weights: dict, **meta) -> dict:
        """What a checkpoint holds: the tag, the kind's own entries, the weights, then `meta` (as JSON has it:
        a checkpoint's bytes then do not depend on where its metadata came from, `files.plain`)."""
        from mle6cli.files import plain

        meta = plain(meta)
        return {"model": self.tag, **self._head(meta), "state_dict": weights, **meta}

    def _head(self, meta: dict) -> dict:
        return {}

    def load(self, path: Path | str, device="cpu") -> tuple[object, dict]:
        """(the model in eval mode on `device`, the checkpoint's entries), every entry checked first: a
        file that is not this kind's, does not fit the model or holds NaN is a RunDirError naming it."""
        from mle6cli.files import load_torch, non_finite_entry, state_dict_problem

        path = Path(path)
        payload = load_torch(path)
        weights = payload.get("state_dict") if isinstance(payload, dict) else None
        if not isinstance(weights, dict) or payload.get("model") != self.tag:
            raise RunDirError(f"{path} is not {self.saved_by}")
        self._check(path, payload)
        try:
            model = self._build(payload)
            model.load_state_dict(weights)
        except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RunDirError(f"{path} does not fit {self.fits}: {state_dict_problem(exc)}") from None
        bad = non_finite_entry(weights)
        if bad is not None:
            raise RunDirError(f"{path} holds NaN or infinite weights ({bad}){self.damaged}")
        return model.to(device).eval(), payload

    def _check(self, path: Path, payload: dict) -> None:
        """The kind's own entries, before the model is built."""

    def _build(self, payload: dict):
        raise NotImplementedError

    # ---------------------------------------------------------------- a finished run's members

    def find(self, run: Path, command: str, config, summary: dict, member: dict, latent_dim: int | None, any_dim: bool):
        """(checkpoint, member) of the model a finished `command` run is asked for: `member` names some of its
        axes (lr, seed), `latent_dim` the autoencoder (`any_dim`: the smallest when not given)."""
        if "lr" in member:
            raise RunDirError(f"{run} is a {command} run with one learning rate: pick a member by seed only")
        return self._find(run, config, summary, member, latent_dim, any_dim)

    def _find(self, run, config, summary, member, latent_dim, any_dim):
        raise NotImplementedError

    # ---------------------------------------------------------------- what predict and export do with it

    def infer(self, model, x) -> dict:
        """One batch's outputs, on the CPU: the classifier's probabilities, an autoencoder's codes, errors
        and reconstructions."""
        z = model.encode(x)
        y = model.decode(z)
        return {"codes": z.cpu(), "errors": (y - x).pow(2).flatten(1).mean(1).cpu(), "originals": x, "rebuilt": y}

    def exported(self, model):
        """What export writes: (module, its outputs' names); an autoencoder as (code, reconstruction)."""
        from torch import nn

        class CodeAndReconstruction(nn.Module):
            def __init__(self, model):
                super().__init__()
                self.model = model

            def forward(self, images):
                code = self.model.encode(images)
                return code, self.model.decode(code)

        return CodeAndReconstruction(model).eval(), ["code", "reconstruction"]

    def test_images(self, config, count: int):
        """Up to `count` of the run's own test images (N, C, H, W) float32 on the CPU (export's check)."""
        from mle6cli.data.mnist import open_mnist
        from mle6cli.data.splits import as_float

        spec = dict(config.spec(), download=False)
        return as_float(open_mnist(spec, "cpu").test_x[:count])

    def evaluate(self, trained, data_dir, split: str, out, device):
        """`mle6 evaluate` of this kind (tasks.evaluate)."""
        from mle6cli.tasks.evaluate import evaluate_autoencoders

        return evaluate_autoencoders(trained, data_dir, split, device, linear=False)


def _seed(run: Path, seeds: list, member: dict, default: int) -> int:
    seed = member.get("seed", default)
    if seed not in seeds:
        raise RunDirError(f"{run} has no member with seed {seed} (its seeds: {', '.join(map(str, seeds))})")
    return seed


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


class Classifier(ModelKind):
    name, tag = "classifier", "cnn"
    saved_by = "a classifier saved by mle6 train-cnn or sweep-lr"
    fits = "the exercise's CNN"
    classifies = True
    splits = ("test", "val", "train")
    classes = SIGNS_NAMES

    @property
    def layout(self):
        from mle6cli.data.images import SIGNS_LAYOUT

        return SIGNS_LAYOUT

    def _head(self, meta: dict) -> dict:
        from mle6cli.models import SIGNS_CLASSES

        return {"classes": SIGNS_CLASSES}

    def _check(self, path: Path, payload: dict) -> None:
        from mle6cli.models import SIGNS_CLASSES

        classes = payload.get("classes", SIGNS_CLASSES)
        if not isinstance(classes, int) or isinstance(classes, bool) or classes < 2:
            raise RunDirError(f"{path} does not fit the exercise's CNN: its class count is {classes!r}")

    def _build(self, payload: dict):
        from mle6cli.models import SIGNS_CLASSES, CNNClassifier

        return CNNClassifier(payload.get("classes", SIGNS_CLASSES))

    def find(self, run, command, config, summary, member, latent_dim, any_dim):
        if latent_dim is not None:
            raise RunDirError(f"{run} is a {command} run: --latent-dim is for autoencoder runs")
        lrs, seeds = list(config.lrs), list(config.seeds)
        lr = member.get("lr", summary.get("best_lr") if config.sweep else lrs[0])
        if lr not in lrs:
            raise RunDirError(f"{run} has no member with lr {lr_label(lr)} (its learning rates: "
                              f"{', '.join(lr_label(v) for v in lrs)})")  # fmt: skip
        default = seeds[0]
        if config.sweep and len(seeds) > 1:  # the best lr's best seed by final val accuracy, the first of equals
            done = [r for r in summary.get("runs", []) if r.get("lr") == lr and r.get("status") == "completed"]
            if done:
                default = max(done, key=lambda r: (r["final"]["val_acc"], -seeds.index(r["seed"])))["seed"]
        seed = _seed(run, seeds, member, default)
        path = run / config.member_dir({"lr": lr, "seed": seed}) / "model.pt"
        if not path.is_file():
            raise RunDirError(f"{run} has no model for lr={lr_label(lr)},seed={seed} (it diverged or was removed)")
        return path, {"lr": lr, "seed": seed}

    def infer(self, model, x) -> dict:
        return {"probabilities": model(x).exp().double().cpu()}

    def exported(self, model):
        return model, ["log_probs"]

    def test_images(self, config, count: int):
        from mle6cli.tasks.classifier import load_data

        return load_data(config, "cpu").test.x[:count]

    def evaluate(self, trained, data_dir, split, out, device):
        from mle6cli.tasks.evaluate import evaluate_classifier

        return evaluate_classifier(trained, data_dir, split, out, device)


class Autoencoder(ModelKind):
    name, tag = "autoencoder", "ae"
    saved_by = "a train-ae checkpoint"
    fits = "the exercise's autoencoder"

    def _head(self, meta: dict) -> dict:
        return {"architecture": ARCHITECTURE}

    def _check(self, path: Path, payload: dict) -> None:
        if payload.get("architecture") != ARCHITECTURE:
            raise RunDirError(
                f"{path} was made by an earlier, different architecture of the conv autoencoder (not the "
                "exercise's); train it again with mle6 train-ae"
            )
        dim = payload.get("latent_dim")
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
            raise RunDirError(
                f"{path} is not a train-ae checkpoint (its latent_dim is {dim!r}, not a whole number >= 1)"
            )
        if not isinstance(payload.get("data", {}), dict):
            raise RunDirError(f"{path} is not a train-ae checkpoint (its 'data' entry is not a mapping)")

    def _build(self, payload: dict):
        from mle6cli.models import ConvAutoencoder

        return ConvAutoencoder(payload["latent_dim"])

    def _find(self, run, config, summary, member, latent_dim, any_dim):
        records = [r for r in summary.get("runs", []) if isinstance(r, dict)]
        dims = sorted({r["latent_dim"] for r in records})
        dim = _pick_dim(run, dims, dims[0] if any_dim and latent_dim is None and dims else latent_dim)
        seeds = [r["seed"] for r in records if r["latent_dim"] == dim]
        seed = _seed(run, seeds, member, seeds[0])
        (record,) = [r for r in records if r["latent_dim"] == dim and r["seed"] == seed]
        if not record.get("checkpoint"):
            raise RunDirError(f"{run} has no model for latent size {dim}, seed {seed}: it {record.get('status')}")
        return run / record["checkpoint"], {"latent_dim": dim, "seed": seed}


class LinearAutoencoder(ModelKind):
    name = tag = "linear-ae"
    saved_by = "a linear autoencoder saved by mle6 pca-ae"
    fits = "the linear autoencoder"
    damaged = ""

    def _head(self, meta: dict) -> dict:
        return {"latent_dim": meta.pop("latent_dim")}

    def _build(self, payload: dict):
        from mle6cli.models import LinearAutoencoder as Model

        return Model(payload.get("latent_dim"))

    def _find(self, run, config, summary, member, latent_dim, any_dim):
        dim = _pick_dim(run, [config.latent_dim], latent_dim)
        seeds = list(config.seeds)
        seed = _seed(run, seeds, member, seeds[0])
        key = {"latent_dim": dim, "seed": seed}
        return run / config.member_dir(key) / checkpoint_name(dim), key

    def evaluate(self, trained, data_dir, split, out, device):
        from mle6cli.tasks.evaluate import evaluate_autoencoders

        return evaluate_autoencoders(trained, data_dir, split, device, linear=True)


def checkpoint_name(latent_dim: int) -> str:
    """A pca-ae member's checkpoint."""
    return f"linear_ae_k{latent_dim}.pt"


CLASSIFIER, AUTOENCODER, LINEAR_AE = Classifier(), Autoencoder(), LinearAutoencoder()
