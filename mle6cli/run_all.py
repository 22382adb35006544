"""`mle6 run-all`: every part of the exercise sheet, in order, into one folder, with a report.

Steps (each in its own sub-folder where it trains):
conv-size cases → gauss-conv → CNN summary → sweep-lr (+ test of the best) → train-ae →
latent-plot → pca-ae --compare → report.html / report.md beside a summary.json.

Both datasets are opened before anything trains, so a missing dataset fails in seconds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mle6cli import runs
from mle6cli.maths import ConvGeometry, cnn_trace, conv_output, gauss_conv_check
from mle6cli.report import Section, Table, write_report

# What the exercise sheet itself reports, set beside our numbers in the report.
EXERCISE = {
    "cnn_params": 131_958,
    "best_lr": 1e-3,
    "best_val_acc": 0.9083,
    "best_test_acc": 0.8917,
    "epochs": 50,
    "lr_0.1_train_loss": 1.79,  # ln 6 = 1.7918: a uniform guess over six classes
    "all_black_mse": 0.1233,  # mean of x² on MNIST test images: the collapsed output
}

CONV_CASES = [
    ("valid", ConvGeometry((64, 64), (3, 3), "valid")),
    ("same", ConvGeometry((64, 64), (3, 3), "same")),
    ("down-sampling", ConvGeometry((64, 64), (3, 3), (1, 1), (2, 2))),
    ("up-sampling", ConvGeometry((7, 7), (3, 3), (1, 1), (2, 2), transposed=True, output_padding=(1, 1))),
]
GAUSS = (1.0, 0.5, -2.0, 1.5)  # mu1, sigma1, mu2, sigma2


@dataclass(frozen=True)
class Plan:
    lrs: tuple[float, ...] = (1e-1, 1e-3, 1e-4, 1e-5)
    sweep_epochs: int = 50
    batch_size: int = 64
    ae_dims: tuple[int, ...] = (3, 10, 100, 250)
    ae_epochs: int = 10
    ae_batch_size: int = 128
    pca_dim: int = 10
    pca_epochs: int = 10
    latent_n: int = 2000
    gauss_samples: int = 100_000
    synthetic_signs_per_class: tuple[int, int, int] = (160, 20, 20)  # train/val/test, as the real split


FULL = Plan()
# --quick: < 3 min on 2 CPU cores; all four latent sizes stay so the PCA crossover still shows
QUICK = Plan(sweep_epochs=8, ae_epochs=2, pca_epochs=3, latent_n=1000, gauss_samples=20_000)


@dataclass
class RunAllConfig:
    signs_dir: str = "sign_data"
    mnist_dir: str = "data"
    synthetic: bool = False
    quick: bool = False
    device: str = "auto"
    seed: int | None = None  # None: each command's own default seed (train-cnn 42, train-ae 0, …)
    download: bool = True

    def seed_for(self, config_class) -> int:
        """The seed of one step: --seed when given, else that command's own default."""
        return self.seed if self.seed is not None else config_class.__dataclass_fields__["seed"].default

    @property
    def plan(self) -> Plan:
        return QUICK if self.quick else FULL


@dataclass
class _Context:
    config: RunAllConfig
    run_dir: Path
    device: object
    progress: Callable[[str, int, dict], None]
    step: Callable[[str], None]
    should_stop: Callable[[], bool] | None
    results: dict = field(default_factory=dict)
    figures: dict = field(default_factory=dict)


