"""run-all's report text: the exercise's own statements beside what this run measured.

The "exercise" column quotes only what the sheet prints or says; anything the sheet does not
say is in the mle6 column or in the text, marked as ours. Comparisons name the epochs they
rest on, and a --quick run draws no verdict from its undertrained models.
"""

from __future__ import annotations

import math
from itertools import pairwise
from pathlib import Path

from mle6cli.fmt import cell, lr_label, mean_ci, plural
from mle6cli.report import Section, Table, write_report
from mle6cli.tasks.schema import PcaAeSummary, SweepSummary, TrainAeSummary, read

# What the exercise sheet itself prints or says, set beside our numbers.
EXERCISE = {
    "cnn_params": 131_958,
    "best_lr": 1e-3,
    "best_val_acc": 0.9083,
    "best_test_acc": 0.8917,
    "val_test_gap": 0.0167,  # "Difference from validation accuracy: 0.0167"
    "epochs": 50,
    "lr_0.1_final_train_loss": 1.7962,  # its log: "Epoch 50/50 – Train Loss: 1.7962"
    "ae_epochs": 10,
    "ae_mse_at_100": "~ 0.02 - 0.03",  # "Reconstruction quality (MSE ~ 0.02 - 0.03)" at d ≈ 100
}
LN6 = math.log(6)  # a uniform guess over six classes: ours, not the sheet's


def _hw(pair) -> str:
    return f"{pair[0]}×{pair[1]}"


def _data_banner(synthetic: dict) -> str | None:
    parts = []
    if synthetic["signs"]:
        parts.append("the SIGNS images are SYNTHETIC (built-in drawn hands), not the real photos")
    if synthetic["mnist"]:
        parts.append("the digits are SYNTHETIC (font glyphs under random jitter), not MNIST")
    if not parts:
        return None
    return "Synthetic data: " + "; ".join(parts) + ". Numbers here do not measure the exercise's datasets."


def write_sheet_report(run_dir: Path, results: dict, figures: dict, plan, synthetic: dict, provenance: dict):
    sections = build_sections(results, figures, plan, synthetic)
    return write_report(run_dir, "The exercise sheet, run by mle6", sections, _data_banner(synthetic), provenance)


def build_sections(results: dict, figures: dict, plan, synthetic: dict) -> list[Section]:
    sections = [_conv_section(results["conv_size"]), _gauss_section(results["gauss_conv"], figures)]
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
    # each training step's summary, read back through its schema (tasks.schema)
    sweep, ae, pca = (read(results[step]) for step in ("sweep_lr", "train_ae", "pca_ae"))
    sections.append(_sweep_section(sweep, figures, plan, synthetic["signs"], results.get("confusion")))
    sections.append(_ae_section(ae, figures, plan, synthetic["mnist"]))
    if results.get("latent_plot"):
        sections.append(_latent_section(results["latent_plot"], figures))
    sections.append(_pca_section(pca, figures))
    return sections


def _conv_section(conv: dict) -> Section:
    return Section(
        "Convolution output sizes",
        [
            "H_out = floor((H + 2p − d(K−1) − 1)/s) + 1; transposed: (H−1)s − 2p + d(K−1) + op + 1. "
            "Every size below was computed by mle6 conv-size and agrees with torch's layers (a property test "
            "checks the formula against torch over thousands of random geometries)."
        ],
        [
            Table(
                ["case", "input", "kernel", "padding", "stride", "output", "H_out ="],
                [
                    [
                        c["case"],
                        _hw(c["input"]),
                        _hw(c["kernel"]),
                        c["padding_mode"] if c["padding_mode"] != "explicit" else _hw(c["padding"]),
                        _hw(c["stride"]),
                        _hw(c["output"]),
                        c["formulas"][0].removeprefix("H_out = "),
                    ]
                    for c in conv["cases"]
                ],
                "The exercise's special cases (the formula along H, filled in)",
                code=(6,),
            ),
            Table(
                ["layer", "shape"],
                [[r["layer"], " × ".join(map(str, r["shape"]))] for r in conv["cnn_trace"]],
                "The CNN, layer by layer: 64×64 → 2048 features (the exercise's comment)",
            ),
        ],
    )


def _gauss_section(g: dict, figures: dict) -> Section:
    return Section(
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
                    ["numeric convolution: max |error| against the analytic pdf", f"{g['numeric_max_abs_error']:.3g}"],
                    [f"sample mean ({g['samples']:,} draws)", f"{g['mc_mean']:.5f} (analytic {g['mean']:g})"],
                    ["sample variance", f"{g['mc_variance']:.5f} (analytic {g['variance']:g})"],
                    ["Kolmogorov–Smirnov p-value against the analytic cdf", f"{g['ks_pvalue']:.3g}"],
                ],
            )
        ],
        [figures["gauss"]],
    )


