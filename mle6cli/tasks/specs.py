"""Each training command declared once: its spec, holding its typed config.

A config's fields are the command's options, in config.json's order, each declared once with
`config.option` (default, help, bounds, flags, how it is typed, whether it is a member axis). The
command line (`commands._options.options_of`), --config, --print-config, config.json, the resume
check, the library's defaults (`train_cnn({})`) and the CLI reference page are made from them.
Plain data: no torch, no Typer (`mle6 --help` reads these).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mle6cli.engine.events import QUIET, Events
from mle6cli.engine.folder import Outputs, evaluations, exports, predictions
from mle6cli.errors import ConfigError
from mle6cli.fmt import cell, lr_label
from mle6cli.tasks import config as rules
from mle6cli.tasks.config import SEEDS_HELP, Folder, Negated, OptionsConfig, Seeds, listed, option
from mle6cli.tasks.kinds import AUTOENCODER, CLASSIFIER, LINEAR_AE, ModelKind
from mle6cli.tasks.limits import MNIST_PIXELS
from mle6cli.tasks.schema import PcaAeSummary, RunAllSummary, Summary, SweepSummary, TrainAeSummary, TrainCnnSummary

SPECS: dict[str, CommandSpec] = {}  # every training command, by name, in the order they are declared
DEVICES = ("auto", "cpu", "cuda", "mps")
DEVICE_HELP = "Where to compute: auto, cpu, cuda, cuda:N or mps (CPU threads: torch's default, or MLE6_THREADS=N)."
SYNTHETIC_HELP = "Use the built-in synthetic data instead of a dataset on disk."
NO_DOWNLOAD_HELP = "Never try to download MNIST; fail at once when it is missing."
SEED_HELP = "Random seed (default {default}); the same seed gives the same metrics."  # a command's --seed


# ---------------------------------------------------------------- the fields the commands share


def device(default: str = "auto"):
    return option(default, DEVICE_HELP, complete=DEVICES, show_default=True)


def synthetic():
    return option(False, SYNTHETIC_HELP)


def signs_dir(help: str = "Folder with X_/Y_train|val|test.npy (see prepare-signs)."):
    return option("sign_data", help, form=Folder("--data-dir"))


def mnist_dir(name: str = "--data-dir", help: str = "Folder holding MNIST/raw/ (the four IDX files, plain or .gz)."):
    return option("data", help, form=Folder(name))


def epochs(default: int):
    return option(default, "Epochs to train each model.", rules.EPOCHS)


def batch_size(default: int):
    return option(default, "Images per training step.", rules.BATCH_SIZE)


def lr(default: float = 1e-3):
    return option(default, "Adam learning rate.", rules.LR, axis=True)


WEIGHT_DECAY_HELP = "Adam's weight decay (an L2 penalty, as torch.optim.Adam's weight_decay); 0, the exercise's: none."


def weight_decay():  # runs older than the option lack it in config.json: they had none
    return option(0.0, WEIGHT_DECAY_HELP, rules.WEIGHT_DECAY, axis=True, absent_is_default=True)


def seeds(default: int):
    """--seed K (default `default`) or --seeds 0-4: config.json's `seeds`."""
    return option((default,), SEED_HELP.format(default=default), rules.SEED, form=Seeds(), axis=True)


def save_every():
    return option(
        1,
        "Save the resumable state every N epochs (0: only when stopped); a crash loses at most N epochs.",
        rules.SAVE_EVERY,
    )


def tensorboard():
    return option(
        False,
        "Also write TensorBoard event files (run folder's tensorboard/, one run per member); "
        "needs pip install 'mle6cli\\[tensorboard]'.",
    )


def deterministic():
    return option(False, "Also force torch's deterministic algorithms (matters on CUDA).")


def download():
    return option(True, NO_DOWNLOAD_HELP, form=Negated("no_download"))


# ---------------------------------------------------------------- the spec


