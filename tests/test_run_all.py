"""run-all: the whole sheet on tiny synthetic data, and the report it leaves."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

from mle6cli.data import mnist
from mle6cli.tasks import sheet as run_all_module
from tests.test_report import BROWSER, rendered_dom

TINY = run_all_module.Plan(
    lrs=(1e-1, 1e-3),
    sweep_epochs=1,
    batch_size=32,
    ae_dims=(3, 10),
    ae_epochs=1,
    ae_batch_size=64,
    pca_dim=4,
    pca_epochs=1,
    latent_n=60,
    gauss_samples=2000,
    synthetic_signs_per_class=(12, 4, 4),
)
FIGURES = 7  # gauss, sweep, ae losses, reconstructions, latent, pca losses, pca reconstructions


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.srcs, self.hrefs, self.h2, self._h2 = [], [], [], False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self._h2 = tag == "h2"
        if tag == "img":
            self.srcs.append(attrs.get("src", ""))
        if "href" in attrs:
            self.hrefs.append(attrs["href"])

    def handle_data(self, data):
        if self._h2:
            self.h2.append(data)
            self._h2 = False


def tiny_run_all(*args: str):
    """run-all --quick --synthetic through the CLI, with a tiny plan and tiny data."""
    from typer.testing import CliRunner

    from mle6cli.cli import app

    mp = pytest.MonkeyPatch()
    mp.setattr(run_all_module, "QUICK", TINY)
    mp.setattr(mnist, "SYNTHETIC_SIZES", (200, 80))
    try:
        return CliRunner().invoke(app, ["run-all", "--quick", "--synthetic", "--device", "cpu", *args])
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def sheet(tmp_path_factory):
    """One tiny run-all, shared by the tests below."""
    out = tmp_path_factory.mktemp("sheet") / "run"
    result = tiny_run_all("--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout), result


def test_json_document_and_run_folder(sheet):
    out, doc, result = sheet
    assert doc["synthetic"] == {"signs": True, "mnist": True}
    assert set(doc["results"]) == {
        "conv_size",
        "gauss_conv",
        "summary_cnn",
        "sweep_lr",
        "train_ae",
        "latent_plot",
        "pca_ae",
    }
    assert doc["results"]["summary_cnn"]["total_params"] == 131_958
    assert doc["results"]["sweep_lr"]["seed"] == 42  # without --seed, each step keeps its command's default
    assert [r["latent_dim"] for r in doc["results"]["train_ae"]["runs"]] == [3, 10]
    assert {r["latent_dim"] for r in doc["results"]["pca_ae"]["compare"]} == {3, 10}
    for name in (
        "report.html",
        "report.md",
        "summary.json",
        "config.json",
        "sweep-lr/sweep.csv",
        "train-ae/ae_d3.pt",
        "pca-ae/metrics.csv",
    ):
        assert (out / name).is_file(), name
    assert "SYNTHETIC" in result.stderr


def test_report_sections_images_and_no_network(sheet):
    out, _, _ = sheet
    text = (out / "report.html").read_text()
    parsed = _Images()
    parsed.feed(text)
    assert parsed.h2 == [
        "Convolution output sizes",
        "Sum of two Gaussians",
        "The CNN and its parameters",
        "SIGNS classifier: learning-rate sweep",
        "MNIST convolutional autoencoders",
        "The 3-D latent space",
        "Linear (PCA) autoencoder",
    ]
    assert len(parsed.srcs) == FIGURES
    assert all(s.startswith("data:image/png;base64,iVBOR") for s in parsed.srcs)
    assert all(h.startswith("#") for h in parsed.hrefs)
    assert not re.search(r"https?://|src=\"/|url\(", text)
    for exercise_figure in ("131,958", "0.9083", "0.8917", "0.0167", "1.7962", "Typically achieves lower"):
        assert exercise_figure in text  # what the sheet itself prints or says
    assert "0.1233" not in text  # the sheet never says it: MNIST's all-black score is ours, measured here
    assert "How this report was made" in text and "quick" in text
    assert "Synthetic data:" in text
    md = (out / "report.md").read_text()
    assert md.count("![") == FIGURES and "(sweep-lr/sweep_curves.png)" in md


@pytest.mark.skipif(BROWSER is None, reason="no headless browser installed")
def test_report_images_load_in_a_browser(sheet, tmp_path):
    out, _, _ = sheet
    assert f'data-images-loaded="{FIGURES}/{FIGURES}"' in rendered_dom(out / "report.html", tmp_path / "p")


def test_a_finished_folder_is_refused_then_overwritten(sheet):
    out, first, _ = sheet
    again = tiny_run_all("--out", str(out))
    assert again.exit_code == 1 and "is not empty; choose another --out or pass --overwrite" in again.stderr
    again = tiny_run_all("--out", str(out), "--overwrite", "--json")  # as `make demo` does every time
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["results"]["sweep_lr"]["best_lr"] == first["results"]["sweep_lr"]["best_lr"]


def test_missing_data_fails_fast_and_leaves_nothing(runner, app, tmp_path):
    out = tmp_path / "never"
    result = runner.invoke(
        app, ["run-all", "--data-dir", str(tmp_path / "nowhere"), "--device", "cpu", "--out", str(out)]
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and len(result.stderr.strip().splitlines()) == 1
    assert "nowhere does not exist" in result.stderr
    assert not out.exists()


def test_seed_for_each_step():
    assert run_all_module.RunAllConfig().seed_options() == {"save_every": 1}  # each command's own default seed
    assert run_all_module.RunAllConfig(seed=7).seed_options() == {"seed": 7, "save_every": 1}


def test_seeds_carry_bands_and_intervals_into_the_report(tmp_path):
    out = tmp_path / "seeded"
    result = tiny_run_all("--out", str(out), "--seeds", "0-1", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["results"]["sweep_lr"]["seeds"] == [0, 1] and len(doc["results"]["sweep_lr"]["runs"]) == 4
    assert [r["seeds"] for r in doc["results"]["train_ae"]["stats"]] == [2, 2]
    assert {r["seeds"] for r in doc["results"]["pca_ae"]["compare"]} == {2}
    text = (out / "report.html").read_text()
    assert "mean ± 95% CI" in text and "Best against runner-up, paired by seed:" in text
    assert "131,958" in text and "0.9083" in text  # the exercise's single-run figures stay beside them
    assert (out / "sweep-lr" / "lr_1e-01" / "seed_1" / "metrics.csv").is_file()
