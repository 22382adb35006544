from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mle6cli.commands._config import ConfigOpt, PrintConfigOpt, run_task
from mle6cli.commands._options import (
    BatchSizeOpt,
    DeterministicOpt,
    DeviceOpt,
    EpochsOpt,
    JsonOpt,
    LrOpt,
    MnistDirOpt,
    NoDownloadOpt,
    OutOpt,
    OverwriteOpt,
    QuietOpt,
    ResumeOpt,
    SaveEveryOpt,
    SeedsOpt,
    SyntheticOpt,
    TensorboardOpt,
    check_resume_alone,
    data_dir_option,
    seed_opt,
    seeds_option,
    whole_in_range,
)
from mle6cli.commands._output import Printer
from mle6cli.fmt import mean_ci, plural
from mle6cli.tasks.limits import MNIST_PIXELS


def pca_ae(
    ctx: typer.Context,
    config: ConfigOpt = None,
    latent_dim: Annotated[
        int,
        typer.Option(
            "--latent-dim",
            callback=whole_in_range(1, MNIST_PIXELS),
            help=f"k of the linear autoencoder 784→k→784 (1..{MNIST_PIXELS}).",
        ),
    ] = 10,
    epochs: EpochsOpt = 10,
    batch_size: BatchSizeOpt = 128,
    lr: LrOpt = 1e-3,
    data_dir: MnistDirOpt = Path("data"),
    synthetic: SyntheticOpt = False,
    compare: Annotated[
        Path | None,
        typer.Option("--compare", help="A train-ae run: compare its conv AEs with exact PCA at each of its dims."),
    ] = None,
    seed: seed_opt(0) = None,
    seeds: SeedsOpt = None,
    device: DeviceOpt = "auto",
    deterministic: DeterministicOpt = False,
    out: OutOpt = None,
    overwrite: OverwriteOpt = False,
    resume: ResumeOpt = None,
    save_every: SaveEveryOpt = 1,
    tensorboard: TensorboardOpt = False,
    no_download: NoDownloadOpt = False,
    print_config: PrintConfigOpt = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train the linear autoencoder and hold it against the exact optimum: projection on the top-k SVD subspace.

    Example: mle6 pca-ae --latent-dim 10 --epochs 10 --compare runs/train-ae/20250101-120000
    """
    from mle6cli.tasks.pca import pca_ae as run_pca_ae

    check_resume_alone(resume, out)
    printer = Printer(json_mode=json_out, quiet=quiet)
    options = {
        "data_dir": data_dir_option(data_dir, synthetic),
        "synthetic": synthetic,
        "latent_dim": latent_dim,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "seeds": seeds_option(seed, seeds, 0, ctx),
        "compare": None if compare is None else str(compare),
        "device": device,
        "save_every": save_every,
        "tensorboard": tensorboard,
        "deterministic": deterministic,
        "download": not no_download,
    }
    result = run_task(
        ctx, run_pca_ae, options, printer, out=out, overwrite=overwrite, resume=resume, print_config=print_config
    )
    if result is None:  # --print-config, or a torchrun rank other than 0
        return
    if json_out:
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
