"""Training the exercise's convolutional autoencoder at several latent sizes, without collapse.

The fix and the safety net are in `tasks.collapse` (the output bias at the mean pixel; after every
epoch `check_collapse`, and a collapsed member restarts with a derived seed, `jobs.Restarts`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from mle6cli.data.splits import ShardedSplit, Split, as_float
from mle6cli.engine.members import RECONSTRUCT
from mle6cli.engine.runs import Member, Run
from mle6cli.errors import Mle6Error
from mle6cli.models import ConvAutoencoder
from mle6cli.tasks.collapse import (  # noqa: F401 (the collapse's names, here too)
    MIN_OUTPUT_STD,
    RETRY_SEED_STRIDE,
    TRIVIAL_FRACTION,
    CollapseCheck,
    Levels,
    attempt_seed,
    build_autoencoder,
    check_collapse,
    collapse_levels,
    init_output_bias,
    mean_intensity,
)
from mle6cli.tasks.jobs import Restarts
from mle6cli.tasks.kinds import AUTOENCODER
from mle6cli.tasks.schema import TrainAeSummary, write
from mle6cli.tasks.specs import TRAIN_AE, AeConfig, RunParams

METRICS_HEADER = RECONSTRUCT.header(["test"])  # epoch, train_loss, test_loss


class TrainingFailed(Mle6Error):
    """Some latent size ended collapsed or diverged (after every allowed restart)."""


# ---------------------------------------------------------------- checkpoints


def save_checkpoint(run: Run, relative: Path, weights: dict, meta: dict) -> Path:
    return run.save_torch(relative, AUTOENCODER.payload(weights, **meta))


def load_autoencoder(path: Path, device=None) -> tuple[ConvAutoencoder, dict]:
    """A ConvAutoencoder from an `ae_d{D}.pt` checkpoint, with the checkpoint's metadata."""
    return AUTOENCODER.load(path, device or torch.device("cpu"))


# ---------------------------------------------------------------- results


@dataclass
class DimResult:
    latent_dim: int
    seed: int  # the member's seed, as asked
    train_seed: int  # of the attempt that produced the final model
    history: list[dict]
    status: str  # completed | collapsed | diverged
    collapsed: bool
    retries: int  # restarts after a collapse
    final_test_mse: float | None
    attempts: list[dict]  # one record per try: seed, epochs, final test MSE, collapse reason
    diverged_epoch: int | None = None
    checkpoint: str | None = None
    metrics: str | None = None

    def to_dict(self) -> dict:
        return {
            "latent_dim": self.latent_dim,
            "seed": self.seed,
            "train_seed": self.train_seed,
            "status": self.status,
            "collapsed": self.collapsed,
            "retries": self.retries,
            "final_test_mse": self.final_test_mse,
            "diverged_epoch": self.diverged_epoch,
            "checkpoint": self.checkpoint,
            "metrics": self.metrics,
            "train_loss": [row["train_loss"] for row in self.history],
            "test_loss": [row["test_loss"] for row in self.history],
            "attempts": self.attempts,
            "history": self.history,
        }

    @classmethod
    def from_dict(cls, data: dict) -> DimResult:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class AeResult:
    config: AeConfig
    runs: list[DimResult]
    run_dir: Path
    data: dict
    levels: Levels
    figures: dict[str, str]
    train_seconds: float = 0.0
    resumed: int = 0

    @property
    def failed(self) -> list[DimResult]:
        return [r for r in self.runs if r.status != "completed"]

    @property
    def trivial_test_mse(self) -> float:
        return self.levels.all_black

    def stats(self) -> list[dict]:
        """Per latent size over its seeds: the final test MSE of the runs that trained (mean, std, 95%
        CI) and how many collapsed or diverged."""
        from mle6cli.tasks.stats import estimate

        out = []
        for d in self.config.latent_dims:
            mine = [r for r in self.runs if r.latent_dim == d]
            done = [r.final_test_mse for r in mine if r.status == "completed"]
            out.append(
                {
                    "latent_dim": d,
                    "seeds": len(mine),
                    "collapsed": sum(r.collapsed for r in mine),
                    "diverged": sum(r.status == "diverged" for r in mine),
                    "restarts": sum(r.retries for r in mine),
                    "test_mse": estimate(done).to_dict(),
                }
            )
        return out

    def to_json(self) -> dict:
        """The `--json` document of train-ae."""
        return {
            "runs": [
                {
                    k: v
                    for k, v in r.to_dict().items()
                    if k not in ("history", "attempts", "checkpoint", "metrics", "diverged_epoch")
                }
                for r in self.runs
            ],
            "run_dir": str(self.run_dir),
            "synthetic": self.data["synthetic"],
            "trivial_test_mse": self.levels.all_black,
            "mean_image_test_mse": self.levels.mean_image,
            "epochs": self.config.epochs,
            "seeds": list(self.config.seeds),
            "stats": self.stats(),
            "train_seconds": self.train_seconds,
            "status": "failed" if self.failed else "completed",
        }

    def summary(self) -> TrainAeSummary:
        return TrainAeSummary(
            command=TRAIN_AE.name,
            status="failed" if self.failed else "completed",
            data=self.data,
            synthetic=self.data["synthetic"],
            epochs=self.config.epochs,
            seeds=list(self.config.seeds),
            trivial_test_mse=self.levels.all_black,
            mean_image_test_mse=self.levels.mean_image,
            runs=[r.to_dict() for r in self.runs],
            stats=self.stats(),
            figures=self.figures,
            train_seconds=self.train_seconds,
            resumed=self.resumed,
            run_dir=str(self.run_dir),
        )


