"""A study's storage, sampler and pruner: Optuna's own, chosen by the tune command's options.

The study is stored in Optuna's journal file (study.journal in the run folder by default), which several
processes may share (`--storage`), or in a database Optuna accepts. Asking trials is serialised by a lock
beside the journal or the sqlite database, so processes sharing one never ask past `--trials`; processes
sharing a database server (no file in common to lock) may ask together, and a trial asked past the
study's total is told at once as surplus, never trained nor counted.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from mle6cli.errors import Mle6Error

JOURNAL = "study.journal"
INSTALL = "mle6 tune needs Optuna: pip install 'mle6cli[tune]'"
# options a process joining a shared study may choose for itself; every other one must match the study's
OWN_CHOICES = (
    "data_dir",
    "device",
    "save_every",
    "tensorboard",
    "deterministic",
    "download",
    "trials",
    "parallel",
    "storage",
)
SURPLUS = "surplus"  # the user attr of a trial asked past the study's total, told FAIL at once
STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running", "WAITING": "waiting"}


class StorageError(Mle6Error):
    """--storage names what cannot be opened, or a study of other options: a usage error."""

    exit_code = 2


def require_optuna():
    try:
        import optuna
    except ModuleNotFoundError:
        raise Mle6Error(INSTALL) from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna


# ---------------------------------------------------------------- storage, study, sampler, pruner


def open_storage(optuna, text: str | None, folder: Path):
    """(storage, the file whose lock serialises asking) of --storage or the run's journal: the journal, a
    sqlite database's file, or None for a database server (see `surplus`)."""
    if text is not None and "://" in text:
        lock = sqlite_file(text)
        try:
            with asking(lock):  # one process at a time creates a new database's tables
                return optuna.storages.RDBStorage(text), lock
        except Exception as exc:  # the database's own error, whatever its driver; its first line (SQLAlchemy adds more)
            said = next(iter(str(exc).splitlines()), "")
            raise StorageError(f"--storage {text}: cannot open it ({type(exc).__name__}: {said})") from None
    path = check_journal(Path(text) if text is not None else folder / JOURNAL)
    try:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(str(path))), path
    except Exception as exc:  # an unreadable or foreign file
        raise StorageError(f"--storage {path}: cannot open it as a journal ({type(exc).__name__}: {exc})") from None


def sqlite_file(url: str) -> Path | None:
    """The database file of a sqlite URL, whose processes share its file system (and so a lock beside it);
    None for any other URL, or one whose folder is missing (the database says why it cannot open)."""
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
    except Exception:  # no sqlalchemy, or no URL it reads: the storage says so
        return None
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return None
    path = Path(database)
    return path if path.parent.is_dir() else None


def check_journal(path: Path) -> Path:
    """A journal file's path that can be used, checked without Optuna (before any data is read)."""
    if path.is_dir():
        raise StorageError(f"--storage {path}: is a folder; give a journal file or a database URL")
    if not path.parent.is_dir():
        raise StorageError(f"--storage {path}: the folder {path.parent} does not exist")
    return path


@contextmanager
def asking(lock: Path | None):
    """Held while counting and asking trials, so that processes sharing a journal or a sqlite database never
    ask past --trials."""
    if lock is None:
        yield
        return
    from mle6cli.files import file_locks

    fcntl = file_locks()
    with open(f"{lock}.ask", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def surplus(trials: list, number: int, total: int) -> bool:
    """Whether trial `number` was asked past the study's `total`: without a lock, processes may count the same
    trials and ask together. The storage numbers trials in the order they were asked, so the trials before
    it, less those already found surplus, are its place in the study."""
    return sum(t.number < number and not t.user_attrs.get(SURPLUS) for t in trials) >= total


def make_pruner(optuna, name: str, epochs: int):
    pruners = optuna.pruners
    if name == "sha":
        # rungs at 1, 4, 16, ... epochs from the start: 'auto' (Optuna's default) prunes nothing before a
        # first trial completes, which leaves a whole fused round of --parallel trials unpruned
        return pruners.SuccessiveHalvingPruner(min_resource=1)
    if name == "hyperband":
        return pruners.HyperbandPruner(min_resource=1, max_resource=epochs)
    if name == "median":
        return pruners.MedianPruner()
    return pruners.NopPruner()


def make_sampler(optuna, config, asked: int):
    """The sampler of one trial, seeded by --seed and the trials asked before it (a resumed study draws the same)."""
    seed = (config.seeds[0] * 1_000_003 + asked) % 2**32
    if config.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if config.sampler == "grid":

        class Grid(optuna.samplers.GridSampler):
            def after_trial(self, study, trial, state, values) -> None:
                """Nothing: the study asks no more than the grid's size; the grid's study.stop() is for
                study.optimize and raises under ask-and-tell."""

        # one shuffle of the grid for the whole study: trial n takes its n-th point
        return Grid({d.axis.key: d.grid() for d in config.dimensions}, seed=config.seeds[0])
    return optuna.samplers.TPESampler(seed=seed, constant_liar=config.parallel > 1)


def study_identity(target, config) -> dict:
    """What every process of one study must share: the command and its resolved options but its own choices."""
    import json

    from mle6cli.files import dumps
    from mle6cli.tasks.config import options_of

    options = {f.name: getattr(config, f.name) for f in options_of(type(config)) if f.name not in OWN_CHOICES}
    return {"command": target.command, **json.loads(dumps(options))}


def open_study(optuna, storage, target, config, where: str):
    study = optuna.create_study(
        storage=storage,
        study_name=f"mle6-{target.name}",
        direction=target.direction,
        load_if_exists=True,
        pruner=make_pruner(optuna, config.pruner, config.epochs),
    )
    identity = study_identity(target, config)
    saved = study.user_attrs.get("mle6")
    if saved is None:
        study.set_user_attr("mle6", identity)
    elif saved != identity:
        differ = sorted(k for k in set(saved) | set(identity) if saved.get(k) != identity.get(k))
        raise StorageError(
            f"--storage {where}: its study was started with other options ({', '.join(differ)} differ); "
            "give the same ones, or another storage"
        )
    return study
