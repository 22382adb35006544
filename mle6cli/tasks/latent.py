"""The 3-D latent space of a trained autoencoder: codes, and how well the digits separate in it.

k-NN accuracy and the silhouette score are computed here with numpy (the runtime does not
depend on scikit-learn; the tests use it as an oracle).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mle6cli.data.splits import as_float
from mle6cli.engine.runs import RunDirError
from mle6cli.errors import Mle6Error
from mle6cli.tasks.limits import MIN_POINTS
from mle6cli.tasks.schema import TrainAeSummary, read

LATENT_DIM = 3
KNN_K = 5


def finished_ae_summary(run_dir: Path, option: str) -> TrainAeSummary:
    """summary.json of a finished train-ae run; RunDirError naming `option` otherwise."""
    from mle6cli.files import FileError, read_json

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"{option}: {run_dir} is not a finished train-ae run (no such folder)")
    if not (run_dir / "summary.json").is_file():
        raise RunDirError(f"{option}: {run_dir} is not a finished train-ae run (no summary.json)")
    try:
        summary = read_json(run_dir / "summary.json")
    except FileError as exc:
        raise RunDirError(f"{option}: {exc}") from None
    typed = read(summary) if isinstance(summary, dict) else None
    if not isinstance(typed, TrainAeSummary):
        what = summary.get("command") if isinstance(summary, dict) else None
        held = f" (it holds a {what} run)" if what else ""
        raise RunDirError(f"{option}: {run_dir} is not a finished train-ae run{held}")
    return typed


def finished_ae_runs(run_dir: Path, option: str, summary: TrainAeSummary | None = None) -> list[dict]:
    """The members a finished train-ae run lists in its summary.json (readers trust nothing else)."""
    summary = summary if summary is not None else finished_ae_summary(run_dir, option)
    runs = [r for r in summary.get("runs", []) if isinstance(r, dict) and r.get("checkpoint")]
    if not runs:
        raise RunDirError(f"{option}: {run_dir} holds no train-ae checkpoints")
    missing = [r["checkpoint"] for r in runs if not (Path(run_dir) / r["checkpoint"]).is_file()]
    if missing:
        raise RunDirError(f"{option}: {run_dir} lacks {', '.join(missing)}, listed in its summary.json")
    return runs


def find_d3_checkpoint(run_dir: Path) -> Path:
    """The d=3 model of a finished train-ae run (its first seed); an error listing the dims it has otherwise."""
    runs = finished_ae_runs(run_dir, "--run")
    for r in runs:
        if r.get("latent_dim") == LATENT_DIM:
            return Path(run_dir) / r["checkpoint"]
    have = ", ".join(f"d={d}" for d in sorted({r.get("latent_dim") for r in runs}))
    raise RunDirError(
        f"--run: {run_dir} has no d=3 model (it has {have}); train one with mle6 train-ae --latent-dims 3"
    )


@torch.no_grad()
def encode(model, images: torch.Tensor, batch_size: int = 1024) -> np.ndarray:
    """Codes (n, d) of uint8 or float images (n, 1, 28, 28), as float64 numpy."""
    model.eval()
    parts = [
        model.encode(as_float(images[i : i + batch_size])).cpu().double() for i in range(0, len(images), batch_size)
    ]
    return torch.cat(parts).numpy()


def _pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances (len(a), len(b)), via the Gram trick, clipped at 0 before the root."""
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(sq, 0.0))


def knn_accuracy(codes: np.ndarray, labels: np.ndarray, k: int = KNN_K, seed: int = 0) -> float:
    """Accuracy of a k-NN majority vote fitted on one half of the codes and tested on the other.

    The halves come from a seeded permutation. Ties between classes go to the smallest label
    (as scikit-learn's KNeighborsClassifier does).
    """
    n = len(codes)
    if n < 2 * k:
        raise Mle6Error(f"k-NN with k={k} needs at least {2 * k} points, got {n}")
    fit, test = knn_split(n, seed)
    distances = _pairwise_distances(codes[test], codes[fit])  # (n_test, n_fit)
    nearest = np.argsort(distances, axis=1, kind="stable")[:, :k]
    votes = labels[fit][nearest]  # (n_test, k)
    n_classes = int(labels.max()) + 1
    counts = np.zeros((len(test), n_classes), dtype=np.int64)
    np.add.at(counts, (np.repeat(np.arange(len(test)), k), votes.ravel()), 1)
    predicted = counts.argmax(1)  # first maximum: the smallest tied label
    return float((predicted == labels[test]).mean())


