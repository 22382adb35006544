"""The conv autoencoder's collapse: the fix and the safety net.

The fix (`init_output_bias`, `--init mean`, the default) starts the last layer's bias at
logit(mean pixel); `check_collapse` is the safety net after every epoch, and a collapsed run
restarts with a derived seed (`attempt_seed`). The mechanism, the fix and the thresholds, measured:
the documentation's collapse analysis (docs/fidelity.md, "The collapse of the convolutional
autoencoder").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from mle6cli.data.splits import Split, as_float
from mle6cli.models import ConvAutoencoder

# A run is collapsed when its test MSE is at least 90% of mean(x²), the all-black score (collapsed
# runs measured 97.8-100%, the slowest healthy one 83% after its first epoch) ...
TRIVIAL_FRACTION = 0.9
# ... or when its output does not vary, over every pixel of every image or across images (collapsed
# runs measured 1e-14 to 1e-8, healthy ones 5e-4 and more even after 8 steps on 512 images)
MIN_OUTPUT_STD = 1e-5
RETRY_SEED_STRIDE = 1000


def mean_intensity(x: torch.Tensor) -> float:
    """The mean pixel of uint8 (or [0, 1] float) images, in float64 on the CPU (MPS has none)."""
    total = torch.zeros((), dtype=torch.float64)
    for start in range(0, len(x), 4096):
        total += as_float(x[start : start + 4096]).cpu().double().sum()
    return total.item() / x[0].numel() / len(x)


def init_output_bias(model: ConvAutoencoder, mean_pixel: float) -> None:
    """Start the last layer's bias at logit(mean pixel): the untrained network then predicts the mean
    intensity, the best constant, so the gradient has no common "darker" direction for Adam to
    amplify into a saturated sigmoid (see the module docstring for the measurements)."""
    last = model.decoder[-2]
    assert isinstance(last, nn.ConvTranspose2d)
    p = min(max(mean_pixel, 1e-4), 1 - 1e-4)
    with torch.no_grad():
        last.bias.fill_(math.log(p / (1 - p)))


def attempt_seed(seed: int, attempt: int) -> int:
    """The seed of restart `attempt` (0 = the first try): fixed, so restarts are reproducible."""
    return seed + RETRY_SEED_STRIDE * attempt


def build_autoencoder(latent_dim: int, seed: int, device, mean_pixel: float | None = None) -> ConvAutoencoder:
    """The exercise's model with weights drawn from `seed` (on the CPU, the global RNG untouched);
    with `mean_pixel`, the collapse fix."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ConvAutoencoder(latent_dim)
    if mean_pixel is not None:
        init_output_bias(model, mean_pixel)
    return model.to(device)


@dataclass
class Levels:
    """The two scores of a collapsed model on a test set: all black, and the mean training image."""

    all_black: float  # mean(x²)
    mean_image: float  # MSE of predicting the training mean image for every input


def collapse_levels(train_x: torch.Tensor, test_x: torch.Tensor) -> Levels:
    mean_image = torch.zeros(test_x.shape[1:], dtype=torch.float64)
    for start in range(0, len(train_x), 4096):
        mean_image += as_float(train_x[start : start + 4096]).cpu().double().sum(0)
    mean_image /= len(train_x)
    black = image = 0.0
    for start in range(0, len(test_x), 4096):
        chunk = as_float(test_x[start : start + 4096]).cpu().double()
        black += chunk.pow(2).sum().item()
        image += (chunk - mean_image).pow(2).sum().item()
    n = test_x.numel()
    return Levels(black / n, image / n)


@dataclass
class CollapseCheck:
    collapsed: bool
    reason: str | None
    test_mse: float
    output_std: float  # over every pixel of every image
    sample_std: float  # mean over pixels of the std across images: 0 when the input is ignored


@torch.no_grad()
def check_collapse(model: nn.Module, split: Split, test_mse: float, levels: Levels, batch_size: int = 1024):
    """Is the model's output (nearly) constant, independent of its input, or at the all-black score?"""
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
    sample_std = (mean_sq - mean.pow(2)).clamp_min(0.0).sqrt().mean().item()
    output_std = max(mean_sq.mean().item() - mean.mean().item() ** 2, 0.0) ** 0.5
    reason = None
    if not math.isfinite(test_mse):
        reason = "non-finite test MSE"
    elif output_std < MIN_OUTPUT_STD:
        reason = f"constant output (std {output_std:.2g}), test MSE {test_mse:.4f}"
    elif sample_std < MIN_OUTPUT_STD:
        reason = (
            f"the output ignores the input (std across images {sample_std:.2g}), test MSE {test_mse:.4f} "
            f"(mean image {levels.mean_image:.4f})"
        )
    elif not test_mse < TRIVIAL_FRACTION * levels.all_black:
        reason = f"test MSE {test_mse:.4f} stuck at the all-black level {levels.all_black:.4f}"
    return CollapseCheck(reason is not None, reason, test_mse, output_std, sample_std)
