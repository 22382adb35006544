"""predict, evaluate and export on trained run folders: the real SIGNS test set through all three,
every bad input's one line, an autoencoder's codes, the documented snippets."""

from __future__ import annotations

import json
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import REPO, cli_env, one_thread, shared_path
from tests.mnist_helpers import make_mnist_folder
from tests.signs_helpers import write_layout

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def signs(tmp_path_factory):
    """The SIGNS npy folder: the real one when present, else a small synthetic one."""
    real = shared_path("sign_data")
    return real if real.is_dir() else write_layout(tmp_path_factory.mktemp("signs") / "small")


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory, signs):
    """A train-cnn run of two epochs on `signs`."""
    from mle6cli.tasks.classifier import train_cnn
    from tests.signs_helpers import signs_options

    out = tmp_path_factory.mktemp("cnn") / "run"
    with one_thread():
        train_cnn(signs_options(signs, epochs=2, batch_size=64), out=out)
    return out


@pytest.fixture(scope="module")
def test_pngs(tmp_path_factory, signs):
    """The test split written out as one PNG per image, named <index>_<label>.png."""
    folder = tmp_path_factory.mktemp("pngs")
    x, y = np.load(signs / "X_test.npy"), np.load(signs / "Y_test.npy").reshape(-1)
    for i, (image, label) in enumerate(zip(x, y, strict=True)):
        Image.fromarray(image).save(folder / f"{i:03d}_{label}.png")
    return folder


def invoke(runner, app, *args):
    return runner.invoke(app, [str(a) for a in args])


def test_the_test_set_as_pngs_gives_the_runs_accuracy_and_evaluate_agrees(runner, app, cnn_run, test_pngs, tmp_path):
    summary = json.loads((cnn_run / "summary.json").read_text())
    result = invoke(runner, app, "predict", cnn_run, test_pngs, "--device", "cpu", "--json", "--out", "p.csv")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    rows = doc["predictions"]
    labels = [Path(r["image"]).stem.split("_")[1] for r in rows]
    accuracy = sum(r["predicted"] == label for r, label in zip(rows, labels, strict=True)) / len(rows)
    assert len(rows) == len(list(test_pngs.iterdir())) and doc["resized"] == []
    assert accuracy == summary["test_acc"]
    assert len((tmp_path / "p.csv").read_text().splitlines()) == len(rows) + 1
    assert all(len(r["top3"]) == 3 and r["top3"][0]["class"] == r["predicted"] for r in rows)

    result = invoke(runner, app, "evaluate", cnn_run, "--device", "cpu", "--json", "--out", tmp_path / "ev")
    assert result.exit_code == 0, result.output
    ev = json.loads(result.stdout)
    assert ev["accuracy"] == summary["test_acc"] and ev["matches_run"] is True
    assert sum(map(sum, ev["confusion"])) == len(rows)
    assert sum(ev["confusion"][k][k] for k in range(6)) == round(accuracy * len(rows))
    assert (tmp_path / "ev" / "confusion.png").is_file()
    assert (tmp_path / "ev" / "confusion.csv").read_text().startswith("true,predicted_0,")


def test_one_prediction_per_image_equals_the_batch(runner, app, cnn_run, test_pngs):
    files = sorted(test_pngs.iterdir())[:3]
    batch = json.loads(invoke(runner, app, "predict", cnn_run, *files, "--device", "cpu", "--json").stdout)
    for file, row in zip(files, batch["predictions"], strict=True):
        alone = json.loads(invoke(runner, app, "predict", cnn_run, file, "--device", "cpu", "--json").stdout)
        assert alone["predictions"][0]["predicted"] == row["predicted"]
        assert alone["predictions"][0]["probability"] == pytest.approx(row["probability"], abs=1e-6)


