"""The SIGNS classifier: the exercise's CNN trained once (`train_cnn`) or once per learning rate (`sweep_lr`).

Both are one job: every (learning rate, seed) pair is a member of one fused model
(`engine.fused`), trained by the one loop through the run protocol (`engine.runs.Run`), so
train-cnn is a one-member sweep and "a sweep member equals train-cnn" holds by construction.
Every member starts from the weights its seed draws and sees the batch order its seed draws,
exactly as a single run with that seed would.

Run folder of train-cnn: config.json, metrics.csv, curves.png, model.pt, summary.json (last); with
several seeds (`--seeds`), seed_<s>/metrics.csv and seed_<s>/model.pt per seed, and sweep.csv,
sweep_stats.csv and curves.png (their mean and band) beside them.
Run folder of sweep-lr: config.json, lr_<lr>/metrics.csv and lr_<lr>/model.pt per learning rate
(lr_<lr>/seed_<s>/ with several seeds), sweep.csv, sweep_stats.csv, sweep_curves.png, summary.json
(last). An interrupted run holds resume.pt instead of summary.json. `OUTPUTS` declares them all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from mle6cli import drawing, plots
from mle6cli.data.signs import STANDARD_PER_CLASS, SignsData
from mle6cli.engine.members import CLASSIFY
from mle6cli.engine.runs import Member
from mle6cli.errors import Mle6Error
from mle6cli.fmt import lr_label, plural
from mle6cli.tasks.kinds import CLASSIFIER
from mle6cli.tasks.schema import SweepSummary, TrainCnnSummary, write
from mle6cli.tasks.specs import SWEEP_LR, TRAIN_CNN, RunParams, SweepLrConfig, TrainCnnConfig

METRICS_HEADER = CLASSIFY.header(["val"])  # epoch, train_loss, train_acc, val_loss, val_acc
SWEEP_HEADER = ["lr", "seed", "status", "epochs_done", *METRICS_HEADER[1:], "test_loss", "test_acc"]
SYNTHETIC_SEED = 0  # the synthetic dataset is one fixed dataset, whatever the training seed
DEFAULT_SEED = 42


class TrainingDiverged(Mle6Error):
    """The training loss became NaN or infinite."""


def load_data(config: TrainCnnConfig | SweepLrConfig, device) -> SignsData:
    """The dataset a config names: the npy folder, or the built-in synthetic set."""
    from mle6cli.data.signs import load_signs
    from mle6cli.data.synthetic import synthetic_signs

    if config.synthetic:
        per_class = config.synthetic_per_class or STANDARD_PER_CLASS
        return synthetic_signs(device, seed=SYNTHETIC_SEED, per_class=per_class)
    return load_signs(config.data_dir, device)


def initial_model(seed: int, device="cpu"):
    """The CNN with weights drawn from `seed` alone, on the CPU (so every device starts from the same
    weights); the global RNG is left untouched."""
    import torch

    from mle6cli.models import CNNClassifier

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CNNClassifier()
    return model.to(device)


def load_classifier(path: Path | str, device="cpu"):
    """Load a trained classifier from a run's model.pt (or from the run folder holding it).

    Returns `(model, config)`: the CNN in eval mode on `device`, and the run's options
    (`lr`, `epochs`, `seed`, …). The model maps (B, 3, 64, 64) floats in [0, 1] to
    log-probabilities of the six classes.
    """
    path = Path(path)
    model, payload = CLASSIFIER.load(path / "model.pt" if path.is_dir() else path, device)
    config = payload.get("config", {})
    return model, config if isinstance(config, dict) else {}


# ---------------------------------------------------------------- the job


def train_cnn(options: dict, params: RunParams | None = None, **given) -> dict | None:
    """train-cnn: the CNN with Adam and NLL loss, tested once at the end; returns the summary.

    `options` are the command's (`lr`, `epochs`, `batch_size`, `seed`, `device`, `deterministic`,
    `data_dir`, `synthetic`; `TrainCnnConfig`); `params` (or its keywords: out, overwrite, resume,
    overrides, events, stop) say how it runs, `RunParams`; with `resume` the saved options are used
    instead. SIGINT/SIGTERM (or `stop()`) save resume.pt and raise `Interrupted`; a NaN/infinite loss
    raises `TrainingDiverged`.
    """
    return _classify(TRAIN_CNN, options, RunParams.of(params, given))


def sweep_lr(options: dict, params: RunParams | None = None, **given) -> dict | None:
    """sweep-lr: one CNN per learning rate (same initial weights, same batches); the best by val accuracy.

    A member that diverges is marked and the others go on. Returns the summary. `params`: as train_cnn's.
    """
    return _classify(SWEEP_LR, options, RunParams.of(params, given))


def _classify(spec, options: dict, params: RunParams) -> dict | None:
    from mle6cli.engine.fused import FusedCNNMembers
    from mle6cli.tasks.jobs import EpochLog, open_job

    sweep = spec.config.sweep
    job = open_job(spec, options, load_data, params, members=lambda config: len(config.lrs) * len(config.seeds))
    with job.run:
        config, run = job.config, job.run
        members = run.members([{"lr": lr, "seed": seed} for lr in config.lrs for seed in config.seeds])
        several_seeds = len(config.seeds) > 1

        def folder(m: Member) -> Path:
            return config.member_dir(m.key)

        def label(m: Member) -> str:
            parts = [f"lr {lr_label(m.key['lr'])}"] if sweep else []
            return " ".join(parts + ([f"seed {m.key['seed']}"] if several_seeds else []))

        log = EpochLog(job, members, METRICS_HEADER, lambda m: folder(m) / "metrics.csv", label, METRICS_HEADER[1:])

        def build(group: list[Member]):
            models = [initial_model(m.key["seed"], job.device) for m in group]
            decays = [config.weight_decay] * len(group)
            return FusedCNNMembers(models, [m.key["lr"] for m in group], weight_decays=decays)

        writer = job.train(members, build, job.data.train, {"val": job.data.val}, log)
        log.close()
        if not writer:
            return None
        dirs = [folder(m) for m in members]
        return _finish(run, config, job.data, job.device, members, dirs, sweep, run.clock.seconds())


def test_weights(weights: list[dict], lrs: list[float], split, device, on_outputs=None):
    """Mean loss and accuracy of each set of CNN weights on `split`, all in one fused pass: how a run
    tests its members (so `mle6 evaluate` gets the same numbers from the same members); `on_outputs`
    as in `Members.evaluate`."""
    from mle6cli.engine.fused import FusedCNNMembers

    backend = FusedCNNMembers([initial_model(0, device) for _ in weights], lrs)
    for j, member in enumerate(weights):
        backend.load(j, {"weights": member})
    return backend.evaluate(split, on_outputs)


def _test_members(members: list[Member], data: SignsData, device) -> list[dict | None]:
    """Test loss and accuracy of every completed member, all in one fused pass."""
    done = [m for m in members if m.state.status == "completed"]
    results: list[dict | None] = [None] * len(members)
    if not done:
        return results
    losses, accs = test_weights([m.weights for m in done], [m.key["lr"] for m in done], data.test, device)
    for j, m in enumerate(done):
        results[members.index(m)] = {"test_loss": losses[j], "test_acc": accs[j]}
    return results


STATS_METRICS = ("val_acc", "test_acc", "val_loss", "test_loss", "train_loss")
STATS_HEADER = ["lr", "seeds", "diverged"] + [
    f"{metric}_{part}" for metric in STATS_METRICS for part in ("mean", "std", "ci_low", "ci_high")
]


def config_stats(records: list[dict], lrs: Sequence[float]) -> list[dict]:
    """Per learning rate: how many seeds completed, and mean, std and 95% CI of each final metric."""
    from mle6cli.tasks.stats import estimate

    out = []
    for lr in lrs:
        mine = [r for r in records if r["lr"] == lr]
        done = [r for r in mine if r["status"] == "completed"]
        row = {"lr": lr, "seeds": len(done), "diverged": sum(r["status"] == "diverged" for r in mine)}
        for metric in STATS_METRICS:
            values = [r[metric] if metric.startswith("test") else r["final"][metric] for r in done]
            row[metric] = estimate(values).to_dict()
        out.append(row)
    return out


def rank_configs(stats: list[dict]) -> list[dict]:
    """The learning rates by mean final val accuracy (as the sheet picks, over seeds), ties to the lower
    mean val loss, then to the earlier lr in the list."""

    def key(row):
        loss = row["val_loss"]["mean"]
        return (-row["val_acc"]["mean"], loss if loss is not None and math.isfinite(loss) else math.inf)

    usable = [r for r in stats if r["seeds"] and r["val_acc"]["mean"] is not None]
    return sorted(usable, key=key)  # stable: the first of equals wins


def compare_best(records: list[dict], ranked: list[dict]):
    """The best lr against the runner-up, paired by seed on final val accuracy (None with one lr)."""
    from mle6cli.tasks.stats import paired

    if len(ranked) < 2:
        return None
    best, second = ranked[0]["lr"], ranked[1]["lr"]

    def by_seed(lr):
        return {r["seed"]: r["final"]["val_acc"] for r in records if r["lr"] == lr and r["status"] == "completed"}

    return paired(by_seed(best), by_seed(second), f"lr {lr_label(best)}", f"lr {lr_label(second)}", "val accuracy")


def stats_rows(stats: list[dict]) -> list[dict]:
    """sweep_stats.csv: one flat row per learning rate."""
    rows = []
    for row in stats:
        flat = {"lr": row["lr"], "seeds": row["seeds"], "diverged": row["diverged"]}
        for metric in STATS_METRICS:
            for part in ("mean", "std", "ci_low", "ci_high"):
                value = row[metric][part]
                flat[f"{metric}_{part}"] = "" if value is None else value
        rows.append(flat)
    return rows


def _finish(run, config, data, device, members, dirs, sweep, train_seconds) -> dict:
    """Test and save every member, write the tables and figures, then summary.json."""
    synthetic_tag = " (synthetic data)" if data.synthetic else ""
    single = not sweep and len(members) == 1  # train-cnn, one seed: the exercise's single run
    # the sweep's figure is drawn (by plots' worker, when one runs) while the members are tested and saved
    figure_done = None if single else _draw_sweep_curves(run, config, members, sweep, synthetic_tag)
    records = _save_members(run, members, dirs, _test_members(members, data, device))
    base = {
        "command": run.command,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "seeds": list(config.seeds),
        "device": str(device),
        "synthetic": data.synthetic,
        "data": data.source.get("path", "synthetic"),
        "train_seconds": train_seconds,
    }
    if single:
        return _finish_single(run, config, members[0], records[0], base, synthetic_tag)
    return _finish_sweep(run, config, records, base, figure_done)


def _draw_sweep_curves(run, config, members, sweep: bool, synthetic_tag: str):
    """Start drawing the members' curves, grouped by learning rate; returns what waits for the figure."""
    groups = [
        (f"lr {lr_label(lr)}", [m.state.history for m in members if m.key["lr"] == lr and m.state.history])
        for lr in config.lrs
    ]
    title = ("Learning-rate sweep" if sweep else f"SIGNS CNN, lr {lr_label(config.lrs[0])}") + (
        f", {plural(config.epochs, 'epoch')}{synthetic_tag}"
    )
    figure = "sweep_curves.png" if sweep else "curves.png"
    return drawing.in_background(plots.sweep_curves_figure, groups, run.output(figure), title)


