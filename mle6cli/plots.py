"""Every figure, drawn with matplotlib's Agg backend and saved in the format its file name asks for
(PNG, PDF, SVG or JPEG). Functions return the path. `drawing` draws them in a process of their own.

Axes read the way people write numbers: whole epochs (`epoch_axis`), plain numbers on log
axes (`_plain_log_axis`: 1.8 and 0.05, never 1.8×10⁰), learning rates as `fmt.lr_label`.
"""

from __future__ import annotations

from pathlib import Path

from mle6cli.errors import Mle6Error
from mle6cli.files import atomic_write_bytes


class PlotError(Mle6Error):
    """A figure that cannot be written as asked."""


def pyplot():
    """matplotlib.pyplot on the Agg backend (imported on first use: it costs about half a second)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg", ".jpg": "jpg", ".jpeg": "jpg"}


def figure_format(path: Path) -> str:
    """The format a file name asks for; PlotError for a suffix matplotlib is not asked to write."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise PlotError(f"cannot write a figure as {Path(path).name!r}: use .png, .pdf, .svg or .jpg")
    return FORMATS[suffix]


def save(fig, path: Path, tight: bool = True) -> Path:
    """Write a figure in the format its suffix names, through the one atomic writer, and close it.

    `tight`: crop to what is drawn (matplotlib lays the figure out twice for it); False for the
    figures `_margins` lays out, which training commands wait for."""
    import io

    path = Path(path)
    fmt = figure_format(path)
    buf = io.BytesIO()
    try:
        fig.savefig(buf, dpi=110, bbox_inches="tight" if tight else None, format=fmt)
    finally:
        pyplot().close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def gauss_conv_figure(data: dict, path: Path) -> Path:
    """Both input pdfs, the analytic sum, the numeric convolution and a histogram of sampled sums."""
    import numpy as np
    from scipy.stats import norm

    plt = pyplot()
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


def _margins(fig, rows: int, cols: int, *, left, right, bottom, top, wspace=0.0, hspace=0.0) -> None:
    """Fixed margins and gaps between the subplots, in inches: one layout pass at saving instead of
    bbox_inches="tight"'s two (about 0.15 s of the 0.4 s a training figure costs). Sized for the
    widest tick labels the figure can have; tests/test_plots.py checks nothing is cut off."""
    width, height = fig.get_size_inches()
    axes_width = (width - left - right - wspace * (cols - 1)) / cols
    axes_height = (height - bottom - top - hspace * (rows - 1)) / rows
    fig.subplots_adjust(
        left=left / width,
        right=1 - right / width,
        bottom=bottom / height,
        top=1 - top / height,
        wspace=wspace / axes_width,
        hspace=hspace / axes_height,
    )


def curves_figure(history: list[dict], path: Path, title: str = "") -> Path:
    """Loss and accuracy per epoch, train vs val, side by side (one training run)."""
    plt = pyplot()
    epochs = [row["epoch"] for row in history]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for split, style in (("train", "-"), ("val", "--")):
        style += "o" if len(epochs) == 1 else ""  # one epoch is one point: a line alone would draw nothing
        loss_ax.plot(epochs, [row[f"{split}_loss"] for row in history], style, label=split)
        acc_ax.plot(epochs, [row[f"{split}_acc"] for row in history], style, label=split)
    loss_ax.set_ylabel("mean NLL loss")
    acc_ax.set_ylabel("accuracy")
    acc_ax.set_ylim(0, 1.02)
    for ax in (loss_ax, acc_ax):
        epoch_axis(ax)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    _margins(fig, 1, 2, left=0.9, right=0.15, bottom=0.55, top=0.6, wspace=0.95)
    return save(fig, path, tight=False)


