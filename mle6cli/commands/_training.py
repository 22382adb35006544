"""A training command on the command line: its spec's options, its task, and how its result is shown.

`training_command` builds the function Typer registers: its signature (what Typer reads) is made
from the options of the command's spec (`tasks.specs`: its config's fields, `options_of`), followed
by what every training command has (--out, --overwrite, --resume, --print-config, --json, --quiet;
--config first). The parsed values reach the task as one dict, config.json's `options`, made by the
options themselves (`Option.key`, `Option.value`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import typer

from mle6cli.commands._config import PRINT_CONFIG, config_option, print_options, recorded_options
from mle6cli.commands._options import (
    JSON,
    OUT,
    OVERWRITE,
    QUIET,
    RESUME,
    check_resume_alone,
    options_of,
    resume_overrides,
)
from mle6cli.commands._output import Printer, draw_in_background
from mle6cli.tasks.specs import RunParams

# what every training command has after its own options: where the run goes and how it is shown
COMMON = (OUT, OVERWRITE, RESUME, PRINT_CONFIG, JSON, QUIET)


def training_command(
    doc: str,
    spec,
    render: Callable,
    *,
    distributed: bool = True,
    note: Callable[[dict], str | None] | None = None,
    draws_in_background: bool = False,
):
    """The command function for a training task.

    `doc`: its help (a summary line, then "Example: mle6 ..."). `spec`: the command's
    `tasks.specs.CommandSpec`: its options (the config's fields, in config.json's order) and its task,
    `spec.run(options, RunParams)`. `render(printer, result, params)` shows the
    task's result (`params`: every parsed parameter). `distributed`: whether it runs under torchrun,
    its members shared by the processes. `note(params)`: a line said before the task starts.
    `draws_in_background`: its figures take plain data, so a drawing process is started before
    the task imports torch (pyplot's import then runs on another core).
    """
    options = options_of(spec.config)
    every = [config_option(options), *options, *COMMON]

    def command(ctx: typer.Context, **params) -> None:
        check_resume_alone(params["resume"], params["out"])
        for option in options:
            if option.check is not None:
                option.check(params)
        printer = Printer(json_mode=params["json_out"], quiet=params["quiet"])
        recorded = recorded_options(options, params, ctx)
        said = note(params) if note is not None else None
        if said:
            printer.note(said)
        if params["print_config"]:
            print_options(ctx, recorded)
            return
        if draws_in_background:
            draw_in_background()
        overrides = resume_overrides(ctx, params["resume"], recorded, options)
        with printer.events() as events:
            run = RunParams(params["out"], params["overwrite"], params["resume"], overrides, events)
            result = spec.run(recorded, run)
        if result is not None:  # None: a torchrun rank other than 0 (rank 0 reports)
            render(printer, result, params)

    context = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)
    command.__signature__ = inspect.Signature(
        [context]
        + [
            inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=o.default, annotation=o.annotated())
            for o in every
        ]
    )
    command.__doc__ = doc
    command.spec = spec
    command.options = every
    command.distributed = distributed
    return command
