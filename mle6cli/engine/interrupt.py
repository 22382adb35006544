"""Orderly stops: SIGINT/SIGTERM during training finish the current step, save, and exit 130/143.

The run protocol's training strategies (`engine.strategies`) are its users:

    with graceful_stop() as stop:
        interrupted = fit(..., stop=stop)
    if interrupted:
        run.save(members)
        raise run.interrupted(stop.signal_number, where)

A second Ctrl-C while the first is being handled stops at once (KeyboardInterrupt). A second
SIGTERM changes nothing: schedulers and torchrun's agent repeat theirs (the agent sends one to
every rank when the first rank exits), and the save under way must not be cut short by it;
SIGKILL remains for stopping at once. For the same reason a process leaving the handlers on its
way out (a signal came, or `Interrupted` is raised: the peers' stop under torchrun) keeps
ignoring SIGTERM: dying in its last writes and its shutdown would turn exit 143 into a kill.
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


class _AnyOf:
    """True when any of its stops is; `signal_number`: the signal of the first that holds one, so a
    stop requested by an outer handler (a caller's own `graceful_stop`) keeps its signal."""

    def __init__(self, stops):
        self.stops = stops

    def __call__(self) -> bool:
        return any(s() for s in self.stops)

    @property
    def signal_number(self) -> int | None:
        return next((n for s in self.stops if (n := getattr(s, "signal_number", None)) is not None), None)


def any_of(*stops: Callable[[], bool] | None) -> _AnyOf:
    """One `stop` that is true when any given one is (None entries are ignored)."""
    return _AnyOf([s for s in stops if s is not None])


@contextmanager
def graceful_stop():
    """Install SIGINT/SIGTERM handlers that set a flag (main thread only; elsewhere a plain flag)."""
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame):
        if stop():
            if signum == signal.SIGINT:  # Ctrl-C again: the user gives up on the orderly path
                raise KeyboardInterrupt
            return  # SIGTERM again: the stop is under way
        stop.request(signum)

    previous = {sig: signal.signal(sig, handler) for sig in EXIT_CODES}
    leaving = False
    try:
        yield stop
    except Interrupted:
        leaving = True
        raise
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        if leaving or stop():
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
