"""The documentation pages made from the code: `make docs-pages` (and so `make docs`).

    python docs/gen_pages.py            rewrite them
    python docs/gen_pages.py --check    exit 1, naming them, when a committed page is stale

- docs/reference/cli.md: `mle6 --help` and every `mle6 COMMAND --help`, as a terminal 100
  columns wide without colour shows them; a new command appears by itself.
- docs/data-checks.md: the table between its two markers, from tests/data_checks.py (the table
  tests/test_bad_data.py takes its cases from); the prose around it is written by hand.
- docs/reference/summary-json.md: every key of a finished run's summary.json, from the classes that
  write and read it (`mle6cli.tasks.schema`).

tests/test_docs.py runs the same functions and fails when a committed page differs.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLI_PAGE = REPO / "docs" / "reference" / "cli.md"
CHECKS_PAGE = REPO / "docs" / "data-checks.md"
SUMMARY_PAGE = REPO / "docs" / "reference" / "summary-json.md"
BEGIN = "<!-- the table: docs/gen_pages.py writes it from tests/data_checks.py -->"
END = "<!-- end of the table -->"
# a fixed terminal: the help's line breaks and boxes then do not depend on who regenerates it
HELP_ENV = {"COLUMNS": "100", "TERM": "dumb", "NO_COLOR": "1"}

if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))


def _commands(group, path: tuple[str, ...] = ()):
    """Every command path under a click group, in the order `--help` lists them."""
    yield path
    for name, command in getattr(group, "commands", {}).items():
        yield from _commands(command, (*path, name))


def help_text(path: tuple[str, ...]) -> str:
    """`mle6 PATH --help`, in process, on the fixed terminal."""
    from typer.testing import CliRunner

    from mle6cli.cli import app

    result = CliRunner().invoke(app, [*path, "--help"], prog_name="mle6", env=HELP_ENV, color=False)
    if result.exit_code != 0:
        raise RuntimeError(f"mle6 {' '.join(path)} --help exited {result.exit_code}: {result.output}")
    return "\n".join(line.rstrip() for line in result.output.strip("\n").splitlines())


def cli_page() -> str:
    import typer

    from mle6cli.cli import app

    parts = [
        "# Command-line reference",
        "",
        "Every command's `--help`, as mle6 prints it. This page is generated from the commands "
        "themselves (`make docs-pages`); a test fails when it is out of date.",
    ]
    for path in _commands(typer.main.get_command(app)):
        parts += ["", f"## mle6 {' '.join(path)}".rstrip(), "", "```text", help_text(path), "```"]
    return "\n".join(parts) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def checks_table() -> str:
    from tests.data_checks import ROWS

    lines = ["| input | damage | what happens |", "| --- | --- | --- |"]
    for row in ROWS:
        what = f"{row.outcome}: `{row.message}`" + (f" ({row.remark})" if row.remark else "")
        lines.append(f"| {_cell(row.input)} | {_cell(row.damage)} | {_cell(what)} |")
    return "\n".join(lines)


def checks_page(current: str) -> str:
    """`current` with the table between the markers made anew."""
    head, rest = current.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n\n{checks_table()}\n\n{END}{tail}"


def summary_page() -> str:
    from mle6cli.tasks import schema

    parts = [
        "# summary.json",
        "",
        "A finished run's summary.json, key by key, for scripts that read it. It is written last: a run folder",
        "without it did not finish (`mle6 runs` says why). This page is generated from the classes that write",
        "and read it (`mle6cli.tasks.schema`, `make docs-pages`); a test fails when it is out of date.",
        "",
        f"Every summary starts with `schema_version` (now {schema.SCHEMA_VERSION}): it goes up when a key",
        "changes its meaning or goes away; a new key leaves it as it is. Keys come in the order below; an",
        "optional key is left out when it does not apply.",
        "",
        "```python",
        "from mle6cli.tasks.schema import read",
        "",
        'summary = read("runs/sweep-lr/20250101-120000")  # a SweepSummary',
        "print(summary.best_lr, summary.test_acc)",
        "```",
    ]
    for summary_class in schema.SUMMARIES:
        parts += ["", f"## {summary_class.__name__}", "", summary_class.__doc__.strip(), ""]
        parts += ["| key | type | what it holds |", "| --- | --- | --- |"]
        parts += [f"| `{key}` | {kind} | {_cell(text)} |" for key, kind, text in schema.describe(summary_class)]
    return "\n".join(parts) + "\n"


def pages() -> dict[Path, str]:
    """Each generated page and what it should hold."""
    return {
        CLI_PAGE: cli_page(),
        CHECKS_PAGE: checks_page(CHECKS_PAGE.read_text()),
        SUMMARY_PAGE: summary_page(),
    }


def main(argv: list[str]) -> int:
    stale = []
    for path, text in pages().items():
        if path.exists() and path.read_text() == text:
            continue
        if "--check" in argv:
            stale.append(str(path.relative_to(REPO)))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(REPO)}")
    if stale:
        print(f"out of date (run make docs-pages): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
