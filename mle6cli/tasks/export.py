"""`mle6 export`: a finished run's model as ONNX (recommended) or TorchScript, checked once written.

ONNX is made by torch's own exporter: the torch.export-based ("dynamo") one where the installed
torch has it (torch >= 2.5; the default from 2.9, and the one that is maintained), else the
TorchScript-based one (torch 2.4). Which exporter is used is read from `torch.onnx.export`'s
parameters, never from an error's wording; if the dynamo exporter fails anyway, the
TorchScript-based one is tried and the result says so. The batch dimension is dynamic; the
input layout, the scaling and the class names are stored in the model's `metadata_props`.

Every file is run once written: with onnxruntime, or `torch.jit.load` for TorchScript, on the
run's own test images (else a seeded sample), and compared with the torch model; a largest
difference above `TOLERANCE` fails the export and removes the file.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import json
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from mle6cli.engine.folder import exports
from mle6cli.errors import Mle6Error
from mle6cli.tasks.trained import Trained, open_trained

FORMATS = ("onnx", "torchscript")
TOLERANCE = 1e-4  # largest absolute difference allowed, on log-probabilities, codes and pixels in [0, 1]
CHECK_IMAGES = 1000  # at most this many of the run's test images are run through the exported file
SAMPLE_SEED = 0
INSTALL = "pip install 'mle6cli[export]'"


class ExportError(Mle6Error):
    """An export that could not be made, or whose file does not compute what the model does."""


@dataclass
class Exported:
    trained: Trained
    format: str
    path: Path
    exporter: str
    checked_on: str  # which inputs the file was run on
    images: int
    max_difference: float
    tolerance: float = TOLERANCE
    notes: list[str] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            **self.trained.describe(),
            "format": self.format,
            "file": str(self.path),
            "exporter": self.exporter,
            "checked_on": self.checked_on,
            "images": self.images,
            "max_difference": self.max_difference,
            "tolerance": self.tolerance,
            "metadata": self.metadata,
            "notes": self.notes,
        }


def dynamo_exporter() -> bool:
    """Whether the installed torch's `torch.onnx.export` offers the torch.export-based exporter."""
    import torch

    parameters = inspect.signature(torch.onnx.export).parameters
    return "dynamo" in parameters and "dynamic_shapes" in parameters


def needed_packages(fmt: str) -> list[str]:
    if fmt != "onnx":
        return []
    return ["onnx", "onnxruntime"] + (["onnxscript"] if dynamo_exporter() else [])


def check_packages(fmt: str) -> None:
    needed = needed_packages(fmt)
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        raise ExportError(
            f"exporting to ONNX needs {', '.join(needed)} (missing: {', '.join(missing)}); install them with: {INSTALL}"
        )


def metadata(trained: Trained, outputs: list[str]) -> dict[str, str]:
    layout = trained.layout
    colour = "RGB" if layout.channels == 3 else "grayscale"
    described = {
        "log_probs": f"(batch, {len(trained.classes or ())}) natural-log class probabilities (LogSoftmax)",
        "code": f"(batch, {trained.member.get('latent_dim')}) latent code",
        "reconstruction": f"(batch, 1, {layout.side}, {layout.side}) reconstruction in [0, 1]",
    }
    meta = {
        "mle6.model": trained.kind.name,
        "mle6.input": f"images: float32 (batch, {layout.channels}, {layout.side}, {layout.side}), NCHW, {colour}",
        "mle6.scaling": "uint8 pixels divided by 255 (values in [0, 1]), nothing else",
        "mle6.outputs": "; ".join(f"{name}: {described[name]}" for name in outputs),
        "mle6.source": f"{trained.command} run {trained.run.resolve()}, {trained.label}",
    }
    if trained.classes:
        meta["mle6.classes"] = json.dumps(list(trained.classes))
    return meta


def check_inputs(trained: Trained):
    """(images (N, C, H, W) float32 in [0, 1] on the CPU, where they came from): the run's own test images,
    or, when its data cannot be read here, a seeded uniform sample."""
    import torch

    try:
        x = trained.kind.test_images(trained.config, CHECK_IMAGES)
        return x, f"the run's test images ({len(x)})"
    except Mle6Error:
        layout = trained.layout
        generator = torch.Generator().manual_seed(SAMPLE_SEED)
        x = torch.rand(64, layout.channels, layout.side, layout.side, generator=generator)
        return x, f"a seeded sample of 64 uniform random images (seed {SAMPLE_SEED}; the run's data are not here)"


