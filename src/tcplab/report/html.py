"""The report as one self-contained HTML page: inline CSS and SVG, no script, no network.

Sized for A4: the text column is at most 180 mm wide, pictures scale down to it, and
long lines (packet lists, detail trees) wrap instead of pushing the page sideways, so
the page prints and projects without horizontal scrolling. Every piece of text is
escaped here — section text can carry capture bytes.
"""

from __future__ import annotations

import base64
import html
import re

from tcplab.analyze.anatomy import COLOURS
from tcplab.report.model import (
    Block,
    Code,
    Figure,
    HexDump,
    Image,
    Items,
    Notice,
    Paragraph,
    Ref,
    Report,
    Section,
    Table,
)

CSS = """
@page { size: A4; margin: 14mm; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { font: 10.5pt/1.45 "DejaVu Sans", "Noto Sans", Arial, sans-serif; color: #1c2529;
       margin: 0 auto; padding: 6mm 4mm; max-width: 200mm; overflow-wrap: anywhere; }
@media print { body { padding: 0; max-width: none; } }
h1 { font-size: 20pt; margin: 0 0 2mm; color: #0d47a1; }
h2 { font-size: 15pt; margin: 9mm 0 3mm; padding-bottom: 1mm; border-bottom: 2px solid #0d47a1;
     color: #0d47a1; }
h3 { font-size: 12.5pt; margin: 7mm 0 2mm; color: #102a43; }
h4 { font-size: 11pt; margin: 5mm 0 2mm; color: #37474f; }
.subtitle { color: #455a64; margin: 0 0 4mm; }
table { border-collapse: collapse; width: 100%; margin: 2mm 0 4mm; font-size: 9pt;
        table-layout: auto; }
th, td { border: 1px solid #cfd8dc; padding: 1.2mm 1.8mm; text-align: left; vertical-align: top; }
th { background: #eceff1; white-space: nowrap; }
td.mono, pre, code, .hex { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; }
td.mono { font-size: 8pt; overflow-wrap: normal; }
td.mono:not(:last-child) { white-space: nowrap; }
table.list td { padding: 0.6mm 1.2mm; }
pre { font-size: 8pt; line-height: 1.35; background: #f5f7f8; border: 1px solid #dde3e6;
      padding: 2mm 3mm; white-space: pre-wrap; word-break: break-all; margin: 1mm 0 4mm; }
.caption, figcaption { font-size: 9pt; color: #455a64; margin: 1mm 0 1mm; }
figure { margin: 3mm 0 5mm; break-inside: avoid; }
figure svg, figure img { display: block; max-width: 100%; height: auto; border: 1px solid #dde3e6; }
.notice { border-left: 4px solid #f9a825; background: #fff8e1; padding: 2mm 3mm; margin: 2mm 0 4mm; }
.notice.problem { border-color: #c62828; background: #ffebee; }
.facts td:first-child { width: 32%; color: #455a64; }
nav ul { list-style: none; margin: 1mm 0 4mm; padding-left: 0; }
nav ul ul { padding-left: 6mm; }
nav li { margin: 0.8mm 0; }
.hex { font-size: 8.5pt; line-height: 1.45; white-space: pre; background: #fafafa;
       border: 1px solid #dde3e6; padding: 2mm 3mm; margin: 1mm 0 2mm; overflow: hidden; }
.legend span { display: inline-block; padding: 0 2mm; margin: 0 2mm 1mm 0; border-radius: 2px;
               font-size: 9pt; }
a { color: #0d47a1; }
""" + "".join(
    f".l-{key} {{ background: {fill}; color: {ink}; }}\n" for key, (fill, ink) in COLOURS.items()
)


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _inline(parts: tuple[str | Ref, ...]) -> str:
    out = []
    for p in parts:
        if isinstance(p, Ref):
            out.append(f"<a href='#{_e(p.section)}'>{_e(p.text)}</a>")
        else:
            out.append(_e(p))
    return "".join(out)


