"""The documentation: generated pages up to date, the site builds with --strict, and it works in a browser.

The site is built once per session (a few seconds); the browser tests serve it over HTTP on a
free local port, because Material's search fetches its index, which Chromium refuses from file://.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import REPO


def gen_pages():
    """docs/gen_pages.py as a module (docs/ is a folder of pages, not a package)."""
    spec = importlib.util.spec_from_file_location("docs_gen_pages", REPO / "docs" / "gen_pages.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_generated_pages_match_the_commands_and_the_data_checks_table():
    stale = [str(path.relative_to(REPO)) for path, text in gen_pages().pages().items() if path.read_text() != text]
    assert not stale, f"out of date: {stale}; run make docs-pages and commit the result"


def test_the_cli_reference_has_every_command():
    import typer

    from mle6cli.cli import app

    page = (REPO / "docs" / "reference" / "cli.md").read_text()
    for name, command in typer.main.get_command(app).commands.items():
        assert f"\n## mle6 {name}\n" in page, name
        for sub in getattr(command, "commands", {}):
            assert f"\n## mle6 {name} {sub}\n" in page, (name, sub)


def test_the_readmes_links_lead_to_files_that_exist():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 150, "the README stays short: the manual is docs/"
    targets = [t for t in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme) if "://" not in t]
    assert targets, "the README links into the docs"
    missing = [t for t in targets if not (REPO / t).exists()]
    assert not missing, missing


def test_the_figures_are_small_pngs_and_the_pages_use_them():
    images = sorted((REPO / "docs" / "img").glob("*.png"))
    assert len(images) >= 5
    pages = "".join(p.read_text() for p in (REPO / "docs").rglob("*.md"))
    for image in images:
        assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", image
        assert image.stat().st_size < 150_000, f"{image.name}: shrink it (docs/figures.py)"
        assert f"img/{image.name}" in pages, f"{image.name} is on no page"


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    """The site, built once with `mkdocs build --strict`: any warning (a broken link or anchor, a
    page outside the nav) fails the build."""
    pytest.importorskip("mkdocs")  # the docs extra's (the dev extra has it)
    pytest.importorskip("material")  # mkdocs-material, the theme
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out


@pytest.mark.slow
def test_the_site_builds_strictly_with_every_page(site):
    for page in ["index.html", "getting-started.html", "reference/cli.html", "data-checks.html", "using-models.html"]:
        assert (site / page).is_file(), page
    assert (site / "search" / "search_index.json").is_file()
    assert (site / "img" / "sweep_curves.png").is_file()


@pytest.fixture(scope="module")
def served(site):
    """The built site at http://127.0.0.1:PORT/, served from a thread for this module's tests."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:  # the test's output stays readable
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def wait_for(page, expression: str, timeout: float = 15.0):
    """Poll a JavaScript expression in the page until it is truthy (the search runs in a worker)."""
    return page.evaluate(
        f"""new Promise(resolve => {{
          const start = Date.now();
          const poll = () => {{
            const value = ({expression});
            if (value || Date.now() - start > {timeout * 1000}) resolve(value); else setTimeout(poll, 100);
          }};
          poll();
        }})"""
    )


def test_the_home_page_and_a_command_page_render(browser, served):
    from tests.browser import PHONE

    page = browser.open(served + "index.html")
    assert page.evaluate("document.querySelector('article h1').textContent.trim()").startswith("mle6")
    assert page.evaluate("document.querySelectorAll('.md-nav__link').length") > 10
    figure = page.evaluate(
        "(async () => { const i = document.querySelector('article img'); await i.decode();"
        " return [i.getAttribute('src'), i.naturalWidth]; })()"
    )
    assert figure[0] == "img/sweep_curves.png" and figure[1] > 100, figure
    assert page.console_errors() == []
    page.close()

    page = browser.open(served + "signs.html", PHONE)
    headings = page.evaluate("Array.from(document.querySelectorAll('article h2')).map(h => h.id)")
    assert {"train-cnn", "sweep-lr", "prepare-signs"} <= set(headings), headings
    assert page.evaluate("document.querySelectorAll('article pre code').length") >= 3
    assert wait_for(page, "Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
    # a phone does not scroll sideways: wide tables and code scroll in their own boxes
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    assert page.console_errors() == []
    page.close()


def test_the_search_box_finds_a_word(browser, served):
    page = browser.open(served + "index.html")
    assert page.evaluate("!!document.querySelector('input.md-search__input')")
    page.evaluate(
        """(() => {
          document.querySelector('#__search').checked = true;
          const input = document.querySelector('input.md-search__input');
          input.focus();
          input.value = 'collapse';
          input.dispatchEvent(new Event('input', {bubbles: true}));
          input.dispatchEvent(new KeyboardEvent('keyup', {key: 'e', bubbles: true}));
        })()"""
    )
    found = wait_for(page, "document.querySelectorAll('.md-search-result__item').length")
    assert found and found > 0, "typing a word in the search box shows no results"
    titles = page.evaluate(
        "Array.from(document.querySelectorAll('.md-search-result__item')).map(e => e.textContent).join(' ')"
    )
    assert "ollapse" in titles, titles[:300]
    assert page.console_errors() == []
    page.close()