def _sweep_section(s: SweepSummary, figures: dict, plan, synthetic: bool, confusion: dict | None = None) -> Section:
    by_lr = {r["lr"]: r for r in s["runs"]}
    bad = by_lr.get(1e-1)
    rows = [
        ["best learning rate", lr_label(EXERCISE["best_lr"]), lr_label(s["best_lr"])],
        ["validation accuracy at the best lr", cell(EXERCISE["best_val_acc"]), cell(s["best_val_acc"])],
        ["test accuracy at the best lr", cell(EXERCISE["best_test_acc"]), cell(s["test_acc"])],
        ["|val − test|", cell(EXERCISE["val_test_gap"]), cell(s["val_test_gap"])],
    ]
    if bad is not None:
        loss = (bad.get("final") or {}).get("train_loss")
        rows.append(
            [
                f"lr {lr_label(1e-1)}: final train loss (ours: ln 6 = {LN6:.4f} is chance)",
                f'{EXERCISE["lr_0.1_final_train_loss"]} ("too high, leading to poor performance")',
                "diverged" if bad["diverged"] else cell(loss),
            ]
        )
    seeds = s.get("seeds") or [s.get("seed")]
    member_columns, members, member_caption = _sweep_members(s, seeds)
    comparison = (s.get("stats") or {}).get("comparison")
    epochs_note = (
        ""
        if plan.sweep_epochs == EXERCISE["epochs"]
        else f" This run used {plural(plan.sweep_epochs, 'epoch')}, not the exercise's {EXERCISE['epochs']} (--quick)."
    )
    return Section(
        "SIGNS classifier: learning-rate sweep",
        [
            "One CNN per learning rate, Adam + NLL loss, batch "
            f"{plan.batch_size}. Unlike the sheet, every learning rate starts from the same initial weights and sees "
            "the same batch order (a paired comparison). The best lr is chosen by final validation accuracy, as the "
            f"sheet does (ties, which 120 validation images make common, go to the lower validation loss), then "
            f"tested once.{epochs_note}"
            + (" The data are synthetic, so the exercise's numbers are not expected." if synthetic else "")
            + (
                f" With {len(seeds)} seeds the mle6 column holds means (the best lr by mean validation accuracy), "
                "and the curves are means with a min–max band."
                if len(seeds) > 1
                else ""
            ),
            *([f"Best against runner-up, paired by seed: {comparison['sentence']}."] if comparison else []),
            *(
                [
                    f"The chosen model ({confusion['member_label']}) on the test split, as mle6 evaluate gives "
                    "it: rows are the true sign, columns the predicted one."
                ]
                if confusion
                else []
            ),
        ],
        [
            Table(["quantity", "exercise", "mle6"], rows, "The exercise's numbers beside ours"),
            Table(member_columns, members, member_caption),
            *([_confusion_table(confusion)] if confusion else []),
        ],
        [figures["sweep"], *([figures["confusion"]] if confusion and "confusion" in figures else [])],
    )


def _sweep_members(s: SweepSummary, seeds: list) -> tuple[list[str], list[list], str]:
    """The sweep's members table: per learning rate over the seeds (mean ± CI), or each member."""
    if len(seeds) > 1:
        members = [
            [
                lr_label(c["lr"]),
                f"{c['seeds']} of {len(seeds)}" + (f", {c['diverged']} diverged" if c["diverged"] else ""),
                mean_ci(c["train_loss"]),
                mean_ci(c["val_loss"]),
                mean_ci(c["val_acc"]),
                mean_ci(c["test_acc"]),
            ]
            for c in s["stats"]["configs"]
        ]
        caption = f"Every learning rate over seeds {', '.join(map(str, seeds))}: mean ± 95% CI (Student t)"
        return ["lr", "seeds trained", "train loss", "val loss", "val acc", "test acc"], members, caption
    members = [
        [
            lr_label(r["lr"]),
            r["status"],
            cell((r.get("final") or {}).get("train_loss")),
            cell((r.get("final") or {}).get("val_loss")),
            cell((r.get("final") or {}).get("val_acc")),
            cell(r.get("test_acc")),
        ]
        for r in s["runs"]
    ]
    return ["lr", "status", "train loss", "val loss", "val acc", "test acc"], members, "Every learning rate"


def _confusion_table(confusion: dict) -> Table:
    classes = confusion["classes"]
    rows = [[f"true {c}", *map(str, row)] for c, row in zip(classes, confusion["matrix"], strict=True)]
    return Table(
        ["", *[f"predicted {c}" for c in classes]],
        rows,
        f"Confusion matrix of the chosen model (test accuracy {cell(confusion['accuracy'])})",
    )


