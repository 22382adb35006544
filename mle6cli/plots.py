"""Every figure, drawn with matplotlib's Agg backend and saved as PNG. Functions return the path."""

from __future__ import annotations

from pathlib import Path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path) -> Path:
    """Write a figure atomically (temp file, then rename) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    _pyplot().close(fig)
    tmp.replace(path)
    return path


def gauss_conv_figure(data: dict, path: Path) -> Path:
    """Both input pdfs, the analytic sum, the numeric convolution and a histogram of sampled sums."""
    import numpy as np
    from scipy.stats import norm

    plt = _pyplot()
    g = data["gaussian"]
    lo = min(g.mu1 - 4 * g.sigma1, g.mu2 - 4 * g.sigma2, g.mean - 4 * g.std)
    hi = max(g.mu1 + 4 * g.sigma1, g.mu2 + 4 * g.sigma2, g.mean + 4 * g.std)
    x = np.linspace(lo, hi, 800)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.hist(
        data["draws"],
        bins=120,
        range=(lo, hi),
        density=True,
        alpha=0.3,
        color="grey",
        label=f"samples of X1+X2 (n={len(data['draws']):,})",
    )
    ax.plot(x, norm.pdf(x, g.mu1, g.sigma1), label=f"X1 ~ N({g.mu1:g}, {g.sigma1:g}²)")
    ax.plot(x, norm.pdf(x, g.mu2, g.sigma2), label=f"X2 ~ N({g.mu2:g}, {g.sigma2:g}²)")
    ax.plot(x, g.pdf(x), lw=2.5, color="black", label=f"analytic N({g.mean:g}, {g.variance:g})")
    z, numeric = data["z"], data["numeric"]
    keep = (z >= lo) & (z <= hi)
    step = max(1, int(keep.sum() // 60))
    ax.plot(z[keep][::step], numeric[keep][::step], "o", ms=3.5, color="tab:red", label="numeric convolution")
    ax.set_xlabel("value")
    ax.set_ylabel("density")
    ax.set_title("Sum of two independent Gaussians")
    ax.legend(fontsize=8)
    return save(fig, path)


def curves_figure(history: list[dict], path: Path, title: str = "") -> Path:
    """Loss and accuracy per epoch, train vs val, side by side (one training run)."""
    plt = _pyplot()
    epochs = [row["epoch"] for row in history]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for split, style in (("train", "-"), ("val", "--")):
        loss_ax.plot(epochs, [row[f"{split}_loss"] for row in history], style, label=split)
        acc_ax.plot(epochs, [row[f"{split}_acc"] for row in history], style, label=split)
    loss_ax.set_ylabel("mean NLL loss")
    acc_ax.set_ylabel("accuracy")
    acc_ax.set_ylim(0, 1.02)
    for ax in (loss_ax, acc_ax):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return save(fig, path)


def sweep_curves_figure(members: list[tuple[str, list[dict]]], path: Path, title: str = "") -> Path:
    """The exercise's 2×2 figure: train loss, val loss, train acc, val acc; one line per learning rate."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), sharex=True)
    panels = (
        ("train_loss", "train loss"),
        ("val_loss", "val loss"),
        ("train_acc", "train accuracy"),
        ("val_acc", "val accuracy"),
    )
    for ax, (key, name) in zip(axes.flat, panels):
        for label, history in members:
            ax.plot([row["epoch"] for row in history], [row[key] for row in history], label=f"lr {label}")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        if key.endswith("loss"):
            ax.set_yscale("log")  # a failing lr's loss would flatten the others
        if key.endswith("acc"):
            ax.set_ylim(0, 1.02)
            ax.set_xlabel("epoch")
    axes[0, 0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return save(fig, path)
