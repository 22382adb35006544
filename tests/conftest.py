"""Shared fixtures. Every test runs inside its own tmp_path, so no output lands in the tree."""

from __future__ import annotations

import os
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
    yield


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