def test_a_photo_of_another_size_is_cropped_and_resized_or_refused(runner, app, cnn_run, tmp_path):
    Image.fromarray(np.full((120, 200, 3), 90, np.uint8)).save("wide.jpg")
    result = invoke(runner, app, "predict", cnn_run, "wide.jpg", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "resized wide.jpg: 200x120 -> 64x64" in result.stderr
    result = invoke(runner, app, "predict", cnn_run, "wide.jpg", "--strict-size", "--device", "cpu")
    assert result.exit_code == 1 and result.stderr == "Error: wide.jpg is 200x120; --strict-size needs 64x64\n"


def test_an_exact_palette_image_predicts_as_its_rgb_original(runner, app, cnn_run, test_pngs):
    original = Image.open(sorted(test_pngs.iterdir())[0]).convert("RGB")
    paletted = original.quantize(colors=256)
    paletted.save("p.png")
    paletted.convert("RGB").save("rgb.png")
    result = json.loads(invoke(runner, app, "predict", cnn_run, "p.png", "rgb.png", "--device", "cpu", "--json").stdout)
    a, b = result["predictions"]
    assert (a["predicted"], a["probability"]) == (b["predicted"], b["probability"])


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims width x height, with a few bytes of (invalid) image data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"\x78\x9c") + chunk(b"IEND", b""))


def _bad_inputs(tmp: Path) -> list[tuple[str, str]]:
    """(file or folder, the exact one line predict gives for it)."""
    cases = []
    Path("text.png").write_text("not an image\n")
    cases.append(("text.png", "text.png is not a PNG or JPEG image"))
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save("full.png")
    data = Path("full.png").read_bytes()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save("noise.png")
    noise = Path("noise.png").read_bytes()
    Path("cut.png").write_bytes(noise[: len(noise) // 2])
    cases.append(("cut.png", re.compile(r"cut\.png is damaged or truncated \(.+\)")))
    Image.fromarray(np.full((64, 64), 40000, np.uint16)).save("deep.png")
    mode = Image.open("deep.png").mode
    cases.append(
        (
            "deep.png",
            f"deep.png is a 16-bit image ({mode}); the model was trained on 8-bit pixels: save it as 8-bit",
        )
    )
    Image.new("CMYK", (64, 64)).save("print.jpg")
    cases.append(("print.jpg", "print.jpg is a CMYK image; convert it to RGB with a colour-managed tool first"))
    Image.new("P", (64, 64)).save("clear.png", transparency=0)
    cases.append(("clear.png", "clear.png is a palette image with transparency; save it as RGB without transparency"))
    Image.new("RGBA", (64, 64), (10, 20, 30, 0)).save("alpha.png")
    cases.append(("alpha.png", "alpha.png has transparent pixels; flatten it onto a background first"))
    Image.new("RGB", (64, 64)).save("anim.gif")
    cases.append(("anim.gif", "anim.gif is a GIF image; give PNG or JPEG"))
    _png_header_only(Path("huge.png"), 8000, 6000)
    cases.append(("huge.png", "huge.png is too large: 8000x6000 is over 40,000,000 pixels (refused before decoding)"))
    Path("empty").mkdir()
    cases.append(("empty", "empty holds no PNG or JPEG images"))
    cases.append(("missing.png", "missing.png does not exist"))
    np.save("small.npy", np.zeros((5, 32, 32, 3), np.uint8))
    cases.append(("small.npy", "small.npy has shape (5, 32, 32, 3); SIGNS images are (N, 64, 64, 3)"))
    np.save("floats.npy", np.zeros((5, 64, 64, 3), np.float32))
    cases.append(("floats.npy", "floats.npy holds float32 values; SIGNS images are uint8 (0..255)"))
    np.save("objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    cases.append(
        (
            "objects.npy",
            "cannot load objects.npy: it holds pickled Python objects; refused (npy files are read as data only)",
        )
    )
    assert data  # the valid PNG the good input of each case is
    return cases


def test_every_bad_input_is_one_line_and_nothing_is_written(runner, app, cnn_run, tmp_path):
    for name, message in _bad_inputs(tmp_path):
        result = invoke(runner, app, "predict", cnn_run, "full.png", name, "--device", "cpu", "--out", "rows.csv")
        assert result.exit_code == 1, (name, result.output)
        line = result.stderr.removeprefix("Error: ").rstrip("\n")
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        if isinstance(message, str):
            assert line == message, name
        else:
            assert message.fullmatch(line), (name, line)
        assert not Path("rows.csv").exists() and not Path("reconstructions.png").exists()


def test_runs_that_are_not_finished_or_not_models_are_refused(runner, app, cnn_run, tmp_path):
    started = tmp_path / "started"
    started.mkdir()
    (started / "config.json").write_text((cnn_run / "config.json").read_text())
    result = invoke(runner, app, "predict", started, "x.png", "--device", "cpu")
    assert result.exit_code == 1
    assert result.stderr == f"Error: {started} is a train-cnn run that is started, not finished\n"
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"command": "run-all", "options": {}}))
    (other / "summary.json").write_text("{}")
    result = invoke(runner, app, "evaluate", other, "--device", "cpu")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {other} is a run-all run; give a train-cnn, sweep-lr, train-ae or pca-ae run folder\n"
    )
    (other / "sweep-lr").mkdir()
    (other / "pca-ae").mkdir()
    result = invoke(runner, app, "evaluate", other, "--device", "cpu")
    assert result.stderr == (
        f"Error: {other} is a run-all run; give a train-cnn, sweep-lr, train-ae or pca-ae run folder "
        f"(its steps: {other / 'sweep-lr'}, {other / 'pca-ae'})\n"
    )
    result = invoke(runner, app, "predict", cnn_run, "x.png", "--member", "lr=fast")
    assert result.exit_code == 2 and "'lr=fast': 'fast' is not a number" in result.output