def epoch_axis(ax) -> None:
    """Whole epochs on the x axis (1, 2, 3, not 1.0, 1.5, …), also for a run of one epoch."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.set_xlabel("epoch")


def _plain_number(value: float, _pos=None) -> str:
    """A tick label as people write it: 2, 0.05, 1.76 (float noise rounded away)."""
    return f"{value:.6g}"


def _plain_log_locator():
    """Major ticks of a log axis: 1, 2 and 5 per decade; where fewer than two of those fall inside the
    view (a loss between 1.75 and 1.85), evenly spaced plain ticks instead, so the axis keeps its labels."""
    import numpy as np
    from matplotlib.ticker import LogLocator, MaxNLocator

    class PlainLogLocator(LogLocator):
        def __init__(self):
            super().__init__(base=10, subs=(1.0, 2.0, 5.0))
            self._linear = MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10])

        def tick_values(self, vmin, vmax):
            ticks = super().tick_values(vmin, vmax)
            lo, hi = sorted((vmin, vmax))
            if lo <= 0 or sum(lo <= t <= hi for t in ticks) >= 2:
                return ticks
            return np.asarray([t for t in self._linear.tick_values(lo, hi) if t > 0])

    return PlainLogLocator()


def _plain_log_axis(ax) -> None:
    """A log-scale y axis with plain tick labels (1.8, 0.05), not 1.8×10⁰; minor ticks unlabelled."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(_plain_log_locator())
    ax.yaxis.set_major_formatter(FuncFormatter(_plain_number))
    ax.yaxis.set_minor_formatter(NullFormatter())


def mean_and_band(ax, histories: list[list[dict]], key: str, label: str, color, style: str = "-") -> None:
    """One configuration: its mean curve over seeds, with the min–max band when there are several."""
    epochs = sorted({row["epoch"] for h in histories for row in h})
    values = [[row[key] for h in histories for row in h if row["epoch"] == e] for e in epochs]
    means = [sum(v) / len(v) for v in values]
    if len(epochs) == 1 and style in ("-", "--", ":", "-."):
        style += "o"  # one epoch is one point: a line alone would draw nothing
    if len(histories) > 1:
        label = f"{label} (mean of {len(histories)} seeds; band: min–max)"
        ax.fill_between(epochs, [min(v) for v in values], [max(v) for v in values], color=color, alpha=0.2, lw=0)
    ax.plot(epochs, means, style, color=color, label=label)