@dataclass(frozen=True)
class RunParams:
    """How a training task runs, besides its options: where the run goes (`out`: a new folder, default
    runs/<command>/<timestamp>; `overwrite`: into a non-empty one), or the interrupted run it continues
    (`resume`, with `overrides`: the options a resumed run may change), who hears of its progress
    (`events`), and `stop()`, asked between steps (True: save resume.pt and raise `Interrupted`)."""

    out: Path | str | None = None
    overwrite: bool = False
    resume: Path | str | None = None
    overrides: dict | None = None
    events: Events = field(default_factory=lambda: QUIET)
    stop: Callable[[], bool] | None = None

    def open(self, spec: CommandSpec, options: dict, outputs: Outputs, peers=None):
        """`spec`'s run (`engine.runs.Run.open`): a new folder, or the interrupted one to resume."""
        from mle6cli.engine.runs import Run

        where = {"out": self.out, "overwrite": self.overwrite, "resume": self.resume, "overrides": self.overrides}
        may_lack = rules.may_be_absent(spec.config)
        return Run.open(spec.name, options, outputs=outputs, peers=peers, may_lack=may_lack, **where)

    @classmethod
    def of(cls, params: RunParams | None, given: dict) -> RunParams:
        """`params`, or the same from keywords (`train_cnn(options, out=..., stop=...)`)."""
        if params is not None and given:
            raise TypeError(f"give RunParams or keywords, not both ({', '.join(given)})")
        return params if params is not None else cls(**given)


@dataclass(frozen=True)
class CommandSpec:
    """A training command: its name, its config (the options), its task: `task(options, *, out,
    overwrite, resume, overrides, events, stop)`, or its name `module:function`, imported when the
    command runs (declaring the command then costs no torch import), and the kind of model it leaves
    (`tasks.kinds`; None: none that predict, evaluate and export take)."""

    name: str
    config: type
    task: str | Callable
    kind: ModelKind | None = None
    headline: Callable[[dict], str] | None = None  # `mle6 runs`' one number of a finished run's summary
    outputs: Outputs | None = None  # what its run folder holds (`engine.folder.Outputs`)
    summary: type[Summary] | None = None  # its summary.json (`tasks.schema`)

    def __post_init__(self):
        SPECS[self.name] = self  # declaring a command is registering it: runs, the schema page find it

    def run(self, options: dict, params: RunParams | None = None, **extra):
        """The task on `options` (config.json's), run as `params` says; `extra`: the task's own keywords."""
        task = self.task
        if isinstance(task, str):
            module, function = task.split(":")
            task = getattr(importlib.import_module(module), function)
        return task(options, params or RunParams(), **extra)


# ---------------------------------------------------------------- the SIGNS classifier


class _SignsConfig(OptionsConfig):
    sweep = False  # each learning rate in a folder of its own, lr_<lr>/

    def member_dir(self, key: dict) -> Path:
        """Where a member's files go: the run folder itself (train-cnn), lr_<lr>/ (a sweep), then seed_<s>/."""
        path = Path(f"lr_{lr_label(key['lr'])}") if self.sweep else Path()
        return path / f"seed_{key['seed']}" if len(self.seeds) > 1 else path

    def __post_init__(self):
        super().__post_init__()
        per_class = self.synthetic_per_class
        if per_class is not None and (len(per_class) != 3 or min(per_class) < 1):
            raise ConfigError(f"synthetic_per_class must be three positive counts, got {per_class!r}")
        if not self.synthetic and not self.data_dir:
            raise ConfigError("give a data folder or use synthetic data")


@dataclass(frozen=True)
class TrainCnnConfig(_SignsConfig):
    """Everything that determines a train-cnn run (config.json's options, resolved)."""

    data_dir: str | None = signs_dir()
    synthetic: bool = synthetic()
    lr: float = lr()
    weight_decay: float = weight_decay()
    epochs: int = epochs(50)
    batch_size: int = batch_size(64)
    seeds: tuple[int, ...] = seeds(42)
    device: str = device()
    save_every: int = save_every()
    tensorboard: bool = tensorboard()
    deterministic: bool = deterministic()
    synthetic_per_class: tuple[int, int, int] | None = None  # (train, val, test) images per class; None: standard

    @property
    def lrs(self) -> tuple[float, ...]:
        return (self.lr,)


