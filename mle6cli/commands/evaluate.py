from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mle6cli.commands._options import DeviceOpt, JsonOpt, QuietOpt, by_rule
from mle6cli.commands._output import Printer
from mle6cli.commands.predict import LatentDimOpt, MemberOpt, ReplaceOpt, RunArg, member_option
from mle6cli.fmt import cell
from mle6cli.tasks import config as rules


def evaluate(
    run: RunArg,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Another copy of the dataset (default: the data the run was trained on)."),
    ] = None,
    split: Annotated[
        str, typer.Option("--split", callback=by_rule(rules.SPLIT), help="test, val or train (MNIST has no val).")
    ] = "test",
    member: MemberOpt = None,
    latent_dim: LatentDimOpt = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Folder for the classifier's confusion.csv and confusion.png (default: RUN/evaluation/<split>).",
        ),
    ] = None,
    overwrite: ReplaceOpt = False,
    device: DeviceOpt = "auto",
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Measure a trained model on a split: accuracy, per-class scores, confusion matrix; or autoencoder MSE.

    Example: mle6 evaluate runs/sweep-lr/20250101-120000 --split val --out eval/
    """
    from mle6cli.engine.folder import evaluation_dir
    from mle6cli.tasks.evaluate import evaluate as run_evaluate

    printer = Printer(json_mode=json_out, quiet=quiet)
    chosen = {"member": member_option(member), "latent_dim": latent_dim}
    out = out if out is not None else evaluation_dir(run, split)
    result = run_evaluate(run, **chosen, data_dir=data_dir, split=split, out=out, overwrite=overwrite, device=device)
    if json_out:
        printer.json(result.to_json())
        return
    trained = result.trained
    head = f"{trained.command} model {trained.label} on the {split} split ({result.images} images, {result.data})"
    if trained.kind.classifies:
        printer.line(head)
        printer.line(f"accuracy {cell(result.accuracy)}, loss {cell(result.loss)}")
        printer.table(
            "Per class",
            ["class", "precision", "recall", "F1", "images"],
            [[r["class"], r["precision"], r["recall"], r["f1"], r["support"]] for r in result.per_class],
        )
        printer.table(
            "Confusion matrix (true down, predicted across)",
            ["true", *trained.classes],
            [[c, *row] for c, row in zip(trained.classes, result.confusion, strict=True)],
        )
        for name in ("confusion_csv", "confusion_png"):
            printer.line(f"{name.replace('_', ' ')}: {result.files[name]}")
    else:
        pca = any("pca_mse" in r for r in result.mse)  # a pca-ae run's: exact PCA beside each
        printer.table(
            head,
            ["latent size", "seed", "MSE", "run's test MSE", *(["exact PCA MSE"] if pca else [])],
            [
                [r["latent_dim"], r["seed"], r["mse"], r["recorded"], *([r["pca_mse"]] if pca else [])]
                for r in result.mse
            ],
        )
    if result.matches_run is not None:
        printer.line("equals the run's summary.json" if result.matches_run else "DIFFERS from the run's summary.json")
