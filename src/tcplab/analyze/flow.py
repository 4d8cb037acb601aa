"""Flow graph (``--flow`` / ``--flow-svg``): one TCP conversation drawn as a ladder diagram.

The client (the side that sent the first SYN, else the first sender) is the left column,
the server the right; each segment is an arrow carrying Wireshark's flag text and the
relative ``Seq``/``Ack``/``Len``, with the time and frame number beside it and analysis
tags (``[TCP Retransmission]``…) or the application line (``GET /blog HTTP/1.1``) as a note.
The same rows feed a terminal drawing (:func:`render_ladder`) and a standalone SVG picture
(:func:`write_svg`) that needs no fonts, scripts or stylesheets beyond the file itself.

What it must never do: trust text from the capture — every note goes through
:func:`~tcplab.analyze.render.safe_text` (terminal) and XML escaping (SVG). Rows are
capped (``max_rows``) so a million-packet stream cannot produce a million-line drawing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from xml.sax.saxutils import escape

from tcplab.analyze.render import safe_text
from tcplab.analyze.tcp_analysis import TAGS
from tcplab.errors import InputError
from tcplab.packet.tcp import flags_text

#: Default cap on drawn rows: enough for any conversation a student reads arrow by arrow.
MAX_ROWS = 2000
# Widths of the terminal drawing.
_MIN_GAP = 40
_MAX_GAP = 72
_NOTE_MAX = 60


@dataclass(frozen=True, slots=True)
class FlowRow:
    """One arrow: who sent it, its label and the note beside it."""

    frame: int
    time: float
    from_client: bool
    label: str
    note: str
    kind: str  # "syn", "fin", "rst", "data", "ack" (colour in the SVG)
    flagged: bool  # carries an analysis tag (drawn dashed in the SVG)


@dataclass(frozen=True, slots=True)
class Flow:
    stream: int
    client: str
    server: str
    rows: list[FlowRow]
    omitted: int  # rows past max_rows, counted but not kept


def endpoint(d: dict, which: str, port_key: str) -> str:
    """``address:port`` of one side of a packet (``[v6]:port`` for IPv6), as lanes are named."""
    addr = str(d.get(f"ip.{which}") or d.get(f"ipv6.{which}") or "?")
    port = d.get(port_key, "?")
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


_endpoint = endpoint


def _tags(d: dict) -> list[str]:
    out = []
    for _bit, name, text in TAGS:
        if d.get("tcp.analysis." + name):
            num = d.get("tcp.analysis.duplicate_ack_num")
            if name == "duplicate_ack" and num:
                text = f"{text} {d.get('tcp.analysis.duplicate_ack_frame', '')}#{num}"
            out.append(f"[{text}]")
    return out


def arrow_text(d: dict) -> tuple[str, str, str, bool]:
    """(label, note, kind, flagged) of one segment's arrow: shared by every ladder drawing."""
    flags = int(d.get("tcp.flags", 0) or 0)
    length = int(d.get("tcp.len", 0) or 0)
    label = f"[{flags_text(flags)}] Seq={d.get('tcp.seq', '?')}"
    if flags & 0x10:
        label += f" Ack={d.get('tcp.ack', '?')}"
    label += f" Len={length}"
    tags = _tags(d)
    note_parts = list(tags)
    proto = str(d.get("_ws.col.Protocol", "TCP"))
    if proto not in ("TCP", "") and d.get("_ws.col.Info"):
        note_parts.append(f"{proto}: {d['_ws.col.Info']}")
    note = safe_text(" ".join(note_parts))
    if flags & 0x04:
        kind = "rst"
    elif flags & 0x02:
        kind = "syn"
    elif flags & 0x01:
        kind = "fin"
    elif length:
        kind = "data"
    else:
        kind = "ack"
    return label, note, kind, bool(tags)


def _row(d: dict, from_client: bool) -> FlowRow:
    label, note, kind, flagged = arrow_text(d)
    return FlowRow(int(d.get("frame.number", 0) or 0), float(d.get("frame.time_relative", 0.0)
                   or 0.0), from_client, label, note, kind, flagged)