_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>\s*")


def inline_svg(svg: str) -> str:
    """An SVG document as an element of the page (its XML declaration dropped)."""
    return _XML_DECL.sub("", svg)


def _block(b: Block) -> str:
    if isinstance(b, Paragraph):
        return f"<p>{_inline(b.parts)}</p>"
    if isinstance(b, Notice):
        return f"<div class='notice {_e(b.kind)}'>{_e(b.text)}</div>"
    if isinstance(b, Code):
        cap = f"<div class='caption'>{_e(b.caption)}</div>" if b.caption else ""
        return f"{cap}<pre>{_e(b.text)}</pre>"
    if isinstance(b, Table):
        cap = f"<div class='caption'>{_e(b.caption)}</div>" if b.caption else ""
        head = "".join(f"<th>{_e(h)}</th>" for h in b.header)
        rows = []
        for row in b.rows:
            cells = "".join(
                f"<td class='mono'>{_e(c)}</td>" if i in b.mono else f"<td>{_e(c)}</td>"
                for i, c in enumerate(row))
            rows.append(f"<tr>{cells}</tr>")
        return f"{cap}<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    if isinstance(b, Figure):
        return (f"<figure id='fig-{_e(b.name)}'>{inline_svg(b.svg)}"
                f"<figcaption>{_e(b.caption)}</figcaption></figure>")
    if isinstance(b, Image):
        with open(b.path, "rb") as f:
            data = base64.b64encode(f.read()).decode("ascii")
        return (f"<figure id='fig-{_e(b.name)}'><img alt='{_e(b.caption)}' "
                f"src='data:image/png;base64,{data}'><figcaption>{_e(b.caption)}</figcaption></figure>")
    if isinstance(b, HexDump):
        lines = []
        for runs in b.lines:
            lines.append("".join(f"<span class='l-{_e(k)}'>{_e(t)}</span>" if k else _e(t)
                                 for t, k in runs))
        legend = "".join(f"<span class='l-{_e(k)}'>{_e(label)}</span>" for k, label in b.legend)
        cap = f"<div class='caption'>{_e(b.caption)}</div>" if b.caption else ""
        return f"{cap}<div class='hex'>{'<br>'.join(lines)}</div><div class='legend'>{legend}</div>"
    if isinstance(b, Items):
        return "<ul>" + "".join(f"<li>{_inline(i.parts)}</li>" for i in b.items) + "</ul>"
    raise TypeError(f"unknown report block {type(b).__name__}")


def _section(s: Section, level: int) -> str:
    out = [f"<section id='{_e(s.id)}'><h{level}>{_e(s.title)}</h{level}>"]
    out.extend(_block(b) for b in s.blocks)
    out.extend(_section(sub, level + 1) for sub in s.subsections)
    out.append("</section>")
    return "\n".join(out)


def render(report: Report) -> str:
    """The whole page as a string."""
    facts = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in report.facts)
    toc = []
    for part in report.parts:
        items = "".join(f"<li><a href='#{_e(s.id)}'>{_e(s.title)}</a></li>" for s in part.sections)
        toc.append(f"<li>{_e(part.title)}<ul>{items}</ul></li>")
    body = [
        "<!DOCTYPE html>",
        "<html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{_e(report.title)}</title><style>{CSS}</style></head><body>",
        f"<header><h1>{_e(report.title)}</h1><p class='subtitle'>{_e(report.subtitle)}</p>",
        f"<table class='facts'><tbody>{facts}</tbody></table></header>",
        *(_block(n) for n in report.notices),
        f"<nav><h2>Contents</h2><ul>{''.join(toc)}</ul></nav>",
    ]
    for part in report.parts:
        body.append(f"<h2>{_e(part.title)}</h2>")
        body.extend(_section(s, 3) for s in part.sections)
    body.append("</body></html>")
    return "\n".join(body) + "\n"