def sweep_curves_figure(groups: list[tuple[str, list[list[dict]]]], path: Path, title: str = "") -> Path:
    """The exercise's 2×2 figure: train loss, val loss, train acc, val acc; one curve per learning rate
    (with several seeds, their mean and a min–max band)."""
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), sharex=True)
    colors = plt.get_cmap("tab10")
    panels = (
        ("train_loss", "train loss"),
        ("val_loss", "val loss"),
        ("train_acc", "train accuracy"),
        ("val_acc", "val accuracy"),
    )
    for ax, (key, name) in zip(axes.flat, panels, strict=True):
        for i, (label, histories) in enumerate(groups):
            if histories:
                mean_and_band(ax, histories, key, label, colors(i % 10))
        ax.set_title(name)
        ax.grid(alpha=0.3)
        epoch_axis(ax)
        if key.endswith("loss"):
            _plain_log_axis(ax)  # a failing lr's loss would flatten the others
            ax.set_xlabel("")  # the top row shares its epoch axis with the bottom row's
        if key.endswith("acc"):
            ax.set_ylim(0, 1.02)
    if axes[0, 0].get_legend_handles_labels()[0]:
        axes[0, 0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    _margins(fig, 2, 2, left=0.8, right=0.15, bottom=0.55, top=0.75, wspace=0.85, hspace=0.45)
    return save(fig, path, tight=False)


def _synthetic_tag(synthetic: bool) -> str:
    return " — SYNTHETIC stand-in digits" if synthetic else ""


def ae_losses_figure(results, levels, path: Path, synthetic: bool = False) -> Path:
    """Train (solid) and test (dashed) MSE per epoch for every latent size, log scale, with the two
    collapsed levels (`levels.all_black`, `levels.mean_image`); several seeds: mean and min–max band."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    colors = plt.get_cmap("tab10")
    dims = list(dict.fromkeys(r.latent_dim for r in results))
    for i, d in enumerate(dims):
        mine = [r for r in results if r.latent_dim == d and r.history]
        if not mine:
            continue
        bad = sum(r.collapsed for r in mine) + sum(r.status == "diverged" for r in mine)
        tag = f"d={d}" + (f" ({bad} of {len(mine)} COLLAPSED or diverged)" if bad else "")
        histories = [r.history for r in mine]
        mean_and_band(ax, histories, "train_loss", f"{tag} train", colors(i % 10), "-o")
        mean_and_band(ax, histories, "test_loss", f"{tag} test", colors(i % 10), "--s")
    ax.axhline(levels.all_black, color="black", lw=1, ls=":", label=f"all-black output (test) {levels.all_black:.4f}")
    ax.axhline(levels.mean_image, color="grey", lw=1, ls="-.", label=f"mean image (test) {levels.mean_image:.4f}")
    _plain_log_axis(ax)
    epoch_axis(ax)
    ax.set_ylabel("MSE")
    ax.set_title("Convolutional autoencoder: train and test loss" + _synthetic_tag(synthetic))
    ax.legend(fontsize=7, ncol=2)
    return save(fig, path)


def _image_grid(rows: list[tuple[str, object]], path: Path, title: str) -> Path:
    """rows: (label, images (k, 1, 28, 28) in [0, 1]); one row of k images per label."""
    plt = pyplot()
    k = max(len(images) for _, images in rows)
    fig, axes = plt.subplots(len(rows), k, figsize=(1.1 * k + 1.2, 1.15 * len(rows) + 0.6), squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(k):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(images):
                ax.imshow(images[c].reshape(28, 28), cmap="gray", vmin=0.0, vmax=1.0)
            if c == 0:
                ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(title, fontsize=10)
    return save(fig, path)


def reconstructions_figure(originals, rows, path: Path, synthetic: bool = False) -> Path:
    """Originals beside each latent size's reconstruction (`rows`: (DimResult, images))."""
    grid = [("original", originals.clamp(0, 1).numpy())]
    for r, images in rows:
        label = f"d={r.latent_dim}" + ("\nCOLLAPSED" if r.collapsed else "")
        grid.append((label, images.clamp(0, 1).numpy()))
    return _image_grid(grid, path, "Reconstructions by latent size" + _synthetic_tag(synthetic))


def latent_figure(codes, labels, path: Path, title: str) -> Path:
    """3-D scatter of (n, 3) codes coloured by digit, plus the three 2-D projections, with one legend
    for all four beside them (large markers) and a few small ticks on the 3-D axes, so labels do not collide."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    fig = plt.figure(figsize=(13, 10))
    colors = plt.get_cmap("tab10")
    digits = sorted(set(int(v) for v in labels))
    ax3 = fig.add_subplot(2, 2, 1, projection="3d")
    for digit in digits:
        pts = codes[labels == digit]
        ax3.scatter(pts[:, 0], pts[:, 1], pts[:, 2], s=4, color=colors(digit), depthshade=False)
    for axis, name in ((ax3.xaxis, "z1"), (ax3.yaxis, "z2"), (ax3.zaxis, "z3")):
        axis.set_major_locator(MaxNLocator(nbins=4))
        axis.set_label_text(name)
        axis.labelpad = 2
    ax3.tick_params(axis="both", labelsize=7, pad=0)
    ax3.tick_params(axis="z", labelsize=7, pad=1)
    for slot, (i, j) in enumerate([(0, 1), (0, 2), (1, 2)], start=2):
        ax = fig.add_subplot(2, 2, slot)
        for digit in digits:
            pts = codes[labels == digit]
            ax.scatter(pts[:, i], pts[:, j], s=3, color=colors(digit), alpha=0.7)
        ax.set_xlabel(f"z{i + 1}")
        ax.set_ylabel(f"z{j + 1}")
        ax.set_aspect("auto")
    fig.suptitle(title)
    fig.tight_layout()
    handles = [Line2D([], [], ls="", marker="o", ms=10, color=colors(d), label=str(d)) for d in digits]
    fig.legend(
        handles=handles,
        title="digit",
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        fontsize=12,
        title_fontsize=12,
        frameon=False,
    )
    return save(fig, path)


def pca_losses_figure(history, pca_test_mse: float, path: Path, latent_dim: int, synthetic: bool = False) -> Path:
    """The linear autoencoder's train and test MSE per epoch against the exact PCA optimum."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    epochs = [row["epoch"] for row in history]
    ax.plot(epochs, [row["train_loss"] for row in history], "-o", ms=3, label="linear AE train")
    ax.plot(epochs, [row["test_loss"] for row in history], "--s", ms=3, label="linear AE test")
    ax.axhline(
        pca_test_mse, color="black", lw=1.2, ls=":", label=f"exact rank-{latent_dim} optimum (test) {pca_test_mse:.4f}"
    )
    _plain_log_axis(ax)
    epoch_axis(ax)
    ax.set_ylabel("MSE")
    ax.set_title(f"Linear autoencoder k={latent_dim} vs the SVD optimum" + _synthetic_tag(synthetic))
    ax.legend(fontsize=8)
    return save(fig, path)


def pca_reconstructions_figure(originals, linear, pca, path: Path, latent_dim: int, synthetic: bool = False) -> Path:
    """Originals, linear-AE and PCA reconstructions, one row each."""
    rows = [
        ("original", originals.clip(0, 1)),
        (f"linear AE\nk={latent_dim}", linear.clip(0, 1)),
        (f"PCA\nk={latent_dim}", pca.clip(0, 1)),
    ]
    return _image_grid(rows, path, f"Linear autoencoder vs exact PCA, k={latent_dim}" + _synthetic_tag(synthetic))


def pixel_rows_png(rows: list, path: Path, scale: int = 3, gap: int = 2) -> Path:
    """Rows of images (each (k, side, side) or (k, side, side, 3), floats in [0, 1]) tiled into one
    PNG at `scale`x, no axes: drawn with Pillow alone, so a command that only predicts never pays
    for pyplot's import."""
    import io

    import numpy as np
    from PIL import Image

    arrays = [np.clip(np.asarray(r, dtype=np.float64), 0.0, 1.0) for r in rows]
    side = arrays[0].shape[1]
    columns = max(len(a) for a in arrays)
    step = side * scale + gap
    colour = arrays[0].ndim == 4
    canvas = np.full((len(arrays) * step + gap, columns * step + gap) + ((3,) if colour else ()), 255, np.uint8)
    for r, images in enumerate(arrays):
        for c, image in enumerate(images):
            pixels = np.rint(image * 255).astype(np.uint8).repeat(scale, 0).repeat(scale, 1)
            top, left = gap + r * step, gap + c * step
            canvas[top : top + side * scale, left : left + side * scale] = pixels
    buffer = io.BytesIO()
    Image.fromarray(canvas).save(buffer, format="PNG")
    return atomic_write_bytes(path, buffer.getvalue())


def confusion_figure(matrix: list[list[int]], classes: list[str], path: Path, title: str) -> Path:
    """A confusion matrix: true class down, predicted class across, each cell's count written in it."""
    plt = pyplot()
    k = len(classes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * k, 0.8 + 0.55 * k))
    ax.imshow(matrix, cmap="Blues")
    top = max((max(row) for row in matrix), default=0)
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            colour = "white" if top and count > top / 2 else "black"
            ax.text(j, i, str(count), ha="center", va="center", fontsize=8, color=colour)
    ax.set_xticks(range(k), classes)
    ax.set_yticks(range(k), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    return save(fig, path)