@dataclass(frozen=True)
class SweepLrConfig(_SignsConfig):
    """Everything that determines a sweep-lr run (config.json's options, resolved)."""

    sweep = True

    data_dir: str | None = signs_dir()
    synthetic: bool = synthetic()
    lrs: tuple[float, ...] = listed(
        "1e-1,1e-3,1e-4,1e-5", "Comma-separated learning rates, one model each.", rules.LR,
        plural="learning rates", axis=True,
    )  # fmt: skip
    weight_decay: float = weight_decay()
    epochs: int = epochs(50)
    batch_size: int = batch_size(64)
    seeds: tuple[int, ...] = seeds(42)
    device: str = device()
    save_every: int = save_every()
    tensorboard: bool = tensorboard()
    deterministic: bool = deterministic()
    synthetic_per_class: tuple[int, int, int] | None = None


# what a classifier run writes: each member's files in its folder (`member_dir`), then the run's
CLASSIFIER_OUTPUTS = Outputs(
    files=("curves.png", "sweep.csv", "sweep_stats.csv", "sweep_curves.png", *evaluations()),
    member_files=("metrics.csv", "model.pt", *exports("model.pt")),
    member_folders=("", "lr_*", "lr_*/seed_*", "seed_*"),
    tensorboard=True,
)


def _test_acc(summary: dict) -> str:
    return f"test acc {cell(summary.get('test_acc'))}"


def _best_lr(summary: dict) -> str:
    return f"best lr {lr_label(summary['best_lr'])}, test acc {cell(summary.get('test_acc'))}"


TRAIN_CNN = CommandSpec(
    "train-cnn", TrainCnnConfig, "mle6cli.tasks.classifier:train_cnn", CLASSIFIER, _test_acc, CLASSIFIER_OUTPUTS,
    TrainCnnSummary,  # with several seeds: a SweepSummary
)  # fmt: skip
SWEEP_LR = CommandSpec(
    "sweep-lr", SweepLrConfig, "mle6cli.tasks.classifier:sweep_lr", CLASSIFIER, _best_lr, CLASSIFIER_OUTPUTS,
    SweepSummary,
)  # fmt: skip


# ---------------------------------------------------------------- the MNIST autoencoders


class _MnistConfig(OptionsConfig):
    def member_dir(self, key: dict) -> Path:
        """Where a member's files go: the run folder itself (one seed), else seed_<s>/."""
        return Path(f"seed_{key['seed']}") if len(self.seeds) > 1 else Path()

    def spec(self) -> dict:
        """The MNIST files (or synthetic digits) the run trains on."""
        from mle6cli.data.mnist import mnist_spec

        return mnist_spec(self.data_dir, self.synthetic, self.download)


@dataclass(frozen=True)
class AeConfig(_MnistConfig):
    """Everything that determines a train-ae run (config.json's options, resolved)."""

    data_dir: str | None = mnist_dir()
    synthetic: bool = synthetic()
    latent_dims: tuple[int, ...] = listed(
        "3,10,100,250", "Comma-separated latent sizes; one autoencoder each (1..4096).", rules.LATENT_SIZE,
        plural="latent sizes", axis=True,
    )  # fmt: skip
    # the exercise trains each autoencoder 10 epochs in batches of 128
    epochs: int = epochs(10)
    batch_size: int = batch_size(128)
    lr: float = lr()
    weight_decay: float = weight_decay()
    seeds: tuple[int, ...] = seeds(0)
    retries: int = option(2, "Restarts (with a derived seed) allowed per collapsed run.", rules.RETRIES)
    init: str = option(
        "mean",
        "Initialisation: 'mean' starts the output at the mean pixel (the collapse fix); "
        "'pytorch' is PyTorch's default, as in the exercise (collapses often).",
        rules.INIT,
        complete=rules.INIT.choices,
    )
    device: str = device()
    save_every: int = save_every()
    tensorboard: bool = tensorboard()
    deterministic: bool = deterministic()
    download: bool = download()
    ddp: bool = option(  # under torchrun: every member data-parallel over the ranks, not members split
        False,
        "Under torchrun: train each autoencoder data-parallel (DistributedDataParallel), every rank "
        "holding its share of the data, instead of splitting the autoencoders over the ranks.",
    )


