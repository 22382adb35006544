"""The linear autoencoder 784 → k → 784 (no biases) against its exact optimum.

A bias-free rank-k linear map X ↦ X W minimising ‖X - X W‖² is the orthogonal projection onto
the top-k right singular vectors of the UNCENTRED training matrix X (N × 784) (Eckart–Young;
no mean is subtracted because the model has no bias to add it back). Those vectors are the
top eigenvectors of the 784 × 784 Gram matrix XᵀX, accumulated here in float64 a chunk at a
time, so the optimum costs one pass over the data whatever N is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mle6cli.data.splits import Split, as_float
from mle6cli.engine.runs import Member
from mle6cli.errors import Mle6Error
from mle6cli.fmt import plural
from mle6cli.models import MNIST_PIXELS, LinearAutoencoder
from mle6cli.tasks.autoencoders import METRICS_HEADER
from mle6cli.tasks.kinds import LINEAR_AE, checkpoint_name
from mle6cli.tasks.schema import PcaAeSummary, write
from mle6cli.tasks.specs import PCA_AE, PcaAeConfig, RunParams


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
    seed_results: list[dict]  # per seed: seed, linear_ae_test_mse, principal angles
    linear_ae_test_mse: float
    pca_test_mse: float
    pca_train_mse: float
    principal_angles_deg: list[float]
    run_dir: Path
    data: dict
    compare: list[dict] | None
    verdict: str | None
    figures: dict[str, str]

    @property
    def ratio(self) -> float:
        return self.linear_ae_test_mse / self.pca_test_mse if self.pca_test_mse > 0 else float("inf")

    def to_json(self) -> dict:
        doc = {
            "latent_dim": self.config.latent_dim,
            "epochs": self.config.epochs,
            "train_loss": [row["train_loss"] for row in self.history],
            "test_loss": [row["test_loss"] for row in self.history],
            "linear_ae_test_mse": self.linear_ae_test_mse,
            "pca_test_mse": self.pca_test_mse,
            "ratio": self.ratio,
            "principal_angles_deg": self.principal_angles_deg,
            "run_dir": str(self.run_dir),
            "synthetic": self.data["synthetic"],
        }
        if len(self.seed_results) > 1:
            from mle6cli.tasks.stats import estimate

            doc["seeds"] = self.seed_results
            doc["stats"] = {
                "linear_ae_test_mse": estimate([r["linear_ae_test_mse"] for r in self.seed_results]).to_dict()
            }
        if self.compare is not None:
            doc["compare"] = self.compare
            doc["verdict"] = self.verdict
        return doc

    def summary(self) -> PcaAeSummary:
        return PcaAeSummary(
            command=PCA_AE.name,
            status="completed",
            data=self.data,
            **self.to_json(),
            pca_train_mse=self.pca_train_mse,
            history=self.history,
            figures=self.figures,
        )


def check_compare_run(run_dir: Path, data) -> list[dict]:
    """The conv AE members of a finished train-ae run trained on the same data, their checkpoints present.

    Called before pca-ae creates its run folder, so a bad --compare leaves nothing behind.
    """
    from mle6cli.tasks.latent import finished_ae_runs, finished_ae_summary

    run_dir = Path(run_dir)
    summary = finished_ae_summary(run_dir, "--compare")
    trained_on = summary.get("data", {})
    here = data.describe()
    if bool(trained_on.get("synthetic")) != here["synthetic"] or trained_on.get("n_test") != here["n_test"]:
        what = "synthetic" if trained_on.get("synthetic") else "real"
        raise Mle6Error(
            f"--compare: {run_dir} was trained on other data ({what}, {trained_on.get('n_test')} test images); "
            f"this run uses {'synthetic' if here['synthetic'] else 'real'} data with {here['n_test']}"
        )
    epochs = summary.get("epochs")
    return [dict(r, epochs=epochs) for r in finished_ae_runs(run_dir, "--compare", summary)]


def compare_with_run(run_dir: Path, data, basis: np.ndarray, device) -> list[dict]:
    """Conv AE (each checkpoint of a train-ae run, scored on this test set) vs exact PCA at its dims.

    With several seeds per latent size, the row holds their mean, standard deviation and count.
    """
    from mle6cli.engine.members import RECONSTRUCT, ModuleMembers
    from mle6cli.tasks.autoencoders import load_autoencoder

    run_dir = Path(run_dir)
    entries = check_compare_run(run_dir, data)
    dims = sorted({int(r["latent_dim"]) for r in entries}, key=[int(r["latent_dim"]) for r in entries].index)
    pca = projection_mse(data.test_x, basis, dims)
    models, metas = [], []
    for entry in entries:
        model, meta = load_autoencoder(run_dir / entry["checkpoint"], device)
        models.append(model)
        metas.append(meta)
    losses, _ = ModuleMembers(models, [0.0] * len(models), RECONSTRUCT).evaluate(Split(data.test_x))
    rows = []
    for d in dims:
        mine = [(loss, meta) for loss, meta, e in zip(losses, metas, entries, strict=True) if int(e["latent_dim"]) == d]
        values = [loss for loss, _ in mine]
        mean = sum(values) / len(values)
        std = _std(values)
        rows.append(
            {
                "latent_dim": d,
                "epochs": entries[0].get("epochs"),
                "conv_ae_test_mse": mean,
                "conv_ae_std": std,
                "seeds": len(values),
                "pca_test_mse": pca[d],
                "better": "conv AE" if mean < pca[d] else "PCA",
                "conv_over_pca": mean / pca[d] if pca[d] > 0 else float("inf"),
                "conv_ae_collapsed": any(bool(meta.get("collapsed", False)) for _, meta in mine),
            }
        )
    return rows


def load_linear_autoencoder(path: Path, device="cpu") -> LinearAutoencoder:
    """The linear autoencoder of a pca-ae run's `linear_ae_k<k>.pt`, in eval mode on `device`."""
    return LINEAR_AE.load(path, device)[0]


