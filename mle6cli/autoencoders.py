"""Training the exercise's convolutional autoencoder at several latent sizes, without collapse.

Collapse, and why it happens
----------------------------
The decoder ends in `ConvTranspose2d(32 → 1) → Sigmoid`. With PyTorch's default initialisation
the output starts at sigmoid(≈ −0.1) ≈ 0.5 on every pixel while about 80% of MNIST's pixels
are 0, so at the start nearly every pixel's error says "darker". Adam's first steps move every
weight by about lr in the sign of its gradient, whatever the gradient's size, so ~190k weights
move coherently and the scale of the activations grows layer by layer: on mnist-mini (d=3,
seed 0, lr 1e-3, batch 128) the latent codes' spread grows from 0.006 to 0.5 in 10 steps and
the last layer's pre-activations go from mean −0.10 (std 0.04) to −4.7 (std 2.6). The runs that
train turn around there (seed 1: the mean bottoms out at −13 at step 18, then comes back to −3).
The runs that collapse overshoot: by step 15 only 11% of the pre-activations are above −10, by
step 20 0.3%, where sigmoid' < 5e-5; the gradient norm falls from 0.19 to 0.001 (step 15) and
then to zero, and Adam's momentum, built in the first steps, drives the pre-activations on to
a mean of −143 (std 63) by step 60, where the sigmoid's gradient underflows. The output is
then black everywhere (max 2e-10), the same for every image (std across images 3e-14), and the
test MSE is exactly mean(x²) = 0.1233. Nothing is dead in the ReLUs (their active fractions
stay at 0.5-0.97) and the final bias hardly moves (−0.074 → −0.091): the collapse is the
sigmoid saturating, decided in the first ~20 steps. With this initialisation 4 of 5 seeds
collapse at d=3 and 3 of 5 at d=10 after one epoch (README, "Collapse").

The fix (`init_output_bias`, on by default) changes no layer: it starts the last layer's bias
at logit(mean pixel) ≈ −1.90, so the untrained network predicts the mean intensity, the best
constant, for every pixel. The constant part of the gradient is then zero: background pixels
pull down by 0.13, digit pixels up by 0.87, and there is no common "darker" direction for
Adam to amplify. On the same seed the initial gradient norm is 0.002 instead of 0.19, the
pre-activations stay in (−4, 0) on average over the first 120 steps, more than 98% of them
stay above −10, and the test MSE after one epoch is 0.058 instead of 0.1233. A 200-step
learning-rate warm-up was measured too: alone it does not prevent the collapse (seed 0, d=3:
0.1231 after one epoch) and with the fix it only slows training (0.083 against 0.058).

Detection stays as a safety net (`check_collapse`), with thresholds for a sigmoid output: a run
is collapsed when its output barely varies at all (std < 1e-3 over every pixel of every image:
the all-black state), when it ignores its input (mean over pixels of the std across images
< 1e-3: the mean-image state, test MSE about 0.0714 on mnist-mini), or when its test MSE is
within 3% of mean(x²), the all-black score. Collapsed runs measured 1e-14 to 1e-9 for the std
across images; the slowest run that went on to train measured 0.013 after one epoch, and the
data themselves 0.195. A collapsed run is restarted with a derived seed, up to `retries`
times; a model still collapsed after that is reported as such and makes the command fail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from mle6cli import runs
from mle6cli.errors import ConfigError, Mle6Error
from mle6cli.models import ConvAutoencoder
from mle6cli.train import RECONSTRUCT, LoopState, Split, as_float, check_loop_options, train_model

FINAL_BIAS_INIT = 0.1
# a run is collapsed when its test MSE is at least this fraction of mean(x²) (the all-black score) ...
TRIVIAL_FRACTION = 0.97
# ... or when its output hardly varies, across pixels or across images
MIN_OUTPUT_STD = 1e-3
RETRY_SEED_STRIDE = 1000
DEFAULT_DIMS = (3, 10, 100, 250)


class TrainingFailed(Mle6Error):
    """Some latent size ended collapsed or diverged (after every allowed restart)."""


@dataclass
class AeConfig:
    latent_dims: list[int] = field(default_factory=lambda: list(DEFAULT_DIMS))
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    retries: int = 2
    deterministic: bool = False
    live_init: bool = True  # the collapse fix; False keeps PyTorch's default initialisation

    def validate(self) -> None:
        if not self.latent_dims:
            raise ConfigError("give at least one latent size")
        bad = [d for d in self.latent_dims if d < 1]
        if bad:
            raise ConfigError(f"latent sizes must be positive, got {bad[0]}")
        if len(set(self.latent_dims)) != len(self.latent_dims):
            raise ConfigError(f"latent sizes are listed twice: {','.join(map(str, self.latent_dims))}")
        check_loop_options(self.epochs, self.batch_size, self.lr)
        if self.retries < 0:
            raise ConfigError(f"retries must not be negative, got {self.retries}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> AeConfig:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def init_live_output(model: ConvAutoencoder, bias: float = FINAL_BIAS_INIT) -> None:
    """Start the last layer's bias at +`bias` so no image begins with an all-dead output.

    PyTorch draws this bias from U(-1/3, 1/3) (a ConvTranspose2d's fan_in counts its single
    output channel), which outweighs the small weighted input reaching the layer; a negative
    draw makes every pre-activation of the final ReLU negative, the output all black and every
    gradient zero, for good. A positive start keeps each pixel alive until training has learnt
    which ones are background. See the module docstring for the measurements.
    """
    last = model.decoder[-2]
    assert isinstance(last, nn.ConvTranspose2d)
    with torch.no_grad():
        last.bias.fill_(bias)


def attempt_seed(seed: int, attempt: int) -> int:
    """The seed of restart `attempt` (0 = the first try): fixed, so restarts are reproducible."""
    return seed + RETRY_SEED_STRIDE * attempt


def build_autoencoder(latent_dim: int, seed: int, device, live_init: bool = True) -> ConvAutoencoder:
    torch.manual_seed(seed)
    model = ConvAutoencoder(latent_dim)
    if live_init:
        init_live_output(model)
    return model.to(device)


@dataclass
class CollapseCheck:
    collapsed: bool
    reason: str | None
    test_mse: float
    trivial_mse: float  # mean(x²): the score of an all-black output
    output_std: float  # over every pixel of every image
    sample_std: float  # mean over pixels of the std across images: 0 when the input is ignored


def trivial_mse(split: Split, batch_size: int = 2048) -> float:
    """mean(x²) over a split: the MSE of predicting an all-black image."""
    total = torch.zeros((), dtype=torch.float64)  # on the CPU: MPS has no float64
    for start in range(0, len(split), batch_size):
        chunk = split.x[start : start + batch_size].cpu().double()
        total += (chunk / 255.0 if split.x.dtype == torch.uint8 else chunk).pow(2).sum()
    return total.item() / split.x[0].numel() / len(split)


@torch.no_grad()
def check_collapse(model: nn.Module, split: Split, test_mse: float, trivial: float, batch_size: int = 1024):
    """Is the model's output (nearly) constant, or its loss stuck at the all-black level?"""
    was_training = model.training
    model.eval()
    s1 = s2 = None
    for start in range(0, len(split), batch_size):
        out = model(as_float(split.x[start : start + batch_size])).cpu().double()  # (B, 1, 28, 28)
        s1 = out.sum(0) if s1 is None else s1 + out.sum(0)
        s2 = out.pow(2).sum(0) if s2 is None else s2 + out.pow(2).sum(0)
    model.train(was_training)
    n = len(split)
    mean, mean_sq = s1 / n, s2 / n  # per pixel
    per_pixel_var = (mean_sq - mean.pow(2)).clamp_min(0.0)
    sample_std = per_pixel_var.sqrt().mean().item()
    output_std = max(mean_sq.mean().item() - mean.mean().item() ** 2, 0.0) ** 0.5
    reason = None
    if output_std < MIN_OUTPUT_STD:
        reason = f"constant output (std {output_std:.2g})"
    elif sample_std < MIN_OUTPUT_STD:
        reason = f"the output ignores the input (std across images {sample_std:.2g})"
    elif not test_mse < TRIVIAL_FRACTION * trivial:
        reason = f"test MSE {test_mse:.4f} stuck at the all-black level {trivial:.4f}"
    return CollapseCheck(reason is not None, reason, test_mse, trivial, output_std, sample_std)


