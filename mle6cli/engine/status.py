"""What a run folder says of itself, without torch: progress.json while it trains, and the status
`mle6 runs` reads (finished, failed, running, interrupted, crashed or started)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from mle6cli.engine.folder import CONFIG, PROGRESS, RESUME, SUMMARY, RunDirError
from mle6cli.engine.lock import RunLock
from mle6cli.files import FileError, read_json, write_json


def write_progress(folder: Path, command: str, members: Sequence, status: str, epochs: int | None, extra: dict) -> None:
    """progress.json: how far `members` (`engine.checkpoints.Member`) got; `extra`'s plain values too."""
    done = [len(m.state.history) for m in members]
    write_json(
        Path(folder) / PROGRESS,
        {
            "command": command,
            "status": status,
            "epochs_done": min(done) if done else 0,
            "epochs": epochs,
            "members": len(members),
            "member_epochs": done,
            "pid": os.getpid(),
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **{k: v for k, v in extra.items() if isinstance(v, (str, int, float))},
        },
    )


def run_status(folder: Path) -> dict:
    """What a folder is, without torch: `finished`, `failed`, `running`, `interrupted`, `crashed`, or
    `started` (config.json, nothing trained yet); how far it got; RunDirError if it was never a run."""
    folder = Path(folder)
    if not (folder / CONFIG).is_file():
        raise RunDirError(f"{folder} is not a run folder (no {CONFIG})")
    try:
        config = read_json(folder / CONFIG)
    except FileError as exc:
        raise RunDirError(str(exc)) from None
    progress = {}
    if (folder / PROGRESS).is_file():
        try:
            progress = read_json(folder / PROGRESS)
        except FileError:
            progress = {}
    holder = RunLock.held(folder)
    out = {
        "run_dir": str(folder),
        "command": config.get("command") if isinstance(config, dict) else None,
        "created": config.get("created") if isinstance(config, dict) else None,
        "epochs_done": progress.get("epochs_done"),
        "epochs": progress.get("epochs"),
        "updated": progress.get("updated"),
    }
    if (folder / SUMMARY).is_file():
        try:
            summary = read_json(folder / SUMMARY)
        except FileError:
            summary = {}
        out["status"] = "failed" if summary.get("status") == "failed" else "finished"
        out["summary"] = summary
        return out
    if holder is not None:
        out.update(status="running", pid=holder)
    elif progress.get("status") == "interrupted":
        out["status"] = "interrupted"
    elif (folder / RESUME).is_file() or progress:
        out["status"] = "crashed"  # resumable: it stopped without saying so (SIGKILL, a node failure)
    else:
        out["status"] = "started"
    return out
