"""A drawing process started before torch is imported, and its end (`shutdown`, called on the way out).

pyplot costs about half a second to import. A training command spends its first two seconds
importing torch on one core, so a command that draws in the background calls `start()` first: a
pool of one process, forked before torch's threads exist, imports pyplot on the other core
meanwhile, then draws the figures `in_background` submits. Their arguments must be plain data
(lists, dicts, numbers, strings, paths): unpickling a tensor would import torch there.

Importing this module costs nothing (no matplotlib, no torch): the CLI imports it to end the pool.
"""

from __future__ import annotations

import os

_pool: dict = {}  # "executor", "owner": the process that started it


def start() -> bool:
    """Start the drawing process (POSIX only, and only while torch is not imported: forking a
    process with torch's threads running is unsafe). Returns whether one runs."""
    import sys

    if _pool or "torch" in sys.modules or not hasattr(os, "fork"):
        return bool(_pool)
    import atexit
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("fork")
    executor = ProcessPoolExecutor(1, mp_context=context, initializer=_start_drawing, initargs=(os.getpid(),))
    executor.submit(int)  # a fork pool starts its process at the first task: now, before torch
    _pool.update(executor=executor, owner=os.getpid())
    # A caller of `cli.app` (not `main`) never calls shutdown: left to Python's teardown, the pool
    # can outlive concurrent.futures' module and print a traceback on stderr after the command's line.
    atexit.register(shutdown)
    return True


def shutdown() -> None:
    """End the drawing process, once this process draws no more (nothing to do when none was started)."""
    executor = _pool.pop("executor", None)
    if executor is not None and _pool.pop("owner") == os.getpid():
        executor.shutdown(cancel_futures=True)


def _start_drawing(parent: int) -> None:
    import signal
    import threading
    import time

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle

    def orphaned() -> None:  # a parent killed outright cannot end the pool: end with it
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=orphaned, daemon=True).start()
    try:
        from mle6cli.plots import pyplot

        pyplot()
    except Exception:  # the same error is met again, and reported, on the first figure
        pass


def in_background(figure, *args, **kwargs):
    """Start `figure(*args, **kwargs)` and return a function that waits for its path (raising its
    error). In the drawing process, this process goes on meanwhile; without one (or if it has
    died), the figure is drawn here."""
    from concurrent.futures.process import BrokenProcessPool

    from mle6cli.errors import Mle6Error
    from mle6cli.plots import PlotError

    executor = _pool.get("executor")
    if executor is not None and _pool["owner"] == os.getpid():
        try:
            future = executor.submit(figure, *args, **kwargs)
        except (BrokenProcessPool, RuntimeError):  # it died, or was shut down
            future = None
        if future is not None:

            def wait():
                try:
                    return future.result()
                except BrokenProcessPool:  # it died: draw here
                    return figure(*args, **kwargs)
                except Mle6Error:
                    raise
                except Exception as exc:
                    raise PlotError(f"{type(exc).__name__}: {exc}") from None

            return wait
    path = figure(*args, **kwargs)
    return lambda: path