def run_all(
    config: RunAllConfig,
    out: Path | None = None,
    *,
    overwrite: bool = False,
    progress: Callable[[str, int, dict], None] | None = None,
    step: Callable[[str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict:
    """Run the whole sheet into a new run folder (`out`, default runs/run-all/<stamp>) and write the report.

    Returns the summary (also written as summary.json, last).
    `progress(label, done, metrics)` gets every training epoch, counted over all steps
    (`total_epochs(config)` of them); `step(name)` is called as each part starts.
    """
    from mle6cli.autoencoders import AeConfig
    from mle6cli.classifier import TrainConfig
    from mle6cli.data.mnist import mnist_spec, open_mnist
    from mle6cli.device import resolve_device, set_seed

    plan = config.plan
    device = resolve_device(config.device)
    set_seed(config.seed or 0)
    started = time.perf_counter()

    # Open both datasets before the run folder exists: a missing one fails now, and leaves nothing behind.
    signs_config = TrainConfig(
        lr=plan.lrs[0],
        epochs=plan.sweep_epochs,
        batch_size=plan.batch_size,
        seed=config.seed_for(TrainConfig),
        device=config.device,
        data_dir=config.signs_dir,
        synthetic=config.synthetic,
    )
    from mle6cli.classifier import load_data

    signs = load_data(signs_config, device)
    spec = mnist_spec(config.mnist_dir, config.synthetic, config.download)
    mnist = open_mnist(spec, device)

    run_dir = runs.prepare_run_dir(out, "run-all", overwrite)
    runs.start(run_dir, "run-all", config=asdict(config), plan=asdict(plan), device=str(device))
    ctx = _Context(config, run_dir, device, _Counter(progress), step or (lambda name: None), should_stop)
    _maths(ctx)
    _summary(ctx)
    _sweep(ctx, signs_config, signs)
    ae_config = AeConfig(
        latent_dims=list(plan.ae_dims),
        epochs=plan.ae_epochs,
        batch_size=plan.ae_batch_size,
        seed=config.seed_for(AeConfig),
    )
    _autoencoders(ctx, ae_config, spec, mnist)
    _latent(ctx, mnist)
    _pca(ctx, spec, mnist)

    synthetic = {"signs": signs.synthetic, "mnist": mnist.synthetic}
    sections = build_sections(ctx.results, ctx.figures, plan, synthetic)
    banner = _data_banner(synthetic, signs, mnist)
    html_path, md_path = write_report(ctx.run_dir, "The exercise sheet, run by mle6", sections, banner)
    summary = {
        "command": "run-all",
        "quick": config.quick,
        "device": str(device),
        "synthetic": synthetic,
        "data": {"signs": signs.source.get("path", "synthetic"), "mnist": mnist.source},
        "seconds": time.perf_counter() - started,
        "results": ctx.results,
        "report_html": str(html_path),
        "report_md": str(md_path),
        "run_dir": str(ctx.run_dir),
    }
    runs.finish(ctx.run_dir, summary)
    return summary


def total_epochs(config: RunAllConfig) -> int:
    p = config.plan
    return len(p.lrs) * p.sweep_epochs + len(p.ae_dims) * p.ae_epochs + p.pca_epochs


class _Counter:
    """Turns each step's own epoch counts into one running count over the whole run."""

    def __init__(self, progress):
        self.progress, self.offset, self.last = progress, 0, 0

    def __call__(self, label: str, done: int, metrics: dict) -> None:
        self.last = max(self.last, done)
        if self.progress is not None:
            self.progress(label, self.offset + done, metrics)

    def next_step(self) -> None:
        self.offset += self.last
        self.last = 0


# ---------------------------------------------------------------- the steps


def _maths(ctx: _Context) -> None:
    ctx.step("conv-size: the exercise's special cases")
    cases = []
    for name, geom in CONV_CASES:
        r = conv_output(geom)
        cases.append({"case": name, **r.to_dict()})
    ctx.results["conv_size"] = {"cases": cases, "cnn_trace": cnn_trace((64, 64))}

    ctx.step("gauss-conv")
    from mle6cli.plots import gauss_conv_figure

    report, data = gauss_conv_check(*GAUSS, samples=ctx.config.plan.gauss_samples, seed=ctx.config.seed or 0)
    ctx.figures["gauss"] = gauss_conv_figure(data, ctx.run_dir / "gauss_conv.png")
    ctx.results["gauss_conv"] = report.to_dict()


def _summary(ctx: _Context) -> None:
    ctx.step("summary cnn")
    from mle6cli.summary import summarize

    s = summarize("cnn")
    runs.atomic_write_bytes(ctx.run_dir / "summary_cnn.txt", (s.table + "\n").encode())
    ctx.results["summary_cnn"] = {"total_params": s.total_params, "table": s.table}


def _sweep(ctx: _Context, signs_config, signs) -> None:
    ctx.step(f"sweep-lr: {len(ctx.config.plan.lrs)} learning rates × {signs_config.epochs} epochs")
    from mle6cli.classifier import sweep_lr

    # the run folder is new or --overwrite was given: its step folders are ours to reuse
    sub = runs.prepare_run_dir(ctx.run_dir / "sweep-lr", "sweep-lr", overwrite=True)
    summary = sweep_lr(
        signs_config, list(ctx.config.plan.lrs), signs, ctx.device, sub, ctx.progress, stop=ctx.should_stop
    )
    ctx.progress.next_step()
    ctx.results["sweep_lr"] = summary
    ctx.figures["sweep"] = sub / "sweep_curves.png"


def _autoencoders(ctx: _Context, ae_config, spec, mnist) -> None:
    ctx.step(f"train-ae: latent sizes {','.join(map(str, ae_config.latent_dims))} × {ae_config.epochs} epochs")
    from mle6cli.autoencoders import run_train_ae

    sub = runs.prepare_run_dir(ctx.run_dir / "train-ae", "train-ae", overwrite=True)
    result = run_train_ae(
        ae_config, spec, ctx.device, sub, data=mnist, progress=ctx.progress, should_stop=ctx.should_stop
    )
    ctx.progress.next_step()
    ctx.results["train_ae"] = result.to_json()
    ctx.figures["ae_losses"] = sub / result.figures["losses"]
    ctx.figures["reconstructions"] = sub / result.figures["reconstructions"]


def _latent(ctx: _Context, mnist) -> None:
    ctx.step("latent-plot: the d=3 codes")
    from mle6cli.autoencoders import load_autoencoder
    from mle6cli.latent import find_d3_checkpoint, plot_latent

    sub = ctx.run_dir / "train-ae"
    try:
        path = find_d3_checkpoint(sub)
    except runs.RunDirError:
        ctx.results["latent_plot"] = None  # no d=3 in this plan
        return
    model, meta = load_autoencoder(path, ctx.device)
    result = plot_latent(model, meta, mnist, ctx.config.plan.latent_n, ctx.run_dir / "latent.png")
    ctx.results["latent_plot"] = result.to_json()
    ctx.figures["latent"] = Path(result.plot)


def _pca(ctx: _Context, spec, mnist) -> None:
    plan = ctx.config.plan
    ctx.step(f"pca-ae: k={plan.pca_dim}, {plan.pca_epochs} epochs, compared with the conv autoencoders")
    from mle6cli.pca import PcaAeConfig, run_pca_ae

    sub = runs.prepare_run_dir(ctx.run_dir / "pca-ae", "pca-ae", overwrite=True)
    config = PcaAeConfig(
        latent_dim=plan.pca_dim,
        epochs=plan.pca_epochs,
        batch_size=plan.ae_batch_size,
        seed=ctx.config.seed_for(PcaAeConfig),
    )
    result = run_pca_ae(
        config,
        spec,
        ctx.device,
        sub,
        data=mnist,
        compare=ctx.run_dir / "train-ae",
        progress=ctx.progress,
        should_stop=ctx.should_stop,
    )
    ctx.progress.next_step()
    ctx.results["pca_ae"] = result.to_json()
    ctx.figures["pca_losses"] = sub / result.figures["losses"]
    ctx.figures["pca_reconstructions"] = sub / result.figures["reconstructions"]


# ---------------------------------------------------------------- the report


def _data_banner(synthetic: dict, signs, mnist) -> str | None:
    parts = []
    if synthetic["signs"]:
        parts.append("the SIGNS images are SYNTHETIC (built-in drawn hands), not the real photos")
    if synthetic["mnist"]:
        parts.append("the digits are SYNTHETIC (font glyphs under random jitter), not MNIST")
    if not parts:
        return None
    return "Synthetic data: " + "; ".join(parts) + ". Numbers here do not measure the exercise's datasets."


def _f(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:.{digits}f}"


def build_sections(results: dict, figures: dict, plan: Plan, synthetic: dict) -> list[Section]:
    sections = []
    conv = results["conv_size"]
    sections.append(
        Section(
            "Convolution output sizes",
            [
                "H_out = floor((H + 2p − d(K−1) − 1)/s) + 1; transposed: (H−1)s − 2p + d(K−1) + op + 1. "
                "Every size below was computed by mle6 conv-size and agrees with torch's layers (a property test "
                "checks the formula against torch over thousands of random geometries)."
            ],
            [
                Table(
                    ["case", "input", "kernel", "padding", "stride", "output", "formula (H)"],
                    [
                        [
                            c["case"],
                            _hw(c["input"]),
                            _hw(c["kernel"]),
                            c["padding_mode"] if c["padding_mode"] != "explicit" else _hw(c["padding"]),
                            _hw(c["stride"]),
                            _hw(c["output"]),
                            c["formulas"][0],
                        ]
                        for c in conv["cases"]
                    ],
                    "The exercise's special cases",
                ),
                Table(
                    ["layer", "shape"],
                    [[r["layer"], " × ".join(map(str, r["shape"]))] for r in conv["cnn_trace"]],
                    "The CNN, layer by layer: 64×64 → 2048 features (the exercise's comment)",
                ),
            ],
        )
    )
    g = results["gauss_conv"]
    sections.append(
        Section(
            "Sum of two Gaussians",
            [
                f"X1 ~ N({g['mu1']:g}, {g['sigma1']:g}²) and X2 ~ N({g['mu2']:g}, {g['sigma2']:g}²) independent give "
                f"Z ~ N(μ1+μ2, σ1²+σ2²) = N({g['mean']:g}, {g['variance']:g}). Completing the square: "
                f"Σ² = σ1²σ2²/(σ1²+σ2²) = {g['Sigma2']:.6g}, μ*(z) = {g['mu_star_intercept']:.6g} + "
                f"{g['mu_star_slope']:.6g}·z."
            ],
            [
                Table(
                    ["check", "result"],
                    [
                        [
                            "numeric convolution: max |error| against the analytic pdf",
                            f"{g['numeric_max_abs_error']:.3g}",
                        ],
                        [f"sample mean ({g['samples']:,} draws)", f"{g['mc_mean']:.5f} (analytic {g['mean']:g})"],
                        ["sample variance", f"{g['mc_variance']:.5f} (analytic {g['variance']:g})"],
                        ["Kolmogorov–Smirnov p-value against the analytic cdf", f"{g['ks_pvalue']:.3g}"],
                    ],
                )
            ],
            [figures["gauss"]],
        )
    )
    sections.append(
        Section(
            "The CNN and its parameters",
            [
                "torch-summary of the exercise's CNN (Conv 3→4 'same', BN, ReLU, MaxPool; Conv 4→8 'same', BN, ReLU, "
                "MaxPool; 2048→64→6, LogSoftmax)."
            ],
            [
                Table(
                    ["quantity", "exercise", "mle6"],
                    [["parameters", f"{EXERCISE['cnn_params']:,}", f"{results['summary_cnn']['total_params']:,}"]],
                )
            ],
        )
    )
    sections.append(_sweep_section(results["sweep_lr"], figures, plan, synthetic["signs"]))
    sections.append(_ae_section(results["train_ae"], figures, plan, synthetic["mnist"]))
    if results.get("latent_plot"):
        lat = results["latent_plot"]
        sections.append(
            Section(
                "The 3-D latent space",
                [
                    f"{lat['points']} test images encoded by the d=3 autoencoder, coloured by digit, with the "
                    "three 2-D projections. Beyond the exercise: how well do the digits separate in the codes?"
                ],
                [
                    Table(
                        ["measure", "value"],
                        [
                            [
                                f"{lat['knn_k']}-NN accuracy (fit on half, tested on the other half)",
                                _f(lat["knn_accuracy"]),
                            ],
                            ["silhouette score", _f(lat["silhouette"])],
                        ],
                    )
                ],
                [figures["latent"]],
            )
        )
    sections.append(_pca_section(results["pca_ae"], figures))
    return sections


def _hw(pair) -> str:
    return f"{pair[0]}×{pair[1]}"


def _sweep_section(s: dict, figures: dict, plan: Plan, synthetic: bool) -> Section:
    by_lr = {r["lr"]: r for r in s["runs"]}
    bad = by_lr.get(1e-1)
    rows = [
        ["best learning rate", f"{EXERCISE['best_lr']:g}", f"{s['best_lr']:g}"],
        ["validation accuracy at the best lr", _f(EXERCISE["best_val_acc"]), _f(s["best_val_acc"])],
        ["test accuracy at the best lr", _f(EXERCISE["best_test_acc"]), _f(s["test_acc"])],
        ["|val − test|", _f(abs(EXERCISE["best_val_acc"] - EXERCISE["best_test_acc"])), _f(s["val_test_gap"])],
    ]
    if bad is not None:
        loss = (bad.get("final") or {}).get("train_loss")
        rows.append(
            [
                "lr 0.1: final train loss (ln 6 = 1.7918 is chance)",
                f"≈ {EXERCISE['lr_0.1_train_loss']}",
                "diverged" if bad["diverged"] else _f(loss),
            ]
        )
    members = [
        [
            f"{r['lr']:g}",
            r["status"],
            _f((r.get("final") or {}).get("train_loss")),
            _f((r.get("final") or {}).get("val_loss")),
            _f((r.get("final") or {}).get("val_acc")),
            _f(r.get("test_acc")),
        ]
        for r in s["runs"]
    ]
    epochs_note = (
        ""
        if plan.sweep_epochs == EXERCISE["epochs"]
        else (f" This run used {plan.sweep_epochs} epochs, not the exercise's {EXERCISE['epochs']} (--quick).")
    )
    return Section(
        "SIGNS classifier: learning-rate sweep",
        [
            f"One CNN per learning rate, all from the same initial weights and batch order, Adam + NLL loss, batch "
            f"{plan.batch_size}. The best lr is chosen by final validation accuracy (ties: lower validation loss), "
            f"then tested once.{epochs_note}"
            + (" The data are synthetic, so the exercise's numbers are not expected." if synthetic else "")
        ],
        [
            Table(["quantity", "exercise", "mle6"], rows, "The exercise's numbers beside ours"),
            Table(["lr", "status", "train loss", "val loss", "val acc", "test acc"], members, "Every learning rate"),
        ],
        [figures["sweep"]],
    )


def _ae_section(ae: dict, figures: dict, plan: Plan, synthetic: bool) -> Section:
    rows = [
        [
            r["latent_dim"],
            _f(r["train_loss"][-1] if r["train_loss"] else None),
            _f(r["final_test_mse"]),
            "yes" if r["collapsed"] else "no",
            r["retries"],
        ]
        for r in ae["runs"]
    ]
    finals = [r["final_test_mse"] for r in ae["runs"] if r["final_test_mse"] is not None]
    monotone = all(a >= b for a, b in zip(finals, finals[1:]))
    return Section(
        "MNIST convolutional autoencoders",
        [
            f"The exercise's conv autoencoder at latent sizes {', '.join(map(str, plan.ae_dims))}, {plan.ae_epochs} "
            "epochs each, Adam + MSE, with the test loss measured every epoch (the exercise measured it once).",
            f"Claim: a larger latent size reconstructs better — "
            f"{'holds here' if monotone else 'does not hold in this run'} (test MSE by d: "
            + ", ".join(_f(v) for v in finals)
            + ").",
            f"Claim: a collapsed model outputs all black, scoring mean(x²) = {EXERCISE['all_black_mse']} on MNIST; "
            f"this test set's all-black MSE is {_f(ae['trivial_test_mse'])}. mle6 starts the last layer's bias "
            "positive so no output pixel is dead from the first step, and restarts any run that still collapses."
            + (" The digits are synthetic." if synthetic else ""),
        ],
        [Table(["d", "train MSE", "test MSE", "collapsed", "restarts"], rows, "Final losses per latent size")],
        [figures["ae_losses"], figures["reconstructions"]],
    )


def _pca_section(p: dict, figures: dict) -> Section:
    rows = [[p["latent_dim"], _f(p["linear_ae_test_mse"]), _f(p["pca_test_mse"]), _f(p["ratio"])]]
    angles = p["principal_angles_deg"]
    tables = [
        Table(
            ["k", "linear AE test MSE", "exact optimum test MSE", "ratio"],
            rows,
            "The bias-free linear autoencoder against its exact optimum",
        )
    ]
    paragraphs = [
        "The exact optimum of a bias-free rank-k linear map projects onto the top-k right singular vectors of the "
        f"uncentred training matrix. Principal angles between the decoder's column space and that subspace: "
        f"{angles[0]:.1f}° to {angles[-1]:.1f}°."
    ]
    compare = p.get("compare") or []
    if compare:
        tables.append(
            Table(
                ["d", "conv AE test MSE", "exact PCA test MSE", "better"],
                [
                    [
                        r["latent_dim"],
                        _f(r["conv_ae_test_mse"]),
                        _f(r["pca_test_mse"]),
                        r["better"] + (" (conv AE collapsed)" if r["conv_ae_collapsed"] else ""),
                    ]
                    for r in compare
                ],
                "Conv autoencoder vs exact PCA",
            )
        )
        wins = [r["latent_dim"] for r in compare if r["better"] == "PCA"]
        paragraphs.append(
            "The exercise claims the conv autoencoder always reconstructs better than PCA. "
            + (
                "It does at every latent size in this run."
                if not wins
                else f"Here PCA wins at d = {', '.join(map(str, wins))}: the claim does not hold."
            )
        )
    return Section(
        "Linear (PCA) autoencoder", paragraphs, tables, [figures["pca_losses"], figures["pca_reconstructions"]]
    )