@dataclass
class DimResult:
    latent_dim: int
    seed: int  # of the attempt that produced the final model
    history: list[dict]
    status: str  # completed | collapsed | diverged
    collapsed: bool
    retries: int  # restarts after a collapse
    final_test_mse: float | None
    attempts: list[dict]  # one record per try: seed, epochs, final test MSE, collapse reason
    diverged_epoch: int | None = None
    checkpoint: str | None = None

    def to_dict(self) -> dict:
        return {
            "latent_dim": self.latent_dim,
            "seed": self.seed,
            "status": self.status,
            "collapsed": self.collapsed,
            "retries": self.retries,
            "final_test_mse": self.final_test_mse,
            "diverged_epoch": self.diverged_epoch,
            "checkpoint": self.checkpoint,
            "train_loss": [row["train_loss"] for row in self.history],
            "test_loss": [row["test_loss"] for row in self.history],
            "attempts": self.attempts,
            "history": self.history,
        }

    @classmethod
    def from_dict(cls, data: dict) -> DimResult:
        keys = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in keys})


@dataclass
class AeResult:
    config: AeConfig
    runs: list[DimResult]
    run_dir: Path
    data: dict
    trivial_test_mse: float
    figures: dict[str, str]
    train_seconds: float = 0.0  # over every session of a resumed run
    resumed: int = 0

    @property
    def failed(self) -> list[DimResult]:
        return [r for r in self.runs if r.status != "completed"]

    def to_json(self) -> dict:
        """The `--json` document of train-ae."""
        return {
            "runs": [
                {
                    "latent_dim": r.latent_dim,
                    "train_loss": [row["train_loss"] for row in r.history],
                    "test_loss": [row["test_loss"] for row in r.history],
                    "final_test_mse": r.final_test_mse,
                    "collapsed": r.collapsed,
                    "retries": r.retries,
                    "status": r.status,
                    "seed": r.seed,
                }
                for r in self.runs
            ],
            "run_dir": str(self.run_dir),
            "synthetic": self.data["synthetic"],
            "trivial_test_mse": self.trivial_test_mse,
            "train_seconds": self.train_seconds,
            "status": "failed" if self.failed else "completed",
        }

    def summary(self) -> dict:
        return {
            "command": "train-ae",
            "status": "failed" if self.failed else "completed",
            "config": self.config.to_dict(),
            "data": self.data,
            "synthetic": self.data["synthetic"],
            "trivial_test_mse": self.trivial_test_mse,
            "runs": [r.to_dict() for r in self.runs],
            "figures": self.figures,
            "train_seconds": self.train_seconds,
            "resumed": self.resumed,
            "run_dir": str(self.run_dir),
        }


