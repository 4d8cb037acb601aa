"""Multi-lane flow graph (``--flow-svg OUT --streams 4,3``): several TCP streams on one ladder.

A chat message travels over two connections: the sender's client → server, then
server → the recipient's client. Each stream alone (:mod:`tcplab.analyze.flow`) shows
half of it; here every distinct endpoint of the chosen streams is one lane, so the
sender, the server and the recipient stand side by side and the relay reads top to
bottom in capture order. Lanes are ordered stream by stream, client before server, and
an endpoint shared by several streams (the server's listening port) keeps its first place
— so ``--streams A,B`` draws A's client, the server, then B's client.

Arrows, colours and notes are the two-lane graph's (:func:`flow.arrow_text`,
:func:`flow.svg_arrow`), so both drawings speak the same language. What it must never do:
trust capture text (everything is escaped) or draw without bound (``max_rows``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from tcplab.analyze import flow as _flow
from tcplab.errors import InputError

MAX_ROWS = _flow.MAX_ROWS
#: Streams one picture may hold: past a handful the lanes are too narrow to read.
MAX_STREAMS = 8

# Layout (pixels): the frame/time column, then one lane every _GAP, then the notes.
_X_FIRST = 230
_X_STREAM = 180  # right edge of the stream-number column
_GAP = 300
_ROW_H = 40
_TOP = 96
_CHAR_W = 6.7  # advance of one 11-px monospace character


@dataclass(frozen=True, slots=True)
class LadderRow:
    frame: int
    time: float
    stream: int
    src: int  # lane index
    dst: int
    label: str
    note: str
    kind: str
    flagged: bool


@dataclass(frozen=True, slots=True)
class Ladder:
    streams: list[int]
    lanes: list[str]  # endpoint text, left to right
    rows: list[LadderRow]
    omitted: int


def parse_streams(text: str, option: str = "--streams") -> list[int]:
    """``"4,3"`` → ``[4, 3]``, with a clear error for anything else."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit():
            raise InputError(f"{option}: expected stream numbers separated by commas "
                             f"(e.g. 1,2), got {text!r}")
        if int(part) not in out:
            out.append(int(part))
    if not 1 <= len(out) <= MAX_STREAMS:
        raise InputError(f"{option}: give 1 to {MAX_STREAMS} streams, got {len(out)}")
    return out


class LadderBuilder:
    """Incremental form of :func:`build_ladder`: ``add`` each packet in capture order, then
    ``finish()`` — so a caller reading a capture once can feed it beside other views."""

    def __init__(self, streams: Sequence[int], *, max_rows: int = MAX_ROWS) -> None:
        self.wanted = list(dict.fromkeys(streams))
        self._wanted = frozenset(self.wanted)
        self.max_rows = max_rows
        self._ends: dict[int, tuple[str, str]] = {}  # stream → (client, server) from its SYN
        self._firsts: dict[int, tuple[str, str]] = {}  # ... from its first packet
        self._kept: list[tuple[dict, str, str]] = []
        self._omitted = 0
        self._seen: set[int] = set()

    def add(self, d: dict) -> None:
        s = d.get("tcp.stream")
        if s is None:
            return
        if len(self._seen) < 100_000:
            self._seen.add(s)
        if s not in self._wanted:
            return
        src = _flow.endpoint(d, "src", "tcp.srcport")
        dst = _flow.endpoint(d, "dst", "tcp.dstport")
        self._firsts.setdefault(s, (src, dst))
        if s not in self._ends and int(d.get("tcp.flags", 0) or 0) & 0x12 == 0x02:
            self._ends[s] = (src, dst)
        if len(self._kept) < self.max_rows:
            self._kept.append((d, src, dst))
        else:
            self._omitted += 1

    def finish(self) -> Ladder:
        """The lanes and rows (raises :class:`InputError` naming a stream that is absent)."""
        missing = [s for s in self.wanted if s not in self._firsts]
        if missing:
            available = sorted(self._seen)
            shown = ", ".join(map(str, available[:20])) + (" …" if len(available) > 20 else "")
            where = f"streams in this capture: {shown}" if available else "no TCP in this capture"
            raise InputError(f"--streams: TCP stream {missing[0]} is not in the capture ({where})")
        lanes: list[str] = []
        for s in self.wanted:
            for name in self._ends.get(s) or self._firsts[s]:
                if name not in lanes:
                    lanes.append(name)
        index = {name: i for i, name in enumerate(lanes)}
        rows = []
        for d, src, dst in self._kept:
            label, note, kind, flagged = _flow.arrow_text(d)
            rows.append(LadderRow(int(d.get("frame.number", 0) or 0),
                                  float(d.get("frame.time_relative", 0.0) or 0.0),
                                  int(d["tcp.stream"]), index[src], index[dst], label, note,
                                  kind, flagged))
        return Ladder(self.wanted, lanes, rows, self._omitted)


