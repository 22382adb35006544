from __future__ import annotations

from mle6cli.commands._training import training_command
from mle6cli.fmt import mean_ci, plural
from mle6cli.tasks.specs import PCA_AE


def _render(printer, result, params: dict) -> None:
    if params["json_out"]:
        printer.json(result.to_json())
        return
    k = result.config.latent_dim
    tag = " — SYNTHETIC data" if result.data["synthetic"] else ""
    printer.line(f"linear autoencoder 784→{k}→784, {plural(result.config.epochs, 'epoch')}{tag}")
    if len(result.seed_results) > 1:
        doc = result.to_json()
        printer.line(f"  linear AE test MSE       {mean_ci(doc['stats']['linear_ae_test_mse'], 6)} (mean ± 95% CI)")
    else:
        printer.line(f"  linear AE test MSE       {result.linear_ae_test_mse:.6f}")
    printer.line(f"  exact optimum (SVD) test {result.pca_test_mse:.6f}  (train {result.pca_train_mse:.6f})")
    printer.line(f"  ratio linear AE / optimum {result.ratio:.4f}")
    angles = result.principal_angles_deg
    printer.line(
        f"  principal angles to the top-{k} singular subspace: min {angles[0]:.2f}°, "
        f"median {angles[len(angles) // 2]:.2f}°, max {angles[-1]:.2f}°"
    )
    if result.compare is not None:
        compare = params["compare"]
        printer.table(
            f"Conv AE ({compare}, {plural(result.compare[0]['epochs'], 'epoch')}) vs exact PCA on the same test images",
            ["d", "conv AE test MSE", "PCA test MSE", "conv / PCA", "better"],
            [
                [
                    row["latent_dim"],
                    row["conv_ae_test_mse"],
                    row["pca_test_mse"],
                    row["conv_over_pca"],
                    row["better"] + (" (conv AE COLLAPSED)" if row["conv_ae_collapsed"] else ""),
                ]
                for row in result.compare
            ],
        )
        printer.line(result.verdict)
    each = "seed_<S>/" if len(result.seed_results) > 1 else ""
    printer.line(f"run folder {result.run_dir} ({each}metrics.csv, pca_ae_losses.png, pca_ae_reconstructions.png)")


pca_ae = training_command(
    """Train the linear autoencoder and hold it against the exact optimum: projection on the top-k SVD subspace.

    Example: mle6 pca-ae --latent-dim 10 --epochs 10 --compare runs/train-ae/20250101-120000
    """,
    PCA_AE,
    _render,
)
