"""How core code reports progress without printing: the CLI hands in its own `Events`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


def _ignore(*args, **kwargs) -> None:
    return None


@dataclass
class Events:
    """Callbacks a job calls; every one is optional.

    - `start(total, description)`: `total` epochs (over every member) are about to run;
    - `epoch(member, epoch, epochs, done, metrics)`: `member` (its label; "" when the run trains one)
      finished epoch `epoch` of its `epochs`, with its metrics; `done` of `total` epochs are done;
    - `note(text)`: something a person should read (synthetic data, a restart, resuming);
    - `section(name)`: run-all begins a part of the sheet.
    """

    start: Callable[[int, str], None] = _ignore
    epoch: Callable[[str, int, int, int, dict], None] = _ignore
    note: Callable[[str], None] = _ignore
    section: Callable[[str], None] = _ignore


QUIET = Events()