@pytest.mark.slow
def test_evaluate_writes_into_the_run_per_split_and_refuses_to_replace(runner, app, tmp_path):
    from mle6cli.tasks.classifier import train_cnn
    from tests.signs_helpers import signs_options

    run = tmp_path / "run"
    options = signs_options(write_layout(tmp_path / "small"), epochs=1)
    with one_thread():
        train_cnn(options, out=run)
    for split in ("test", "val"):
        result = invoke(runner, app, "evaluate", run, "--split", split, "--device", "cpu", "--json")
        assert result.exit_code == 0, result.output
        folder = run / "evaluation" / split
        files = {"confusion_csv": str(folder / "confusion.csv"), "confusion_png": str(folder / "confusion.png")}
        assert json.loads(result.stdout)["files"] == files
        assert (folder / "confusion.csv").read_text().startswith("true,predicted_0,")
    assert not Path("evaluation").exists()  # nothing in the current folder
    before = (run / "evaluation" / "test" / "confusion.csv").read_bytes()

    again = invoke(runner, app, "evaluate", run, "--device", "cpu")
    assert again.exit_code == 1 and again.stdout == ""
    assert again.stderr == (
        f"Error: {run / 'evaluation' / 'test'} already holds confusion.csv, confusion.png; "
        "pass --overwrite to replace them\n"
    )
    assert (run / "evaluation" / "test" / "confusion.csv").read_bytes() == before
    (run / "evaluation" / "test" / "confusion.png").unlink()
    again = invoke(runner, app, "evaluate", run, "--device", "cpu", "--out", run / "evaluation" / "test")
    assert again.exit_code == 1
    assert again.stderr == (
        f"Error: {run / 'evaluation' / 'test'} already holds confusion.csv; pass --overwrite to replace it\n"
    )
    assert invoke(runner, app, "evaluate", run, "--device", "cpu", "--overwrite").exit_code == 0
    assert (run / "evaluation" / "test" / "confusion.png").is_file()
    assert invoke(runner, app, "evaluate", run, "--device", "cpu", "--out", "ev").exit_code == 0
    assert Path("ev/confusion.csv").read_bytes() == (run / "evaluation" / "test" / "confusion.csv").read_bytes()

    with one_thread():  # the evaluations described the old model: an --overwrite of the run clears them
        train_cnn(options, out=run, overwrite=True)
    assert not (run / "evaluation").exists() and (run / "summary.json").is_file()