def knn_split(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The (fit, test) index halves `knn_accuracy` uses."""
    order = np.random.default_rng(seed).permutation(n)
    return order[: n // 2], order[n // 2 :]


def silhouette_score(codes: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette (b - a) / max(a, b) over all points, Euclidean; 0 for points alone in their class."""
    classes, inverse = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        raise Mle6Error("the silhouette score needs at least two different digits among the points")
    distances = _pairwise_distances(codes, codes)
    np.fill_diagonal(distances, 0.0)
    one_hot = np.zeros((len(codes), len(classes)))
    one_hot[np.arange(len(codes)), inverse] = 1.0
    sizes = one_hot.sum(0)  # (C,)
    sums = distances @ one_hot  # (n, C): total distance of each point to each class
    own_size = sizes[inverse]
    a = sums[np.arange(len(codes)), inverse] / np.maximum(own_size - 1, 1)
    means = sums / sizes[None, :]
    means[np.arange(len(codes)), inverse] = np.inf
    b = means.min(1)
    s = (b - a) / np.maximum(np.maximum(a, b), np.finfo(float).tiny)
    s[own_size == 1] = 0.0
    return float(s.mean())


@dataclass
class LatentResult:
    codes: np.ndarray  # (n, 3)
    labels: np.ndarray  # (n,)
    knn_accuracy: float
    silhouette: float
    collapsed: bool
    synthetic: bool
    source: str
    plot: str | None = None
    checkpoint: str | None = None

    def to_json(self) -> dict:
        return {
            "points": int(len(self.codes)),
            "knn_accuracy": self.knn_accuracy,
            "knn_k": KNN_K,
            "silhouette": self.silhouette,
            "plot": self.plot,
            "collapsed": self.collapsed,
            "synthetic": self.synthetic,
            "data": self.source,
        }


def latent_analysis(model, data, n: int, collapsed: bool = False) -> LatentResult:
    """Encode the first n test images with a d=3 model; score how well the digits separate."""
    if model.latent_dim != LATENT_DIM:
        raise Mle6Error(f"latent-plot needs a d=3 model, this one has d={model.latent_dim}")
    if n < MIN_POINTS:
        raise Mle6Error(f"--n must be at least {MIN_POINTS}, got {n}")
    n = min(n, len(data.test_x))
    codes = encode(model, data.test_x[:n])
    labels = data.test_y[:n].cpu().numpy().astype(np.int64)
    if not np.isfinite(codes).all():
        raise Mle6Error("the model's codes are not finite numbers; the checkpoint is broken")
    return LatentResult(
        codes=codes,
        labels=labels,
        knn_accuracy=knn_accuracy(codes, labels),
        silhouette=silhouette_score(codes, labels),
        collapsed=collapsed,
        synthetic=data.synthetic,
        source=data.source,
    )


def plot_latent(model, meta: dict, data, n: int, out: Path) -> LatentResult:
    """Encode n test images with a loaded d=3 model (`autoencoders.load_autoencoder`), score the
    separation and draw the figure."""
    from mle6cli.plots import latent_figure

    collapsed = bool(meta.get("collapsed", False))
    result = latent_analysis(model, data, n, collapsed=collapsed)
    title = f"d=3 latent codes of {len(result.codes)} test images" + (" — SYNTHETIC digits" if data.synthetic else "")
    title += f"\n{KNN_K}-NN accuracy {result.knn_accuracy:.3f}, silhouette {result.silhouette:.3f}"
    if collapsed:
        title += " — COLLAPSED model"
    result.plot = str(latent_figure(result.codes, result.labels, out, title))
    return result


def latent_plot(
    *,
    run: Path | None,
    checkpoint: Path | None,
    data_dir: Path | None = None,
    synthetic: bool = False,
    download: bool = True,
    n: int = 2048,
    out: Path = Path("latent.png"),
    device: str = "auto",
    events=None,
) -> LatentResult:
    """latent-plot: the d=3 model of a run (or a checkpoint), the data it was trained on (unless
    `data_dir`/`synthetic` say otherwise), its codes, their separation and the figure."""
    from mle6cli.data.mnist import mnist_spec, open_mnist
    from mle6cli.engine.device import resolve_device
    from mle6cli.engine.events import QUIET
    from mle6cli.plots import figure_format
    from mle6cli.tasks.autoencoders import load_autoencoder

    events = events or QUIET
    figure_format(out)  # a suffix we cannot write fails before any work
    torch_device = resolve_device(device)
    path = find_d3_checkpoint(run) if run is not None else Path(checkpoint)
    model, meta = load_autoencoder(path, torch_device)
    if model.latent_dim != LATENT_DIM:
        raise Mle6Error(f"{path} holds a d={model.latent_dim} model; latent-plot needs d=3")
    trained_on = meta.get("data") or {}
    if synthetic:
        spec = mnist_spec(None, True, False)
    elif data_dir is not None:
        spec = mnist_spec(data_dir, False, download)
    elif trained_on.get("synthetic"):
        spec = {"synthetic": True, "n_train": trained_on.get("n_train"), "n_test": trained_on.get("n_test")}
    elif trained_on.get("source"):  # <data_dir>/MNIST/raw
        spec = {"synthetic": False, "data_dir": str(Path(trained_on["source"]).parents[1]), "download": False}
    else:
        spec = mnist_spec(Path("data"), False, download)
    data = open_mnist(spec, torch_device)
    if data.synthetic:
        events.note(data.synthetic_note())
    for note in data.notes:  # what the data layer accepted only after a second look
        events.note(note)
    if meta.get("collapsed", False):
        events.note(f"WARNING: the d=3 model in {path} is marked COLLAPSED; its codes say little.")
    if n > len(data.test_x):
        events.note(f"Note: the test set has only {len(data.test_x)} images; encoding all of them.")
    result = plot_latent(model, meta, data, n, out)
    result.checkpoint = str(path)
    return result
