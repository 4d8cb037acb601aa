"""The report as data: sections made of a few kinds of block, rendered later as HTML or Markdown.

Sections hold *facts already worded* (paragraphs, tables, pictures); they know nothing
about either output format, so the HTML page and the Markdown file always say the same
thing. What this module must never do: read files or run anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Ref:
    """A pointer to another section: rendered as a link (``§3``) in both formats."""

    section: str  # Section.id
    text: str


@dataclass(frozen=True, slots=True)
class Paragraph:
    #: Plain text and refs, in reading order (no markup: renderers escape text).
    parts: tuple[str | Ref, ...]


@dataclass(frozen=True, slots=True)
class Notice:
    """A visible note the reader must not miss (a skipped live step, a failure)."""

    text: str
    kind: str = "note"  # "note" or "problem"


@dataclass(frozen=True, slots=True)
class Code:
    """Preformatted text (packet lists, detail trees, transcripts)."""

    text: str
    caption: str = ""


@dataclass(frozen=True, slots=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""
    #: Columns whose cells are monospace (numbers, field values).
    mono: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Figure:
    """A picture: ``svg`` is a complete SVG document; ``name`` is its file stem in ``images/``."""

    name: str
    svg: str
    caption: str


@dataclass(frozen=True, slots=True)
class Image:
    """A raster picture file (a GUI screenshot): ``path`` is read when rendering."""

    name: str
    path: str
    caption: str


@dataclass(frozen=True, slots=True)
class HexDump:
    """A hex dump cut into runs of (text, layer key); ``legend`` is (key, label) in layer order."""

    lines: tuple[tuple[tuple[str, str | None], ...], ...]
    legend: tuple[tuple[str, str], ...]
    caption: str = ""


@dataclass(frozen=True, slots=True)
class Items:
    """A bulleted list; each item is a paragraph."""

    items: tuple[Paragraph, ...]


Block = Paragraph | Notice | Code | Table | Figure | Image | HexDump | Items


@dataclass(slots=True)
class Section:
    id: str  # anchor, unique in the report: "s3"
    title: str
    blocks: list[Block] = field(default_factory=list)
    subsections: list[Section] = field(default_factory=list)


@dataclass(slots=True)
class Part:
    title: str
    sections: list[Section]


@dataclass(slots=True)
class Report:
    title: str
    subtitle: str
    facts: list[tuple[str, str]]  # the title block: what was run, when, on what
    notices: list[Notice]
    parts: list[Part]

    def sections(self) -> list[Section]:
        out = []
        for part in self.parts:
            for s in part.sections:
                out.append(s)
                out.extend(s.subsections)
        return out


def para(*parts: str | Ref) -> Paragraph:
    """A paragraph from text pieces and refs (empty pieces dropped)."""
    return Paragraph(tuple(p for p in parts if p != ""))
