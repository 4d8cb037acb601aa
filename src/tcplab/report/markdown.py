"""The report as Markdown: the same sections as the HTML page, pictures as files beside it.

:func:`render` returns the text and the picture files to write (``images/NAME.svg``), so
the caller decides where they go and this module stays free of I/O. Capture text is
placed in code blocks or escaped, so it cannot turn into Markdown markup.
"""

from __future__ import annotations

import re

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

_SPECIAL = re.compile(r"([\\`*{}\[\]<>#|!])")
# An underscore inside a word (http_seed.pcap) is never emphasis in CommonMark: left as is.
_UNDERSCORE = re.compile(r"(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")


def _esc(text: str) -> str:
    return _UNDERSCORE.sub(r"\\_", _SPECIAL.sub(r"\\\1", text)).replace("\n", " ")


def _inline(parts: tuple[str | Ref, ...]) -> str:
    return "".join(f"[{_esc(p.text)}](#{p.section})" if isinstance(p, Ref) else _esc(p)
                   for p in parts)


def _fence(text: str) -> str:
    ticks = "```"
    while ticks in text:
        ticks += "`"
    return f"{ticks}\n{text}\n{ticks}"


def _block(b: Block, files: dict[str, bytes | str]) -> str:
    if isinstance(b, Paragraph):
        return _inline(b.parts)
    if isinstance(b, Notice):
        return f"> **{'Problem' if b.kind == 'problem' else 'Note'}:** {_esc(b.text)}"
    if isinstance(b, Code):
        return (f"*{_esc(b.caption)}*\n\n" if b.caption else "") + _fence(b.text)
    if isinstance(b, Table):
        head = "| " + " | ".join(_esc(h) for h in b.header) + " |"
        rule = "| " + " | ".join("---" for _ in b.header) + " |"
        rows = ["| " + " | ".join(_esc(c) for c in row) + " |" for row in b.rows]
        return (f"*{_esc(b.caption)}*\n\n" if b.caption else "") + "\n".join([head, rule, *rows])
    if isinstance(b, Figure):
        files[f"images/{b.name}.svg"] = b.svg
        return f"![{_esc(b.caption)}](images/{b.name}.svg)\n\n*{_esc(b.caption)}*"
    if isinstance(b, Image):
        with open(b.path, "rb") as f:
            files[f"images/{b.name}.png"] = f.read()
        return f"![{_esc(b.caption)}](images/{b.name}.png)\n\n*{_esc(b.caption)}*"
    if isinstance(b, HexDump):
        text = "\n".join("".join(t for t, _k in runs) for runs in b.lines)
        legend = "; ".join(label for _k, label in b.legend)
        return ((f"*{_esc(b.caption)}*\n\n" if b.caption else "") + _fence(text)
                + f"\n\nLayers (coloured in report.html): {_esc(legend)}")
    if isinstance(b, Items):
        return "\n".join(f"- {_inline(i.parts)}" for i in b.items)
    raise TypeError(f"unknown report block {type(b).__name__}")


def _section(s: Section, level: int, files: dict[str, bytes | str]) -> list[str]:
    out = [f"<a id=\"{s.id}\"></a>", "", f"{'#' * level} {_esc(s.title)}", ""]
    for b in s.blocks:
        out += [_block(b, files), ""]
    for sub in s.subsections:
        out += _section(sub, level + 1, files)
    return out


def render(report: Report) -> tuple[str, dict[str, bytes | str]]:
    """(Markdown text, {relative path: content}) for the report."""
    files: dict[str, bytes | str] = {}
    out = [f"# {_esc(report.title)}", "", _esc(report.subtitle), "",
           "| | |", "| --- | --- |"]
    out += [f"| {_esc(k)} | {_esc(v)} |" for k, v in report.facts]
    out.append("")
    for n in report.notices:
        out += [_block(n, files), ""]
    out += ["## Contents", ""]
    for part in report.parts:
        out.append(f"- {_esc(part.title)}")
        out += [f"  - [{_esc(s.title)}](#{s.id})" for s in part.sections]
    out.append("")
    for part in report.parts:
        out += [f"## {_esc(part.title)}", ""]
        for s in part.sections:
            out += _section(s, 3, files)
    return "\n".join(out).rstrip() + "\n", files
