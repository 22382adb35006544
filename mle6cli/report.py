"""run-all's report: one self-contained HTML file (figures inlined as data: URIs) and a Markdown twin.

The HTML loads nothing from the network. A few lines of inline script count the images
that decoded and record it on <body data-images-loaded=…>, so a headless browser can check
the report the way a reader would see it.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

from mle6cli.runs import atomic_write_bytes


@dataclass
class Table:
    columns: list[str]
    rows: list[list]
    caption: str | None = None


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
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-3 and value != 0 else f"{value:.4f}"
    return "" if value is None else str(value)


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{border-bottom:2px solid #444}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #bbb;padding:.3em .7em;text-align:right}
th:first-child,td:first-child{text-align:left}caption{caption-side:top;font-weight:600;text-align:left}
figure{margin:1em 0}img{max-width:100%;border:1px solid #ddd}
.banner{background:#fff3cd;border:1px solid #e0c36a;padding:.6em 1em;font-weight:600}
nav ul{columns:2}
"""

_SCRIPT = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute('data-images-loaded', ok + '/' + imgs.length);
});
"""


def render_html(title: str, sections: list[Section], banner: str | None = None) -> str:
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
    parts.append(
        "<nav><ul>" + "".join(f'<li><a href="#{s.id}">{e(s.title)}</a></li>' for s in sections) + "</ul></nav>"
    )
    for s in sections:
        parts.append(f'<section id="{s.id}"><h2>{e(s.title)}</h2>')
        parts += [f"<p>{e(p)}</p>" for p in s.paragraphs]
        for t in s.tables:
            parts.append("<table>")
            if t.caption:
                parts.append(f"<caption>{e(t.caption)}</caption>")
            parts.append("<tr>" + "".join(f"<th>{e(c)}</th>" for c in t.columns) + "</tr>")
            for row in t.rows:
                parts.append("<tr>" + "".join(f"<td>{e(_fmt(v))}</td>" for v in row) + "</tr>")
            parts.append("</table>")
        for fig in s.figures:
            name = Path(fig).name
            parts.append(
                f'<figure><img alt="{e(name)}" src="{_data_uri(fig)}"><figcaption>{e(name)}</figcaption></figure>'
            )
        parts.append("</section>")
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(parts)


def render_markdown(title: str, sections: list[Section], base_dir: Path, banner: str | None = None) -> str:
    lines = [f"# {title}", ""]
    if banner:
        lines += [f"> **{banner}**", ""]
    for s in sections:
        lines += [f"## {s.title}", ""]
        for p in s.paragraphs:
            lines += [p, ""]
        for t in s.tables:
            if t.caption:
                lines += [f"**{t.caption}**", ""]
            lines.append("| " + " | ".join(t.columns) + " |")
            lines.append("|" + "|".join(" --- " for _ in t.columns) + "|")
            lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in t.rows]
            lines.append("")
        for fig in s.figures:
            rel = Path(fig).resolve().relative_to(Path(base_dir).resolve())
            lines += [f"![{Path(fig).name}]({rel.as_posix()})", ""]
    return "\n".join(lines)


def write_report(run_dir: Path, title: str, sections: list[Section], banner: str | None = None) -> tuple[Path, Path]:
    run_dir = Path(run_dir)
    html_path = atomic_write_bytes(run_dir / "report.html", render_html(title, sections, banner).encode())
    md_path = atomic_write_bytes(run_dir / "report.md", render_markdown(title, sections, run_dir, banner).encode())
    return html_path, md_path
