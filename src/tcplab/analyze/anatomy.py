"""One packet taken apart for teaching: layer byte ranges, their nesting, coloured bytes, checksums.

Wireshark's bytes pane colours the bytes of the layer selected in the detail pane;
a textbook draws the same thing as nested boxes (application bytes ⊂ TCP segment ⊂ IPv4
packet ⊂ link frame). Both are drawn here from one list of :class:`Layer` ranges taken
from the analyzer's field dict, so the picture, the coloured dump and the detail tree
can never disagree. The coloured dump colours the lines of :func:`render.hexdump`
(there is one hex dump in tcplab), and the checksum working shows the 16-bit words a
reader adds by hand, then checks the result against :mod:`tcplab.packet.checksum`.

What it must never do: parse packets itself (the offsets come from the dissector's
fields) or emit capture bytes unescaped into SVG.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

from tcplab.analyze.network import outer_fields
from tcplab.analyze.render import hexdump
from tcplab.packet import checksum as _checksum
from tcplab.packet import link as _link

#: Layer key → (fill colour, ink colour) used by the picture and the coloured dump alike.
COLOURS = {
    "link": ("#ede7f6", "#4527a0"),
    "ip": ("#e3f2fd", "#0d47a1"),
    "tcp": ("#e8f5e9", "#1b5e20"),
    "udp": ("#e8f5e9", "#1b5e20"),
    "app": ("#fff3e0", "#bf360c"),
}

_LINK_NAMES = {
    _link.LINKTYPE_NULL: "Null/Loopback",
    _link.LINKTYPE_LOOP: "OpenBSD loopback",
    _link.LINKTYPE_ETHERNET: "Ethernet II",
    _link.LINKTYPE_LINUX_SLL: "Linux cooked (SLL)",
    _link.LINKTYPE_LINUX_SLL2: "Linux cooked (SLL2)",
}


@dataclass(frozen=True, slots=True)
class Layer:
    """Bytes ``start``..``end`` (exclusive) of the frame; ``header_end`` ends this layer's own header."""

    key: str  # "link", "ip", "tcp", "udp", "app"
    name: str  # what the reader calls it: "TCP segment"
    header: str  # what its header is called: "TCP header"
    start: int
    header_end: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


def layers(d: dict) -> list[Layer]:
    """The nested layers of one dissected packet, outermost first (the frame is always one)."""
    d = outer_fields(d)  # an ICMP error's quoted header doubles the IP fields: the outer one
    raw = d.get("_raw", b"")
    total = len(raw)
    ip_off = int(d.get("_ip_offset", 0) or 0)
    linktype = d.get("_linktype")
    link_name = _LINK_NAMES.get(linktype, "link-layer") if isinstance(linktype, int) else "link-layer"
    out = [Layer("link", f"{link_name} frame", f"{link_name} header", 0, ip_off, total)]
    if d.get("ip.version") == 4:
        ip_len = int(d.get("ip.len", total - ip_off) or 0)
        ip_end = min(total, ip_off + ip_len)
        ip_hdr = ip_off + int(d.get("ip.hdr_len", 20) or 20)
        out.append(Layer("ip", "IPv4 packet", "IPv4 header", ip_off, ip_hdr, ip_end))
    elif d.get("ipv6.version") == 6 or "ipv6.src" in d:
        ip_end = min(total, ip_off + 40 + int(d.get("ipv6.plen", 0) or 0))
        ip_hdr = ip_off + 40
        out.append(Layer("ip", "IPv6 packet", "IPv6 header", ip_off, ip_hdr, ip_end))
    else:
        return out
    if "tcp.hdr_len" in d:
        tcp_hdr = ip_hdr + int(d["tcp.hdr_len"])
        out.append(Layer("tcp", "TCP segment", "TCP header", ip_hdr, min(tcp_hdr, ip_end), ip_end))
        if int(d.get("tcp.len", 0) or 0):
            proto = str(d.get("_ws.col.Protocol", "TCP"))
            app = "application data" if proto == "TCP" else f"{proto} data"
            out.append(Layer("app", app, app, tcp_hdr, ip_end, ip_end))
    elif "udp.srcport" in d:
        out.append(Layer("udp", "UDP datagram", "UDP header", ip_hdr, ip_hdr + 8, ip_end))
        if ip_end > ip_hdr + 8:
            out.append(Layer("app", "application data", "application data", ip_hdr + 8, ip_end,
                             ip_end))
    return out


