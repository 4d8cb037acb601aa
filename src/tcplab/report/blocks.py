"""Report blocks every section builds the same way: packet-list excerpts, field tables,
one packet's anatomy (nesting picture, checksums worked by hand, coloured bytes).

Values come from the analyzer through :mod:`tcplab.report.facts`; this module only
chooses and words them. No I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tcplab.report.facts import CaptureFacts, flags_text, tcp_options
from tcplab.report.model import Block, Code, Figure, HexDump, Table, para


def frames_text(frames: Sequence[int], limit: int = 8) -> str:
    """``1, 3, 5`` or ``1, 3, 5 … (40 in all)``."""
    shown = ", ".join(map(str, frames[:limit]))
    return shown + (f" … ({len(frames)} in all)" if len(frames) > limit else "")


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def list_excerpt(cf: CaptureFacts, packets: Iterable[dict], caption: str) -> Table:
    """The packet list as Wireshark's pane shows it: one row per packet, its columns."""
    rows = tuple(cf.list_columns(d) for d in packets)
    return Table(("No.", "Time", "Source", "Destination", "Protocol", "Length", "Info"), rows,
                 caption, mono=(0, 1, 2, 3, 4, 5, 6))


def head_and_tail(cf: CaptureFacts, head: int, tail: int) -> tuple[list[dict], str]:
    """The first ``head`` and last ``tail`` packets, and a caption fragment saying which."""
    n = len(cf.packets)
    if n <= head + tail + 1:
        return cf.packets, f"all {plural(n, 'packet')}"
    chosen = cf.packets[:head] + cf.packets[-tail:]
    return chosen, (f"frames 1–{head} and {n - tail + 1}–{n} of {n:,}")


def _hex(value: object, width: int = 4) -> str:
    return f"0x{int(value):0{width}x}" if isinstance(value, int) else str(value)


def _status(d: dict, key: str) -> str:
    status = d.get(key)
    return {"good": "correct", "bad": "wrong"}.get(str(status), "not checked")


def ipv4_table(d: dict) -> Table:
    o = int(d.get("_ip_offset", 0) or 0)
    ihl = int(d.get("ip.hdr_len", 20) or 20)
    flags = int(d.get("ip.flags", 0) or 0)
    flag_names = [n for bit, n in ((2, "DF (don't fragment)"), (1, "MF (more fragments)"),
                                   (4, "reserved")) if flags & bit] or ["none"]
    rows = [
        (f"{o}", "Version", str(d.get("ip.version")), "IP version 4"),
        (f"{o}", "IHL", f"{ihl // 4} (×4 = {ihl} bytes)", "header length in 32-bit words"
         + ("; no options" if ihl == 20 else f"; {ihl - 20} bytes of options")),
        (f"{o + 1}", "DSCP/ECN (TOS)", _hex(d.get("ip.dsfield", 0), 2), "type of service: "
         + ("best effort, no congestion mark" if not d.get("ip.dsfield") else "set by the sender")),
        (f"{o + 2}–{o + 3}", "Total length", str(d.get("ip.len")),
         f"bytes of IP header + everything it carries ({ihl} + {int(d.get('ip.len', 0)) - ihl})"),
        (f"{o + 4}–{o + 5}", "Identification", str(d.get("ip.id")),
         "labels the fragments of one datagram"),
        (f"{o + 6}", "Flags", _hex(flags, 1), ", ".join(flag_names)),
        (f"{o + 6}–{o + 7}", "Fragment offset", str(d.get("ip.frag_offset", 0)),
         "0: the first (here the only) fragment"),
        (f"{o + 8}", "TTL", str(d.get("ip.ttl")), "hops left before a router discards it"),
        (f"{o + 9}", "Protocol", str(d.get("ip.proto")),
         {6: "TCP", 17: "UDP"}.get(int(d.get("ip.proto", 0) or 0), "other") + " follows the header"),
        (f"{o + 10}–{o + 11}", "Header checksum", _hex(d.get("ip.checksum")),
         f"RFC 1071 sum over the header only: {_status(d, 'ip.checksum.status')}"),
        (f"{o + 12}–{o + 15}", "Source address", str(d.get("ip.src")), "sender"),
        (f"{o + 16}–{o + 19}", "Destination address", str(d.get("ip.dst")), "receiver"),
    ]
    return Table(("Bytes", "Field", "Value", "What it means"), tuple(rows),
                 "IPv4 header (RFC 791), byte offsets counted from the start of the frame",
                 mono=(0, 2))


