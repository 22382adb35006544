"""run-all: the whole sheet on tiny synthetic data, and the report it leaves."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

from mle6cli.data import mnist
from mle6cli.fmt import lr_label
from mle6cli.tasks import sheet as run_all_module
from tests.test_plots import LR_NUMBER, assert_reads_plainly, recording_figures
from tests.test_report import assert_markdown_rows_whole, assert_not_blank, check_page, markdown_tables

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
FIGURES = 8  # gauss, sweep, confusion, ae losses, reconstructions, latent, pca losses, pca reconstructions


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


SEEN: dict[str, dict] = {}  # what each figure of the `sheet` run shows (tests.test_plots.figure_facts)


@pytest.fixture(scope="module")
def sheet(tmp_path_factory):
    """One tiny run-all, shared by the tests below (and what each of its figures shows: `figures`)."""
    out = tmp_path_factory.mktemp("sheet") / "run"
    with pytest.MonkeyPatch.context() as mp, recording_figures(mp) as recorded:
        result = tiny_run_all("--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    SEEN.clear()
    SEEN.update(recorded)
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
        "confusion",
    }
    # the chosen SIGNS model's confusion matrix: every test image once, its trace the sweep's test accuracy
    confusion, sweep = doc["results"]["confusion"], doc["results"]["sweep_lr"]
    images = sum(map(sum, confusion["matrix"]))
    assert confusion["member"]["lr"] == sweep["best_lr"] and len(confusion["matrix"]) == 6
    assert (
        confusion["accuracy"] == sweep["test_acc"] == sum(row[k] for k, row in enumerate(confusion["matrix"])) / images
    )
    assert (out / "confusion.csv").is_file() and (out / "confusion.png").is_file()
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


def test_report_reads_in_a_browser_on_a_phone_and_a_desktop(sheet, browser):
    """The report as a reader sees it (tests.test_report.check_page): at 375 px and at 1280 px every
    figure decodes at its file's own size and is drawn, no console errors, no sideways scrolling of
    the text; the wide conv-size table scrolls inside its wrapper on the phone, with its formulas on one
    line; the provenance table shows."""
    from tests.browser import DESKTOP, PHONE

    out, _, _ = sheet
    page = browser.open((out / "report.html").as_uri(), PHONE)
    try:
        phone = check_page(page, phone=True)
        assert len(phone["images"]) == FIGURES
        for image in phone["images"]:
            (png,) = out.rglob(image["alt"])
            assert (image["naturalWidth"], image["naturalHeight"]) == _png_size(png), image
        assert any(t["scrollWidth"] > t["clientWidth"] for t in phone["tables"])  # the conv-size table
        assert len(phone["codeLines"]) == 4  # its four formulas, each on one line
        assert phone["provenance"] == ["signs", "mnist", "device", "mode", "date", "versions"]
        page.resize(DESKTOP)
        check_page(page, phone=False)
    finally:
        page.close()


def test_report_screenshot_is_not_blank(sheet, browser):
    """A PNG of the whole page at desktop width: nothing compared pixel for pixel, but most of it
    must carry text or figures."""
    out, _, _ = sheet
    page = browser.open((out / "report.html").as_uri())
    try:
        assert_not_blank(page.screenshot())
    finally:
        page.close()


def _png_size(path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def test_report_md_tables_keep_their_columns(sheet):
    """Cells such as "max |error|" and "|val − test|" are escaped, so no row gains a column."""
    out, _, _ = sheet
    md = (out / "report.md").read_text()
    assert "max \\|error\\|" in md and "\\|val − test\\|" in md
    assert assert_markdown_rows_whole(md) >= 12


def test_learning_rates_read_as_lr_label_in_report_and_figures(sheet):
    out, _, _ = sheet
    for text in ((out / "report.md").read_text(), (out / "report.html").read_text()):
        for lr in LR_NUMBER.findall(text):
            assert lr == lr_label(float(lr)), lr
    columns = [rows for rows in markdown_tables((out / "report.md").read_text()) if rows[0][0] == "lr"]
    assert columns and all(row[0] == lr_label(float(row[0])) for rows in columns for row in rows[2:])
    legend = SEEN["sweep_curves.png"]["axes"][0]["legend"]
    assert legend == ["lr 1e-01", "lr 1e-03"]


def test_every_figure_reads_plainly(sheet):
    """Whole epochs on every epoch axis (the run is one epoch long: matplotlib alone would draw
    0.96, 0.98, …), log axes in plain numbers, learning rates as lr_label (tests.test_plots)."""
    assert set(SEEN) == {
        "gauss_conv.png",
        "sweep_curves.png",
        "ae_losses.png",
        "reconstructions.png",
        "latent.png",
        "pca_ae_losses.png",
        "pca_ae_reconstructions.png",
        "confusion.png",
    }
    for name, facts in SEEN.items():
        assert_reads_plainly(name, facts)
    for name in ("sweep_curves.png", "ae_losses.png", "pca_ae_losses.png"):
        assert any(ax["epoch_axis"] for ax in SEEN[name]["axes"]), name


def test_no_1_epochs_anywhere(sheet):
    """Every step ran one epoch: the report and the log say "1 epoch"."""
    out, _, result = sheet
    for where, text in (
        ("report.html", (out / "report.html").read_text()),
        ("report.md", (out / "report.md").read_text()),
        ("log", result.stderr),
        ("stdout", result.stdout),
    ):
        assert not re.search(r"\b1 epochs\b", text), where
    assert "1 epoch" in (out / "report.md").read_text()


@pytest.mark.parametrize(
    ("suffix", "magic"), [pytest.param(".pdf", b"%PDF", marks=pytest.mark.slow), (".svg", b"<svg")]
)
def test_latent_plot_writes_the_format_its_out_names(sheet, runner, app, tmp_path, suffix, magic):
    out, _, _ = sheet
    checkpoint = out / "train-ae" / "ae_d3.pt"
    result = runner.invoke(
        app,
        ["latent-plot", "--checkpoint", str(checkpoint), "--n", "40", "--device", "cpu", "--out", f"x{suffix}", "-q"],
    )
    assert result.exit_code == 0, result.output
    assert magic in (tmp_path / f"x{suffix}").read_bytes()[:400]


@pytest.mark.slow
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


@pytest.mark.slow
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
