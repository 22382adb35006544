"""The CLI as a whole: help for every command, version, start-up cost, the error boundary."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from mle6cli import __version__
from mle6cli.commands import COMMANDS
from tests.conftest import cli_env, subprocess_env

COMMAND_NAMES = [name for name, _ in COMMANDS]


def test_top_level_help_lists_every_command(runner, app):
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in COMMAND_NAMES:
        assert name in result.stdout


@pytest.mark.parametrize("name", COMMAND_NAMES)
def test_every_command_has_help_with_an_example(runner, app, name):
    result = runner.invoke(app, [name, "--help"])
    assert result.exit_code == 0
    assert "Example: mle6 " + name in result.stdout
    function = dict(COMMANDS)[name]
    summary, _, rest = function.__doc__.strip().partition("\n")
    assert summary and rest.strip().startswith("Example: mle6 " + name)


def _plain(text: str) -> str:
    """Help as words: rich's panel borders removed and its line wrapping undone."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


@pytest.mark.parametrize("name", [None, *COMMAND_NAMES])
def test_help_speaks_of_the_exercise_and_counts_in_words(runner, app, name):
    """No "the seed's CNN" (the code people run is the exercise's) and no "1 epochs" (fmt.plural)."""
    result = runner.invoke(app, [name, "--help"] if name else ["--help"])
    assert result.exit_code == 0
    text = _plain(result.stdout)
    assert not re.search(r"seed['’]s", text, re.IGNORECASE), text
    assert not re.search(r"\b1 epochs\b", text), text


def test_the_traced_cnn_is_the_exercises(runner, app):
    result = runner.invoke(app, ["conv-size", "--model", "cnn"])
    assert result.exit_code == 0
    text = _plain(result.stdout)
    assert "The exercise's CNN on a 64x64 RGB image" in text and "seed's" not in text


def test_version(runner, app):
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"mle6 {__version__}"


def test_unknown_command_is_a_usage_error(runner, app):
    result = runner.invoke(app, ["frobnicate"])
    assert result.exit_code == 2


def _imports_after(args: list[str]) -> set[str]:
    code = (
        "import sys\n"
        "from mle6cli.cli import app\n"
        "try:\n"
        f"    app({args!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'matplotlib'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), check=True)
    return set(out.stdout.split("\n")[-2].split())


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["conv-size", "--input", "64", "--kernel", "3", "--padding", "same"],
        ["gauss-conv", "--samples", "100"],
    ],
)
def test_fast_commands_do_not_import_torch(args):
    assert _imports_after(args) == set()


@pytest.mark.slow
def test_verify_does_import_torch():
    assert "torch" in _imports_after(["conv-size", "--verify"])


def test_console_script_and_module_entry_points():
    """Subprocess: `python -m mle6cli` works and errors exit 1 with one line, no traceback."""
    ok = subprocess.run(
        [sys.executable, "-m", "mle6cli", "conv-size", "-i", "28", "-k", "5"],
        capture_output=True,
        text=True,
        env=cli_env(),
    )
    assert ok.returncode == 0 and "24x24" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "mle6cli", "conv-size", "-i", "2", "-k", "5"],
        capture_output=True,
        text=True,
        env=cli_env(),
    )
    assert bad.returncode == 1
    assert bad.stderr.startswith("Error: kernel extent 5") and "Traceback" not in bad.stderr
    debug = subprocess.run(
        [sys.executable, "-m", "mle6cli", "--debug", "conv-size", "-i", "2", "-k", "5"],
        capture_output=True,
        text=True,
        env=cli_env(),
    )
    assert debug.returncode == 1 and "Traceback" in debug.stderr


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["conv-size", "--input", "28", "--kernel", "5", "--verify", "--json"], 0),  # torch loaded: the fast exit
        (["train-cnn", "--synthetic", "--epochs", "1", "--lr", "1e9", "--quiet"], 1),  # diverges after training
    ],
)
@pytest.mark.slow
def test_the_fast_exit_keeps_the_output_and_the_exit_code(args, code, tmp_path):
    """Once torch is loaded the CLI leaves through os._exit (Python's teardown of torch costs ~0.5 s):
    everything printed must still arrive, with the same exit code as a normal exit."""
    runs = [
        subprocess.run(
            [sys.executable, "-m", "mle6cli", *args, *(["--out", str(tmp_path / name)] if code else [])],
            capture_output=True,
            text=True,
            env=dict(subprocess_env(), **extra),  # this tree's mle6cli, whatever the folder
        )
        for name, extra in (("fast", {}), ("slow", {"MLE6_FAST_EXIT": "0"}))
    ]
    fast, slow = runs
    assert fast.returncode == slow.returncode == code
    assert fast.stdout == slow.stdout
    assert fast.stderr.replace(str(tmp_path / "fast"), str(tmp_path / "slow")) == slow.stderr  # the --out folder aside
    assert (fast.stdout if code == 0 else fast.stderr).strip()


EXIT_HANDLERS = r"""
import atexit, sys, threading, time
from pathlib import Path

out = Path(sys.argv[1])
atexit.register(lambda: (out / "atexit").write_text("ran"))  # what a user's environment may register
threading.Thread(target=lambda: (time.sleep(0.5), (out / "thread").write_text("ran"))).start()
sys.argv = ["mle6", "conv-size", "--input", "28", "--kernel", "5", "--verify", "--json"]  # loads torch
from mle6cli.cli import main

main()
"""


def test_the_fast_exit_runs_every_exit_handler_and_waits_for_threads(tmp_path):
    """os._exit skips only the teardown: an atexit handler registered by someone else still runs, and
    a thread Python would wait for is waited for."""
    proc = subprocess.run(
        [sys.executable, "-c", EXIT_HANDLERS, str(tmp_path)], capture_output=True, text=True, env=subprocess_env()
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
    assert (tmp_path / "atexit").read_text() == "ran"
    assert (tmp_path / "thread").read_text() == "ran"