def _std(values: list[float]) -> float | None:
    if len(values) < 2:
        return None
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


# Under this many epochs a comparison is indicative only (the exercise trains 10).
VERDICT_EPOCHS = 10


def compare_verdict(rows: list[dict], epochs: int | None, quick: bool = False) -> str:
    """What a conv-AE-vs-PCA table shows, stating the epochs it rests on and drawing no verdict
    from undertrained models or from gaps within the seeds' spread (95% Student t interval)."""
    if not rows:
        return ""
    basis = f"after {plural(epochs, 'epoch')} of the conv AE" if epochs else "for this run"
    if quick or (epochs is not None and epochs < VERDICT_EPOCHS):
        return (
            f"Indicative only ({basis}, fewer than the exercise's {VERDICT_EPOCHS}): the conv AE is still far from "
            "converged, so this run draws no verdict on the exercise's claim."
        )
    wins, losses, unclear = [], [], []
    for r in rows:
        gap = r["pca_test_mse"] - r["conv_ae_test_mse"]  # > 0: conv AE better
        if r.get("seeds", 1) > 1 and r.get("conv_ae_std") is not None:
            from scipy.stats import t

            half = t.ppf(0.975, r["seeds"] - 1) * r["conv_ae_std"] / math.sqrt(r["seeds"])
            if abs(gap) <= half:
                unclear.append(r["latent_dim"])
                continue
        (wins if gap > 0 else losses).append(r["latent_dim"])
    parts = []
    if wins:
        parts.append(f"the conv AE beats the bias-free rank-d optimum at d = {', '.join(map(str, wins))}")
    if losses:
        parts.append(f"exact PCA is better at d = {', '.join(map(str, losses))}")
    if unclear:
        parts.append(f"they cannot be told apart at d = {', '.join(map(str, unclear))}")
    seeds = max(r.get("seeds", 1) for r in rows)
    claim = "holds" if not losses and not unclear else "does not hold"
    return (
        f"{basis.capitalize()} ({seeds} seed{'s' if seeds > 1 else ''}): " + "; ".join(parts) + ". "
        f"The exercise's claim that the conv AE always reconstructs better {claim} here."
    )


