"""Shared fixtures. Every test runs inside its own tmp_path, so no output lands in the tree."""

from __future__ import annotations

import os
import signal
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolate(tmp_path, monkeypatch):
    """Run in tmp_path (default run folders land there) with a quiet, deterministic environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("MLE6_DEBUG", raising=False)
    # a run stopped in process leaves SIGTERM ignored on its way out (engine.interrupt): give the next
    # test, on whichever worker it runs, the process's handlers as they were
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


# what tests share that must not be started twice at once: `make test` runs the suite on several
# pytest-xdist workers (-n), and each group's tests go to one of them, one after another
SHARED_BY = {"slurm": "slurm", "browser": "browser", "site": "browser"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        groups = {SHARED_BY[name] for name in getattr(item, "fixturenames", ()) if name in SHARED_BY}
        groups |= {m.args[0] for m in item.iter_markers("xdist_group")}
        if len(groups) > 1:
            raise pytest.UsageError(f"{item.nodeid} needs several shared things at once: {sorted(groups)}")
        if groups and not any(item.iter_markers("xdist_group")):
            item.add_marker(pytest.mark.xdist_group(groups.pop()))


@pytest.fixture(scope="session")
def runner():
    from typer.testing import CliRunner

    return CliRunner()


@pytest.fixture(scope="session")
def app():
    from mle6cli.cli import app

    return app


def shared_path(*parts: str) -> Path:
    return SHARED_DATA.joinpath(*parts)


def cli_env() -> dict:
    env = dict(os.environ)
    env.pop("MLE6_DEBUG", None)
    env["MPLBACKEND"] = "Agg"
    return env


def subprocess_env() -> dict:
    """For a CLI subprocess: this worktree's mle6cli, one OpenMP thread (see `one_thread`)."""
    env = cli_env()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["OMP_NUM_THREADS"] = "1"
    return env


@contextmanager
def one_thread():
    """Train on one thread: on a loaded 2-core machine, two OpenMP threads are ~10x slower per step,
    and a fixed thread count keeps in-process and subprocess runs bit-identical."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def one_torch_thread():
    """`one_thread` for a whole test (use with pytestmark = pytest.mark.usefixtures("one_torch_thread"))."""
    with one_thread():
        yield


@pytest.fixture
def small(tmp_path):
    """A small SIGNS npy folder (48/12/12 synthetic images; see tests.signs_helpers)."""
    from tests.signs_helpers import write_layout

    return write_layout(tmp_path / "small")


class StopAfter:
    """A `stop` callback that turns true on its n-th call (the loop asks after every step and epoch)."""

    def __init__(self, n: int):
        self.n, self.calls = n, 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.calls >= self.n


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """One headless Chromium for every real-browser test (tests.browser). Skipped, with the reason,
    where none is installed; where MLE6_REQUIRE_BROWSER is set (.ci/run, after installing it) a
    missing browser fails instead, so CI cannot pass by skipping these tests."""
    from tests.browser import BROWSER, NO_BROWSER, Chromium

    if BROWSER is None:
        if os.environ.get("MLE6_REQUIRE_BROWSER"):
            pytest.fail(f"MLE6_REQUIRE_BROWSER is set but {NO_BROWSER}")
        pytest.skip(NO_BROWSER)
    with Chromium(tmp_path_factory.mktemp("chromium")) as chromium:
        yield chromium


def load_benchmark(name: str):
    """benchmarks/<name>.py as a module (the folder is scripts, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
