from __future__ import annotations

from pathlib import Path

from mle6cli.commands._training import training_command
from mle6cli.fmt import lr_label
from mle6cli.tasks.specs import RUN_ALL


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
    RUN_ALL,
    _render,
    distributed=False,
    note=_note,
)
