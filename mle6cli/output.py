"""The one printing layer. Core code never prints; commands hand their results to this module.

Three audiences:
- a person at a terminal: rich tables and a progress bar;
- a log file (stdout is not a TTY): one plain line per epoch;
- a script (`--json`): exactly one JSON document on stdout, progress (if any) on stderr.
"""

from __future__ import annotations

import json
import math
import sys
from contextlib import contextmanager
from dataclasses import dataclass


def _jsonable(value):
    """Make floats JSON-safe (NaN/inf become null) and tuples lists, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return _jsonable(value.item())
    if hasattr(value, "__fspath__"):
        return str(value)
    return value


def dumps(document) -> str:
    return json.dumps(_jsonable(document), indent=2, allow_nan=False)


def synthetic_note(what: str, sizes: dict[str, int], instead_of: str) -> str:
    """The one wording of the notice that a command runs on built-in synthetic data."""
    counts = " / ".join(f"{n} {split}" for split, n in sizes.items())
    return f"Note: the data are SYNTHETIC ({what}, {counts}), not {instead_of}."


def resuming_note(run_dir) -> str:
    return f"Resuming the run in {run_dir} with its saved options."


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
                first, *rest = zip(r, widths)
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
    def progress(self, total_steps: int, description: str = "training"):
        """Yield a callback `update(label, done, metrics)`; rich bar on a TTY, plain lines otherwise."""
        if self.quiet:
            yield lambda *a, **k: None
            return
        if self.is_tty and not self.json_mode:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                console=self._console(),
            ) as bar:
                task = bar.add_task(description, total=total_steps, info="")

                def update(label: str, done: int, metrics: dict) -> None:
                    bar.update(task, completed=done, description=label, info=_metrics_text(metrics))

                yield update
            return
        stream = sys.stderr if self.json_mode else sys.stdout

        def update(label: str, done: int, metrics: dict) -> None:
            stream.write(f"{label} {_metrics_text(metrics)}\n")
            stream.flush()

        yield update


def _cell(value) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}" if abs(value) < 1e-3 and value != 0 else f"{value:.4f}"
    return str(value)


def _metrics_text(metrics: dict) -> str:
    return " ".join(f"{k}={_cell(v)}" for k, v in metrics.items())
