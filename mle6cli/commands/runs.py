from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mle6cli.commands._options import JsonOpt
from mle6cli.commands._output import Printer
from mle6cli.commands._plain import Command, Group


class _ListByDefault(Group):
    """`mle6 runs [DIR]` lists; `mle6 runs status DIR` and `mle6 runs compare A B` are subcommands."""

    def parse_args(self, ctx, args):
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = ["list", *args]
        return super().parse_args(ctx, args)


runs_app = typer.Typer(
    cls=_ListByDefault,
    help="List, inspect and compare run folders (runs/ by default).",
    no_args_is_help=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@runs_app.command("list", cls=Command)
def list_command(
    root: Annotated[Path, typer.Argument(help="Where to look for run folders.")] = Path("runs"),
    json_out: JsonOpt = False,
) -> None:
    """List the run folders under runs/ (or DIR), newest first, with their status and headline.

    Example: mle6 runs runs/ --json
    """
    from mle6cli.tasks.listing import age, list_runs

    printer = Printer(json_mode=json_out)
    found = list_runs(root)
    if json_out:
        printer.json([{k: v for k, v in r.items() if k not in ("options", "final")} for r in found])
        return
    printer.table(
        f"{len(found)} run(s) under {root}",
        ["run", "command", "status", "started", "seconds", "device", "headline"],
        [
            [
                r["run_dir"],
                r["command"],
                r["status"]
                + (f" {r['epochs_done']}/{r['epochs']}" if r["status"] != "finished" and r["epochs"] else ""),
                age(r.get("created")),
                f"{r['seconds']:.1f}" if r.get("seconds") is not None else "-",
                r.get("device") or "-",
                r["headline"],
            ]
            for r in found
        ],
    )


@runs_app.command("status", cls=Command)
def status_command(
    run: Annotated[Path, typer.Argument(help="A run folder.")],
    json_out: JsonOpt = False,
) -> None:
    """Whether a run folder is finished, running, interrupted or crashed, and how far it got.

    Example: mle6 runs status runs/train-cnn/20250101-120000
    """
    from mle6cli.engine.status import run_status

    printer = Printer(json_mode=json_out)
    status = run_status(run)
    summary = status.pop("summary", None)
    if json_out:
        printer.json(dict(status, summary=summary))
        return
    done = status.get("epochs_done")
    progress = f", {done}/{status['epochs']} epochs done" if done is not None and status.get("epochs") else ""
    holder = f" (process {status['pid']})" if status.get("pid") else ""
    printer.line(f"{run}: {status['command']} run, {status['status']}{holder}{progress}")
    if status["status"] in ("interrupted", "crashed", "started"):
        printer.line(f"continue with: mle6 {status['command']} --resume {run}")


@runs_app.command("compare", cls=Command)
def compare_command(
    runs: Annotated[list[Path], typer.Argument(help="Two or more run folders.")],
    json_out: JsonOpt = False,
) -> None:
    """Set runs' options and final metrics side by side, showing only what differs.

    Example: mle6 runs compare runs/sweep-lr/A runs/sweep-lr/B
    """
    from mle6cli.tasks.listing import compare_runs

    if len(runs) < 2:
        raise typer.BadParameter("give at least two run folders", param_hint="'RUNS'")
    printer = Printer(json_mode=json_out)
    result = compare_runs(runs)
    if json_out:
        printer.json(result)
        return
    if not result["differences"]:
        printer.line("no differences in their options and final metrics")
        return
    printer.table(
        "What differs",
        ["", *[str(r) for r in result["runs"]]],
        [[key, *values] for key, values in result["differences"].items()],
    )
