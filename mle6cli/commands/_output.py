"""The one printing layer. Core code never prints; commands hand their results to this module.

Three audiences:
- a person at a terminal: rich tables and a progress bar;
- a log file (stdout is not a TTY): one plain line per epoch;
- a script (`--json`): exactly one JSON document on stdout, progress (if any) on stderr.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass

from mle6cli.files import dumps
from mle6cli.fmt import cell


@dataclass
class Printer:
    """What a command may print, given --json and --quiet."""

    json_mode: bool = False
    quiet: bool = False
    silent: bool = False  # a torchrun rank other than 0: rank 0 prints for the run

    def __post_init__(self) -> None:
        from mle6cli.engine.distributed import follower
        from mle6cli.errors import debug_from_env

        if follower() and not debug_from_env():
            self.json_mode, self.quiet, self.silent = False, True, True

    @property
    def is_tty(self) -> bool:
        return sys.stdout.isatty()

    @property
    def human(self) -> bool:
        return not self.json_mode and not self.quiet

    def _console(self, stderr: bool = False):
        from rich.console import Console

        return Console(stderr=stderr, highlight=False, soft_wrap=not self.is_tty)

    def json(self, document) -> None:
        if self.silent:
            return
        sys.stdout.write(dumps(document) + "\n")
        sys.stdout.flush()

    def line(self, text: str = "") -> None:
        """A plain line for people (skipped under --json and --quiet)."""
        if self.human:
            sys.stdout.write(text + "\n")

    def note(self, text: str) -> None:
        """Something a person must see even under --json (e.g. 'data are synthetic'): goes to stderr."""
        if not self.quiet:
            sys.stderr.write(text + "\n")

    def table(self, title: str | None, columns: list[str], rows: list[list]) -> None:
        if not self.human:
            return
        if not self.is_tty:  # logs get aligned plain text, no box drawing
            cells = [columns] + [[_cell(v) for v in row] for row in rows]
            widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
            if title:
                self.line(title)
            for r in cells:
                first, *rest = zip(r, widths, strict=True)
                self.line("  ".join([first[0].ljust(first[1])] + [c.rjust(w) for c, w in rest]).rstrip())
            return
        from rich.table import Table

        table = Table(title=title)
        for i, c in enumerate(columns):
            table.add_column(c, justify="left" if i == 0 else "right")
        for row in rows:
            table.add_row(*[_cell(v) for v in row])
        self._console().print(table)

    @contextmanager
    def events(self):
        """Yield the `Events` a core function reports through: a rich bar on a TTY, plain lines in a log,
        notes on stderr; nothing under --quiet but notes that matter."""
        from mle6cli.engine.events import Events

        if self.quiet:
            yield Events()
            return
        if not (self.is_tty and not self.json_mode):
            stream = sys.stderr if self.json_mode else sys.stdout

            def line(member: str, epoch: int, epochs: int, done: int, metrics: dict) -> None:
                stream.write(f"{epoch_label(member, epoch, epochs)} {_metrics_text(metrics)}\n")
                stream.flush()

            yield Events(epoch=line, note=self.note, section=lambda name: self.note(f"== {name}"))
            return
        with live_progress(self._console()) as events:
            yield events


# The metrics a progress row has room for, in order of interest; the rest go to the log and the files.
SHOWN_FIRST = ("val_acc", "test_loss", "val_loss", "train_loss", "train_acc")


@contextmanager
def live_progress(console):
    """On a terminal: an overall bar, then one row per member (its epochs and latest metrics), each
    row cut to fit the console (80 columns keep the bars)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}", table_column=_column(max_width=18)),
        BarColumn(bar_width=12),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}", table_column=_column(ratio=1)),
        TimeElapsedColumn(),
        console=console,
        expand=False,
    ) as bar:
        from mle6cli.engine.events import Events

        tasks: dict[str, int] = {}
        overall = {"id": None, "total": 0}

        def start(total: int, description: str) -> None:
            if overall["id"] is None:
                overall["id"] = bar.add_task(description[:18], total=total, info="")
            overall["total"] = total

        def epoch(member: str, number: int, epochs: int, done: int, metrics: dict) -> None:
            member = member or "training"
            if overall["id"] is None:
                start(done, "training")
            bar.update(overall["id"], completed=done)
            if member not in tasks:
                tasks[member] = bar.add_task(member[:18], total=epochs, info="")
            bar.update(tasks[member], completed=number, info=_short(metrics))

        def section(name: str) -> None:
            bar.console.print(f"== {name}")

        yield Events(start=start, epoch=epoch, note=bar.console.print, section=section)


def draw_in_background() -> None:
    """For a command whose figures take plain data, called before it imports torch: start the drawing
    process (`drawing.start`), so pyplot imports on another core while torch imports here. Not
    in a torchrun rank other than 0, which draws nothing."""
    from mle6cli import drawing
    from mle6cli.engine.distributed import follower

    if not follower():
        drawing.start()


def epoch_label(member: str, epoch: int, epochs: int) -> str:
    """A progress line's head: "lr 1e-03 seed 4 epoch 3/50", or "epoch 3/50" for a run of one."""
    return f"{member} epoch {epoch}/{epochs}" if member else f"epoch {epoch}/{epochs}"


def _column(max_width: int | None = None, ratio: int | None = None):
    from rich.table import Column

    return Column(no_wrap=True, overflow="ellipsis", max_width=max_width, ratio=ratio)


def _short(metrics: dict) -> str:
    keys = [k for k in SHOWN_FIRST if k in metrics][:2]
    return " ".join(f"{k} {_cell(metrics[k])}" for k in keys)


def _cell(value) -> str:
    return cell(value, missing="-")


def _metrics_text(metrics: dict) -> str:
    return " ".join(f"{k}={_cell(v)}" for k, v in metrics.items())
