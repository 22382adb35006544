"""Figures read the way people write numbers: whole epochs, plain numbers on log axes, learning
rates as fmt.lr_label, a readable latent legend. Checked on the matplotlib objects, not on pixels."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from mle6cli import plots
from mle6cli.engine.distributed import process_alive
from mle6cli.fmt import lr_label
from tests.conftest import subprocess_env

SCIENTIFIC = re.compile(r"×|\^|\\times|\$|\\mathdefault")  # 1.8×10⁰ as matplotlib writes it: $\mathdefault{…}$
LR_NUMBER = re.compile(r"\blr[ =]+(\d[\d.e+-]*\d)")  # "lr 1e-03", "lr=0.1" in a legend or a text


def _axes():
    plt = plots.pyplot()
    fig, ax = plt.subplots()
    return plt, fig, ax


def in_view(ticks, limits) -> list[float]:
    lo, hi = sorted(limits)
    span = hi - lo
    return [t for t in ticks if lo - 1e-9 * span <= t <= hi + 1e-9 * span]


def _labelsize(axis) -> float | None:
    ticks = axis.get_major_ticks()
    return ticks[0].label1.get_fontsize() if ticks else None


def axis_facts(ax) -> dict:
    """What a reader sees on one Axes (after a draw): labels, ticks in view, scales, legend texts."""
    axes = [("x", ax.xaxis, ax.get_xlim()), ("y", ax.yaxis, ax.get_ylim())]
    if hasattr(ax, "zaxis"):
        axes.append(("z", ax.zaxis, ax.get_zlim()))
    return {
        "xlabel": ax.get_xlabel(),
        "is3d": hasattr(ax, "zaxis"),
        "yscale": ax.get_yscale(),
        "ticks": {name: in_view(axis.get_majorticklocs(), lim) for name, axis, lim in axes},
        "labels": {
            name: [t.get_text() for t in axis.get_ticklabels(which="both") if t.get_text()] for name, axis, _ in axes
        },
        "labelsize": {name: _labelsize(axis) for name, axis, _ in axes},
        "legend": [t.get_text() for t in ax.get_legend().get_texts()] if ax.get_legend() else [],
    }


def figure_facts(fig) -> dict:
    """Every Axes' facts, which of them share an epoch axis, and the figure-level legends."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    # the 3-D extents as drawn, before the ticks are asked for: after that, matplotlib 3.9 counts the
    # out-of-view tick labels (thousands of pixels away, never drawn) in the 3-D tight box
    extents = [ax.get_tightbbox(renderer).bounds if hasattr(ax, "zaxis") else None for ax in fig.axes]
    facts = [axis_facts(ax) for ax in fig.axes]
    epoch_axes = [ax for ax in fig.axes if ax.get_xlabel() == "epoch"]
    for ax, f, extent in zip(fig.axes, facts, extents, strict=True):
        f["epoch_axis"] = any(ax in e.get_shared_x_axes().get_siblings(e) for e in epoch_axes)
        f["extent"] = extent
    legends = []
    for legend in fig.legends:
        legends.append(
            {
                "texts": [t.get_text() for t in legend.get_texts()],
                "fontsize": legend.get_texts()[0].get_fontsize(),
                "markersize": min(h.get_markersize() for h in legend.legend_handles),
                "extent": legend.get_window_extent(renderer).bounds,
            }
        )
    return {"axes": facts, "legends": legends}


@contextmanager
def recording_figures(monkeypatch):
    """plots.save, recording each figure's facts by file name before it writes the file."""
    recorded: dict[str, dict] = {}
    real_save = plots.save

    def save(fig, path, **kwargs):
        recorded[str(path).rsplit("/", 1)[-1]] = figure_facts(fig)
        return real_save(fig, path, **kwargs)

    monkeypatch.setattr(plots, "save", save)
    yield recorded


def assert_reads_plainly(name: str, facts: dict) -> None:
    """Whole epochs on every epoch axis, no scientific tick labels, learning rates as lr_label."""
    for ax in facts["axes"]:
        if ax["epoch_axis"]:
            assert ax["ticks"]["x"], f"{name}: an epoch axis without ticks"
            assert all(float(t).is_integer() for t in ax["ticks"]["x"]), f"{name}: epoch ticks {ax['ticks']['x']}"
        for axis, labels in ax["labels"].items():
            bad = [t for t in labels if SCIENTIFIC.search(t)]
            assert not bad, f"{name}: {axis} tick labels {bad}"
        if ax["yscale"] == "log":
            assert len(ax["ticks"]["y"]) >= 2, f"{name}: a log axis with {ax['ticks']['y']} labelled ticks"
        for text in ax["legend"]:
            for lr in LR_NUMBER.findall(text):
                assert lr == lr_label(float(lr)), f"{name}: legend {text!r} writes lr {lr}, not {lr_label(float(lr))}"


