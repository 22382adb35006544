from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mle6cli.commands._config import ConfigOpt, PrintConfigOpt, run_task
from mle6cli.commands._options import (
    SEED_RANGE,
    DeviceOpt,
    JsonOpt,
    NoDownloadOpt,
    OutOpt,
    OverwriteOpt,
    QuietOpt,
    ResumeOpt,
    SaveEveryOpt,
    SeedsOpt,
    SyntheticOpt,
    check_resume_alone,
    data_dir_option,
    seeds_option,
)
from mle6cli.commands._output import Printer
from mle6cli.fmt import lr_label


def run_all(
    ctx: typer.Context,
    config: ConfigOpt = None,
    data_dir: Annotated[Path, typer.Option("--data-dir", help="SIGNS arrays (X_/Y_train|val|test.npy).")] = Path(
        "sign_data"
    ),
    mnist_dir: Annotated[Path, typer.Option("--mnist-dir", help="Folder holding MNIST/raw/.")] = Path("data"),
    synthetic: SyntheticOpt = False,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick", metavar="", help="Fewer epochs and samples: the whole sheet in a few minutes on 2 CPU cores."
        ),
    ] = False,
    device: DeviceOpt = "auto",
    seed: Annotated[
        int | None,
        typer.Option("--seed", **SEED_RANGE, help="One seed for every step (default: each command's own default)."),
    ] = None,
    seeds: SeedsOpt = None,
    no_download: NoDownloadOpt = False,
    out: OutOpt = None,
    overwrite: OverwriteOpt = False,
    resume: ResumeOpt = None,
    save_every: SaveEveryOpt = 1,
    print_config: PrintConfigOpt = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Run the whole exercise sheet in order and write a self-contained report.html (and report.md).

    Example: mle6 run-all --quick --out runs/sheet
    """
    from mle6cli.tasks.sheet import run_all as run_sheet

    check_resume_alone(resume, out)
    printer = Printer(json_mode=json_out, quiet=quiet)
    options = {
        "data_dir": data_dir_option(data_dir, synthetic),
        "mnist_dir": data_dir_option(mnist_dir, synthetic),
        "synthetic": synthetic,
        "quick": quick,
        "device": device,
        "save_every": save_every,
        "seed": seed,
        "seeds": None if seeds is None else seeds_option(seed, seeds, 0, ctx),
        "download": not no_download,
    }
    if synthetic and resume is None:
        printer.note("Note: run-all uses SYNTHETIC data (drawn hands, font digits), not SIGNS and MNIST.")
    summary = run_task(
        ctx, run_sheet, options, printer, out=out, overwrite=overwrite, resume=resume, print_config=print_config
    )
    if summary is None:  # --print-config
        return
    if json_out:
        printer.json(summary)
        return
    r = summary["results"]
    printer.line(f"report: {summary['report_html']}  (and {Path(summary['report_md']).name})")
    sweep = r["sweep_lr"]
    printer.line(
        f"best lr {lr_label(sweep['best_lr'])}: val acc {sweep['best_val_acc']:.4f}, test acc {sweep['test_acc']:.4f}"
    )
    printer.line(
        "autoencoder test MSE: "
        + ", ".join(
            f"d={x['latent_dim']} {x['final_test_mse']:.4f}"
            for x in r["train_ae"]["runs"]
            if x["final_test_mse"] is not None
        )
    )
    printer.line(f"finished in {summary['seconds']:.0f} s; run folder {summary['run_dir']}")
