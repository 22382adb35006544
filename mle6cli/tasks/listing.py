"""`mle6 runs`: what run folders hold, read from their files alone (no torch).

A folder is a run when it has config.json; its status comes from `engine.status.run_status`
(finished, failed, running, interrupted, crashed, started) and its headline from summary.json.
"""

from __future__ import annotations

import time
from pathlib import Path

from mle6cli.engine.folder import CONFIG, RunDirError
from mle6cli.engine.status import run_status
from mle6cli.files import FileError, read_json
from mle6cli.tasks.schema import Summary, read
from mle6cli.tasks.specs import SPECS

DEFAULT_ROOT = Path("runs")


def find_runs(root: Path) -> list[Path]:
    """Every run folder below `root` (a run's own step folders, as run-all's, are not listed apart)."""
    root = Path(root)
    if not root.is_dir():
        raise RunDirError(f"{root} is not a folder")
    found = []
    for config in sorted(root.rglob(CONFIG)):
        folder = config.parent
        if any(parent in found for parent in folder.parents):
            continue  # a step of a run already listed (run-all's sweep-lr/, train-ae/, pca-ae/)
        found.append(folder)
    return found


def headline(command: str | None, summary: Summary | dict | None) -> str:
    """The one number a person looks for first, per command."""
    if not summary:
        return ""
    spec = SPECS.get(command)
    if spec is None or spec.headline is None:
        return ""
    try:
        return spec.headline(summary)
    except (KeyError, TypeError):
        return "?"


def describe(folder: Path) -> dict:
    """One run folder: command, status, start, duration, device, headline."""
    status = run_status(folder)
    try:
        config = read_json(Path(folder) / CONFIG)
    except FileError:
        config = {}
    summary = status.pop("summary", None)
    summary = (read(summary) or summary) if isinstance(summary, dict) else None  # a command no spec declares: as is
    seconds = None
    if summary:
        seconds = summary.get("train_seconds", summary.get("seconds"))
    device = config.get("device") if isinstance(config, dict) else None
    return {
        **status,
        "device": device,
        "seconds": seconds,
        "headline": headline(status.get("command"), summary),
        "options": (config.get("options") or {}) if isinstance(config, dict) else {},
        "final": _finals(status.get("command"), summary),
    }


def list_runs(root: Path = DEFAULT_ROOT) -> list[dict]:
    """Every run below `root`, newest first."""
    runs = [describe(folder) for folder in find_runs(root)]
    return sorted(runs, key=lambda r: (r.get("created") or "", r["run_dir"]), reverse=True)


def _finals(command: str | None, summary: Summary | dict | None) -> dict:
    """The final metrics a comparison sets side by side (flat keys)."""
    if not summary:
        return {}
    out = {}
    for key in ("test_acc", "test_loss", "best_lr", "best_val_acc", "val_test_gap", "linear_ae_test_mse",
                "pca_test_mse", "train_seconds"):  # fmt: skip
        if summary.get(key) is not None:
            out[key] = summary[key]
    for row in summary.get("stats") or []:
        if isinstance(row, dict) and "latent_dim" in row:
            out[f"test_mse_d{row['latent_dim']}"] = row["test_mse"]["mean"]
    if isinstance(summary.get("final"), dict):
        for key, value in summary["final"].items():
            if key != "epoch":
                out[f"final_{key}"] = value
    return out


def compare_runs(folders: list[Path]) -> dict:
    """The runs' options and final metrics side by side, only the keys whose values differ."""
    runs = [describe(Path(f)) for f in folders]
    rows = {}
    for section in ("options", "final"):
        keys = sorted({k for r in runs for k in r[section]})
        for key in keys:
            values = [r[section].get(key) for r in runs]
            if any(v != values[0] for v in values[1:]):
                rows[f"{section}.{key}"] = values
    for key in ("command", "status", "device"):
        values = [r.get(key) for r in runs]
        if any(v != values[0] for v in values[1:]):
            rows[key] = values
    return {"runs": [r["run_dir"] for r in runs], "differences": rows}


def age(created: str | None) -> str:
    """'2026-11-27 17:03' from config.json's ISO time."""
    if not created:
        return "?"
    try:
        return time.strftime("%Y-%m-%d %H:%M", time.strptime(created[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return created