def _save_members(run, members: list[Member], dirs: list[Path], tests: list[dict | None]) -> list[dict]:
    """Each member's metrics.csv, and model.pt when it completed; its record for summary.json's `runs`."""
    records = []
    for member, folder, test in zip(members, dirs, tests, strict=True):
        s = member.state
        run.write_csv(folder / "metrics.csv", METRICS_HEADER, s.history)
        record = {
            "lr": member.key["lr"],
            "seed": member.key["seed"],
            "status": s.status,
            "diverged": s.status == "diverged",
            "diverged_epoch": s.diverged_epoch,
            "epochs_done": len(s.history),
            "final": s.history[-1] if s.history else None,
            "test_loss": None,
            "test_acc": None,
            "metrics": str(folder / "metrics.csv"),
        }
        if test is not None:
            record.update(test)
            save_model(run, folder / "model.pt", run.options, member)
        records.append(record)
    return records


def save_model(run, path: Path, options: dict, member: Member) -> Path:
    """A member's model.pt: its weights, and the options of a train-cnn run of its own (its learning rate and
    seed in place of the lists of a sweep or a study) as `config`, what predict, evaluate and export read."""
    model_config = dict(options, lr=member.key["lr"], seed=member.key["seed"])
    model_config.pop("lrs", None)
    model_config.pop("seeds", None)
    return run.save_torch(path, CLASSIFIER.payload(member.weights, config=model_config))


