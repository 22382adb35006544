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

            def line(label: str, done: int, metrics: dict) -> None:
                stream.write(f"{label} {_metrics_text(metrics)}\n")
                stream.flush()

            yield Events(epoch=line, note=self.note, section=lambda name: self.note(f"== {name}"))
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=self._console(),
        ) as bar:
            task = {"id": None}

            def start(total: int, description: str) -> None:
                if task["id"] is None:
                    task["id"] = bar.add_task(description, total=total, info="")

            def epoch(label: str, done: int, metrics: dict) -> None:
                if task["id"] is None:
                    start(done, "training")
                bar.update(task["id"], completed=done, description=label, info=_metrics_text(metrics))

            yield Events(
                start=start, epoch=epoch, note=bar.console.print, section=lambda n: bar.console.print(f"== {n}")
            )


def _cell(value) -> str:
    return cell(value, missing="-")


def _metrics_text(metrics: dict) -> str:
    return " ".join(f"{k}={_cell(v)}" for k, v in metrics.items())
