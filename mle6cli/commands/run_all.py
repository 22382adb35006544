from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mle6cli.options import SEED_RANGE, DeviceOpt, JsonOpt, OutOpt, OverwriteOpt, QuietOpt, SyntheticOpt
from mle6cli.output import Printer


def run_all(
    data_dir: Annotated[Path, typer.Option("--data-dir", help="SIGNS arrays (X_/Y_train|val|test.npy).")] = Path(
        "sign_data"
    ),
    mnist_dir: Annotated[Path, typer.Option("--mnist-dir", help="Folder holding MNIST/raw/.")] = Path("data"),
    synthetic: SyntheticOpt = False,
    quick: Annotated[
        bool,
        typer.Option("--quick", help="Fewer epochs and samples: the whole sheet in under 3 minutes on 2 CPU cores."),
    ] = False,
    device: DeviceOpt = "auto",
    seed: Annotated[
        int | None,
        typer.Option("--seed", **SEED_RANGE, help="One seed for every step (default: each command's own default)."),
    ] = None,
    no_download: Annotated[bool, typer.Option("--no-download", help="Never try to download MNIST.")] = False,
    out: OutOpt = None,
    overwrite: OverwriteOpt = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Run the whole exercise sheet in order and write a self-contained report.html (and report.md).

    Example: mle6 run-all --quick --out runs/sheet
    """
    from mle6cli.run_all import RunAllConfig, run_all, total_epochs

    printer = Printer(json_mode=json_out, quiet=quiet)
    config = RunAllConfig(
        signs_dir=str(data_dir),
        mnist_dir=str(mnist_dir),
        synthetic=synthetic,
        quick=quick,
        device=device,
        seed=seed,
        download=not no_download,
    )
    if synthetic:
        printer.note("Note: run-all uses SYNTHETIC data (drawn hands, font digits), not SIGNS and MNIST.")
    with printer.progress(total_epochs(config), "run-all") as update:
        summary = run_all(
            config, out, overwrite=overwrite, progress=update, step=lambda name: printer.note(f"== {name}")
        )
    if json_out:
        printer.json(summary)
        return
    r = summary["results"]
    printer.line(f"report: {summary['report_html']}  (and {Path(summary['report_md']).name})")
    sweep = r["sweep_lr"]
    printer.line(f"best lr {sweep['best_lr']:g}: val acc {sweep['best_val_acc']:.4f}, test acc {sweep['test_acc']:.4f}")
    printer.line(
        "autoencoder test MSE: "
        + ", ".join(
            f"d={x['latent_dim']} {x['final_test_mse']:.4f}"
            for x in r["train_ae"]["runs"]
            if x["final_test_mse"] is not None
        )
    )
    printer.line(f"finished in {summary['seconds']:.0f} s; run folder {summary['run_dir']}")
