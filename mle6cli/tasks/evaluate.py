"""`mle6 evaluate`: a finished run's saved model on a dataset split.

The numbers come from the code the run was tested with: the classifier through
`classifier.test_weights` (every completed member of the run fused as in training, so the
chosen one's accuracy is the run's own to the last digit), the autoencoders through
`Members.evaluate` (the loop's evaluation). On the run's own data and split they equal
summary.json's test accuracy and test MSE; `matches_run` says whether they do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from mle6cli.errors import DataError
from mle6cli.tasks.config import SPLIT
from mle6cli.tasks.trained import Trained, open_trained

SPLITS = SPLIT.choices


@dataclass
class Evaluation:
    trained: Trained
    split: str
    data: str  # where the data came from
    images: int
    own_data: bool  # the run's own dataset
    accuracy: float | None = None
    loss: float | None = None
    confusion: list[list[int]] | None = None
    per_class: list[dict] = field(default_factory=list)  # class, precision, recall, f1, support
    mse: list[dict] = field(default_factory=list)  # latent_dim, seed, mse, recorded (and pca_mse)
    recorded: float | None = None  # summary.json's figure for the chosen model on this split
    files: dict[str, str] = field(default_factory=dict)

    @property
    def matches_run(self) -> bool | None:
        """Whether the figure equals the run's own (None: the run recorded none for this data and split)."""
        if self.recorded is None:
            return None
        value = self.accuracy if self.trained.kind.classifies else self._chosen_mse()
        return value == self.recorded

    def _chosen_mse(self) -> float | None:
        return next((r["mse"] for r in self.mse if self._is_chosen(r)), None)

    def _is_chosen(self, row: dict) -> bool:
        return row["latent_dim"] == self.trained.member["latent_dim"] and row["seed"] == self.trained.member["seed"]

    def to_json(self) -> dict:
        doc = {**self.trained.describe(), "split": self.split, "data": self.data, "images": self.images}
        if self.trained.kind.classifies:
            doc.update(accuracy=self.accuracy, loss=self.loss, per_class=self.per_class, confusion=self.confusion)
        else:
            doc["mse"] = self.mse
        doc.update(recorded=self.recorded, matches_run=self.matches_run, files=self.files)
        return doc


def class_scores(confusion, classes) -> list[dict]:
    """Precision, recall and F1 per class from a confusion matrix (true down, predicted across);
    None where a class was never predicted (precision) or never present (recall)."""
    rows = []
    for k, name in enumerate(classes):
        true_positive = confusion[k][k]
        predicted = sum(row[k] for row in confusion)
        present = sum(confusion[k])
        precision = true_positive / predicted if predicted else None
        recall = true_positive / present if present else None
        f1 = (
            2 * precision * recall / (precision + recall)
            if precision is not None and recall is not None and precision + recall > 0
            else (0.0 if precision is not None and recall is not None else None)
        )
        rows.append({"class": name, "precision": precision, "recall": recall, "f1": f1, "support": present})
    return rows


def evaluate(
    run: Path,
    *,
    member: dict | None = None,
    latent_dim: int | None = None,
    data_dir: Path | None = None,
    split: str = "test",
    out: Path | None = None,
    overwrite: bool = False,
    device: str = "auto",
) -> Evaluation:
    """The model of `run` on `split` of its own data (or of `data_dir`); the classifier's confusion matrix
    is written under `out` as confusion.csv and confusion.png, which must not exist unless `overwrite`
    (`engine.folder.evaluation_dir` is the command's default `out`)."""
    from mle6cli.engine.device import THREADS_ENV, configure_threads, resolve_device
    from mle6cli.engine.folder import CONFUSION
    from mle6cli.files import check_replaceable, read_json

    SPLIT.check(split)
    where = resolve_device(device)
    trained = open_trained(run, member, latent_dim, where, any_dim=True)
    if out is not None and trained.kind.classifies:  # only a classifier writes files here
        check_replaceable([Path(out) / name for name in CONFUSION], overwrite)
    threads = read_json(Path(run) / "config.json").get("cpu_threads")
    if where.type == "cpu" and isinstance(threads, int) and threads >= 1 and not os.environ.get(THREADS_ENV):
        configure_threads(where, threads)  # the thread count changes CPU sums in the last bits: use the run's
    if split not in trained.kind.splits:
        raise DataError(f"{trained.run} is a {trained.command} run on MNIST, which has a train and a test split only")
    return trained.kind.evaluate(trained, data_dir, split, out, where)


