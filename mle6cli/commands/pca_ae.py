from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mle6cli.commands._mnist import DataDirOpt, NoDownloadOpt, note_synthetic
from mle6cli.options import (
    BatchSizeOpt,
    DeterministicOpt,
    DeviceOpt,
    EpochsOpt,
    JsonOpt,
    LrOpt,
    OutOpt,
    OverwriteOpt,
    QuietOpt,
    SeedOpt,
    SyntheticOpt,
)
from mle6cli.output import Printer

MNIST_PIXELS = 28 * 28  # not imported from models: that would load torch for --help


def _latent_dim(value: int) -> int:
    if not 1 <= value <= MNIST_PIXELS:
        raise typer.BadParameter(f"must be between 1 and {MNIST_PIXELS}, got {value}")
    return value


def pca_ae(
    latent_dim: Annotated[
        int, typer.Option("--latent-dim", help="k of the linear autoencoder 784→k→784.", callback=_latent_dim)
    ] = 10,
    epochs: EpochsOpt = 10,
    batch_size: BatchSizeOpt = 128,
    lr: LrOpt = 1e-3,
    data_dir: DataDirOpt = Path("data"),
    synthetic: SyntheticOpt = False,
    compare: Annotated[
        Path | None,
        typer.Option("--compare", help="A train-ae run: compare its conv AEs with exact PCA at each of its dims."),
    ] = None,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    deterministic: DeterministicOpt = False,
    out: OutOpt = None,
    overwrite: OverwriteOpt = False,
    no_download: NoDownloadOpt = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train the linear autoencoder and hold it against the exact optimum: projection on the top-k SVD subspace.

    Example: mle6 pca-ae --latent-dim 10 --epochs 10 --compare runs/train-ae/20250101-120000
    """
    from mle6cli import runs
    from mle6cli.data.mnist import mnist_spec, open_mnist
    from mle6cli.device import resolve_device
    from mle6cli.pca import PcaAeConfig, check_compare_run, run_pca_ae

    printer = Printer(json_mode=json_out, quiet=quiet)
    config = PcaAeConfig(
        latent_dim=latent_dim, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, deterministic=deterministic
    )
    torch_device = resolve_device(device)
    spec = mnist_spec(data_dir, synthetic, download=not no_download)
    data = open_mnist(spec, torch_device)
    if compare is not None:  # before the run folder exists: a bad --compare leaves nothing behind
        check_compare_run(compare, data)
    run_dir = runs.prepare_run_dir(out, "pca-ae", overwrite)
    note_synthetic(printer, data)
    with printer.progress(config.epochs, "pca-ae") as update:
        result = run_pca_ae(
            config, spec, torch_device, run_dir, data=data, compare=compare, device_spec=device, progress=update
        )
    if json_out:
        printer.json(result.to_json())
        return
    k = config.latent_dim
    tag = " — SYNTHETIC data" if data.synthetic else ""
    printer.line(f"linear autoencoder 784→{k}→784, {config.epochs} epochs{tag}")
    printer.line(f"  linear AE test MSE       {result.linear_ae_test_mse:.6f}")
    printer.line(f"  exact optimum (SVD) test {result.pca_test_mse:.6f}  (train {result.pca_train_mse:.6f})")
    printer.line(f"  ratio linear AE / optimum {result.ratio:.4f}")
    angles = result.principal_angles_deg
    printer.line(
        f"  principal angles to the top-{k} singular subspace: min {angles[0]:.2f}°, "
        f"median {angles[len(angles) // 2]:.2f}°, max {angles[-1]:.2f}°"
    )
    if result.compare is not None:
        printer.table(
            f"Conv AE ({compare}) vs exact PCA on the same test images",
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
    printer.line(f"run folder {run_dir} (metrics.csv, pca_ae_losses.png, pca_ae_reconstructions.png)")
