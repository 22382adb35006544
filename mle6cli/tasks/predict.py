"""`mle6 predict`: a finished run's model on image files, folders of them or .npy arrays.

Every input is read and checked first (`data.images.read_inputs`), then the model runs on
batches of up to `BATCH` images and, last, the CSV and the figure are written: a bad input
leaves nothing behind. Only torch, numpy and Pillow are imported: no pyplot, no torchvision.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mle6cli.data.images import read_inputs
from mle6cli.tasks.trained import Trained, open_trained

BATCH = 256  # images per forward pass: 256 SIGNS images are 12 MB of float32
TOP = 3
FIGURE_COLUMNS = 16  # the figure shows the first 16 images
FIGURE_ROWS = ("originals", "rebuilt")  # an autoencoder's figure: originals over reconstructions


@dataclass
class Prediction:
    trained: Trained
    names: list[str]
    resized: list[str]
    probabilities: np.ndarray | None = None  # (N, classes), the classifier's
    codes: np.ndarray | None = None  # (N, d), an autoencoder's latent codes
    errors: np.ndarray | None = None  # (N,), an autoencoder's reconstruction MSE per image
    figure: Path | None = None
    csv: Path | None = None
    seconds: float = 0.0  # the forward passes

    def top(self, i: int) -> list[tuple[str, float]]:
        """The `TOP` most probable classes of image i, most probable first (ties: the lower class)."""
        order = np.argsort(-self.probabilities[i], kind="stable")[:TOP]
        return [(self.trained.classes[k], float(self.probabilities[i, k])) for k in order]

    def rows(self) -> list[dict]:
        """One record per image, as the CSV and the JSON document hold it."""
        rows = []
        for i, name in enumerate(self.names):
            if self.probabilities is not None:
                top = self.top(i)
                row = {"image": name, "predicted": top[0][0], "probability": top[0][1]}
                row["top3"] = [{"class": c, "probability": p} for c, p in top]
                row.update(
                    {f"p_{c}": float(p) for c, p in zip(self.trained.classes, self.probabilities[i], strict=True)}
                )
            else:
                row = {"image": name, "reconstruction_mse": float(self.errors[i])}
                row["code"] = [float(v) for v in self.codes[i]]
            rows.append(row)
        return rows

    def csv_table(self) -> tuple[list[str], list[dict]]:
        """The CSV's header and rows: lists become one column per entry."""
        if self.probabilities is not None:
            header = ["image", "predicted", "probability", "second", "second_probability", "third", "third_probability"]
            header += [f"p_{c}" for c in self.trained.classes]
            rows = []
            for row in self.rows():
                top = row.pop("top3")
                for rank, entry in zip(("second", "third"), top[1:], strict=False):
                    row[rank], row[f"{rank}_probability"] = entry["class"], entry["probability"]
                rows.append(row)
            return header, rows
        header = ["image", "reconstruction_mse"] + [f"z_{j}" for j in range(self.codes.shape[1])]
        rows = [dict({"image": r["image"], "reconstruction_mse": r["reconstruction_mse"]},
                     **{f"z_{j}": v for j, v in enumerate(r["code"])}) for r in self.rows()]  # fmt: skip
        return header, rows

    def to_json(self) -> dict:
        return {
            **self.trained.describe(),
            "images": len(self.names),
            "resized": self.resized,
            "predictions": self.rows(),
            "csv": str(self.csv) if self.csv else None,
            "figure": str(self.figure) if self.figure else None,
        }


def batches(pixels: np.ndarray, device, size: int = BATCH):
    """(B, C, H, W) float32 in [0, 1] on `device`, from (N, H, W, C) uint8: x / 255 as in training."""
    import torch

    from mle6cli.data.splits import as_float

    for start in range(0, len(pixels), size):
        chunk = torch.from_numpy(np.ascontiguousarray(pixels[start : start + size]))
        # NCHW with the training data's strides (a one-channel permute counts as contiguous while its
        # strides are channels-last's, which picks other kernels): the same kernels, the same numbers
        yield as_float(chunk.permute(0, 3, 1, 2).clone(memory_format=torch.contiguous_format).to(device))


def predict(
    run: Path,
    inputs: list[Path],
    *,
    member: dict | None = None,
    latent_dim: int | None = None,
    strict_size: bool = False,
    device: str = "auto",
    csv: Path | None = None,
    figure: Path | None = None,
    overwrite: bool = False,
) -> Prediction:
    """Run `run`'s model on `inputs`; write `csv` (one row per image) and, for an autoencoder, `figure`
    (originals over reconstructions) when given. Neither may exist unless `overwrite`
    (`engine.folder.prediction_figure` is the command's default figure)."""
    import torch

    from mle6cli.engine.device import resolve_device
    from mle6cli.files import check_replaceable

    where = resolve_device(device)
    trained = open_trained(run, member, latent_dim, where)
    check_replaceable([csv, None if trained.kind.classifies else figure], overwrite)  # a classifier draws none
    read = read_inputs(inputs, trained.layout, strict_size)
    result = Prediction(trained, read.names, read.resized)
    outputs: dict[str, list] = {}
    start = time.perf_counter()
    with torch.inference_mode():
        for x in batches(read.pixels, where):
            for name, value in trained.kind.infer(trained.model, x).items():
                if name in FIGURE_ROWS:  # the figure's images: the first few only
                    if sum(len(v) for v in outputs.get(name, ())) >= FIGURE_COLUMNS:
                        continue
                    value = value[:FIGURE_COLUMNS].cpu()
                outputs.setdefault(name, []).append(value)
    result.seconds = time.perf_counter() - start
    for name in ("probabilities", "codes", "errors"):
        if name in outputs:
            setattr(result, name, torch.cat(outputs[name]).numpy())
    if csv is not None:
        from mle6cli.files import write_csv

        result.csv = write_csv(csv, *result.csv_table())
    if figure is not None and "rebuilt" in outputs:
        from mle6cli import plots

        rows = [torch.cat(outputs[name])[:FIGURE_COLUMNS, 0].numpy() for name in FIGURE_ROWS]
        result.figure = plots.pixel_rows_png(rows, figure)
    return result