def pca_ae(
    options: dict, params: RunParams | None = None, *, data=None, quick: bool = False, **given
) -> PcaAeResult | None:
    """pca-ae: train the linear AE (one per seed), compute its exact optimum, compare them, and
    optionally set a train-ae run's conv AEs beside exact PCA at their latent sizes. `params` (or its
    keywords): how it runs, `RunParams`; `data` may pass MNIST already open; `quick`: a --quick sheet's."""
    from mle6cli.data.mnist import open_mnist
    from mle6cli.engine.members import RECONSTRUCT, ModuleMembers
    from mle6cli.tasks.jobs import EpochLog, open_job

    def check(config: PcaAeConfig, data) -> None:  # before the run folder exists: a bad --compare leaves nothing
        if config.compare is not None:
            check_compare_run(config.compare, data)

    job = open_job(
        PCA_AE,
        options,
        lambda config, device: open_mnist(config.spec(), device),
        RunParams.of(params, given),
        data=data,
        check=check,
        members=lambda config: len(config.seeds),
    )
    with job.run:
        run, config, device, data = job.run, job.config, job.device, job.data
        k = config.latent_dim
        several = len(config.seeds) > 1
        members = run.members([{"latent_dim": k, "seed": s} for s in config.seeds])

        def metrics_file(m: Member) -> Path:
            return config.member_dir(m.key) / "metrics.csv"

        def label(m: Member) -> str:
            return f"linear AE k={k}" + (f" seed {m.key['seed']}" if several else "")

        log = EpochLog(job, members, METRICS_HEADER, metrics_file, label, METRICS_HEADER[1:])

        def build(group):
            models = []
            for m in group:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(m.state.seed)
                    models.append(LinearAutoencoder(k))
            return ModuleMembers([model.to(device) for model in models], [config.lr] * len(group), RECONSTRUCT)

        writer = job.train(members, build, data.train_split(), {"test": data.test_split()}, log)
        log.close()
        if not writer:
            return None
        for m in members:
            if m.state.status == "diverged":
                raise Mle6Error(f"the linear autoencoder diverged (non-finite loss in epoch {m.state.diverged_epoch})")

        basis, _ = singular_basis(data.train_x)
        basis_k = basis[:, :k]
        pca_test = projection_mse(data.test_x, basis, [k])[k]
        pca_train = projection_mse(data.train_x, basis, [k])[k]
        compare = compare_with_run(config.compare, data, basis, device) if config.compare is not None else None

        seed_results = _save_seeds(run, config, members, basis_k)
        history = members[0].state.history
        figures = _figures(run, data, members[0], basis_k, pca_test, k, device)
        mean_mse = sum(r["linear_ae_test_mse"] for r in seed_results) / len(seed_results)
        result = PcaAeResult(
            config=config,
            history=history,
            seed_results=seed_results,
            linear_ae_test_mse=mean_mse,
            pca_test_mse=pca_test,
            pca_train_mse=pca_train,
            principal_angles_deg=seed_results[0]["principal_angles_deg"],
            run_dir=run.path,
            data=data.describe(),
            compare=compare,
            verdict=compare_verdict(compare, compare[0]["epochs"] if compare else None, quick) if compare else None,
            figures=figures,
        )
        write(run, result.summary())
        return result


def _save_seeds(run, config: PcaAeConfig, members: list[Member], basis_k: np.ndarray) -> list[dict]:
    """Each seed's metrics.csv and checkpoint; its final test MSE and its decoder's angles to the optimum."""
    k = config.latent_dim
    seed_results = []
    for m in members:
        history = m.state.history
        run.write_csv(config.member_dir(m.key) / "metrics.csv", METRICS_HEADER, history)
        run.save_torch(config.member_dir(m.key) / checkpoint_name(k), LINEAR_AE.payload(m.weights, latent_dim=k))
        decoder_columns = m.weights["decoder.weight"].double().numpy()  # (784, k)
        seed_results.append(
            {
                "seed": m.key["seed"],
                "linear_ae_test_mse": history[-1]["test_loss"],
                "principal_angles_deg": principal_angles_deg(decoder_columns, basis_k),
            }
        )
    return seed_results


def _figures(run, data, first: Member, basis_k: np.ndarray, pca_test: float, k: int, device) -> dict[str, str]:
    """The first seed's losses against the optimum, and its reconstructions beside the projection's."""
    from mle6cli import plots
    from mle6cli.tasks.autoencoders import example_indices

    model = LinearAutoencoder(k)
    model.load_state_dict(first.weights)
    model = model.to(device).eval()
    index = example_indices(data.test_y)
    originals = data.test_x[index]
    with torch.no_grad():
        linear = model(as_float(originals)).cpu().numpy().reshape(-1, 28, 28)
    history = first.state.history
    return {
        "losses": plots.pca_losses_figure(history, pca_test, run.output("pca_ae_losses.png"), k, data.synthetic).name,
        "reconstructions": plots.pca_reconstructions_figure(
            as_float(originals).cpu().numpy().reshape(-1, 28, 28),
            linear,
            projection_images(originals, basis_k).reshape(-1, 28, 28),
            run.output("pca_ae_reconstructions.png"),
            k,
            data.synthetic,
        ).name,
    }