def tcp_table(d: dict, options: list) -> Table:
    o = int(d.get("_ip_offset", 0) or 0) + int(d.get("ip.hdr_len", 20) or 20)
    thl = int(d.get("tcp.hdr_len", 20) or 20)
    flags = int(d.get("tcp.flags", 0) or 0)
    rows = [
        (f"{o}–{o + 1}", "Source port", str(d.get("tcp.srcport")), "sending application's port"),
        (f"{o + 2}–{o + 3}", "Destination port", str(d.get("tcp.dstport")),
         "receiving application's port"),
        (f"{o + 4}–{o + 7}", "Sequence number", str(d.get("tcp.seq_raw")),
         f"number of the first payload byte; Wireshark shows it relative: Seq={d.get('tcp.seq')}"),
        (f"{o + 8}–{o + 11}", "Acknowledgment number", str(d.get("tcp.ack_raw")),
         "next byte expected from the other side (valid because ACK is set)" if flags & 0x10
         else "not in use (ACK not set)"),
        (f"{o + 12}", "Data offset", f"{thl // 4} (×4 = {thl} bytes)",
         "TCP header length" + ("; no options" if thl == 20 else f"; {thl - 20} bytes of options")),
        (f"{o + 12}–{o + 13}", "Flags", f"{_hex(flags, 3)} [{flags_text(flags)}]",
         "control bits: " + _flag_meaning(flags)),
        (f"{o + 14}–{o + 15}", "Window", str(d.get("tcp.window_size_value")),
         "bytes the sender can still receive" + (
             f" (×{d['tcp.window_size_scalefactor']} with window scaling = {d.get('tcp.window_size')})"
             if int(d.get("tcp.window_size_scalefactor", -1) or -1) > 1 else "")),
        (f"{o + 16}–{o + 17}", "Checksum", _hex(d.get("tcp.checksum")),
         f"RFC 1071 sum over pseudo-header, header and payload: {_status(d, 'tcp.checksum.status')}"),
        (f"{o + 18}–{o + 19}", "Urgent pointer", str(d.get("tcp.urgent_pointer", 0)),
         "unused (URG not set)" if not flags & 0x20 else "end of urgent data"),
    ]
    if options:
        rows.append((f"{o + 20}–{o + thl - 1}", "Options", ", ".join(op.name for op in options),
                     option_meaning(options)))
    return Table(("Bytes", "Field", "Value", "What it means"), tuple(rows),
                 "TCP header (RFC 9293 §3.1)", mono=(0, 2))


_FLAG_MEANING = ((0x02, "SYN opens a connection"), (0x10, "ACK: the acknowledgment number is valid"),
                 (0x08, "PSH: hand the data to the application now"),
                 (0x01, "FIN: no more data from this side"), (0x04, "RST: abort the connection"),
                 (0x20, "URG: urgent data"))


def _flag_meaning(flags: int) -> str:
    parts = [text for bit, text in _FLAG_MEANING if flags & bit]
    return "; ".join(parts) if parts else "none"


_OPTION_WORDS = {1: "NOP", 2: "MSS", 3: "Window scale", 4: "SACK permitted", 5: "SACK",
                 8: "Timestamps", 0: "End of options"}


def option_names(options: list) -> str:
    """``NOP, NOP, Timestamps`` — option kinds by the names RFC readers know."""
    return ", ".join(_OPTION_WORDS.get(op.kind, op.name) for op in options)