METRICS_HEADER = ["epoch", "train_loss", "test_loss"]


def metrics_path(run_dir: Path, latent_dim: int) -> Path:
    return Path(run_dir) / f"metrics_d{latent_dim}.csv"


def checkpoint_path(run_dir: Path, latent_dim: int) -> Path:
    return Path(run_dir) / f"ae_d{latent_dim}.pt"


def save_checkpoint(path: Path, model: ConvAutoencoder, result: DimResult, data: dict) -> Path:
    return runs.save_torch(
        path,
        {
            "model": "ae",
            "latent_dim": model.latent_dim,
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "seed": result.seed,
            "collapsed": result.collapsed,
            "final_test_mse": result.final_test_mse,
            "data": data,
        },
    )


def load_autoencoder(path: Path, device=None) -> tuple[ConvAutoencoder, dict]:
    """A ConvAutoencoder from an `ae_d{D}.pt` checkpoint, with the checkpoint's metadata."""
    payload = runs.load_torch(path)
    if not isinstance(payload, dict) or payload.get("model") != "ae" or "state_dict" not in payload:
        raise runs.RunDirError(f"{path} is not a train-ae checkpoint")
    model = ConvAutoencoder(int(payload["latent_dim"]))
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise runs.RunDirError(f"{path} does not fit a ConvAutoencoder: {str(exc).splitlines()[0]}") from None
    return model.to(device or torch.device("cpu")).eval(), payload


