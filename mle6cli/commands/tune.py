"""`mle6 tune <command>`: one subcommand per command a study can tune, each made from its tune spec
(`tasks.tune_targets.TUNE_SPECS`) like every training command: the target's options fixed for the study,
then the study's own (--trials, --space, --parallel, --sampler, --pruner, --storage)."""

from __future__ import annotations

from types import SimpleNamespace

import typer

from mle6cli.commands._training import training_command
from mle6cli.fmt import cell
from mle6cli.tasks.tune_targets import TUNE_SPECS

EXAMPLES = {
    "train-cnn": "mle6 tune train-cnn --synthetic --trials 16 --parallel 4 --epochs 30 --space lr=log:1e-5..1e-1 "
    "--space weight-decay=log:1e-6..1e-2",
    "train-ae": "mle6 tune train-ae --synthetic --trials 8 --space lr=log:1e-4..1e-2 --space latent-dim=int:2..64",
}


def _render(printer, summary: dict, params: dict) -> None:
    if params["json_out"]:
        printer.json(summary)
        return
    states = summary["states"]
    printer.line(
        f"{summary['trials']} trials: {states['complete']} complete, {states['pruned']} pruned, "
        f"{states['diverged']} diverged ({summary['member_epochs']} member-epochs)"
    )
    params_text = ", ".join(f"{k}={cell(v)}" for k, v in summary["best_params"].items())
    printer.line(
        f"best trial {summary['best_trial']}: {params_text}; {summary['metric']} {cell(summary['best_value'])}"
    )
    tested = [
        f"{k.replace('_', ' ')} {cell(summary[k])}" for k in ("test_acc", "test_loss", "test_mse") if k in summary
    ]
    if tested:
        printer.line(f"its {', '.join(tested)}; model in {summary['model']}")
    else:
        printer.line(f"its model is in the run folder that trained it: {summary.get('best_run_dir')}")
    printer.line(f"run folder {summary['run_dir']}")


def _check_space(spec, params: dict) -> None:
    """The space as a usage error naming its option, before anything else (--print-config too, so a job
    script's check of its command line catches it); a resumed study keeps its own."""
    from mle6cli.tasks.tune_space import SpaceError, check_study, parse_space

    if params["resume"] is not None:
        return
    config = spec.config
    try:
        parse_space(params["space"], config.axes, spec.name)
    except SpaceError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--space'") from None
    try:
        check_study(
            SimpleNamespace(sampler=params["sampler"], dimensions=parse_space(params["space"], config.axes, ""))
        )
    except SpaceError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--sampler'") from None


def _command(name: str, spec):
    command = training_command(
        f"""Search the member axes of {name} with Optuna; trials train fused, --parallel at a time.

        Example: {EXAMPLES[name]}
        """,
        spec,
        _render,
        distributed=False,
        draws_in_background=True,
    )

    def checked(ctx: typer.Context, **params) -> None:
        _check_space(spec, params)
        command(ctx, **params)

    for attribute in ("__signature__", "__doc__", "spec", "options", "distributed"):
        setattr(checked, attribute, getattr(command, attribute))
    return checked


tune_app = typer.Typer(
    name="tune",
    help="Hyperparameter search (Optuna: TPE, successive halving) whose trials train as one fused model.",
    no_args_is_help=True,
)
for _name, _spec in TUNE_SPECS.items():
    tune_app.command(_name)(_command(_name, _spec))
