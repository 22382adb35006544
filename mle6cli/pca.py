"""The linear autoencoder 784 → k → 784 (no biases) against its exact optimum.

A bias-free rank-k linear map X ↦ X W minimising ‖X - X W‖² is the orthogonal projection onto
the top-k right singular vectors of the UNCENTRED training matrix X (N × 784) (Eckart–Young;
no mean is subtracted because the model has no bias to add it back). Those vectors are the
top eigenvectors of the 784 × 784 Gram matrix XᵀX, accumulated here in float64 a chunk at a
time, so the optimum costs one pass over the data whatever N is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from mle6cli import runs
from mle6cli.errors import ConfigError, Mle6Error
from mle6cli.models import MNIST_PIXELS, LinearAutoencoder
from mle6cli.train import RECONSTRUCT, Split, as_float, check_loop_options, train_model


@dataclass
class PcaAeConfig:
    latent_dim: int = 10
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    deterministic: bool = False

    def validate(self) -> None:
        if not 1 <= self.latent_dim <= MNIST_PIXELS:
            raise ConfigError(f"latent dim must be between 1 and {MNIST_PIXELS}, got {self.latent_dim}")
        check_loop_options(self.epochs, self.batch_size, self.lr)

    def to_dict(self) -> dict:
        return asdict(self)


def _as_double(x: torch.Tensor) -> torch.Tensor:
    """(m, 784) float64 on the CPU; uint8 is scaled in float64 too (MPS has no float64)."""
    rows = x.reshape(-1, MNIST_PIXELS).cpu().double()
    return rows / 255.0 if x.dtype == torch.uint8 else rows


def _rows(x: torch.Tensor, chunk: int = 4096):
    """float64 chunks (m, 784) of images (N, 1, 28, 28)."""
    for start in range(0, len(x), chunk):
        yield _as_double(x[start : start + chunk])


def singular_basis(train_x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """All right singular vectors (784, 784) of the uncentred training matrix, by decreasing
    singular value, and the squared singular values (784,)."""
    gram = torch.zeros(MNIST_PIXELS, MNIST_PIXELS, dtype=torch.float64)
    for rows in _rows(train_x):
        gram += rows.T @ rows
    eigenvalues, eigenvectors = torch.linalg.eigh(gram)  # ascending
    return eigenvectors.flip(1).numpy(), eigenvalues.flip(0).clamp_min(0).numpy()


def projection_mse(x: torch.Tensor, basis: np.ndarray, dims: list[int]) -> dict[int, float]:
    """MSE per pixel of projecting the images onto the first k basis columns, for each k in dims.

    With an orthonormal basis V_k, ‖x - x V_k V_kᵀ‖² = ‖x‖² - ‖x V_k‖², so every k costs one
    matrix product of the data with the whole basis.
    """
    v = torch.from_numpy(basis)
    total = 0.0
    captured = torch.zeros(basis.shape[1], dtype=torch.float64)
    n = 0
    for rows in _rows(x):
        total += rows.pow(2).sum().item()
        captured += (rows @ v).pow(2).sum(0)
        n += len(rows)
    cumulative = torch.cumsum(captured, 0)
    return {k: max(total - cumulative[min(k, MNIST_PIXELS) - 1].item(), 0.0) / (n * MNIST_PIXELS) for k in dims}


def projection_images(x: torch.Tensor, basis_k: np.ndarray) -> np.ndarray:
    """x V_k V_kᵀ for images (m, 1, 28, 28): (m, 784) float64."""
    rows = _as_double(x).numpy()
    return rows @ basis_k @ basis_k.T


def principal_angles_deg(a: np.ndarray, b: np.ndarray) -> list[float]:
    """Principal angles (degrees, ascending) between the column spaces of a and b (784 × k each)."""
    from scipy.linalg import subspace_angles

    return sorted(float(v) for v in np.degrees(subspace_angles(a, b)))


@dataclass
class PcaAeResult:
    config: PcaAeConfig
    history: list[dict]
    linear_ae_test_mse: float
    pca_test_mse: float
    pca_train_mse: float
    principal_angles_deg: list[float]
    run_dir: Path
    data: dict
    compare: list[dict] | None
    figures: dict[str, str]

    @property
    def ratio(self) -> float:
        return self.linear_ae_test_mse / self.pca_test_mse if self.pca_test_mse > 0 else float("inf")

    def to_json(self) -> dict:
        doc = {
            "latent_dim": self.config.latent_dim,
            "train_loss": [row["train_loss"] for row in self.history],
            "test_loss": [row["test_loss"] for row in self.history],
            "linear_ae_test_mse": self.linear_ae_test_mse,
            "pca_test_mse": self.pca_test_mse,
            "ratio": self.ratio,
            "principal_angles_deg": self.principal_angles_deg,
            "run_dir": str(self.run_dir),
            "synthetic": self.data["synthetic"],
        }
        if self.compare is not None:
            doc["compare"] = self.compare
        return doc

    def summary(self) -> dict:
        return {
            "command": "pca-ae",
            "status": "completed",
            "config": self.config.to_dict(),
            "data": self.data,
            **self.to_json(),
            "pca_train_mse": self.pca_train_mse,
            "history": self.history,
            "figures": self.figures,
        }


METRICS_HEADER = ["epoch", "train_loss", "test_loss"]


def check_compare_run(run_dir: Path, data) -> list[dict]:
    """The conv AE entries of a finished train-ae run trained on the same data, their checkpoints present.

    Called before pca-ae creates its run folder, so a bad --compare leaves nothing behind.
    """
    run_dir = Path(run_dir)
    summary = runs.read_json(run_dir / runs.SUMMARY) if (run_dir / runs.SUMMARY).is_file() else None
    if not isinstance(summary, dict):
        raise runs.RunDirError(f"--compare: {run_dir} is not a finished train-ae run (no summary.json)")
    if summary.get("command") != "train-ae":
        raise runs.RunDirError(
            f"--compare: {run_dir} is not a finished train-ae run (it holds a {summary.get('command')} run)"
        )
    trained_on = summary.get("data", {})
    here = data.describe()
    if bool(trained_on.get("synthetic")) != here["synthetic"] or trained_on.get("n_test") != here["n_test"]:
        what = "synthetic" if trained_on.get("synthetic") else "real"
        raise Mle6Error(
            f"--compare: {run_dir} was trained on other data ({what}, {trained_on.get('n_test')} test images); "
            f"this run uses {'synthetic' if here['synthetic'] else 'real'} data with {here['n_test']}"
        )
    entries = [r for r in summary.get("runs", []) if r.get("checkpoint")]
    if not entries:
        raise runs.RunDirError(f"--compare: {run_dir} has no conv AE checkpoints")
    missing = [r["checkpoint"] for r in entries if not (run_dir / r["checkpoint"]).is_file()]
    if missing:
        raise runs.RunDirError(f"--compare: {run_dir} lacks {', '.join(missing)}, listed in its summary.json")
    return entries


def compare_with_run(run_dir: Path, data, basis: np.ndarray, device) -> list[dict]:
    """Conv AE (each checkpoint of a train-ae run, scored on this test set) vs exact PCA at its dims."""
    from mle6cli.autoencoders import load_autoencoder
    from mle6cli.train import evaluate

    run_dir = Path(run_dir)
    entries = check_compare_run(run_dir, data)
    dims = [int(r["latent_dim"]) for r in entries]
    pca = projection_mse(data.test_x, basis, dims)
    test = Split(data.test_x)
    rows = []
    for entry, d in zip(entries, dims):
        model, meta = load_autoencoder(run_dir / entry["checkpoint"], device)
        conv = evaluate(model, RECONSTRUCT, test)["loss"]
        rows.append(
            {
                "latent_dim": d,
                "conv_ae_test_mse": conv,
                "pca_test_mse": pca[d],
                "better": "conv AE" if conv < pca[d] else "PCA",
                "conv_over_pca": conv / pca[d] if pca[d] > 0 else float("inf"),
                "conv_ae_collapsed": bool(meta.get("collapsed", False)),
            }
        )
    return rows


def train_linear_autoencoder(
    config: PcaAeConfig,
    data,
    device: torch.device,
    run_dir: Path,
    *,
    progress: Callable[[str, int, dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    compare_run: Path | None = None,
) -> PcaAeResult | None:
    """Train the linear AE, compute the exact optimum and compare them; None if stopped by a signal."""
    from mle6cli.device import set_seed
    from mle6cli.plots import pca_losses_figure, pca_reconstructions_figure

    config.validate()
    run_dir = Path(run_dir)
    k = config.latent_dim
    basis, _ = singular_basis(data.train_x)
    basis_k = basis[:, :k]
    pca_test = projection_mse(data.test_x, basis, [k])[k]
    pca_train = projection_mse(data.train_x, basis, [k])[k]
    compare = compare_with_run(compare_run, data, basis, device) if compare_run is not None else None

    set_seed(config.seed, config.deterministic)
    model = LinearAutoencoder(k).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    report = progress or (lambda *a, **kw: None)

    def on_epoch(row: dict) -> None:
        report(
            f"linear AE k={k} epoch {row['epoch']}/{config.epochs}",
            row["epoch"],
            {"train_loss": row["train_loss"], "test_loss": row["test_loss"]},
        )

    result = train_model(
        model,
        optimizer,
        RECONSTRUCT,
        data.train_split(),
        {"test": data.test_split()},
        epochs=config.epochs,
        batch_size=config.batch_size,
        seed=config.seed,
        on_epoch=on_epoch,
        should_stop=should_stop,
    )
    if result.status == "interrupted":
        return None
    history = [{key: row[key] for key in METRICS_HEADER} for row in result.history]
    runs.write_csv(run_dir / "metrics.csv", METRICS_HEADER, history)
    if result.status == "diverged":
        raise Mle6Error(f"the linear autoencoder diverged (non-finite loss in epoch {result.diverged_epoch})")
    runs.save_torch(
        run_dir / f"linear_ae_k{k}.pt",
        {"model": "linear-ae", "latent_dim": k, "state_dict": {n: v.cpu() for n, v in model.state_dict().items()}},
    )
    decoder_columns = model.decoder.weight.detach().double().cpu().numpy()  # (784, k)
    angles = principal_angles_deg(decoder_columns, basis_k)

    from mle6cli.autoencoders import example_indices

    index = example_indices(data.test_y)
    originals = data.test_x[index]
    with torch.no_grad():
        linear = model(as_float(originals)).cpu().numpy().reshape(-1, 28, 28)
    figures = {
        "losses": pca_losses_figure(history, pca_test, run_dir / "pca_ae_losses.png", k, data.synthetic).name,
        "reconstructions": pca_reconstructions_figure(
            as_float(originals).cpu().numpy().reshape(-1, 28, 28),
            linear,
            projection_images(originals, basis_k).reshape(-1, 28, 28),
            run_dir / "pca_ae_reconstructions.png",
            k,
            data.synthetic,
        ).name,
    }
    return PcaAeResult(
        config=config,
        history=history,
        linear_ae_test_mse=history[-1]["test_loss"],
        pca_test_mse=pca_test,
        pca_train_mse=pca_train,
        principal_angles_deg=angles,
        run_dir=run_dir,
        data=data.describe(),
        compare=compare,
        figures=figures,
    )


def run_pca_ae(
    config: PcaAeConfig,
    spec: dict,
    device: torch.device,
    run_dir: Path,
    *,
    data=None,
    compare: Path | None = None,
    device_spec: str | None = None,
    progress: Callable[[str, int, dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> PcaAeResult:
    """The whole pca-ae job in a prepared `run_dir`: config.json, training, the optimum, summary.json."""
    from mle6cli.data.mnist import open_mnist
    from mle6cli.device import describe_device
    from mle6cli.interrupt import Interrupted, any_of, graceful_stop

    run_dir = Path(run_dir)
    data = data if data is not None else open_mnist(spec, device)
    runs.start(
        run_dir,
        "pca-ae",
        config=config.to_dict(),
        data=spec,
        compare=str(compare) if compare is not None else None,
        device=device_spec or str(device),
        device_resolved=describe_device(device),
    )
    with graceful_stop() as stop:
        result = train_linear_autoencoder(
            config, data, device, run_dir, progress=progress, should_stop=any_of(stop, should_stop), compare_run=compare
        )
    if result is None:
        raise Interrupted(
            stop.signal_number, f"interrupted; pca-ae takes seconds and has no --resume: run it again ({run_dir})"
        )
    runs.finish(run_dir, result.summary())
    return result