def export(
    run: Path, *, fmt: str = "onnx", out: Path | None = None, member: dict | None = None, latent_dim: int | None = None
) -> Exported:
    """Write `run`'s model as `fmt` to `out` (default: beside its checkpoint), run it, compare with torch."""
    import torch

    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose onnx or torchscript")
    check_packages(fmt)
    trained = open_trained(run, member, latent_dim, "cpu")
    onnx_name, torchscript_name = exports(trained.checkpoint.name)  # the names the run folder declares
    default = trained.checkpoint.with_name(onnx_name if fmt == "onnx" else torchscript_name)
    path = Path(out) if out is not None else default
    if path.resolve() == trained.checkpoint.resolve():
        raise ExportError(f"--out {path} is the run's own checkpoint; name another file")
    module, outputs = trained.kind.exported(trained.model)  # an autoencoder: (code, reconstruction)
    meta = metadata(trained, outputs)
    x, checked_on = check_inputs(trained)
    with torch.no_grad():
        expected = module(x)
    expected = [expected] if isinstance(expected, torch.Tensor) else list(expected)
    notes: list[str] = []
    # exporters print progress and warnings of their own; stdout is kept for the result (--json)
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fmt == "onnx":
            data, exporter = _onnx(module, outputs, meta, trained, notes)
            got = _run_onnx(data, x)
        else:
            data, exporter = _torchscript(module, meta, trained)
            got = _run_torchscript(data, x)
    difference = max(float((torch.as_tensor(g) - e).abs().max()) for g, e in zip(got, expected, strict=True))
    if not difference <= TOLERANCE:
        raise ExportError(
            f"the exported {fmt} model differs from the torch model by {difference:.3g} on {checked_on}, "
            f"over the tolerance {TOLERANCE:g}; nothing was written"
        )
    from mle6cli.files import atomic_write_bytes

    atomic_write_bytes(path, data)
    return Exported(trained, fmt, path, exporter, checked_on, len(x), difference, notes=notes, metadata=meta)


def _onnx(module, outputs, meta, trained, notes) -> tuple[bytes, str]:
    import onnx
    import torch

    example = torch.zeros(2, trained.layout.channels, trained.layout.side, trained.layout.side)
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "model.onnx"
        exporter = None
        if dynamo_exporter():
            try:
                torch.onnx.export(
                    module,
                    (example,),
                    str(target),
                    dynamo=True,
                    verbose=False,
                    input_names=["images"],
                    output_names=outputs,
                    dynamic_shapes=({0: torch.export.Dim("batch")},),
                )
                exporter = f"torch.onnx.export (dynamo, torch {torch.__version__})"
            except Exception as exc:  # the older exporter can still do these plain models
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                notes.append(f"the dynamo exporter failed ({first[:160]}); used the TorchScript-based exporter")
        if exporter is None:
            legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
            torch.onnx.export(
                module,
                (example,),
                str(target),
                input_names=["images"],
                output_names=outputs,
                dynamic_axes={name: {0: "batch"} for name in ["images", *outputs]},
                **legacy,
            )
            exporter = f"torch.onnx.export (TorchScript-based, torch {torch.__version__})"
        model = onnx.load(str(target))
    del model.metadata_props[:]
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.doc_string = f"mle6 {trained.kind}: {meta['mle6.input']}; {meta['mle6.scaling']}"
    onnx.checker.check_model(model)
    return model.SerializeToString(), exporter


def _run_onnx(data: bytes, x) -> list:
    """The exported file's outputs on `x`, through onnxruntime on the CPU, one image alone first (the
    batch dimension must be dynamic), then all of them."""
    import numpy as np
    import onnxruntime

    exported = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    name = exported.get_inputs()[0].name
    images = x.numpy().astype(np.float32)
    first = exported.run(None, {name: images[:1]})
    rest = exported.run(None, {name: images[1:]}) if len(images) > 1 else [o[:0] for o in first]
    return [np.concatenate([a, b]) for a, b in zip(first, rest, strict=True)]


def _torchscript(module, meta, trained) -> tuple[bytes, str]:
    import io

    import torch

    example = torch.zeros(2, trained.layout.channels, trained.layout.side, trained.layout.side)
    traced = torch.jit.trace(module, example, check_trace=False)
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer, _extra_files={"mle6.json": json.dumps(meta)})
    return buffer.getvalue(), f"torch.jit.trace (torch {torch.__version__})"


def _run_torchscript(data: bytes, x) -> list:
    import io

    import torch

    loaded = torch.jit.load(io.BytesIO(data), map_location="cpu")
    with torch.no_grad():
        out = loaded(x)
    return [out] if isinstance(out, torch.Tensor) else list(out)
