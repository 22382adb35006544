"""run-all's report: one self-contained HTML file (figures inlined as data: URIs) and a Markdown twin.

The HTML loads nothing from the network. It reads on a phone: wide tables scroll inside their
own wrapper, so the text never scrolls sideways, and figures shrink to the page's width. A few
lines of inline script count the images that decoded and record it on
<body data-images-loaded=…>, so a headless browser can check the report the way a reader sees it.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

from mle6cli.files import atomic_write_bytes
from mle6cli.fmt import cell


@dataclass
class Table:
    columns: list[str]
    rows: list[list]
    caption: str | None = None
    code: tuple[int, ...] = ()  # columns shown as code on one line (formulas): monospace, never wrapped


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    anchor: str | None = None

    @property
    def id(self) -> str:
        return self.anchor or "".join(c if c.isalnum() else "-" for c in self.title.lower()).strip("-")


def _fmt(value) -> str:
    return cell(value, missing="")


def _md(text) -> str:
    """A Markdown table cell: pipes escaped, so "max |error|" stays one cell."""
    return str(text).replace("\n", " ").replace("|", "\\|")


def _md_code(text) -> str:
    """A Markdown table cell shown as code (GitHub's tables take `\\|` inside code spans too)."""
    return f"`{_md(text)}`" if text else ""


_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}


def _data_uri(path: Path) -> str:
    mime = _MIME.get(Path(path).suffix.lower())
    if mime is None:
        raise ValueError(f"cannot inline {Path(path).name} in a web page: use .png, .jpg or .svg")
    return f"data:{mime};base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


_STYLE = """
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;
color:#222;background:#fff;line-height:1.45;overflow-wrap:break-word}
h1{border-bottom:2px solid #444}h2{margin-top:2em;border-bottom:1px solid #ccc}
.table{margin:1em 0}.caption{font-weight:600;margin:0 0 .3em}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse}th,td{border:1px solid #bbb;padding:.3em .7em;text-align:right;vertical-align:top}
th:first-child,td:first-child{text-align:left}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.88em;white-space:nowrap}
.code{text-align:left}
.provenance th{text-align:left;white-space:nowrap}.provenance td{text-align:left;overflow-wrap:anywhere}
figure{margin:1em 0}img{display:block;max-width:100%;height:auto;border:1px solid #ddd}
figcaption{font-size:.9em;color:#555}
.banner{background:#fff3cd;border:1px solid #e0c36a;padding:.6em 1em;font-weight:600}
nav ul{columns:2}
@media (max-width:600px){body{margin:1em auto;padding:0 .75em}nav ul{columns:1}th,td{padding:.25em .45em}}
"""


_SCRIPT = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute('data-images-loaded', ok + '/' + imgs.length);
});
"""


def _provenance_rows(provenance: dict | None) -> list[tuple[str, str]]:
    return [(str(k), str(v)) for k, v in (provenance or {}).items()]


def _html_table(table: Table, number: int, css: str | None = None) -> str:
    """A table inside its own horizontally scrolling wrapper, its caption outside it, so on a narrow
    screen the table scrolls and the text does not. A table without columns is a list of key/value rows."""
    e = html.escape
    parts = ['<div class="table">']
    region = ""
    if table.caption:
        parts.append(f'<p class="caption" id="t{number}">{e(table.caption)}</p>')
        region = f' role="region" aria-labelledby="t{number}" tabindex="0"'
    parts.append(f'<div class="scroll"{region}><table' + (f' class="{css}"' if css else "") + ">")
    if table.columns:
        head = [
            f'<th class="code">{e(c)}</th>' if i in table.code else f"<th>{e(c)}</th>"
            for i, c in enumerate(table.columns)
        ]
        parts.append("<thead><tr>" + "".join(head) + "</tr></thead>")
    parts.append("<tbody>")
    for row in table.rows:
        cells = []
        for i, value in enumerate(row):
            text = e(_fmt(value))
            if i in table.code:
                cells.append(f'<td class="code"><code>{text}</code></td>')
            elif i == 0 and not table.columns:
                cells.append(f'<th scope="row">{text}</th>')
            else:
                cells.append(f"<td>{text}</td>")
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</tbody></table></div></div>")
    return "".join(parts)


def render_html(title: str, sections: list[Section], banner: str | None = None, provenance: dict | None = None) -> str:
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{e(title)}</h1>",
    ]
    if banner:
        parts.append(f'<p class="banner">{e(banner)}</p>')
    number = 0
    if provenance:
        made = Table([], [list(r) for r in _provenance_rows(provenance)], "How this report was made")
        parts.append(_html_table(made, number, "provenance"))
    parts.append(
        "<nav><ul>" + "".join(f'<li><a href="#{s.id}">{e(s.title)}</a></li>' for s in sections) + "</ul></nav>"
    )
    for s in sections:
        parts.append(f'<section id="{s.id}"><h2>{e(s.title)}</h2>')
        parts += [f"<p>{e(p)}</p>" for p in s.paragraphs]
        for t in s.tables:
            number += 1
            parts.append(_html_table(t, number))
        for fig in s.figures:
            name = Path(fig).name
            parts.append(
                f'<figure><img alt="{e(name)}" src="{_data_uri(fig)}"><figcaption>{e(name)}</figcaption></figure>'
            )
        parts.append("</section>")
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(parts)


def render_markdown(
    title: str, sections: list[Section], base_dir: Path, banner: str | None = None, provenance: dict | None = None
) -> str:
    lines = [f"# {title}", ""]
    if banner:
        lines += [f"> **{banner}**", ""]
    if provenance:
        lines += ["| how this report was made | |", "| --- | --- |"]
        lines += [f"| {_md(k)} | {_md(v)} |" for k, v in _provenance_rows(provenance)]
        lines.append("")
    for s in sections:
        lines += [f"## {s.title}", ""]
        for p in s.paragraphs:
            lines += [p, ""]
        for t in s.tables:
            if t.caption:
                lines += [f"**{t.caption}**", ""]
            lines.append("| " + " | ".join(_md(c) for c in t.columns) + " |")
            lines.append("|" + "|".join(" --- " for _ in t.columns) + "|")
            lines += [
                "| " + " | ".join(_md_code(_fmt(v)) if i in t.code else _md(_fmt(v)) for i, v in enumerate(row)) + " |"
                for row in t.rows
            ]
            lines.append("")
        for fig in s.figures:
            rel = Path(fig).resolve().relative_to(Path(base_dir).resolve())
            lines += [f"![{Path(fig).name}]({rel.as_posix()})", ""]
    return "\n".join(lines)


def write_report(
    run_dir: Path, title: str, sections: list[Section], banner: str | None = None, provenance: dict | None = None
) -> tuple[Path, Path]:
    """report.html (self-contained) and report.md beside it; `provenance` says how the report was made."""
    import time

    run_dir = Path(run_dir)
    provenance = dict(provenance or {})
    if provenance:
        from importlib.metadata import PackageNotFoundError, version

        def ver(name):
            try:
                return version(name)
            except PackageNotFoundError:
                return "?"

        provenance.setdefault("date", time.strftime("%Y-%m-%d %H:%M:%S %z"))
        provenance.setdefault(
            "versions", f"mle6cli {ver('mle6cli')}, torch {ver('torch')}, torchvision {ver('torchvision')}"
        )
    html_doc = render_html(title, sections, banner, provenance)
    md_doc = render_markdown(title, sections, run_dir, banner, provenance)
    html_path = atomic_write_bytes(run_dir / "report.html", html_doc.encode())
    md_path = atomic_write_bytes(run_dir / "report.md", md_doc.encode())
    return html_path, md_path
