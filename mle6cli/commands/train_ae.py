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
    ResumeOpt,
    SeedOpt,
    SyntheticOpt,
    check_resume_alone,
    positive_list,
)
from mle6cli.output import Printer, resuming_note


def parse_dims(value: str) -> list[int]:
    """'3,10' -> [3, 10]; a usage error names the first bad entry."""
    return positive_list(
        value, "--latent-dims", whole=True, plural="latent sizes", singular="latent size", example="3,10,100,250"
    )


def train_ae(
    data_dir: DataDirOpt = Path("data"),
    synthetic: SyntheticOpt = False,
    latent_dims: Annotated[
        str, typer.Option("--latent-dims", help="Comma-separated latent sizes; one autoencoder each.")
    ] = "3,10,100,250",
    epochs: EpochsOpt = 10,
    batch_size: BatchSizeOpt = 128,
    lr: LrOpt = 1e-3,
    seed: SeedOpt = 0,
    retries: Annotated[
        int, typer.Option("--retries", min=0, help="Restarts (with a derived seed) allowed per collapsed run.")
    ] = 2,
    device: DeviceOpt = "auto",
    deterministic: DeterministicOpt = False,
    out: OutOpt = None,
    overwrite: OverwriteOpt = False,
    resume: ResumeOpt = None,
    no_download: NoDownloadOpt = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train the exercise's conv autoencoder at each latent size (Adam, MSE), with collapse detection.

    Example: mle6 train-ae --data-dir data --latent-dims 3,10,100,250 --epochs 10
    """
    from mle6cli import runs
    from mle6cli.autoencoders import AeConfig, TrainingFailed, run_train_ae
    from mle6cli.data.mnist import mnist_spec, open_mnist
    from mle6cli.device import resolve_device

    check_resume_alone(resume, out)
    printer = Printer(json_mode=json_out, quiet=quiet)
    state = None
    if resume is None:
        config = AeConfig(
            latent_dims=parse_dims(latent_dims),
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            retries=retries,
            deterministic=deterministic,
        )
        spec = mnist_spec(data_dir, synthetic, download=not no_download)
    else:
        saved, state = runs.load_resume(resume, "train-ae")
        try:
            config, spec, device = AeConfig.from_dict(saved["config"]), saved["data"], saved["device"]
        except (KeyError, TypeError) as exc:
            raise runs.RunDirError(f"--resume: {Path(resume) / runs.CONFIG} lacks the run's options ({exc})") from None
    torch_device = resolve_device(device)
    data = open_mnist(spec, torch_device)  # before the run folder exists: bad data leaves nothing behind
    if resume is None:
        run_dir = runs.prepare_run_dir(out, "train-ae", overwrite)
    else:
        run_dir = Path(resume)
        printer.note(resuming_note(run_dir))
    note_synthetic(printer, data)

    with printer.progress(config.epochs * len(config.latent_dims), "train-ae") as update:
        result = run_train_ae(
            config, spec, torch_device, run_dir, data=data, device_spec=device, progress=update, resume=state
        )

    for r in result.runs:
        for attempt in r.attempts[:-1]:
            printer.note(
                f"Note: d={r.latent_dim} collapsed with seed {attempt['seed']} ({attempt['reason']}); restarted."
            )
    if json_out:
        printer.json(result.to_json())
    else:
        printer.table(
            f"Conv autoencoder, {config.epochs} epochs" + (" — SYNTHETIC data" if data.synthetic else ""),
            ["d", "train MSE", "test MSE", "status", "restarts", "seed"],
            [
                [
                    r.latent_dim,
                    r.history[-1]["train_loss"] if r.history else float("nan"),
                    r.final_test_mse if r.final_test_mse is not None else float("nan"),
                    r.status.upper() if r.status != "completed" else "ok",
                    r.retries,
                    r.seed,
                ]
                for r in result.runs
            ],
        )
        printer.line(f"all-black output would score test MSE {result.trivial_test_mse:.4f}")
        printer.line(f"run folder {run_dir} (metrics_d<D>.csv, ae_d<D>.pt, ae_losses.png, reconstructions.png)")
    if result.failed:
        problems = []
        for r in result.failed:
            if r.status == "diverged":
                problems.append(f"d={r.latent_dim} diverged in epoch {r.diverged_epoch}")
            else:
                problems.append(
                    f"d={r.latent_dim} is still collapsed after {r.retries} restart(s) ({r.attempts[-1]['reason']})"
                )
        raise TrainingFailed("; ".join(problems) + f" — marked so in {run_dir}/summary.json, not usable")
