"""Orderly stops: SIGINT/SIGTERM during training finish the current step, save, and exit 130/143.

The run protocol (`engine.runs.Run.train`) is the one user:

    with graceful_stop() as stop:
        interrupted = fit(..., stop=stop)
    if interrupted:
        run.save(members)
        raise run.interrupted(stop.signal_number, where)

A second signal while the first is being handled stops at once (KeyboardInterrupt).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from contextlib import contextmanager

from mle6cli.errors import Mle6Error

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class StopRequest:
    """Callable flag handed to the training loop as `stop`."""

    def __init__(self) -> None:
        self.signal_number: int | None = None

    def __call__(self) -> bool:
        return self.signal_number is not None

    def request(self, signal_number: int = signal.SIGINT) -> None:
        self.signal_number = signal_number


class Interrupted(Mle6Error):
    """Training stopped on a signal after saving a resumable checkpoint."""

    shared = True  # under torchrun every rank stops; rank 0 reports it

    def __init__(self, signal_number: int | None, message: str) -> None:
        super().__init__(message)
        self.signal_number = signal_number
        self.exit_code = EXIT_CODES.get(signal_number, 130)


def any_of(*stops: Callable[[], bool] | None) -> Callable[[], bool]:
    """One `stop` that is true when any given one is (None entries are ignored)."""
    active = [s for s in stops if s is not None]
    return lambda: any(s() for s in active)


@contextmanager
def graceful_stop():
    """Install SIGINT/SIGTERM handlers that set a flag (main thread only; elsewhere a plain flag)."""
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame):
        if stop():  # second signal: give up on the orderly path
            raise KeyboardInterrupt
        stop.request(signum)

    previous = {sig: signal.signal(sig, handler) for sig in EXIT_CODES}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