def _finish_single(run, config, member: Member, record: dict, base: dict, synthetic_tag: str) -> dict:
    """train-cnn's one run: its curves and summary, or TrainingDiverged."""
    if record["status"] == "diverged":
        run.drop_resume()
        loss = member.state.loss_sum / max(member.state.seen, 1)
        raise TrainingDiverged(
            f"training diverged at epoch {record['diverged_epoch']}: the training loss became {loss}; "
            f"try a smaller --lr (metrics so far: {run.path / 'metrics.csv'})"
        )
    title = f"SIGNS CNN, lr {lr_label(config.lrs[0])}{synthetic_tag}"
    drawing.in_background(plots.curves_figure, member.state.history, run.output("curves.png"), title)()
    summary = TrainCnnSummary(
        **base,
        lr=config.lrs[0],
        seed=config.seeds[0],
        final=record["final"],
        test_loss=record["test_loss"],
        test_acc=record["test_acc"],
    )
    return write(run, summary)


def _finish_sweep(run, config, records: list[dict], base: dict, figure_done) -> dict:
    """A sweep (or train-cnn's seeds): sweep.csv, sweep_stats.csv, the best learning rate, the summary."""
    rows = [
        dict(
            {k: r[k] for k in ("lr", "seed", "status", "epochs_done", "test_loss", "test_acc")},
            **{k: (r["final"] or {}).get(k, "") for k in METRICS_HEADER[1:]},
        )
        for r in records
    ]
    run.write_csv("sweep.csv", SWEEP_HEADER, [{k: ("" if v is None else v) for k, v in r.items()} for r in rows])
    stats = config_stats(records, config.lrs)
    run.write_csv("sweep_stats.csv", STATS_HEADER, stats_rows(stats))
    figure_done()
    ranked = rank_configs(stats)
    if not ranked:
        run.drop_resume()
        raise TrainingDiverged(
            "every learning rate diverged ("
            + ", ".join(f"{lr_label(r['lr'])} at epoch {r['diverged_epoch']}" for r in records)
            + f"); see {run.path / 'sweep.csv'}"
        )
    best = ranked[0]
    comparison = compare_best(records, ranked)
    summary = SweepSummary(
        **base,
        lrs=list(config.lrs),
        seed=config.seeds[0],
        runs=records,
        best_lr=best["lr"],
        best_val_acc=best["val_acc"]["mean"],
        best_val_loss=best["val_loss"]["mean"],
        test_acc=best["test_acc"]["mean"],
        test_loss=best["test_loss"]["mean"],
        val_test_gap=abs(best["val_acc"]["mean"] - best["test_acc"]["mean"]),
        stats={
            "level": 0.95,
            "configs": stats,
            "best_lr": best["lr"],
            "runner_up_lr": ranked[1]["lr"] if len(ranked) > 1 else None,
            "comparison": comparison.to_dict() if comparison is not None else None,
        },
    )
    return write(run, summary)
