"""The self-contained report: structure, inlined images, nothing from the network, and a real browser."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from mle6cli.report import Section, Table, write_report


def _png(path, colour):
    from mle6cli.plots import pyplot, save

    plt = pyplot()
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


def markdown_tables(text: str) -> list[list[list[str]]]:
    """Every table in a Markdown text: its rows, each split into cells at the pipes not escaped."""
    tables, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            current.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
        elif current:
            tables.append(current)
            current = []
    return tables


def assert_markdown_rows_whole(text: str) -> int:
    """Each row of each table has as many cells as its header (a stray | would add one)."""
    tables = markdown_tables(text)
    for rows in tables:
        header, rule, *body = rows
        assert all(set(c) <= {"-", ":"} and c for c in rule), rule
        for row in [rule, *body]:
            assert len(row) == len(header), f"{len(row)} cells under {len(header)} columns: {row}"
    return len(tables)


def test_markdown_escapes_pipes_in_cells(tmp_path):
    sections = [
        Section(
            "Checks",
            tables=[
                Table(["check", "result"], [["numeric convolution: max |error|", 1e-17], ["|val − test|", "0.0167"]]),
                Table(["case", "H_out ="], [["odd", "floor((5 | 1) / 2)"]], code=(1,)),
            ],
        )
    ]
    _, md_path = write_report(tmp_path, "t", sections, provenance={"data": "a|b"})
    md = md_path.read_text()
    assert assert_markdown_rows_whole(md) == 3
    assert "| numeric convolution: max \\|error\\| | 1e-17 |" in md
    assert "| odd | `floor((5 \\| 1) / 2)` |" in md  # a code cell: monospace in Markdown too


def test_the_markdown_check_catches_an_unescaped_pipe():
    with pytest.raises(AssertionError, match="4 cells under 2 columns"):
        assert_markdown_rows_whole("| a | b |\n| --- | --- |\n| max |error| | 1 |\n")


def test_tables_scroll_in_their_own_wrapper_with_the_caption_outside(report):
    html_path, _ = report
    text = html_path.read_text()
    assert '<p class="caption" id="t1">Counts</p><div class="scroll" role="region" aria-labelledby="t1"' in text
    assert text.count("<table") == text.count('<div class="scroll"') == 1
    assert ".scroll{overflow-x:auto" in text and "img{display:block;max-width:100%" in text


# -- in a real browser (tests.browser; the `browser` fixture skips where none is installed) ---------


def check_page(page, *, phone: bool) -> dict:
    """Three checks of a page, at the width it is shown at. (a) Every figure decoded and is drawn at a
    non-zero size (no wider than the screen); (b) no console errors; (c) readable: the page never
    scrolls sideways (document.scrollWidth <= innerWidth) and no text runs past the right edge;
    every table sits in a wrapper that scrolls on its own, and formula cells stay on one line.
    Returns the measurements for further checks."""
    from tests.browser import MEASURE

    facts = page.evaluate(MEASURE)
    for image in facts["images"]:
        assert image["decoded"] and image["naturalWidth"] > 0 and image["naturalHeight"] > 0, image
        assert image["width"] > 0 and image["height"] > 0, image
        assert image["right"] <= facts["innerWidth"] + 0.5, image
    assert facts["imagesLoaded"] == f"{len(facts['images'])}/{len(facts['images'])}"
    assert page.console_errors() == []
    assert facts["scrollWidth"] <= facts["innerWidth"], (facts["scrollWidth"], facts["innerWidth"])
    assert facts["textPastTheEdge"] == []
    for table in facts["tables"]:
        assert table["wrapped"] and table["overflowX"] == "auto", table
        assert table["wrapperRight"] <= facts["innerWidth"] + 0.5, table
        if not phone:
            assert table["scrollWidth"] <= table["clientWidth"], table  # on a desktop every table fits
    assert all(lines == 1 for lines in facts["codeLines"]), facts["codeLines"]
    return facts


def assert_not_blank(png: bytes, minimum: float = 0.02) -> float:
    """A screenshot that is not an empty page: enough ink overall, and in most of its height."""
    import io

    import numpy as np
    from matplotlib.image import imread

    from tests.browser import ink_fraction

    pixels = imread(io.BytesIO(png), format="png")
    ink = ink_fraction(png)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100, pixels.shape
    assert ink >= minimum, f"only {ink:.2%} of the page is not background"
    bands = np.array_split((np.abs(pixels[..., :3] - 1.0).max(axis=-1) > 0.08), 10)
    inked = sum(band.mean() > 0.005 for band in bands)
    assert inked >= 7, f"ink in only {inked} of 10 horizontal bands"
    return ink


def _controls(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!DOCTYPE html><html><head><meta name="viewport" content="width=device-width, initial-scale=1"></head>'
        '<body data-images-loaded="0/1"><p>wide:</p><table><tr><td style="white-space:nowrap">'
        + "a very long line of text "
        * 20
        + '</td></tr></table><img alt="broken" src="data:image/png;base64,AAAA">'
        "<script>console.error('logged'); undefinedFunction();</script></body></html>"
    )
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    return bad, blank


def test_the_browser_checks_catch_errors_broken_images_wide_pages_and_blank_screens(browser, tmp_path):
    """The controls: each check above fails on a page built to break it."""
    from tests.browser import MEASURE, PHONE, ink_fraction

    bad, blank = _controls(tmp_path)
    page = browser.open(bad.as_uri(), PHONE)
    try:
        errors = page.console_errors()
        assert any("logged" in e for e in errors) and any("undefinedFunction" in e for e in errors), errors
        facts = page.evaluate(MEASURE)
        (image,) = facts["images"]
        assert not image["decoded"] and image["naturalWidth"] == 0
        assert facts["scrollWidth"] > facts["innerWidth"]  # a table outside a wrapper widens the page
        assert not facts["tables"][0]["wrapped"]
        with pytest.raises(AssertionError):
            check_page(page, phone=True)
    finally:
        page.close()
    page = browser.open(blank.as_uri())
    try:
        png = page.screenshot()
        assert ink_fraction(png) < 0.001
        with pytest.raises(AssertionError):
            assert_not_blank(png)
    finally:
        page.close()


def test_the_report_in_a_browser_at_phone_and_desktop_widths(browser, report):
    from tests.browser import DESKTOP, PHONE

    html_path, _ = report
    page = browser.open(html_path.as_uri(), PHONE)
    try:
        facts = check_page(page, phone=True)
        assert len(facts["images"]) == 2
        page.resize(DESKTOP)
        check_page(page, phone=False)
    finally:
        page.close()