def build_ladder(packets: Iterable[dict], streams: Sequence[int], *,
                 max_rows: int = MAX_ROWS) -> Ladder:
    """The rows of ``streams`` in capture order (raises if one of them is absent)."""
    builder = LadderBuilder(streams, max_rows=max_rows)
    for d in packets:
        builder.add(d)
    return builder.finish()


def svg_text(ladder: Ladder, *, names: Mapping[str, str] | None = None,
             title: str | None = None, id_prefix: str = "") -> str:
    """The SVG document; ``names`` gives a lane a role line (``{"127.0.0.1:5": "Alice"}``).

    Notes go under their arrow rather than in a column to the right, so three lanes still
    fit a printed page at a readable size.
    """
    names = names or {}
    x_of = [_X_FIRST + _GAP * i for i in range(len(ladder.lanes))]
    width = x_of[-1] + max(_GAP // 2, 8 * max(len(n) for n in ladder.lanes) // 2 + 24)
    height = _TOP + _ROW_H * (len(ladder.rows) + 1) + (24 if ladder.omitted else 0)
    heading = title or ("TCP streams " + ", ".join(map(str, ladder.streams)))
    out = [
        "<?xml version='1.0' encoding='UTF-8'?>",
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' {_flow.FONT} font-size='12'>",
        f"<title>{_flow.svg_escape(heading)}</title>",
        *_flow.svg_markers(id_prefix),
        f"<rect width='{width}' height='{height}' fill='white'/>",
        f"<text x='16' y='24' font-size='15' font-weight='bold'>{_flow.svg_escape(heading)}</text>",
    ]
    bottom = _TOP + _ROW_H * len(ladder.rows) + 8
    for x, lane in zip(x_of, ladder.lanes, strict=True):
        out.extend(_flow.svg_lane(x, lane, names.get(lane, ""), bottom))
    out.append(f"<text x='16' y='{_TOP - 8}' fill='#455a64'>No.  Time (s)</text>")
    out.append(f"<text x='{_X_STREAM}' y='{_TOP - 8}' text-anchor='end' fill='#455a64'>"
               "Stream</text>")
    for i, r in enumerate(ladder.rows):
        y = _TOP + _ROW_H * i + 20
        x1, x2 = x_of[r.src], x_of[r.dst]
        out.extend(_flow.svg_arrow(y, r.frame, r.time, x1, x2, r.label, "", r.kind, r.flagged,
                                   0, id_prefix))
        out.append(f"<text x='{_X_STREAM}' y='{y + 4}' text-anchor='end' fill='#455a64'>"
                   f"{r.stream}</text>")
        note = r.note
        room = max(12, int(abs(x2 - x1) / _CHAR_W) - 1)
        ink = "#e65100" if r.flagged else "#37474f"
        if note:
            out.append(f"<text x='{(x1 + x2) / 2}' y='{y + 15}' text-anchor='middle' "
                       f"fill='{ink}' font-size='11'>{_flow.svg_escape(_flow.fit(note, room))}</text>")
    if ladder.omitted:
        out.append(f"<text x='16' y='{bottom + 24}' fill='#455a64'>"
                   f"{_flow.svg_escape(f'… {ladder.omitted} more packets not drawn')}</text>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_svg(packets: Iterable[dict], streams: Sequence[int], path: str | os.PathLike[str], *,
              max_rows: int = MAX_ROWS) -> int:
    """Write the multi-lane graph of ``streams`` as a standalone SVG file; returns rows drawn."""
    ladder = build_ladder(packets, streams, max_rows=max_rows)
    target = os.fspath(path)
    try:
        with open(target, "w", encoding="utf-8") as f:
            f.write(svg_text(ladder))
    except OSError as exc:
        raise InputError(f"--flow-svg: cannot write {target}: {exc.strerror}") from None
    return len(ladder.rows)
