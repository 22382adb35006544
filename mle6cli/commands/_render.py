"""How the results of more than one command are shown (the CLI layer only)."""

from __future__ import annotations

from mle6cli.commands._output import Printer
from mle6cli.fmt import lr_label, mean_ci, plural


def render_sweep(printer: Printer, summary: dict, spec) -> None:
    """The sweep's table (per lr; with several seeds, means and 95% CIs), the best lr and the comparison;
    `spec`: the command's (train-cnn --seeds: one lr, several seeds)."""
    stats = summary["stats"]
    several = len(summary["seeds"]) > 1
    sweep = spec.config.sweep
    what = "Learning-rate sweep" if sweep else f"SIGNS CNN, lr {lr_label(summary['best_lr'])}"
    if several:
        rows = [
            [
                lr_label(row["lr"]),
                row["seeds"],
                row["diverged"],
                mean_ci(row["train_loss"]),
                mean_ci(row["val_loss"]),
                mean_ci(row["val_acc"]),
                mean_ci(row["test_acc"]),
            ]
            for row in stats["configs"]
        ]
        columns = ["lr", "seeds", "diverged", "train loss", "val loss", "val acc", "test acc"]
        title = f"{what}, {plural(summary['epochs'], 'epoch')}, seeds {_seeds_text(summary['seeds'])}"
        printer.table(title + " (mean ± 95% CI)", columns, rows)
    else:
        rows = []
        for run in summary["runs"]:
            final = run["final"] or {}
            status = f"diverged at epoch {run['diverged_epoch']}" if run["diverged"] else run["status"]
            rows.append(
                [
                    lr_label(run["lr"]),
                    status,
                    final.get("train_loss", "-"),
                    final.get("train_acc", "-"),
                    final.get("val_loss", "-"),
                    final.get("val_acc", "-"),
                    "-" if run["test_acc"] is None else run["test_acc"],
                ]
            )
        printer.table(
            f"{what}, {plural(summary['epochs'], 'epoch')} (final epoch)",
            ["lr", "status", "train loss", "train acc", "val loss", "val acc", "test acc"],
            rows,
        )
    mean = "mean " if several else ""
    printer.line(
        f"{'best ' if sweep else ''}lr {lr_label(summary['best_lr'])}: {mean}val acc {summary['best_val_acc']:.4f}, "
        f"{mean}test acc {summary['test_acc']:.4f}, |val - test| = {summary['val_test_gap']:.4f}"
    )
    if stats.get("comparison"):
        printer.line(stats["comparison"]["sentence"])
    printer.line(f"trained in {summary['train_seconds']:.1f} s on {summary['device']}; run folder {summary['run_dir']}")


def _seeds_text(seeds: list[int]) -> str:
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(map(str, seeds))


def render_ae(printer: Printer, result) -> None:
    """train-ae's table: every run; with several seeds, then each latent size's mean ± 95% CI."""
    synthetic = " — SYNTHETIC data" if result.data["synthetic"] else ""
    printer.table(
        f"Conv autoencoder, {plural(result.config.epochs, 'epoch')}{synthetic}",
        ["d", "seed", "train MSE", "test MSE", "status", "restarts"],
        [
            [
                r.latent_dim,
                r.train_seed,
                r.history[-1]["train_loss"] if r.history else float("nan"),
                r.final_test_mse if r.final_test_mse is not None else float("nan"),
                r.status.upper() if r.status != "completed" else "ok",
                r.retries,
            ]
            for r in result.runs
        ],
    )
    if len(result.config.seeds) > 1:
        printer.table(
            f"Per latent size over seeds {_seeds_text(list(result.config.seeds))} (mean ± 95% CI)",
            ["d", "seeds", "test MSE", "collapsed", "diverged", "restarts"],
            [
                [
                    row["latent_dim"],
                    row["seeds"],
                    mean_ci(row["test_mse"]),
                    row["collapsed"],
                    row["diverged"],
                    row["restarts"],
                ]
                for row in result.stats()
            ],
        )
    printer.line(
        f"a collapsed model scores test MSE {result.levels.all_black:.4f} (all black) "
        f"or {result.levels.mean_image:.4f} (the mean image)"
    )
    each = "seed_<S>/" if len(result.config.seeds) > 1 else ""
    printer.line(
        f"run folder {result.run_dir} ({each}metrics_d<D>.csv, {each}ae_d<D>.pt, ae_losses.png, reconstructions.png)"
    )