def option_meaning(options: list) -> str:
    """Plain words for an option list (NOP, NOP, Timestamps …)."""
    out = []
    for op in options:
        v = op.value
        if op.kind == 8 and isinstance(v, tuple):
            out.append(f"Timestamps TSval={v[0]} TSecr={v[1]} (RFC 7323: the sender's clock and "
                       "the last one it heard, for round-trip times and to protect against "
                       "wrapped sequence numbers)")
        elif op.kind == 2:
            out.append(f"MSS {v} (the largest segment payload this side accepts)")
        elif op.kind == 3:
            out.append(f"window scale {v} (windows count in units of {2 ** int(v)} bytes, RFC 7323)")
        elif op.kind == 4:
            out.append("SACK permitted (selective acknowledgments, RFC 2018)")
        elif op.kind not in (0, 1):
            out.append(_OPTION_WORDS.get(op.kind, op.name))
    nops = sum(1 for op in options if op.kind == 1)
    if nops:
        out.append(f"{plural(nops, 'NOP')} (no-operation, one byte each) align the options "
                   "on 4-byte boundaries")
    return "; ".join(out)


def checksum_code(working) -> Code:  # working: anatomy.ChecksumWorking
    lines = []
    for label, words in working.groups:
        lines.append(f"{label}:")
        for i in range(0, len(words), 10):
            lines.append("  " + " + ".join(f"{w:04x}" for w in words[i : i + 10]))
    lines.append(f"sum of {sum(len(ws) for _l, ws in working.groups)} words = 0x{working.total:x}")
    for value, high, low in working.folds:
        lines.append(f"fold: 0x{value:x} → 0x{high:x} + 0x{low:04x} = 0x{high + low:x}")
    lines.append(f"one's complement: ~0x{working.folded:04x} = 0x{working.result:04x}")
    stored = f"0x{working.stored:04x}"
    if working.correct:
        lines.append(f"= {stored}, the value in the packet: correct")
    else:
        lines.append(f"the packet carries {stored}: "
                     + ("different — on loopback the kernel leaves the checksum to the network "
                        "card (checksum offload), so captured values differ"
                        if working.result == working.verified else "mismatch"))
    return Code("\n".join(lines), working.what + ", step by step (RFC 1071)")


def anatomy_blocks(cf: CaptureFacts, d: dict, name: str, what: str) -> list[Block]:
    """Nesting picture, header tables, checksums and coloured bytes of one packet."""
    layers = cf.layers(d)
    frame = d["frame.number"]
    blocks: list[Block] = []
    sizes = ", ".join(f"{layer.name} {layer.size} B (bytes {layer.start}–{layer.end - 1})"
                      for layer in layers)
    blocks.append(para(f"Frame {frame} of {cf.name} ({what}) is {len(d.get('_raw', b''))} bytes. "
                       f"From the outside in: {sizes}. Each layer's header is followed by the "
                       "layer it carries."))
    blocks.append(Figure(f"{name}-layers", cf.nesting_svg(d, f"Frame {frame}: layer by layer"),
                         f"Encapsulation of frame {frame}: each box is drawn over its byte range; "
                         "the shaded part is that layer's own header."))
    if d.get("ip.version") == 4:
        blocks.append(ipv4_table(d))
    if "tcp.hdr_len" in d:
        blocks.append(tcp_table(d, tcp_options(d)))
    workings = cf.checksums(d)
    if workings:
        blocks.append(para(
            "Both checksums are the one's complement of the one's-complement sum of 16-bit words "
            "(RFC 1071), taken with the checksum field set to zero. The IPv4 one covers its header "
            "only; TCP's also covers a 12-byte pseudo-header (source and destination address, a "
            "zero byte, protocol 6 and the TCP length) so a segment delivered to the wrong host "
            "fails the check. Add the words below by hand to check them:"))
        blocks.extend(checksum_code(w) for w in workings)
    legend = tuple((layer.key, f"{layer.header if layer.key != 'app' else layer.name}: bytes "
                    f"{layer.start}–{(layer.header_end if layer.key != 'app' else layer.end) - 1}")
                   for layer in layers if layer.header_end > layer.start or layer.key == "app")
    blocks.append(HexDump(tuple(tuple(r) for r in cf.coloured_hex(d)), legend,
                          f"Frame {frame} as Wireshark's bytes pane shows it, each layer's bytes "
                          "in its colour"))
    return blocks