@pytest.mark.parametrize("epochs", [1, 2, 3, 7, 50])
def test_epoch_axis_ticks_are_whole_numbers(epochs):
    plt, fig, ax = _axes()
    ax.plot(range(1, epochs + 1), np.linspace(1, 2, epochs), "o-")
    plots.epoch_axis(ax)
    fig.canvas.draw()
    ticks = in_view(ax.get_xticks(), ax.get_xlim())
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    plt.close(fig)
    assert ticks and all(float(t).is_integer() for t in ticks), ticks
    assert ax.get_xlabel() == "epoch" and all("." not in t for t in labels), labels


@pytest.mark.parametrize(
    "low, high",
    [(1.75, 1.85), (0.1011, 0.1020), (0.0706, 0.1235), (0.3, 2.2), (0.01, 2.3), (1e-4, 500.0)],
)
def test_plain_log_axis_labels_read_as_numbers(low, high):
    plt, fig, ax = _axes()
    ax.plot([1, 2, 3], [low, (low * high) ** 0.5, high])
    plots._plain_log_axis(ax)
    fig.canvas.draw()
    ticks = in_view(ax.yaxis.get_majorticklocs(), ax.get_ylim())
    major = [t.get_text() for t in ax.yaxis.get_majorticklabels()]
    minor = [t.get_text() for t in ax.yaxis.get_minorticklabels() if t.get_text()]
    plt.close(fig)
    assert ax.get_yscale() == "log"
    assert len(ticks) >= 2, f"only {ticks} labelled between {low} and {high}"
    assert not minor, minor  # minor ticks carry no labels, so none can read 2×10⁻¹
    shown = [t for t in major if t]
    assert shown and not any(SCIENTIFIC.search(t) for t in shown), shown
    for text in shown:
        float(text)  # a plain number


def test_matplotlib_alone_would_write_scientific_labels():
    """The control: without `_plain_log_axis` a narrow log axis reads 1.8×10⁰ (so the test above can fail)."""
    plt, fig, ax = _axes()
    ax.plot([1, 2], [1.75, 1.85])
    ax.set_yscale("log")
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.yaxis.get_ticklabels(which="both") if t.get_text()]
    plt.close(fig)
    assert any(SCIENTIFIC.search(t) for t in labels), labels


def _history(epochs: int, keys: tuple[str, ...], start: float = 1.8) -> list[dict]:
    return [{"epoch": e, **{k: start / e if "loss" in k else 0.2 * e for k in keys}} for e in range(1, epochs + 1)]


@pytest.mark.parametrize("epochs", [1, pytest.param(4, marks=pytest.mark.slow)])
def test_every_training_figure_reads_plainly(monkeypatch, tmp_path, epochs):
    classifier = ("train_loss", "val_loss", "train_acc", "val_acc")
    with recording_figures(monkeypatch) as recorded:
        plots.curves_figure(_history(epochs, classifier), tmp_path / "curves.png")
        groups = [(f"lr {lr_label(lr)}", [_history(epochs, classifier, 1.8 + i)]) for i, lr in enumerate((1e-1, 1e-3))]
        plots.sweep_curves_figure(groups, tmp_path / "sweep.png", "sweep")
        runs = [
            SimpleNamespace(
                latent_dim=d, history=_history(epochs, ("train_loss", "test_loss"), 0.1 / d), collapsed=False
            )
            for d in (3, 10)
        ]
        for r in runs:
            r.status = "finished"
        levels = SimpleNamespace(all_black=0.1235, mean_image=0.0706)
        plots.ae_losses_figure(runs, levels, tmp_path / "ae.png")
        plots.pca_losses_figure(_history(epochs, ("train_loss", "test_loss"), 0.05), 0.03, tmp_path / "pca.png", 4)
    assert set(recorded) == {"curves.png", "sweep.png", "ae.png", "pca.png"}
    for name, facts in recorded.items():
        assert any(ax["epoch_axis"] for ax in facts["axes"]), name
        assert_reads_plainly(name, facts)
    sweep = recorded["sweep.png"]
    assert sweep["axes"][0]["legend"] == ["lr 1e-01", "lr 1e-03"]
    assert all(ax["epoch_axis"] for ax in sweep["axes"])  # the loss panels share the accuracy panels' epochs