# ---------------------------------------------------------------- the job


def member_files(config: AeConfig, key: dict) -> tuple[Path, Path]:
    """(metrics csv, checkpoint) of a member, relative to the run folder."""
    folder = config.member_dir(key)
    return folder / f"metrics_d{key['latent_dim']}.csv", folder / f"ae_d{key['latent_dim']}.pt"


def train_ae(options: dict, params: RunParams | None = None, *, data=None, **given) -> AeResult | None:
    """train-ae: one ConvAutoencoder per latent size and seed (Adam, MSE), with collapse detection and
    restarts; writes the run folder and returns an AeResult. `params` (or its keywords): how it runs,
    `RunParams`; `data` may pass MNIST already open."""
    from mle6cli.data.mnist import open_mnist
    from mle6cli.engine.distributed import launched
    from mle6cli.tasks.jobs import EpochLog, open_job

    def load(config: AeConfig, device):  # data-parallel ranks keep only their share on the device
        return open_mnist(config.spec(), "cpu" if config.ddp and launched() else device)

    params = RunParams.of(params, given)
    events = params.events
    job = open_job(
        TRAIN_AE,
        options,
        load,
        params,
        data=data,
        members=lambda config: None if config.ddp else len(config.latent_dims) * len(config.seeds),
    )
    with job.run:
        run, config, device, data = job.run, job.config, job.device, job.data
        peers = run.peers if config.ddp else None
        if config.ddp and peers is None:
            events.note("Note: --ddp without torchrun: one process trains on all the data.")
        levels = collapse_levels(data.train_x, data.test_x)
        mean_pixel = mean_intensity(data.train_x) if config.init == "mean" else None
        train_split, test_split = _splits(data, peers, device)
        several = len(config.seeds) > 1
        keys = [{"latent_dim": d, "seed": s} for d in config.latent_dims for s in config.seeds]
        members = run.members(keys, extra=asdict(Restarts()))

        def label(m: Member) -> str:
            text = f"d={m.key['latent_dim']}" + (f" seed {m.key['seed']}" if several else "")
            attempt = Restarts.of(m).attempt
            return text + (f" retry {attempt}" if attempt else "")

        def metrics_file(m: Member) -> Path:
            return member_files(config, m.key)[0]

        log = EpochLog(job, members, METRICS_HEADER, metrics_file, label, METRICS_HEADER[1:])

        def check(group: list[Member], rows: list[dict | None], backend) -> list[int]:
            retire = []
            for j, (m, row) in enumerate(zip(group, rows, strict=True)):
                if row is None:
                    continue
                verdict = check_collapse(backend.models[j], test_split, row["test_loss"], levels)
                restarts = Restarts.of(m)
                restarts.collapse = verdict.reason  # None: healthy
                restarts.keep(m)
                # a saturated sigmoid does not recover: give up at once while a restart is left
                if verdict.collapsed and restarts.attempt < config.retries:
                    retire.append(j)
            return retire

        build = _builder(config, device, mean_pixel, peers)
        while True:
            writer = job.train(members, build, train_split, {"test": test_split}, log, check=check, shard=peers is None)
            restarted = [m for m in members if _restart_if_collapsed(m, config, events, label)]
            if not restarted:
                break

        log.close()
        if not writer:
            return None
        results = [_finish_member(run, config, m, data.describe()) for m in members]
        figures = _figures(results, run, data, levels, device)
        result = AeResult(
            config, results, run.path, data.describe(), levels, figures, run.clock.seconds(), run.clock.resumes
        )
        write(run, result.summary())
        return result


def _splits(data, peers, device) -> tuple:
    """(train, test) splits: under torchrun data-parallel (`peers`) each rank trains on its share."""
    if peers is None:
        return data.train_split(), data.test_split()
    # every rank tests on all of it: the same numbers
    return ShardedSplit.of(data.train_x, peers.rank, peers.world, device), Split(data.test_x.to(device))