def owner(layer_list: list[Layer], offset: int) -> str | None:
    """The innermost layer whose *own* bytes (header, or data for the application) hold ``offset``."""
    for layer in reversed(layer_list):
        if layer.start <= offset < (layer.header_end if layer.key != "app" else layer.end):
            return layer.key
    return None


def coloured_hexdump(data: bytes, layer_list: list[Layer]) -> list[list[tuple[str, str | None]]]:
    """:func:`render.hexdump`'s lines cut into (text, layer key) runs for colouring."""
    out = []
    for line_no, line in enumerate(hexdump(data).splitlines()):
        base = line_no * 16
        keys: list[str | None] = [None] * len(line)
        count = min(16, len(data) - base)
        for i in range(count):
            key = owner(layer_list, base + i)
            h = 6 + 3 * i  # "0000  " then "xx " per byte
            keys[h] = keys[h + 1] = key
            if i + 1 < count and owner(layer_list, base + i + 1) == key:
                keys[h + 2] = key  # the gap between two bytes of one layer
            a = 56 + i  # after 47 hex columns and three spaces
            if a < len(line):
                keys[a] = key
        runs: list[tuple[str, str | None]] = []
        for ch, key in zip(line, keys, strict=True):
            if runs and runs[-1][1] == key:
                runs[-1] = (runs[-1][0] + ch, key)
            else:
                runs.append((ch, key))
        out.append(runs)
    return out