def _ae_section(ae: TrainAeSummary, figures: dict, plan, synthetic: bool) -> Section:
    rows = [
        [
            r["latent_dim"],
            r.get("seed", ""),
            cell(r["train_loss"][-1] if r["train_loss"] else None),
            cell(r["final_test_mse"]),
            "yes" if r["collapsed"] else "no",
            r["retries"],
        ]
        for r in ae["runs"]
    ]
    seeds = ae.get("seeds") or [None]
    # one value per latent size: the run's, or the mean over the seeds that trained
    finals = [(r["latent_dim"], r["test_mse"]["mean"]) for r in ae["stats"] if r["test_mse"]["mean"] is not None]
    monotone = all(a[1] >= b[1] for a, b in pairwise(finals))
    epochs = ae.get("epochs", plan.ae_epochs)
    at_100 = next((v for d, v in finals if d == 100), None)
    mean = "mean " if len(seeds) > 1 else ""
    claims = [
        [
            "a larger latent size reconstructs better",
            '"The decrease in MSE loss with larger latent dimensions"',
            ("holds" if monotone else "does not hold")
            + f" here ({mean}test MSE): "
            + ", ".join(f"d={d} {cell(v)}" for d, v in finals),
        ],
    ]
    if at_100 is not None:
        claims.append(["test MSE around d = 100", f"MSE {EXERCISE['ae_mse_at_100']}", cell(at_100)])
    tables = [
        Table(["claim", "exercise", f"mle6 ({plural(epochs, 'epoch')})"], claims, "The sheet beside this run"),
        Table(["d", "seed", "train MSE", "test MSE", "collapsed", "restarts"], rows, "Final losses of every run"),
    ]
    if len(seeds) > 1:
        tables.append(
            Table(
                ["d", "seeds", "test MSE (mean ± 95% CI)", "collapsed", "restarts"],
                [
                    [r["latent_dim"], r["seeds"], mean_ci(r["test_mse"]), r["collapsed"], r["restarts"]]
                    for r in ae["stats"]
                ],
                f"Per latent size over seeds {', '.join(map(str, seeds))}",
            )
        )
    indicative = epochs < EXERCISE["ae_epochs"]
    return Section(
        "MNIST convolutional autoencoders",
        [
            f"The exercise's ConvolutionalAutoencoder at latent sizes {', '.join(map(str, plan.ae_dims))}, "
            f"{plural(epochs, 'epoch')} each, Adam lr {lr_label(1e-3)} + MSE, batch 128, with the test loss "
            "measured every epoch (the sheet measures it once, after training)."
            + (
                f" Indicative only: {plural(epochs, 'epoch')}, not the exercise's {EXERCISE['ae_epochs']}." * indicative
            ),
            "Ours, not the sheet's: with PyTorch's default initialisation this model often collapses to an all-black "
            f"output, whose test MSE is mean(x²) = {cell(ae['trivial_test_mse'])} on this test set (predicting the "
            f"mean training image scores {cell(ae.get('mean_image_test_mse'))}). mle6 starts the last layer's bias "
            "at the logit of the mean pixel intensity, so the sigmoid does not saturate in the first steps, and "
            "restarts any run that still collapses." + (" The digits are synthetic." if synthetic else ""),
        ],
        tables,
        [figures["ae_losses"], figures["reconstructions"]],
    )


def _latent_section(lat: dict, figures: dict) -> Section:
    return Section(
        "The 3-D latent space",
        [
            f"{lat['points']} test images encoded by the d=3 autoencoder, coloured by digit, with the three 2-D "
            'projections (ours). The sheet: "The classes do not form well-separated clusters in the latent space." '
            "How well they separate here:"
        ],
        [
            Table(
                ["measure", "value"],
                [
                    [f"{lat['knn_k']}-NN accuracy (fit on half, tested on the other half)", cell(lat["knn_accuracy"])],
                    ["silhouette score", cell(lat["silhouette"])],
                ],
            )
        ],
        [figures["latent"]],
    )


def _pca_section(p: PcaAeSummary, figures: dict) -> Section:
    rows = [[p["latent_dim"], cell(p["linear_ae_test_mse"]), cell(p["pca_test_mse"]), cell(p["ratio"])]]
    angles = p["principal_angles_deg"]
    tables = [
        Table(
            ["k", "linear AE test MSE", "exact optimum test MSE", "ratio"],
            rows,
            f"The bias-free linear autoencoder after {plural(p.get('epochs', 0), 'epoch')} against its exact optimum",
        )
    ]
    paragraphs = [
        "The exact optimum of a bias-free rank-k linear map projects onto the top-k right singular vectors of the "
        f"uncentred training matrix. Principal angles between the decoder's column space and that subspace: "
        f"{angles[0]:.1f}° to {angles[-1]:.1f}°."
    ]
    compare = p.get("compare") or []
    if compare:
        epochs = compare[0].get("epochs")
        tables.append(
            Table(
                ["d", "conv AE test MSE", "exact PCA test MSE", "better in this run"],
                [
                    [
                        r["latent_dim"],
                        cell(r["conv_ae_test_mse"]),
                        cell(r["pca_test_mse"]),
                        r["better"] + (" (conv AE collapsed)" if r["conv_ae_collapsed"] else ""),
                    ]
                    for r in compare
                ],
                f"Conv autoencoder after {plural(epochs, 'epoch')} vs exact PCA",
            )
        )
        paragraphs.append(
            'The sheet: "Convolutional AE: Typically achieves lower reconstruction loss and sharper images". '
            + (p.get("verdict") or "")
        )
    return Section(
        "Linear (PCA) autoencoder", paragraphs, tables, [figures["pca_losses"], figures["pca_reconstructions"]]
    )