ProgressFn = Callable[[str, int, dict], None]


@dataclass
class _Cursor:
    """Where a (possibly resumed) train-ae run stands."""

    dim_index: int = 0
    attempt: int = 0
    attempts: list[dict] = field(default_factory=list)
    done: list[dict] = field(default_factory=list)  # DimResult dicts of finished dims
    model_state: dict | None = None
    optimizer_state: dict | None = None
    loop: LoopState | None = None
    steps_done: int = 0


def train_autoencoders(
    config: AeConfig,
    data,
    device: torch.device,
    run_dir: Path,
    *,
    progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: dict | None = None,
) -> AeResult:
    """Train one ConvAutoencoder per latent size (Adam, MSE), writing everything into `run_dir`.

    Returns an AeResult; when `should_stop` fires it returns None after saving `resume.pt` —
    the caller raises `Interrupted`. `resume` is the payload of `runs.load_resume`.
    """
    from mle6cli.device import set_seed

    config.validate()
    run_dir = Path(run_dir)
    train_split, test_split = data.train_split(), data.test_split()
    data_info = data.describe()
    trivial = trivial_mse(test_split)
    stop = should_stop or (lambda: False)
    cursor = _restore(resume) if resume else _Cursor()
    clock = runs.TrainClock.resumed(resume)
    report = progress or (lambda *a, **k: None)

    while cursor.dim_index < len(config.latent_dims):
        d = config.latent_dims[cursor.dim_index]
        seed = attempt_seed(config.seed, cursor.attempt)
        set_seed(seed, config.deterministic)
        model = build_autoencoder(d, seed, device, config.live_init)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        if cursor.model_state is not None:  # resuming mid-attempt
            model.load_state_dict(cursor.model_state)
            optimizer.load_state_dict(cursor.optimizer_state)
        label = f"d={d}" + (f" retry {cursor.attempt}" if cursor.attempt else "")
        verdict: dict = {}
        can_retry = cursor.attempt < config.retries

        def on_epoch(row: dict, d=d, label=label, model=model, can_retry=can_retry, verdict=verdict) -> None:
            cursor.steps_done += 1
            check = check_collapse(model, test_split, row["test_loss"], trivial)
            # a dead ReLU output never recovers: stop early when a restart is still allowed
            if check.collapsed and can_retry:
                verdict["early"] = check
            report(f"{label} epoch {row['epoch']}/{config.epochs}", cursor.steps_done, _epoch_metrics(row))

        result = train_model(
            model,
            optimizer,
            RECONSTRUCT,
            train_split,
            {"test": test_split},
            epochs=config.epochs,
            batch_size=config.batch_size,
            seed=seed,
            resume=cursor.loop,
            on_epoch=on_epoch,
            should_stop=lambda verdict=verdict: stop() or "early" in verdict,
        )
        cursor.model_state = cursor.optimizer_state = cursor.loop = None
        if result.status == "interrupted" and "early" not in verdict:
            _save_resume(run_dir, cursor, model, optimizer, result.state, clock)
            return None

        history = [{k: row[k] for k in METRICS_HEADER} for row in result.history]
        final = history[-1]["test_loss"] if history else None
        if result.status == "diverged":
            check = None
            status, collapsed = "diverged", False
        else:
            check = verdict.get("early") or check_collapse(model, test_split, final, trivial)
            status, collapsed = ("collapsed", True) if check.collapsed else ("completed", False)
        cursor.attempts.append(
            {
                "seed": seed,
                "epochs": len(history),
                "final_test_mse": final,
                "status": status,
                "reason": check.reason if check else f"non-finite loss in epoch {result.diverged_epoch}",
            }
        )
        if collapsed and cursor.attempt < config.retries:
            cursor.attempt += 1
            continue

        outcome = DimResult(
            latent_dim=d,
            seed=seed,
            history=history,
            status=status,
            collapsed=collapsed,
            retries=cursor.attempt,
            final_test_mse=final,
            attempts=cursor.attempts,
            diverged_epoch=result.diverged_epoch,
        )
        runs.write_csv(metrics_path(run_dir, d), METRICS_HEADER, history)
        if status != "diverged":
            outcome.checkpoint = save_checkpoint(checkpoint_path(run_dir, d), model, outcome, data_info).name
        cursor.done.append(outcome.to_dict())
        cursor.dim_index += 1
        cursor.attempt = 0
        cursor.attempts = []

    results = [DimResult.from_dict(r) for r in cursor.done]
    train_seconds = clock.seconds()
    figures = _figures(results, run_dir, data, trivial, device)
    return AeResult(config, results, run_dir, data_info, trivial, figures, train_seconds, clock.resumes)


