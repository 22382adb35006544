"""The self-contained report: structure, inlined images, nothing from the network, and a real browser."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from mle6cli.report import Section, Table, write_report


def _png(path, colour):
    from mle6cli.plots import _pyplot, save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1], [0, 1], color=colour)
    return save(fig, path)


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.urls, self.h2 = [], [], []
        self._in_h2 = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self._in_h2 = tag == "h2"
        for name, value in attrs:
            if name in ("src", "href"):
                self.urls.append(value)

    def handle_data(self, data):
        if self._in_h2:
            self.h2.append(data)
            self._in_h2 = False


@pytest.fixture
def report(tmp_path):
    figs = [_png(tmp_path / "figs" / "a.png", "red"), _png(tmp_path / "b.png", "blue")]
    sections = [
        Section(
            "Model",
            ["The CNN <has> 131,958 parameters."],
            [Table(["quantity", "exercise", "ours"], [["params", "131,958", 131958]], "Counts")],
        ),
        Section("Curves", ["Two figures."], figures=figs),
    ]
    return write_report(tmp_path, "mle6 report", sections, banner="Synthetic data")


def test_html_structure_and_inlined_images(report):
    html_path, md_path = report
    text = html_path.read_text()
    parsed = _Collect()
    parsed.feed(text)
    assert parsed.h2 == ["Model", "Curves"]
    images = [u for u in parsed.urls if u.startswith("data:")]
    assert len(images) == 2 and all(u.startswith("data:image/png;base64,iVBOR") for u in images)
    assert all(u.startswith(("data:", "#")) for u in parsed.urls)  # nothing to fetch
    assert not re.search(r"https?://", text)
    assert "&lt;has&gt;" in text and "Synthetic data" in text
    md = md_path.read_text()
    assert "![a.png](figs/a.png)" in md and "| params | 131,958 | 131958 |" in md


BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--virtual-time-budget=5000",
]


def rendered_dom(html_path, profile) -> str:
    """The page's DOM after its scripts ran in a headless browser (nothing is fetched: no network here)."""
    out = subprocess.run(
        [BROWSER, *BROWSER_FLAGS, f"--user-data-dir={profile}", "--dump-dom", html_path.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return out.stdout


@pytest.mark.skipif(BROWSER is None, reason="no headless browser installed")
def test_images_load_in_a_headless_browser(report, tmp_path):
    html_path, _ = report
    assert 'data-images-loaded="2/2"' in rendered_dom(html_path, tmp_path / "profile")