def evaluate_classifier(trained: Trained, data_dir, split, out, device) -> Evaluation:
    """The classifier's `evaluate`: every completed member tested in one fused pass, as the run did."""
    import torch

    from mle6cli.data.signs import load_signs
    from mle6cli.files import write_csv
    from mle6cli.tasks.classifier import load_classifier, load_data, test_weights

    config = trained.config
    data = load_data(config, device) if data_dir is None else load_signs(data_dir, device)
    own = data_dir is None or Path(data_dir).resolve() == Path(config.data_dir or "").resolve()
    chosen = getattr(data, split)
    # the run's completed members in its own order: the fused pass that tested them, repeated
    records = trained.summary.get("runs") or [{**trained.member, "status": "completed"}]
    done = [r for r in records if r.get("status") == "completed"]
    weights, lrs, index = [], [], 0
    for j, r in enumerate(done):
        path = trained.run / config.member_dir(r) / "model.pt"
        model, _ = load_classifier(path, "cpu")
        weights.append(model.state_dict())
        lrs.append(r["lr"])
        if (r["lr"], r["seed"]) == (trained.member["lr"], trained.member["seed"]):
            index = j
    predicted = []

    def keep(j, out):  # the chosen member's predicted classes, batch by batch, from the same pass
        if j == index:
            predicted.append(out.argmax(-1).cpu())

    losses, accs = test_weights(weights, lrs, chosen, device, on_outputs=keep)
    predicted = torch.cat(predicted).tolist()
    truth = chosen.y.cpu().tolist()
    classes = list(trained.classes)
    confusion = [[0] * len(classes) for _ in classes]
    for t, p in zip(truth, predicted, strict=True):
        confusion[t][p] += 1
    result = Evaluation(
        trained,
        split,
        data.source.get("path", "synthetic"),
        len(chosen),
        own,
        accuracy=accs[index],
        loss=losses[index],
        confusion=confusion,
        per_class=class_scores(confusion, classes),
    )
    if own and split == "test":
        record = next((r for r in done if (r["lr"], r["seed"]) == (trained.member["lr"], trained.member["seed"])), {})
        result.recorded = record.get("test_acc", trained.summary.get("test_acc"))
    if out is not None:
        from mle6cli import plots

        rows = [dict({"true": classes[i]}, **{f"predicted_{c}": n for c, n in zip(classes, row, strict=True)})
                for i, row in enumerate(confusion)]  # fmt: skip
        header = ["true", *[f"predicted_{c}" for c in classes]]
        result.files["confusion_csv"] = str(write_csv(Path(out) / "confusion.csv", header, rows))
        title = f"{trained.command} {trained.label}, {split} split: accuracy {accs[index]:.4f}"
        result.files["confusion_png"] = str(
            plots.confusion_figure(confusion, classes, Path(out) / "confusion.png", title)
        )
    return result


def evaluate_autoencoders(trained: Trained, data_dir, split, device, *, linear: bool) -> Evaluation:
    """Every autoencoder of the run (each latent size and seed), and exact PCA beside a pca-ae run's."""
    from mle6cli.data.mnist import mnist_spec, open_mnist
    from mle6cli.data.splits import Split
    from mle6cli.engine.members import RECONSTRUCT, ModuleMembers
    from mle6cli.tasks.autoencoders import load_autoencoder
    from mle6cli.tasks.pca import (
        checkpoint_name,
        load_linear_autoencoder,
        projection_mse,
        singular_basis,
    )

    config = trained.config
    spec = config.spec() if data_dir is None else mnist_spec(data_dir, False, download=False)
    own = spec == config.spec()
    data = open_mnist(spec, device)
    chosen = data.test_split() if split == "test" else data.train_split()
    rows = []
    if linear:
        seeds = list(config.seeds)
        checkpoints = [trained.run / config.member_dir({"seed": s}) / checkpoint_name(config.latent_dim) for s in seeds]
        models = [
            (config.latent_dim, s, load_linear_autoencoder(path, device))
            for s, path in zip(seeds, checkpoints, strict=True)
        ]
        recorded = {(config.latent_dim, r["seed"]): r["linear_ae_test_mse"] for r in trained.summary.get("seeds", [])}
        if not recorded and len(seeds) == 1:
            recorded = {(config.latent_dim, seeds[0]): trained.summary.get("linear_ae_test_mse")}
    else:
        done = [r for r in trained.summary.get("runs", []) if r.get("checkpoint")]
        models = [
            (r["latent_dim"], r["seed"], load_autoencoder(trained.run / r["checkpoint"], device)[0]) for r in done
        ]
        recorded = {(r["latent_dim"], r["seed"]): r["final_test_mse"] for r in done}
    pca = None
    if linear:
        basis, _ = singular_basis(data.train_x)
        pca = projection_mse(chosen.x, basis, [config.latent_dim])[config.latent_dim]
    for dim, seed, model in models:
        # the loop's own evaluation of a member (lr is unused: nothing is trained)
        (mse,), _ = ModuleMembers([model], [config.lr], RECONSTRUCT).evaluate(Split(chosen.x))
        row = {"latent_dim": dim, "seed": seed, "mse": mse}
        row["recorded"] = recorded.get((dim, seed)) if own and split == "test" else None
        if pca is not None:
            row["pca_mse"] = pca
        rows.append(row)
    result = Evaluation(trained, split, data.source, len(chosen), own, mse=rows)
    if own and split == "test":
        result.recorded = next((r["recorded"] for r in rows if result._is_chosen(r)), None)
    return result