@dataclass(frozen=True)
class PcaAeConfig(_MnistConfig):
    """Everything that determines a pca-ae run (config.json's options, resolved)."""

    data_dir: str | None = mnist_dir()
    synthetic: bool = synthetic()
    latent_dim: int = option(10, f"k of the linear autoencoder 784→k→784 (1..{MNIST_PIXELS}).", rules.LINEAR_LATENT_DIM)
    epochs: int = epochs(10)
    batch_size: int = batch_size(128)
    lr: float = lr()
    seeds: tuple[int, ...] = seeds(0)
    compare: str | None = option(  # a train-ae run folder
        None, "A train-ae run: compare its conv AEs with exact PCA at each of its dims.", form=Folder(unless=None)
    )
    device: str = device()
    save_every: int = save_every()
    tensorboard: bool = tensorboard()
    deterministic: bool = deterministic()
    download: bool = download()


# what a train-ae run writes: per latent size, in the run folder or one folder per seed
TRAIN_AE_OUTPUTS = Outputs(
    files=("ae_losses.png", "reconstructions.png", *predictions()),
    member_files=("metrics_d*.csv", "ae_d*.pt", *exports("ae_d*.pt")),
    member_folders=("", "seed_*"),
    tensorboard=True,
)
# what a pca-ae run writes: each seed's files in the run folder (one seed) or in seed_<s>/
PCA_AE_OUTPUTS = Outputs(
    files=("pca_ae_losses.png", "pca_ae_reconstructions.png", *predictions()),
    member_files=("metrics.csv", "linear_ae_k*.pt", *exports("linear_ae_k*.pt")),
    member_folders=("", "seed_*"),
    tensorboard=True,
)


def _test_mse(summary: dict) -> str:
    stats = summary.get("stats") or []
    return "test MSE " + ", ".join(f"d={s['latent_dim']} {cell(s['test_mse']['mean'])}" for s in stats)


def _linear_and_pca(summary: dict) -> str:
    return f"linear AE {cell(summary.get('linear_ae_test_mse'))}, PCA {cell(summary.get('pca_test_mse'))}"


TRAIN_AE = CommandSpec(
    "train-ae", AeConfig, "mle6cli.tasks.autoencoders:train_ae", AUTOENCODER, _test_mse, TRAIN_AE_OUTPUTS,
    TrainAeSummary,
)  # fmt: skip
PCA_AE = CommandSpec(
    "pca-ae", PcaAeConfig, "mle6cli.tasks.pca:pca_ae", LINEAR_AE, _linear_and_pca, PCA_AE_OUTPUTS, PcaAeSummary
)


# ---------------------------------------------------------------- the whole sheet


@dataclass(frozen=True)
class RunAllConfig(OptionsConfig):
    """Everything that determines a run-all run (config.json's options, resolved)."""

    data_dir: str | None = signs_dir("SIGNS arrays (X_/Y_train|val|test.npy).")
    mnist_dir: str | None = mnist_dir("--mnist-dir", "Folder holding MNIST/raw/.")
    synthetic: bool = synthetic()
    quick: bool = option(False, "Fewer epochs and samples: the whole sheet in a few minutes on 2 CPU cores.")
    device: str = device()
    save_every: int = save_every()
    # None: each command's own default seed (train-cnn 42, train-ae 0, …)
    seed: int | None = option(None, "One seed for every step (default: each command's own default).", rules.SEED)
    # several seeds for every step (means, CIs and bands)
    seeds: tuple[int, ...] | None = option(None, SEEDS_HELP, rules.SEED, form=Seeds(single=False))
    download: bool = download()

    @property
    def plan(self):
        from mle6cli.tasks.sheet import FULL, QUICK

        return QUICK if self.quick else FULL

    def seed_options(self) -> dict:
        """What every step shares: the seeds, and how often to save."""
        seeds = {"seeds": list(self.seeds)} if self.seeds else ({} if self.seed is None else {"seed": self.seed})
        return {**seeds, "save_every": self.save_every}


def _sheet(summary: dict) -> str:
    return _best_lr(summary["results"]["sweep_lr"])


RUN_ALL = CommandSpec("run-all", RunAllConfig, "mle6cli.tasks.sheet:run_all", headline=_sheet, summary=RunAllSummary)
