from __future__ import annotations

from pathlib import Path

from mle6cli.commands._options import (
    DEVICE,
    NO_DOWNLOAD,
    SAVE_EVERY,
    SEEDS,
    SIGNS_DIR,
    SYNTHETIC,
    Option,
    data_folder,
    seeds_option,
    switch,
)
from mle6cli.commands._training import training_command
from mle6cli.fmt import lr_label
from mle6cli.tasks import config as rules

QUICK = switch("quick", "Fewer epochs and samples: the whole sheet in a few minutes on 2 CPU cores.")
# one seed, or several, for every step; neither: each step's own default
SEED = Option(
    "seed", int | None, None, "One seed for every step (default: each command's own default).", rule=rules.SEED
)
EVERY_STEP_SEEDS = SEEDS.but(
    value=lambda p, ctx: None if p["seeds"] is None else seeds_option(p["seed"], p["seeds"], 0, ctx),
    sources=("seed", "seeds"),
)


def _run(options, **run):
    from mle6cli.tasks.sheet import run_all

    return run_all(options, **run)


def _note(params: dict) -> str | None:
    if params["synthetic"] and params["resume"] is None:
        return "Note: run-all uses SYNTHETIC data (drawn hands, font digits), not SIGNS and MNIST."
    return None


def _render(printer, summary: dict, params: dict) -> None:
    if params["json_out"]:
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


run_all = training_command(
    """Run the whole exercise sheet in order and write a self-contained report.html (and report.md).

    Example: mle6 run-all --quick --out runs/sheet
    """,
    _run,
    [
        SIGNS_DIR.but(help="SIGNS arrays (X_/Y_train|val|test.npy)."),
        data_folder("mnist_dir", "data", "Folder holding MNIST/raw/.", flag="--mnist-dir"),
        SYNTHETIC,
        QUICK,
        DEVICE,
        SAVE_EVERY,
        SEED,
        EVERY_STEP_SEEDS,
        NO_DOWNLOAD,
    ],
    _render,
    distributed=False,
    note=_note,
)