@pytest.mark.slow
def test_the_onnx_export_agrees_with_torch_on_every_test_image(runner, app, cnn_run, signs, tmp_path):
    pytest.importorskip("onnxruntime")
    import onnxruntime

    from mle6cli.tasks.classifier import load_classifier
    from mle6cli.tasks.export import TOLERANCE

    result = invoke(runner, app, "export", cnn_run, "--format", "onnx", "--out", "signs.onnx", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["max_difference"] <= TOLERANCE and doc["checked_on"].startswith("the run's test images")
    session = onnxruntime.InferenceSession("signs.onnx", providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["mle6.classes"]) == ["0", "1", "2", "3", "4", "5"]
    assert meta["mle6.input"] == "images: float32 (batch, 3, 64, 64), NCHW, RGB"
    assert isinstance(session.get_inputs()[0].shape[0], str)  # the batch dimension is dynamic
    x = np.load(signs / "X_test.npy").astype(np.float32).transpose(0, 3, 1, 2) / np.float32(255)
    (got,) = session.run(None, {"images": x})
    model, _ = load_classifier(cnn_run)
    with torch.no_grad():
        expected = model(torch.from_numpy(np.ascontiguousarray(x))).numpy()
    assert np.abs(got - expected).max() <= TOLERANCE

    result = invoke(runner, app, "export", cnn_run, "--format", "torchscript", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["file"] == str(cnn_run / "model.torchscript.pt") and doc["max_difference"] <= TOLERANCE
    from mle6cli.tasks.specs import TRAIN_CNN

    OUTPUTS = TRAIN_CNN.outputs
    assert OUTPUTS.declares("model.torchscript.pt") and OUTPUTS.declares("lr_1e-03/seed_2/model.onnx")  # --overwrite
    result = invoke(runner, app, "export", cnn_run, "--format", "torchscript", "--out", cnn_run / "model.pt")
    assert result.exit_code == 1
    assert result.stderr == f"Error: --out {cnn_run / 'model.pt'} is the run's own checkpoint; name another file\n"


@pytest.mark.slow
def test_the_documented_snippets_run(cnn_run, test_pngs, tmp_path):
    pytest.importorskip("onnxruntime")
    from mle6cli.tasks.export import export

    export(cnn_run, fmt="onnx", out=tmp_path / "model.onnx")
    (tmp_path / "model.pt").write_bytes((cnn_run / "model.pt").read_bytes())
    (tmp_path / "hand.png").write_bytes(sorted(test_pngs.iterdir())[0].read_bytes())
    page = (REPO / "docs" / "using-models.md").read_text()
    snippets = re.findall(r"```python\n(.*?)```", page, re.S)
    assert len(snippets) == 2
    readme = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert readme == snippets[:1]  # the README shows the page's ONNX lines, word for word
    for code in snippets:
        exec(compile(code, "using-models.md", "exec"), {"__name__": "snippet"})


@pytest.fixture(scope="module")
def ae_run(tmp_path_factory):
    from mle6cli.tasks.autoencoders import train_ae

    root = tmp_path_factory.mktemp("mnist")
    make_mnist_folder(root, n_train=64, n_test=24)
    out = root / "run"
    options = {"data_dir": str(root), "latent_dims": [3], "epochs": 1, "batch_size": 32, "device": "cpu"}
    with one_thread():
        train_ae(options, out=out)
    return root, out


def test_autoencoder_codes_equal_encode_and_evaluate_reproduces_the_run(runner, app, ae_run, tmp_path):
    from mle6cli.data.mnist import load_mnist
    from mle6cli.tasks.autoencoders import load_autoencoder

    root, run = ae_run
    test_x = load_mnist(root, "cpu", download=False).test_x  # (24, 1, 28, 28) uint8
    np.save("digits.npy", test_x[:, 0].numpy())
    result = invoke(runner, app, "predict", run, "digits.npy", "--device", "cpu", "--json", "--figure", "rec.png")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["figure"] == "rec.png"
    rows = json.loads(result.stdout)["predictions"]
    model, _ = load_autoencoder(run / "ae_d3.pt")
    with torch.no_grad():
        x = test_x.float() / 255
        codes = model.encode(x).numpy()
        errors = (model(x) - x).pow(2).flatten(1).mean(1).numpy()
    assert np.array_equal(np.array([r["code"] for r in rows], dtype=np.float32), codes)
    assert np.allclose([r["reconstruction_mse"] for r in rows], errors, rtol=0, atol=1e-7)
    assert Image.open("rec.png").size[1] > 2 * 28 * 3  # two rows of 28-pixel images at 3x

    result = invoke(runner, app, "evaluate", run, "--device", "cpu", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    summary = json.loads((run / "summary.json").read_text())
    assert doc["mse"][0]["mse"] == summary["runs"][0]["final_test_mse"] and doc["matches_run"] is True
    result = invoke(runner, app, "evaluate", run, "--split", "val")
    assert result.exit_code == 1
    assert result.stderr == f"Error: {run} is a train-ae run on MNIST, which has a train and a test split only\n"


def test_predict_draws_into_the_run_and_refuses_to_replace(runner, app, ae_run):
    root, run = ae_run
    np.save("digits.npy", np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8))
    figure = run / "predictions" / "reconstructions.png"
    try:
        result = invoke(runner, app, "predict", run, "digits.npy", "--device", "cpu", "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["figure"] == str(figure) and figure.is_file()
        assert not Path("reconstructions.png").exists()
        before = figure.read_bytes()
        again = invoke(runner, app, "predict", run, "digits.npy", "--device", "cpu", "--out", "rows.csv")
        assert again.exit_code == 1 and again.stdout == ""
        assert again.stderr == (
            f"Error: {run / 'predictions'} already holds reconstructions.png; pass --overwrite to replace it\n"
        )
        assert figure.read_bytes() == before and not Path("rows.csv").exists()
        Path("rows.csv").write_text("mine\n")
        again = invoke(runner, app, "predict", run, "digits.npy", "--device", "cpu", "--out", "rows.csv")
        assert again.stderr == (f"Error: rows.csv and {figure} already exist; pass --overwrite to replace them\n")
        args = ["predict", run, "digits.npy", "--device", "cpu", "--out", "rows.csv", "--overwrite"]
        assert invoke(runner, app, *args).exit_code == 0
        assert Path("rows.csv").read_text().startswith("image,reconstruction_mse,z_0")
    finally:
        figure.unlink(missing_ok=True)
    from mle6cli.tasks.specs import PCA_AE, TRAIN_AE

    for outputs in (TRAIN_AE.outputs, PCA_AE.outputs):  # an --overwrite of the run clears the figure
        assert outputs.declares("predictions/reconstructions.png")


def test_without_the_export_packages_onnx_is_one_line_with_the_pip_command(cnn_run, tmp_path):
    """A real environment without onnx, onnxruntime and onnxscript: every other installed package is
    linked into a folder that is the subprocess's only site directory."""
    import site
    import subprocess
    import sys

    packages = Path(site.getsitepackages()[0])
    bare = tmp_path / "site"
    bare.mkdir()
    for entry in packages.iterdir():
        if not entry.name.lower().startswith(("onnx", "__editable__", "mle6cli")):
            (bare / entry.name).symlink_to(entry)
    env = {**cli_env(), "PYTHONPATH": f"{REPO}:{bare}", "PYTHONNOUSERSITE": "1"}
    argv = [sys.executable, "-S", "-m", "mle6cli", "export", str(cnn_run), "--format", "onnx", "--out", "x.onnx"]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    from mle6cli.tasks.export import needed_packages

    needed = ", ".join(needed_packages("onnx"))  # onnxscript too where torch has the dynamo exporter
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == (
        f"Error: exporting to ONNX needs {needed} (missing: {needed}); "
        "install them with: pip install 'mle6cli[export]'\n"
    )
    assert not (tmp_path / "x.onnx").exists()