def _epoch_metrics(row: dict) -> dict:
    return {"train_loss": row["train_loss"], "test_loss": row["test_loss"]}


def _save_resume(run_dir: Path, cursor: _Cursor, model, optimizer, loop: LoopState, clock: runs.TrainClock) -> None:
    runs.save_resume(
        run_dir,
        {
            "command": "train-ae",
            "dim_index": cursor.dim_index,
            "attempt": cursor.attempt,
            "attempts": cursor.attempts,
            "done": cursor.done,
            "steps_done": cursor.steps_done,
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "loop": loop.to_dict(),
            **clock.to_state(),
        },
    )


def _restore(payload: dict) -> _Cursor:
    return _Cursor(
        dim_index=payload["dim_index"],
        attempt=payload["attempt"],
        attempts=list(payload["attempts"]),
        done=list(payload["done"]),
        model_state=payload["model"],
        optimizer_state=payload["optimizer"],
        loop=LoopState.from_dict(payload["loop"]),
        steps_done=payload.get("steps_done", 0),
    )


def _figures(results: list[DimResult], run_dir: Path, data, trivial: float, device) -> dict[str, str]:
    from mle6cli.plots import ae_losses_figure, reconstructions_figure

    figures = {"losses": ae_losses_figure(results, trivial, run_dir / "ae_losses.png", data.synthetic).name}
    index = example_indices(data.test_y)
    originals = as_float(data.test_x[index])  # (k, 1, 28, 28)
    rows = []
    for r in results:
        if r.checkpoint is None:
            continue
        model, _ = load_autoencoder(run_dir / r.checkpoint, device)
        with torch.no_grad():
            rows.append((r, model(originals).cpu()))
    figures["reconstructions"] = reconstructions_figure(
        originals.cpu(), rows, run_dir / "reconstructions.png", data.synthetic
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


def run_train_ae(
    config: AeConfig,
    spec: dict,
    device: torch.device,
    run_dir: Path,
    *,
    data=None,
    device_spec: str | None = None,
    progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: dict | None = None,
) -> AeResult:
    """The whole train-ae job in a prepared `run_dir`: config.json, training, summary.json.

    `spec` says which data (see `data.mnist.mnist_spec`); `data` may pass them already open.
    On SIGINT/SIGTERM the run is saved and `Interrupted` raised, naming the `--resume` command.
    """
    from mle6cli.data.mnist import open_mnist
    from mle6cli.device import describe_device
    from mle6cli.interrupt import Interrupted, any_of, graceful_stop

    run_dir = Path(run_dir)
    data = data if data is not None else open_mnist(spec, device)
    if resume is None:
        runs.start(
            run_dir,
            "train-ae",
            config=config.to_dict(),
            data=spec,
            device=device_spec or str(device),
            device_resolved=describe_device(device),
        )
    with graceful_stop() as stop:
        result = train_autoencoders(
            config, data, device, run_dir, progress=progress, should_stop=any_of(stop, should_stop), resume=resume
        )
    if result is None:
        raise Interrupted(
            stop.signal_number, f"interrupted; the run is saved, continue it with: mle6 train-ae --resume {run_dir}"
        )
    runs.finish(run_dir, result.summary())
    return result