def _builder(config: AeConfig, device, mean_pixel: float | None, peers):
    """`build(group)`: the members' autoencoders, each from its try's seed, trained side by side (or
    data-parallel over the ranks of `peers`)."""

    def build(group: list[Member]):
        from mle6cli.engine.members import ModuleMembers

        models = [build_autoencoder(m.key["latent_dim"], m.state.seed, device, mean_pixel) for m in group]
        lrs, weight_decays = [config.lr] * len(group), [config.weight_decay] * len(group)
        if peers is not None:
            from mle6cli.engine.ddp import DataParallelMembers

            ranks = {"group": peers.device_group, "world": peers.world, "rank": peers.rank}
            return DataParallelMembers(models, lrs, RECONSTRUCT, weight_decays=weight_decays, **ranks)
        return ModuleMembers(models, lrs, RECONSTRUCT, weight_decays)

    return build


def _attempt_record(m: Member, status: str, reason: str | None) -> dict:
    history = m.state.history
    return {
        "seed": m.state.seed,
        "epochs": len(history),
        "final_test_mse": history[-1]["test_loss"] if history else None,
        "status": status,
        "reason": reason,
    }


def _restart_if_collapsed(m: Member, config: AeConfig, events, label) -> bool:
    """A member retired as collapsed starts again with the next derived seed; True if it did."""
    from mle6cli.engine.loop import MemberState

    if m.state.status != "stopped":
        return False
    restarts = Restarts.of(m)
    reason = restarts.collapse or "collapsed"
    events.note(f"Note: {label(m)} collapsed with seed {m.state.seed} ({reason}); restarted.")
    restarts.attempts.append(_attempt_record(m, "collapsed", reason))
    restarts.epochs_before += len(m.state.history)
    restarts.attempt += 1
    restarts.collapse = None
    restarts.keep(m)
    m.state = MemberState(seed=attempt_seed(m.key["seed"], restarts.attempt))
    m.weights = m.optimizer = None
    return True


def _finish_member(run: Run, config: AeConfig, m: Member, data_info: dict) -> DimResult:
    s, restarts = m.state, Restarts.of(m)
    metrics_file, checkpoint_file = member_files(config, m.key)
    history = s.history
    run.write_csv(metrics_file, METRICS_HEADER, history)
    if s.status == "diverged":
        status, collapsed, reason = "diverged", False, f"non-finite loss in epoch {s.diverged_epoch}"
    elif restarts.collapse:
        status, collapsed, reason = "collapsed", True, restarts.collapse
    else:
        status, collapsed, reason = "completed", False, None
    attempts = list(restarts.attempts) + [_attempt_record(m, status, reason)]
    final = history[-1]["test_loss"] if history else None
    result = DimResult(
        latent_dim=m.key["latent_dim"],
        seed=m.key["seed"],
        train_seed=s.seed,
        history=history,
        status=status,
        collapsed=collapsed,
        retries=restarts.attempt,
        final_test_mse=final if status != "diverged" else None,
        attempts=attempts,
        diverged_epoch=s.diverged_epoch,
        metrics=str(metrics_file),
    )
    if status != "diverged":
        meta = {
            "latent_dim": m.key["latent_dim"],
            "seed": m.key["seed"],
            "train_seed": s.seed,
            "collapsed": collapsed,
            "final_test_mse": final,
            "data": data_info,
        }
        result.checkpoint = str(save_checkpoint(run, checkpoint_file, m.weights, meta).relative_to(run.path))
    return result


def _figures(results: list[DimResult], run: Run, data, levels: Levels, device) -> dict[str, str]:
    from mle6cli import plots

    figures = {"losses": plots.ae_losses_figure(results, levels, run.output("ae_losses.png"), data.synthetic).name}
    index = example_indices(data.test_y)
    originals = as_float(data.test_x[index].to(device))  # (k, 1, 28, 28)
    rows = []
    for r in results:
        if r.checkpoint is None or r.seed != results[0].seed:
            continue  # one reconstruction row per latent size: the first seed's
        model, _ = load_autoencoder(run.path / r.checkpoint, device)
        with torch.no_grad():
            rows.append((r, model(originals).cpu()))
    figures["reconstructions"] = plots.reconstructions_figure(
        originals.cpu(), rows, run.output("reconstructions.png"), data.synthetic
    ).name
    return figures


def example_indices(labels: torch.Tensor, per_figure: int = 10) -> torch.Tensor:
    """The first test image of each digit (then the next ones), so the figure shows every class."""
    labels = labels.cpu()
    picked = []
    for digit in range(10):
        hits = (labels == digit).nonzero().flatten()
        if len(hits):
            picked.append(int(hits[0]))
    for i in range(len(labels)):
        if len(picked) >= per_figure:
            break
        if i not in picked:
            picked.append(i)
    return torch.tensor(sorted(picked[:per_figure], key=lambda i: (int(labels[i]), i)))