def layout_faults(fig) -> list[str]:
    """What fixed margins can get wrong: text cut off at the figure's edge, one panel's labels over another's."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    width, height = fig.get_size_inches()
    drawn = fig.get_tightbbox(renderer)  # inches
    faults = []
    if drawn.x0 < 0 or drawn.y0 < 0 or drawn.x1 > width or drawn.y1 > height:
        faults.append(f"drawn {drawn.bounds} outside the {width}x{height} in figure")
    boxes = [ax.get_tightbbox(renderer) for ax in fig.axes]
    for i, a in enumerate(boxes):
        for j in range(i + 1, len(boxes)):
            b = boxes[j]
            if min(a.x1, b.x1) > max(a.x0, b.x0) and min(a.y1, b.y1) > max(a.y0, b.y0):
                faults.append(f"panels {i} and {j} overlap")
    return faults


@contextmanager
def checking_layout(monkeypatch):
    """plots.save, recording the layout faults of each figure laid out by fixed margins."""
    faults: dict[str, list[str]] = {}
    real_save = plots.save

    def save(fig, path, tight=True):
        if not tight:
            faults[Path(path).name] = layout_faults(fig)
        return real_save(fig, path, tight=tight)

    monkeypatch.setattr(plots, "save", save)
    yield faults


@pytest.mark.parametrize("epochs", [1, pytest.param(50, marks=pytest.mark.slow)])
@pytest.mark.parametrize(
    "scale", [1e-5, pytest.param(1.0, marks=pytest.mark.slow), pytest.param(3e4, marks=pytest.mark.slow)]
)
def test_fixed_margin_figures_cut_nothing_off(monkeypatch, tmp_path, epochs, scale):
    """The training figures skip bbox_inches="tight": whatever the numbers, every label stays inside."""
    keys = ("train_loss", "val_loss", "train_acc", "val_acc")
    seeds = [_history(epochs, keys, scale * (1 + s / 10)) for s in range(5)]
    with checking_layout(monkeypatch) as faults:
        plots.curves_figure(seeds[0], tmp_path / "curves.png", "SIGNS CNN, lr 1e-03, 50 epochs (synthetic data)")
        groups = [(f"lr {lr_label(lr)}", seeds) for lr in (1e-1, 1e-3, 1e-4, 1e-5)]
        title = "Learning-rate sweep, 50 epochs (synthetic data)"
        plots.sweep_curves_figure(groups, tmp_path / "sweep.png", title)
    assert faults == {"curves.png": [], "sweep.png": []}


def test_the_layout_check_sees_a_cut_off_label_and_overlapping_panels():
    plt = plots.pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(6, 3))
    left.set_ylabel("a label")
    right.set_ylabel("another label")
    fig.subplots_adjust(left=0.0, wspace=0.0)
    faults = layout_faults(fig)
    plt.close(fig)
    assert any("outside" in f for f in faults) and "panels 0 and 1 overlap" in faults


def test_the_check_catches_a_fractional_epoch_axis_and_an_unformatted_lr(monkeypatch, tmp_path):
    """The controls for `assert_reads_plainly`: matplotlib's defaults and a bare float fail it."""
    plt, fig, ax = _axes()
    ax.plot([1], [0.5], "o", label="lr 0.001")
    ax.set_xlabel("epoch")
    ax.legend()
    facts = figure_facts(fig)
    plt.close(fig)
    with pytest.raises(AssertionError, match="epoch ticks"):
        assert_reads_plainly("default", facts)
    facts["axes"][0]["ticks"]["x"] = [1.0]
    with pytest.raises(AssertionError, match="not 1e-03"):
        assert_reads_plainly("default", facts)


def _latent_facts(monkeypatch, tmp_path, n=400):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, n)
    codes = rng.normal(size=(10, 3))[labels] + 0.3 * rng.normal(size=(n, 3))
    with recording_figures(monkeypatch) as recorded:
        plots.latent_figure(codes, labels, tmp_path / "latent.png", "d=3 latent codes")
    return recorded["latent.png"]


@pytest.mark.slow
def test_latent_legend_is_readable_and_beside_the_3d_axes(monkeypatch, tmp_path):
    facts = _latent_facts(monkeypatch, tmp_path)
    (legend,) = facts["legends"]
    assert legend["texts"] == [str(d) for d in range(10)]
    assert legend["fontsize"] >= 10 and legend["markersize"] >= 8
    (ax3,) = [ax for ax in facts["axes"] if ax["is3d"]]
    lx, ly, lw, lh = legend["extent"]
    ax_x, ax_y, aw, ah = ax3["extent"]
    overlaps = lx < ax_x + aw and ax_x < lx + lw and ly < ax_y + ah and ax_y < ly + lh
    assert not overlaps, (legend["extent"], ax3["extent"])
    assert_reads_plainly("latent.png", facts)