def nesting_svg(layer_list: list[Layer], *, title: str = "") -> str:
    """Nested boxes, one row per layer, each drawn over its byte range (to scale, with a floor)."""
    total = max(layer_list[0].end, 1)
    left, width, row_h, gap = 16, 688, 46, 14
    min_w = 64  # a 4-byte header still gets a box a reader can see
    # Scale so every header keeps at least min_w pixels, the rest shares what is left.
    def x(offset: int) -> float:
        return left + width * offset / total

    height = 40 + len(layer_list) * (row_h + gap) + 10
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{left * 2 + width}' height='{height}' "
           f"viewBox='0 0 {left * 2 + width} {height}' font-family='DejaVu Sans, Arial, sans-serif' "
           "font-size='12'>"]
    if title:
        out.append(f"<title>{escape(title)}</title>")
        out.append(f"<text x='{left}' y='18' font-weight='bold' font-size='13'>{escape(title)}</text>")
    for level, layer in enumerate(layer_list):
        fill, ink = COLOURS[layer.key]
        y = 32 + level * (row_h + gap)
        x0, x1 = x(layer.start), x(layer.end)
        if x1 - x0 < min_w:
            x0 = max(left, x1 - min_w)
        out.append(f"<rect x='{x0:.1f}' y='{y}' width='{x1 - x0:.1f}' height='{row_h}' fill='white' "
                   f"stroke='{ink}' stroke-width='1.5' rx='3'/>")
        hx1 = x(layer.header_end) if layer.key != "app" else x1
        hx1 = max(hx1, min(x1, x0 + min_w)) if layer.header_end > layer.start else hx1
        out.append(f"<rect x='{x0:.1f}' y='{y}' width='{hx1 - x0:.1f}' height='{row_h}' "
                   f"fill='{fill}' stroke='{ink}' stroke-width='1.5' rx='3'/>")
        head_bytes = (layer.end if layer.key == "app" else layer.header_end) - layer.start
        label = f"{layer.header}: {head_bytes} B" if layer.key != "app" else f"{layer.name}: {head_bytes} B"
        detail = f"{layer.name}, bytes {layer.start}–{layer.end - 1} ({layer.size} B)"
        need = max(len(label), len(detail)) * _CHAR_W + 12
        if x1 - x0 >= need:  # inside the box
            tx, anchor = x0 + 6, "start"
        elif x0 - left >= need:  # a narrow inner box: its words go in the room to its left
            tx, anchor = x0 - 6, "end"
        else:
            tx, anchor = x0 + 6, "start"
            room = max(4, int((x1 - x0 - 12) / _CHAR_W))
            label, detail = label[:room], detail[:room]
        out.append(f"<text x='{tx:.1f}' y='{y + 17}' text-anchor='{anchor}' fill='{ink}' "
                   f"font-weight='bold'>{escape(label)}</text>")
        out.append(f"<text x='{tx:.1f}' y='{y + 34}' text-anchor='{anchor}' fill='{ink}'>"
                   f"{escape(detail)}</text>")
        if level + 1 < len(layer_list):  # guide lines down to the layer it carries
            inner = layer_list[level + 1]
            for off in (inner.start, inner.end):
                gx = x(off)
                out.append(f"<line x1='{gx:.1f}' y1='{y + row_h}' x2='{gx:.1f}' y2='{y + row_h + gap}' "
                           "stroke='#90a4ae' stroke-dasharray='3 2'/>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


#: Advance of one 12-px sans-serif character, generously (DejaVu Sans is wide).
_CHAR_W = 7.2

# ------------------------------------------------------------------------------ checksums


@dataclass(frozen=True, slots=True)
class ChecksumWorking:
    """The RFC 1071 sum done by hand: the words, their plain sum, each fold, the complement."""

    what: str  # "IPv4 header checksum"
    groups: list[tuple[str, list[int]]]  # (where the words come from, the words)
    total: int  # plain integer sum of every word
    folds: list[tuple[int, int, int]]  # (value, high part, low part) before each fold
    folded: int
    result: int  # the complement: the checksum
    stored: int  # what the packet carries
    verified: int  # tcplab.packet.checksum's answer over the same bytes

    @property
    def correct(self) -> bool:
        return self.result == self.stored == self.verified


def _words(data: bytes) -> list[int]:
    if len(data) & 1:
        data += b"\x00"  # RFC 1071 §4.1: pad an odd length with one zero byte
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def _working(what: str, groups: list[tuple[str, bytes]], stored: int) -> ChecksumWorking:
    word_groups = [(label, _words(chunk)) for label, chunk in groups]
    total = sum(sum(ws) for _label, ws in word_groups)
    folds = []
    value = total
    while value >> 16:
        folds.append((value, value >> 16, value & 0xFFFF))
        value = (value >> 16) + (value & 0xFFFF)
    result = ~value & 0xFFFF
    verified = _checksum.internet_checksum(b"".join(chunk for _l, chunk in groups))
    return ChecksumWorking(what, word_groups, total, folds, value, result, stored, verified)


def checksum_workings(d: dict) -> list[ChecksumWorking]:
    """The IPv4 header and TCP checksums of ``d`` worked step by step (IPv4/TCP only)."""
    d = outer_fields(d)
    if d.get("ip.version") != 4:
        return []
    raw = bytes(d.get("_raw", b""))
    ip_off = int(d.get("_ip_offset", 0) or 0)
    ihl = int(d.get("ip.hdr_len", 20) or 20)
    header = bytearray(raw[ip_off : ip_off + ihl])
    if len(header) < 20:
        return []
    stored_ip = int.from_bytes(header[10:12], "big")
    header[10:12] = b"\x00\x00"  # the sum is taken with the checksum field zeroed
    out = [_working("IPv4 header checksum",
                    [("IPv4 header, checksum field set to 0000", bytes(header))], stored_ip)]
    if "tcp.hdr_len" not in d:
        return out
    ip_end = min(len(raw), ip_off + int(d.get("ip.len", 0) or 0))
    segment = bytearray(raw[ip_off + ihl : ip_end])
    if len(segment) < 20:
        return out
    stored_tcp = int.from_bytes(segment[16:18], "big")
    segment[16:18] = b"\x00\x00"
    thl = int(d["tcp.hdr_len"])
    pseudo = _checksum.ipv4_pseudo_header(raw[ip_off + 12 : ip_off + 16],
                                          raw[ip_off + 16 : ip_off + 20], 6, len(segment))
    groups = [("pseudo-header: source IP, destination IP, zero + protocol 6, TCP length", pseudo),
              ("TCP header, checksum field set to 0000", bytes(segment[:thl]))]
    if len(segment) > thl:
        groups.append(("payload" + (" (odd length: padded with one zero byte)"
                                    if (len(segment) - thl) & 1 else ""), bytes(segment[thl:])))
    out.append(_working("TCP checksum", groups, stored_tcp))
    return out
