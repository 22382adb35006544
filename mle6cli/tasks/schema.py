"""summary.json, typed: one dataclass per kind of finished run, written and read back through this module.

A run's summary.json is written last (`Run.finish`); people who script against mle6 read it, and so do
`mle6 runs`, run-all's report and the finder of trained models. Its keys are the fields below, in
their order, led by `schema_version`; a field whose value is `ABSENT` is left out (an optional part:
pca-ae's `compare`). `Run.finish` adds what only the run knows (`train_seconds` when not given,
`resumed`, `graphs`, `run_dir`). `docs/gen_pages.py` makes the reference page from these classes.

Nested entries (a sweep's `runs`, `stats`) are JSON objects described in their field's `doc`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

SCHEMA_VERSION = 1  # raised when a key changes meaning or goes; new keys keep it


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT = _Absent()  # a key the summary does not hold


def key(doc: str):
    """A summary.json key and what it holds (`doc`, for the reference page). Unset: ABSENT (`Run.finish`
    fills the run's own: train_seconds, resumed, graphs, run_dir)."""
    return field(default=ABSENT, metadata={"doc": doc})


def optional(doc: str):
    """A key only some runs hold."""
    return field(default=ABSENT, metadata={"doc": doc, "optional": True})


# the keys every training run's summary ends with (Run.finish fills what the task left out)
TRAIN_SECONDS = "seconds spent training (resumed runs: every attempt's)"
RESUMED = "how often the run was resumed"
GRAPHS = "whether every training step ran as a replayed CUDA graph"
RUN_DIR = "the run folder"


class Summary:
    """What every summary class shares: writing, reading, and its description."""

    def to_json(self) -> dict:
        """The document to write: `schema_version`, then every field that is not ABSENT, in order."""
        doc = {"schema_version": SCHEMA_VERSION}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not ABSENT:
                doc[f.name] = value
        return doc

    @classmethod
    def from_json(cls, doc: dict):
        """The summary a document holds (keys this version does not know are ignored; missing ones: ABSENT)."""
        return cls(**{f.name: doc.get(f.name, ABSENT) for f in fields(cls)})

    def __getitem__(self, name: str):
        value = getattr(self, name, ABSENT) if name in self.keys() else ABSENT
        if value is ABSENT:
            raise KeyError(name)
        return value

    def __len__(self) -> int:
        return len(self.keys())

    def keys(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name) is not ABSENT]

    def get(self, name: str, default=None):
        """A key's value, or `default` when the summary does not hold it."""
        value = getattr(self, name, ABSENT)
        return default if value is ABSENT or value is None else value


@dataclass
class TrainCnnSummary(Summary):
    """train-cnn with one seed: the exercise's single run."""

    command: str = key("train-cnn")
    epochs: int = key("epochs trained")
    batch_size: int = key("images per step")
    seeds: list[int] = key("the seeds (one)")
    device: str = key("where it trained")
    synthetic: bool = key("whether it trained on the built-in synthetic data")
    data: str = key("the data folder, or `synthetic`")
    train_seconds: float = key(TRAIN_SECONDS)
    lr: float = key("the learning rate")
    seed: int = key("the seed")
    final: dict = key("the last epoch's metrics: epoch, train_loss, train_acc, val_loss, val_acc")
    test_loss: float = key("mean NLL loss on the test split")
    test_acc: float = key("accuracy on the test split")
    resumed: int = key(RESUMED)
    graphs: bool = key(GRAPHS)
    run_dir: str = key(RUN_DIR)


@dataclass
class SweepSummary(Summary):
    """sweep-lr, and train-cnn with several seeds: every (learning rate, seed) member, and the statistics."""

    command: str = key("sweep-lr (or train-cnn with several seeds)")
    epochs: int = key("epochs each member trained")
    batch_size: int = key("images per step")
    seeds: list[int] = key("the seeds")
    device: str = key("where it trained")
    synthetic: bool = key("whether it trained on the built-in synthetic data")
    data: str = key("the data folder, or `synthetic`")
    train_seconds: float = key(TRAIN_SECONDS)
    lrs: list[float] = key("the learning rates")
    seed: int = key("the first seed")
    runs: list[dict] = key(
        "one object per member: lr, seed, status (completed | diverged), diverged, diverged_epoch, epochs_done, "
        "final (the last epoch's metrics), test_loss, test_acc, metrics (its metrics.csv)"
    )
    best_lr: float = key("the learning rate with the best mean final validation accuracy")
    best_val_acc: float = key("its mean final validation accuracy")
    best_val_loss: float = key("its mean final validation loss")
    test_acc: float = key("its mean test accuracy")
    test_loss: float = key("its mean test loss")
    val_test_gap: float = key("|best_val_acc - test_acc|")
    stats: dict = key(
        "level (0.95); configs: per learning rate, seeds, diverged and mean, std, ci_low, ci_high of val_acc, "
        "test_acc, val_loss, test_loss, train_loss; best_lr; runner_up_lr; comparison (the best against the "
        "runner-up, paired by seed; null with one learning rate)"
    )
    resumed: int = key(RESUMED)
    graphs: bool = key(GRAPHS)
    run_dir: str = key(RUN_DIR)