@pytest.mark.slow
def test_latent_3d_ticks_are_few_and_small(monkeypatch, tmp_path):
    facts = _latent_facts(monkeypatch, tmp_path)
    (ax3,) = [ax for ax in facts["axes"] if ax["is3d"]]
    for axis in "xyz":
        assert 2 <= len(ax3["ticks"][axis]) <= 5, (axis, ax3["ticks"][axis])
        assert ax3["labelsize"][axis] <= 8
    flat = [ax for ax in facts["axes"] if not ax["is3d"]]
    assert len(flat) == 3 and all(ax["labelsize"]["x"] > ax3["labelsize"]["x"] for ax in flat)


@pytest.mark.parametrize(
    "suffix, magic", [(".png", b"\x89PNG"), (".pdf", b"%PDF"), (".svg", b"<svg"), (".jpg", b"\xff\xd8\xff")]
)
def test_save_writes_the_format_the_suffix_names(tmp_path, suffix, magic):
    plt, fig, ax = _axes()
    ax.plot([0, 1], [0, 1])
    data = plots.save(fig, tmp_path / f"f{suffix}").read_bytes()
    assert magic in data[:400]


def test_an_unknown_suffix_is_refused(tmp_path):
    with pytest.raises(plots.PlotError, match=r"cannot write a figure as 'f.gif': use .png, .pdf, .svg or .jpg"):
        plots.figure_format(tmp_path / "f.gif")


# ---- the drawing process (drawing.start), run in a fresh interpreter: it forks only
# while torch is not imported, which in pytest's own process it always is

WORKER_SCRIPT = r"""
import os, signal, sys
from pathlib import Path
from mle6cli import drawing, plots

out = Path(sys.argv[1])
history = [{"epoch": e, "train_loss": 2.0 / e, "val_loss": 2.2 / e, "train_acc": 0.15 * e, "val_acc": 0.14 * e}
           for e in range(1, 5)]
groups = [("lr 1e-03", [history]), ("lr 1e-04", [history[:2]])]
assert drawing.start(), "no worker started"
(pid,) = drawing._pool["executor"]._processes
assert "matplotlib.pyplot" not in sys.modules  # the worker imports it, not this process
drawing.in_background(plots.sweep_curves_figure, groups, out / "worker_sweep.png", "t")()
drawing.in_background(plots.curves_figure, history, out / "worker_curves.png", "t")()
try:
    drawing.in_background(plots.curves_figure, history, out / "bad.gif")()
except plots.PlotError as exc:
    print("error:", exc)
assert "matplotlib.pyplot" not in sys.modules
os.kill(pid, signal.SIGKILL)  # a worker that died: the next figure is drawn here
drawing.in_background(plots.curves_figure, history, out / "fallback_curves.png", "t")()
assert "matplotlib.pyplot" in sys.modules
drawing.shutdown()
plots.sweep_curves_figure(groups, out / "local_sweep.png", "t")
plots.curves_figure(history, out / "local_curves.png", "t")
print("worker", pid)
"""


@pytest.mark.slow
def test_the_drawing_process_draws_the_same_bytes_and_reports_errors(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", WORKER_SCRIPT, str(tmp_path)], capture_output=True, text=True, env=subprocess_env()
    )
    assert proc.returncode == 0, proc.stderr
    assert "error: cannot write a figure as 'bad.gif': use .png, .pdf, .svg or .jpg" in proc.stdout
    assert not (tmp_path / "bad.gif").exists()
    for name in ("sweep", "curves"):
        assert (tmp_path / f"worker_{name}.png").read_bytes() == (tmp_path / f"local_{name}.png").read_bytes()
    assert (tmp_path / "fallback_curves.png").read_bytes() == (tmp_path / "local_curves.png").read_bytes()


def test_a_training_command_leaves_no_drawing_process_behind(tmp_path):
    """The worker ends when its parent does, also when the parent is killed mid-run."""
    script = (
        "import os, sys, time\n"
        "from mle6cli import drawing\n"
        "drawing.start()\n"
        "print(*drawing._pool['executor']._processes, flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=subprocess_env())
    pid = int(proc.stdout.readline())
    assert process_alive(pid)
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_alive(pid)


def test_a_command_called_through_app_ends_its_drawing_process_quietly(tmp_path):
    """`cli.app` (not `main`) refusing a command after the drawing process started: stderr is its one line,
    with no traceback from the pool's teardown after it."""
    args = ["train-cnn", "--data-dir", str(tmp_path / "none"), "--device", "cpu", "--out", str(tmp_path / "r")]
    script = f"from mle6cli.cli import app\napp({args!r}, prog_name='mle6')\n"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=subprocess_env())
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"Error: data folder {tmp_path / 'none'} does not exist;")
    assert proc.stderr.count("\n") == 1, proc.stderr
