"""Each training command's options are declared once, in its spec's config: what the command line
defaults to, what the library defaults to, what a run records in config.json and what the CLI
reference page says must be the same value for every option of every training command."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from tests.conftest import REPO

TRAINING = ["train-cnn", "sweep-lr", "train-ae", "pca-ae", "run-all"]


def _plain(value):
    """A config value as JSON holds it (tuples as lists)."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def _numbers(text: str) -> list:
    """'1e-1,1e-3' -> [0.1, 0.001]; '3,10' -> [3, 10]: how a list option's default reads to a person."""
    return [int(part) if re.fullmatch(r"\d+", part) else float(part) for part in text.split(",")]


def _click_command(name: str):
    import typer

    from mle6cli.cli import app

    return typer.main.get_command(app).commands[name]


def _seed_default(help_text: str) -> list | None:
    match = re.search(r"\(default (\d+)\)", help_text or "")
    return [int(match.group(1))] if match else None


def cli_defaults(name: str) -> dict:
    """config.json key -> the value the command line's defaults stand for, read from the Typer parameters
    alone: --seed's help names its default, --no-download is the negation of download, a folder and a
    comma-separated list are given as text."""
    from pathlib import Path

    params = {p.name: p for p in _click_command(name).params}
    found = {}
    for pname, param in params.items():
        default = param.default
        if isinstance(default, Path):
            default = str(default)
        if isinstance(default, str) and "," in default:
            default = _numbers(default)
        found[pname] = default
    if "no_download" in found:
        found["download"] = not found.pop("no_download")
    seeds = _seed_default(getattr(params.get("seed"), "help", ""))
    if seeds is not None:  # --seed K or --seeds: one key, `seeds`
        found["seeds"] = seeds
    return found


def page_section(name: str) -> str:
    page = (REPO / "docs" / "reference" / "cli.md").read_text()
    start = page.index(f"\n## mle6 {name}\n")
    end = page.find("\n## ", start + 1)
    return page[start:end]


def page_defaults(name: str) -> dict:
    """config.json key -> the default the CLI reference page shows: `[default: X]` of its row, the
    `(default N)` of --seed, a switch off (--no-download: download on), no default shown: None."""
    rows: dict[str, str] = {}
    flag = None
    for line in page_section(name).splitlines():
        match = re.match(r"│ (--[\w-]+)", line)
        if match:
            flag = match.group(1)
            rows[flag] = line
        elif flag is not None and line.startswith("│ "):
            rows[flag] += " " + line
    found = {}
    for flag, text in rows.items():
        key = flag[2:].replace("-", "_")
        text = re.sub(r"\s*│\s*", " ", text)
        shown = re.search(r"\[default: ([^\]]+)\]", text)
        takes_value = re.match(r"\s*--[\w-]+\s+(-\w\s+)?<", text) is not None
        if shown:
            value = shown.group(1).strip()
            if "," in value:
                found[key] = _numbers(value)
            else:
                found[key] = int(value) if re.fullmatch(r"-?\d+", value) else _float_or_text(value)
        else:
            found[key] = None if takes_value else False
    if "no_download" in found:
        found["download"] = not found.pop("no_download")
    seeds = _seed_default(rows.get("--seed", ""))
    if seeds is not None:
        found["seeds"] = seeds
    return found


def _float_or_text(value: str):
    try:
        return float(value)
    except ValueError:
        return value


def cases():
    from mle6cli.tasks.config import options_of
    from mle6cli.tasks.specs import SPECS

    for name in TRAINING:
        for f in options_of(SPECS[name].config):
            yield pytest.param(name, f.name, id=f"{name}:{f.name}")


@pytest.fixture(scope="module")
def printed(runner_module):
    from mle6cli.cli import app

    found = {}
    for name in TRAINING:
        result = runner_module.invoke(app, [name, "--print-config"])
        assert result.exit_code == 0, result.output
        found[name] = json.loads(result.stdout)
    return found


@pytest.fixture(scope="module")
def runner_module():
    from typer.testing import CliRunner

    return CliRunner()


@pytest.mark.parametrize(("name", "key"), list(cases()))
def test_every_option_has_one_default(name, key, printed):
    from mle6cli.tasks.specs import SPECS

    config = SPECS[name].config
    library = _plain(getattr(config.from_options({}), key))  # what the task makes of `{}`
    declared = _plain(next(f for f in dataclasses.fields(config) if f.name == key).default)
    recorded = printed[name][key]  # what config.json records (--print-config prints it)
    cli = cli_defaults(name)[key]
    page = page_defaults(name)[key]
    assert library == declared == recorded == cli == page, (name, key, library, recorded, cli, page)


@pytest.mark.parametrize("name", TRAINING)
def test_a_run_records_exactly_the_options_of_its_spec(name, printed):
    from mle6cli.tasks.config import options_of
    from mle6cli.tasks.specs import SPECS

    assert list(printed[name]) == [f.name for f in options_of(SPECS[name].config)]


def test_no_model_kind_or_command_name_is_compared_as_a_string():
    """Kinds are objects and commands are specs: a string comparison with either is a check that can
    never hold again (a ModelKind never equals "classifier"), so none may be written outside the specs."""
    from pathlib import Path

    package = Path(__file__).resolve().parents[1] / "mle6cli"
    names = r'"(classifier|autoencoder|linear-ae|train-cnn|sweep-lr|train-ae|pca-ae|run-all)"'
    pattern = re.compile(rf"kind\w*\s*(==|!=)\s*{names}|{names}\s*(==|!=)|(==|!=)\s*{names}")
    found = [
        f"{path.relative_to(package.parent)}:{n}"
        for path in sorted(package.rglob("*.py"))
        if path.name not in ("specs.py", "kinds.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert found == []