@dataclass
class TrainAeSummary(Summary):
    """train-ae: one conv autoencoder per latent size and seed."""

    command: str = key("train-ae")
    status: str = key("completed, or failed when a latent size ended collapsed or diverged")
    data: dict = key("the data: synthetic, n_train, n_test and where it came from")
    synthetic: bool = key("whether it trained on the built-in synthetic data")
    epochs: int = key("epochs each autoencoder trained")
    seeds: list[int] = key("the seeds")
    trivial_test_mse: float = key("the test MSE of an all-black output (a collapsed model's)")
    mean_image_test_mse: float = key("the test MSE of the mean training image")
    runs: list[dict] = key(
        "one object per member: latent_dim, seed, train_seed, status (completed | collapsed | diverged), "
        "collapsed, retries, final_test_mse, diverged_epoch, checkpoint, metrics, train_loss and test_loss "
        "per epoch, attempts (one per try: seed, epochs, final_test_mse, status, reason), history"
    )
    stats: list[dict] = key(
        "per latent size: latent_dim, seeds, collapsed, diverged, restarts, test_mse (mean, std, ci_low, ci_high)"
    )
    figures: dict = key("the figures' file names: losses, reconstructions")
    train_seconds: float = key(TRAIN_SECONDS)
    resumed: int = key(RESUMED)
    run_dir: str = key(RUN_DIR)
    graphs: bool = key(GRAPHS)


@dataclass
class PcaAeSummary(Summary):
    """pca-ae: the linear autoencoder against its exact optimum (and a train-ae run's conv AEs)."""

    command: str = key("pca-ae")
    status: str = key("completed")
    data: dict = key("the data: synthetic, n_train, n_test and where it came from")
    latent_dim: int = key("k")
    epochs: int = key("epochs trained")
    train_loss: list[float] = key("the first seed's training MSE per epoch")
    test_loss: list[float] = key("the first seed's test MSE per epoch")
    linear_ae_test_mse: float = key("the linear autoencoder's final test MSE (the seeds' mean)")
    pca_test_mse: float = key("the exact optimum's test MSE (projection on the top-k singular subspace)")
    ratio: float = key("linear_ae_test_mse / pca_test_mse")
    principal_angles_deg: list[float] = key("the first seed's decoder against the top-k subspace, in degrees")
    run_dir: str = key(RUN_DIR)
    synthetic: bool = key("whether it trained on the built-in synthetic data")
    seeds: list[dict] = optional("with several seeds: per seed, seed, linear_ae_test_mse, principal_angles_deg")
    stats: dict = optional("with several seeds: linear_ae_test_mse's mean, std, ci_low, ci_high")
    compare: list[dict] = optional(
        "with --compare: per latent size of the train-ae run, epochs, conv_ae_test_mse, conv_ae_std, seeds, "
        "pca_test_mse, better, conv_over_pca, conv_ae_collapsed"
    )
    verdict: str = optional("with --compare: what the comparison shows")
    pca_train_mse: float = key("the exact optimum's training MSE")
    history: list[dict] = key("the first seed's metrics per epoch")
    figures: dict = key("the figures' file names: losses, reconstructions")
    train_seconds: float = key(TRAIN_SECONDS)
    resumed: int = key(RESUMED)
    graphs: bool = key(GRAPHS)


@dataclass
class RunAllSummary(Summary):
    """run-all: every part of the sheet; each training step's own summary is in `results` and its folder."""

    command: str = key("run-all")
    quick: bool = key("whether it ran with --quick")
    device: str = key("where it trained")
    synthetic: dict = key("signs, mnist: whether each was the built-in synthetic data")
    data: dict = key("signs: the SIGNS folder; mnist: where MNIST came from")
    seconds: float = key("seconds the whole sheet took")
    graphs: bool = key("whether every training step's steps ran as replayed CUDA graphs")
    results: dict = key(
        "conv_size, gauss_conv, summary_cnn, sweep_lr (sweep-lr's summary), confusion, train_ae (train-ae's), "
        "latent_plot, pca_ae (pca-ae's)"
    )
    report_html: str = key("the HTML report")
    report_md: str = key("the Markdown report")
    train_seconds: float = key(TRAIN_SECONDS)
    resumed: int = key(RESUMED)
    run_dir: str = key(RUN_DIR)


def summary_type(doc: dict) -> type[Summary] | None:
    """The class of a summary document: by its command (train-cnn with several seeds writes a sweep's)."""
    from mle6cli.tasks.specs import SPECS

    spec = SPECS.get(doc.get("command")) if isinstance(doc, dict) else None
    if spec is None or spec.summary is None:
        return None
    return SweepSummary if "stats" in doc and spec.summary is TrainCnnSummary else spec.summary


def read(source: Path | dict) -> Summary | None:
    """A summary.json (a run folder's, a path, or the document) as its class; None when no known command's."""
    if not isinstance(source, dict):
        from mle6cli.files import read_json

        path = Path(source)
        source = read_json(path / "summary.json" if path.is_dir() else path)
    kind = summary_type(source)
    return None if kind is None else kind.from_json(source)


def write(run, summary: Summary) -> dict:
    """Finish `run` with `summary`: summary.json written last (Run.finish); returns the document."""
    return run.finish(summary.to_json())


# the package's summaries, as the reference page lists them
SUMMARIES = (TrainCnnSummary, SweepSummary, TrainAeSummary, PcaAeSummary, RunAllSummary)


def describe(summary_class: type[Summary]) -> list[tuple[str, str, str]]:
    """(key, JSON type, what it holds) of every key, `schema_version` first: the reference page's rows."""
    import typing

    hints = typing.get_type_hints(summary_class)
    rows = [("schema_version", "integer", f"the layout of this file ({SCHEMA_VERSION})")]
    for f in fields(summary_class):
        optional_key = f.metadata.get("optional", False)
        rows.append((f.name, json_type(hints[f.name]), ("optional: " if optional_key else "") + f.metadata["doc"]))
    return rows


JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "object", list: "array"}


def json_type(hint) -> str:
    """A field's type as JSON names it: `list[int]` -> 'array of integer'."""
    import typing

    args = typing.get_args(hint)
    origin = typing.get_origin(hint) or hint
    if origin is list and args:
        return f"array of {json_type(args[0])}"
    return JSON_TYPES.get(origin, str(hint))
