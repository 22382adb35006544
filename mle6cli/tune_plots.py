"""`mle6 tune`'s figures (matplotlib, PNG; every other figure is in plots.py), drawn from plain data: one
dict per trial with its `number`, `state`, `params`, `value` (None unless complete) and `curve`, its
reported values by epoch.

    history.png            the objective of each trial, and the best so far
    objective_<name>.png   the objective against each parameter (log axis for a log: range)
    curves.png             every trial's validation curve; a pruned one ends in a cross where it stopped
"""

from __future__ import annotations

from pathlib import Path

from mle6cli import plots

STYLES = {"complete": ("o", "tab:blue"), "pruned": ("x", "tab:red"), "diverged": ("s", "black")}


def _last(trial: dict) -> float | None:
    """The trial's value, or a pruned one's last report."""
    if trial["value"] is not None:
        return trial["value"]
    return trial["curve"][-1][1] if trial["curve"] else None


def history_figure(trials: list[dict], metric: str, maximize: bool, path: Path) -> Path:
    plt = plots.pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for state, (marker, color) in STYLES.items():
        mine = [t for t in trials if t["state"] == state and _last(t) is not None]
        if mine:
            ax.plot([t["number"] for t in mine], [_last(t) for t in mine], marker, color=color, ls="", label=state)
    best, xs, ys = None, [], []
    for t in sorted(trials, key=lambda t: t["number"]):
        if t["value"] is not None and (best is None or (t["value"] > best if maximize else t["value"] < best)):
            best = t["value"]
        if best is not None:
            xs.append(t["number"])
            ys.append(best)
    ax.step(xs, ys, where="post", color="tab:green", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"validation {metric.removeprefix('val_')}")
    ax.grid(alpha=0.3)
    ax.legend()
    return plots.save(fig, path)


def objective_figure(trials: list[dict], name: str, key: str, log: bool, metric: str, path: Path) -> Path:
    plt = plots.pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for state, (marker, color) in STYLES.items():
        mine = [t for t in trials if t["state"] == state and _last(t) is not None and key in t["params"]]
        if mine:
            ax.plot([t["params"][key] for t in mine], [_last(t) for t in mine], marker, color=color, ls="", label=state)
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(name)
    ax.set_ylabel(f"validation {metric.removeprefix('val_')}")
    ax.grid(alpha=0.3)
    ax.legend()
    return plots.save(fig, path)


def curves_figure(trials: list[dict], metric: str, path: Path) -> Path:
    plt = plots.pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for t in trials:
        if not t["curve"]:
            continue
        steps, values = zip(*t["curve"], strict=True)
        pruned = t["state"] == "pruned"
        ax.plot(steps, values, color="tab:red" if pruned else "tab:blue", alpha=0.5 if pruned else 0.8, lw=1)
        if pruned:
            ax.plot(steps[-1], values[-1], "x", color="tab:red")
    ax.plot([], [], color="tab:blue", label="complete")
    ax.plot([], [], "x-", color="tab:red", label="pruned (x: where it stopped)")
    plots.epoch_axis(ax)
    ax.set_ylabel(f"validation {metric.removeprefix('val_')}")
    ax.grid(alpha=0.3)
    ax.legend()
    return plots.save(fig, path)
