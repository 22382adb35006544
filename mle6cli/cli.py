"""The Typer app: global options, the error boundary, and command registration.

Start-up cost matters (`mle6 --help` < 1 s), so nothing here imports torch, numpy or
matplotlib; each command imports what it needs inside its function.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
from typer.core import TyperGroup

from mle6cli import __version__, drawing
from mle6cli.commands._plain import Command, Group
from mle6cli.errors import Mle6Error, debug_from_env

# click's UsageError, found through the public BadParameter so this works whether typer
# vendors click (typer >= 0.29) or depends on it.
UsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")

_state = {"debug": debug_from_env()}


def _fail(message: str, code: int, exc: BaseException | None = None) -> None:
    from mle6cli.engine.distributed import env_rank, fail_current, follower

    if not getattr(exc, "shared", False):  # peers stop at once instead of waiting for this rank
        fail_current(message)
    if follower():  # under torchrun rank 0 reports what every rank hit; the others say only their own
        if getattr(exc, "shared", False):
            raise typer.Exit(code)
        message = f"rank {env_rank()}: {message}"
    sys.stderr.write(f"Error: {message}\n")
    sys.stderr.flush()
    raise typer.Exit(code)


# the commands that share their members across torchrun's processes (their definition says so:
# `training_command(distributed=...)`); the others run as one process
DISTRIBUTED: tuple[str, ...] = ()


def _silence_stdout() -> None:
    """Point stdout at /dev/null so flushing at exit raises no second BrokenPipeError."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # no real file descriptor (e.g. under a test runner)
        pass


def _describe_unexpected(exc: BaseException, options: set[str] | frozenset = frozenset({"--batch-size"})) -> str:
    """One line for an exception no core code expected; `options` are the failing command's."""
    name = type(exc).__name__
    if name == "OutOfMemoryError" or "out of memory" in str(exc).lower():
        if "--batch-size" in options:
            return "the device ran out of memory; try a smaller --batch-size (or --device cpu)"
        return "the device ran out of memory; try --device cpu"
    return f"unexpected {name}: {exc} (rerun with --debug for the traceback)"


def _options_of(group: TyperGroup, ctx) -> set[str]:
    command = group.get_command(ctx, ctx.invoked_subcommand) if ctx.invoked_subcommand else None
    return {opt for param in getattr(command, "params", []) for opt in param.opts}


class BoundaryGroup(Group):
    """Turns every failure into one line on stderr: exit 1 for errors, 2 for usage, 130 for Ctrl-C."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except typer.Exit:
            raise
        except UsageError as exc:
            if _state["debug"]:
                raise
            where = exc.ctx.command_path if getattr(exc, "ctx", None) is not None else "mle6"
            _fail(f"{where}: {exc.format_message()}", 2)
        except Mle6Error as exc:
            if _state["debug"]:
                raise
            if getattr(exc, "note", False):  # not a failure: say so and exit with its code (0)
                if not _follower():
                    sys.stderr.write(f"Note: {exc}\n")
                raise typer.Exit(exc.exit_code) from None
            _fail(str(exc), exc.exit_code, exc)
        except KeyboardInterrupt:
            sys.stderr.write("Interrupted.\n")
            raise typer.Exit(130) from None
        except BrokenPipeError:  # the reader left (`mle6 ... | head`): exit 1 quietly, as rich and click do
            _silence_stdout()
            raise typer.Exit(1) from None
        except Exception as exc:  # the boundary: no traceback for users
            if _state["debug"] or type(exc).__module__.startswith(("typer", "click")):
                raise
            _fail(_describe_unexpected(exc, _options_of(self, ctx)), 1)


app = typer.Typer(
    name="mle6",
    cls=BoundaryGroup,
    help="mle6: the ML exercise sheet as commands — conv sizes, Gaussian sums, the SIGNS CNN and MNIST autoencoders.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mle6 {__version__}")
        raise typer.Exit()


def _follower() -> bool:
    from mle6cli.engine.distributed import follower

    return follower()


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool | None,
        typer.Option("--version", metavar="", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", metavar="", help="Show full tracebacks instead of one-line errors.")
    ] = False,
) -> None:
    """mle6: the ML exercise sheet as commands."""
    from mle6cli.engine.distributed import env_world, launched

    _state["debug"] = _state["debug"] or debug
    if _state["debug"]:
        os.environ["MLE6_DEBUG"] = "1"  # the printer of a torchrun rank other than 0 speaks too
    if launched() and env_world() > 1 and ctx.invoked_subcommand not in DISTRIBUTED:
        raise UsageError(
            f"{ctx.invoked_subcommand} runs as one process; under torchrun use {', '.join(DISTRIBUTED)}", ctx
        )


def _register() -> None:
    global DISTRIBUTED
    from mle6cli.commands import COMMANDS

    for name, function in COMMANDS:
        app.command(name, cls=Command)(function)
    DISTRIBUTED = tuple(name for name, function in COMMANDS if getattr(function, "distributed", False))
    from mle6cli.commands.runs import runs_app

    app.add_typer(runs_app, name="runs")
    from mle6cli.commands.tune import tune_app

    app.add_typer(tune_app, name="tune")


_register()


def main() -> None:
    """Console-script entry point (`mle6`, `python -m mle6cli`: the same name, in usage and completion)."""
    try:
        app(prog_name="mle6")
    except SystemExit as exc:
        drawing.shutdown()
        _leave(exc.code)
    drawing.shutdown()
    _leave(0)


def _leave(code) -> None:
    """Exit with `code`, skipping Python's teardown once torch is loaded: unloading torch costs about
    half a second on every command, after everything was written and closed. Every exit handler
    still runs first (a user's, a library's: there is no public list of them to judge, and they cost
    milliseconds), then `os._exit` skips only the modules' teardown. Python's own exit instead: under
    torchrun (the peers' store lives in rank 0's process), while another thread that Python would
    wait for runs, where the interpreter has no `atexit._run_exitfuncs`, or with MLE6_FAST_EXIT=0
    (for profilers)."""
    import atexit
    import threading

    from mle6cli.engine.distributed import launched

    if (
        "torch" not in sys.modules
        or launched()
        or os.environ.get("MLE6_FAST_EXIT", "1") == "0"
        or not hasattr(atexit, "_run_exitfuncs")
        or any(t is not threading.main_thread() and not t.daemon for t in threading.enumerate())
    ):
        sys.exit(code)
    if code is None:
        code = 0
    elif not isinstance(code, int):  # what sys.exit does with a message
        sys.stderr.write(f"{code}\n")
        code = 1
    atexit._run_exitfuncs()  # as Python's exit would, after the threads above and before flushing
    try:
        sys.stdout.flush()
    except (BrokenPipeError, OSError, ValueError):  # the reader left: as the boundary does, exit 1 quietly
        code = code or 1
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os._exit(code)