class FlowBuilder:
    """Incremental form of :func:`build_flow`: ``add`` each packet in order, then ``finish()``.

    Keeps at most ``max_rows`` packets of the stream (the client is known only once its
    first SYN is seen, so rows are made at the end).
    """

    def __init__(self, stream: int, *, max_rows: int = MAX_ROWS) -> None:
        self.stream = stream
        self.max_rows = max_rows
        self._kept: list = []
        self._omitted = 0
        self._first: tuple[str, str] | None = None  # (sender, receiver) of the first packet
        self._syn: tuple[str, str] | None = None  # ... of its first SYN without ACK: the client
        self._seen_streams: set[int] = set()

    def add(self, d: dict) -> None:
        s = d.get("tcp.stream")
        if s is None:
            return
        if len(self._seen_streams) < 100_000:
            self._seen_streams.add(s)
        if s != self.stream:
            return
        if self._first is None or self._syn is None:
            src = _endpoint(d, "src", "tcp.srcport")
            dst = _endpoint(d, "dst", "tcp.dstport")
            if self._first is None:
                self._first = (src, dst)
            if int(d.get("tcp.flags", 0) or 0) & 0x12 == 0x02:
                self._syn = (src, dst)
        if len(self._kept) < self.max_rows:
            self._kept.append(d)
        else:
            self._omitted += 1

    def finish(self) -> Flow:
        """The rows of the stream (raises :class:`InputError` if the stream is absent)."""
        if self._first is None:
            available = sorted(self._seen_streams)
            shown = ", ".join(map(str, available[:20])) + (" …" if len(available) > 20 else "")
            where = f"streams in this capture: {shown}" if available else "no TCP in this capture"
            raise InputError(f"--flow: TCP stream {self.stream} is not in the capture ({where})")
        client, server = self._syn or self._first
        rows = [_row(d, _endpoint(d, "src", "tcp.srcport") == client) for d in self._kept]
        return Flow(self.stream, client, server, rows, self._omitted)


def build_flow(packets: Iterable[dict], stream: int, *, max_rows: int = MAX_ROWS) -> Flow:
    """Select ``stream``'s packets and turn them into rows (raises if the stream is absent)."""
    builder = FlowBuilder(stream, max_rows=max_rows)
    for d in packets:
        builder.add(d)
    return builder.finish()


def fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def iter_ladder_lines(flow: Flow, *, ascii_only: bool = False) -> Iterator[str]:
    """The terminal drawing line by line (so a caller can print as it goes)."""
    v, h, right, left = ("|", "-", ">", "<") if ascii_only else ("│", "─", "►", "◄")
    gap = max(_MIN_GAP, min(_MAX_GAP, max((len(r.label) for r in flow.rows), default=0) + 12))
    prefix = 20  # "  No.        Time   " — the left lifeline sits right after it
    client, server = safe_text(flow.client), safe_text(flow.server)
    yield f"TCP stream {flow.stream}: {client} (client) ⇄ {server} (server)"
    yield ""
    head = f"{'No.':>6} {'Time':>11}  "
    a_col = max(prefix - len(client) // 2, len(head))
    b_col = prefix + gap + 1 - len(server) // 2
    line = head.ljust(a_col) + client
    line = line.ljust(max(b_col, len(line) + 2)) + server
    yield line
    yield " " * prefix + v + " " * gap + v
    for r in flow.rows:
        label = " " + fit(r.label, gap - 6) + " "
        fill = gap - 1 - len(label)
        left_fill = fill // 2
        right_fill = fill - left_fill
        if r.from_client:
            arrow = h * left_fill + label + h * right_fill + right
        else:
            arrow = left + h * left_fill + label + h * right_fill
        note = ("  " + fit(r.note, _NOTE_MAX)) if r.note else ""
        yield f"{r.frame:>6} {r.time:>11.6f}  {v}{arrow}{v}{note}".rstrip()
    yield " " * prefix + v + " " * gap + v
    if flow.omitted:
        yield f"… {flow.omitted} more packets in this stream not drawn (limit {len(flow.rows)})"


def render_ladder(packets: Iterable[dict], stream: int, *, max_rows: int = MAX_ROWS,
                  ascii_only: bool = False) -> str:
    """The ladder diagram of TCP stream ``stream`` for a terminal."""
    flow = build_flow(packets, stream, max_rows=max_rows)
    return "\n".join(iter_ladder_lines(flow, ascii_only=ascii_only))


# ---------------------------------------------------------------------------------------------
# SVG

COLOURS = {"syn": "#2e7d32", "fin": "#6d4c41", "rst": "#c62828", "data": "#1565c0",
            "ack": "#616161"}
_ROW_H = 34
_TOP = 96
_X_TIME = 16
_X_A = 230
_X_B = 650
_X_NOTE = 668
_SVG_NOTE_MAX = 100
FONT = "font-family='DejaVu Sans Mono, Menlo, Consolas, monospace'"


def svg_escape(text: str) -> str:
    """Text safe inside an SVG element: control characters shown as escapes, XML-escaped."""
    return escape(safe_text(text))


def svg_markers(id_prefix: str = "") -> list[str]:
    """The arrow-head markers, one per kind; ``id_prefix`` keeps ids unique in a page of many SVGs."""
    out = ["<defs>"]
    for kind, colour in COLOURS.items():
        out.append(
            f"<marker id='{id_prefix}arrow-{kind}' viewBox='0 0 10 10' refX='10' refY='5' "
            f"markerWidth='8' markerHeight='8' orient='auto-start-reverse'>"
            f"<path d='M0,0 L10,5 L0,10 z' fill='{colour}'/></marker>"
        )
    out.append("</defs>")
    return out


def svg_text(flow: Flow, *, id_prefix: str = "", note_max: int = _SVG_NOTE_MAX) -> str:
    """The whole SVG document for ``flow`` as a string (``id_prefix``: see :func:`svg_markers`;
    ``note_max`` characters of note per row, less for a printed page)."""
    width = int(_X_NOTE + 16 + 7.5 * max([len(fit(r.note, note_max)) for r in flow.rows]
                                          + [24]))
    height = _TOP + _ROW_H * (len(flow.rows) + 1) + (24 if flow.omitted else 0)
    out = [
        "<?xml version='1.0' encoding='UTF-8'?>",
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' {FONT} font-size='12'>",
        f"<title>{svg_escape(f'TCP stream {flow.stream}: {flow.client} ⇄ {flow.server}')}</title>",
        *svg_markers(id_prefix),
    ]
    out.append(f"<rect width='{width}' height='{height}' fill='white'/>")
    out.append(f"<text x='{_X_TIME}' y='24' font-size='15' font-weight='bold'>"
               f"{svg_escape(f'TCP stream {flow.stream}: {flow.client} ⇄ {flow.server}')}</text>")
    bottom = _TOP + _ROW_H * len(flow.rows) + 8
    for x, name, role in ((_X_A, flow.client, "client"), (_X_B, flow.server, "server")):
        out.extend(svg_lane(x, name, role, bottom))
    out.append(f"<text x='{_X_TIME}' y='{_TOP - 8}' fill='#455a64'>No.  Time (s)</text>")
    for i, r in enumerate(flow.rows):
        y = _TOP + _ROW_H * i + 20
        x1, x2 = (_X_A, _X_B) if r.from_client else (_X_B, _X_A)
        out.extend(svg_arrow(y, r.frame, r.time, x1, x2, r.label, fit(r.note, note_max), r.kind,
                             r.flagged, _X_NOTE, id_prefix))
    if flow.omitted:
        out.append(f"<text x='{_X_TIME}' y='{bottom + 24}' fill='#455a64'>"
                   f"{svg_escape(f'… {flow.omitted} more packets not drawn')}</text>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def svg_lane(x: float, name: str, role: str, bottom: float) -> list[str]:
    """One endpoint's box and lifeline."""
    box_w = 8 * max(len(name), len(role), 8) + 16
    return [
        f"<rect x='{x - box_w / 2}' y='38' width='{box_w}' height='36' rx='4' "
        f"fill='#eceff1' stroke='#455a64'/>",
        f"<text x='{x}' y='54' text-anchor='middle' font-weight='bold'>{svg_escape(name)}</text>",
        f"<text x='{x}' y='68' text-anchor='middle' fill='#455a64'>{svg_escape(role)}</text>",
        f"<line x1='{x}' y1='74' x2='{x}' y2='{bottom}' stroke='#90a4ae' stroke-width='2'/>",
    ]


def svg_arrow(y: float, frame: int, time: float, x1: float, x2: float, label: str, note: str,
              kind: str, flagged: bool, x_note: float, id_prefix: str = "") -> list[str]:
    """One row: frame number, time, the arrow from ``x1`` to ``x2`` with its label, the note."""
    colour = COLOURS[kind]
    dash = " stroke-dasharray='6 3'" if flagged else ""
    out = [
        f"<text x='{_X_TIME + 36}' y='{y + 4}' text-anchor='end' fill='#455a64'>{frame}</text>",
        f"<text x='{_X_TIME + 48}' y='{y + 4}' fill='#455a64'>{time:.6f}</text>",
        f"<line x1='{x1}' y1='{y}' x2='{x2 - 3 if x2 > x1 else x2 + 3}' y2='{y}' "
        f"stroke='{colour}' stroke-width='1.6'{dash} marker-end='url(#{id_prefix}arrow-{kind})'/>",
        f"<text x='{(x1 + x2) / 2}' y='{y - 5}' text-anchor='middle' "
        f"fill='{colour}'>{svg_escape(label)}</text>",
    ]
    if note:
        note_colour = "#e65100" if flagged else "#37474f"
        out.append(f"<text x='{x_note}' y='{y + 4}' fill='{note_colour}'>"
                   f"{svg_escape(fit(note, _SVG_NOTE_MAX))}</text>")
    return out


def write_flow_svg(flow: Flow, path: str | os.PathLike[str]) -> int:
    """Write ``flow`` as a standalone SVG file; returns the rows drawn."""
    document = svg_text(flow)
    target = os.fspath(path)
    try:
        with open(target, "w", encoding="utf-8") as f:
            f.write(document)
    except OSError as exc:
        raise InputError(f"--flow-svg: cannot write {target}: {exc.strerror}") from None
    return len(flow.rows)


def write_svg(packets: Iterable[dict], stream: int, path: str | os.PathLike[str], *,
              max_rows: int = MAX_ROWS) -> int:
    """Write the flow graph of ``stream`` as a standalone SVG file; returns the rows drawn."""
    return write_flow_svg(build_flow(packets, stream, max_rows=max_rows), path)
