"""One writer per run folder: an exclusive `flock` on its `.lock`, held while the run runs.

The kernel drops the lock when its process dies, however it dies, so a stale `.lock` left by a
killed run blocks nobody; the file holds the holder's pid for the message of the one refused.
"""

from __future__ import annotations

import os
from pathlib import Path

from mle6cli.engine.folder import LOCK, RunDirError


class RunLock:
    """The lock on one run folder (see the module docstring)."""

    def __init__(self, path: Path, fd: int):
        self.path, self.fd = path, fd

    @classmethod
    def take(cls, folder: Path) -> RunLock:
        from mle6cli.files import file_locks

        fcntl = file_locks()  # one line, not a traceback, where the system has no fcntl

        path = Path(folder) / LOCK
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RunDirError(f"cannot lock run folder {folder}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"process {holder}" if holder else "another process"
            raise RunDirError(
                f"run folder {folder} is in use by {who}; wait for it, or choose another folder"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return cls(path, fd)

    def release(self) -> None:
        self.path.unlink(missing_ok=True)
        os.close(self.fd)

    @staticmethod
    def held(folder: Path) -> int | None:
        """The pid holding `folder`'s lock, or None (no lock file, or a stale one)."""
        from mle6cli.files import file_locks

        fcntl = file_locks()  # one line, not a traceback, where the system has no fcntl

        path = Path(folder) / LOCK
        if not path.exists():
            return None
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            holder = _read_pid(fd)
            os.close(fd)
            return holder or -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        return None


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
        return int(text) if text.isdigit() else None
    except (OSError, ValueError):
        return None
