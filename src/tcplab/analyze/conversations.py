"""Conversations (``--conversations``): one summary row per TCP stream, with a plain verdict.

Fed the analyzer's packet records one at a time (:class:`ConversationTable`) it keeps a fixed
set of counters per stream, so memory grows with the number of conversations, never with
the number of packets. :func:`summarize` is the one-shot form, :func:`render` the aligned
table and :func:`to_json` the ``--json`` summary object.

Endpoint A is the side that sent the first SYN (the client), else the first sender; bytes
are frame lengths, as in Wireshark's Statistics ▸ Conversations. Completeness uses
Wireshark 4.0's wording (``Complete, WITH_DATA (31)``; any value that is not one of the
named states is just ``Incomplete (40)``).

What it must never do: print, read files, or hold packets.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from tcplab.analyze import tcp_analysis as _ta
from tcplab.analyze.record import RETRANSMITTED, Packet, from_fields
from tcplab.analyze.render import safe_text

# Wireshark's tcp.completeness bits (the analyzer's constants, named for short).
SYN, SYN_ACK, ACK, DATA, FIN, RST = (
    _ta.COMPLETENESS_SYN, _ta.COMPLETENESS_SYN_ACK, _ta.COMPLETENESS_ACK,
    _ta.COMPLETENESS_DATA, _ta.COMPLETENESS_FIN, _ta.COMPLETENESS_RST,
)
_BIT_NAMES = ((SYN, "SYN"), (SYN_ACK, "SYN-ACK"), (ACK, "ACK"), (DATA, "DATA"), (FIN, "FIN"),
              (RST, "RST"))

#: Wireshark 4.0's text for a completeness value (one home: the TCP analysis module).
completeness_text = _ta.completeness_text


def completeness_names(value: int) -> list[str]:
    """The bits in a completeness value by name (``40`` → ``['DATA', 'RST']``)."""
    return [name for bit, name in _BIT_NAMES if value & bit]


@dataclass(slots=True)
class ConversationSummary:
    """One TCP stream as the conversations table shows it (A → B and B → A counters)."""

    stream: int
    address_a: str
    port_a: int
    address_b: str
    port_b: int
    packets_ab: int = 0
    bytes_ab: int = 0
    packets_ba: int = 0
    bytes_ba: int = 0
    start: float = 0.0  # relative to the first packet of the capture (frame.time_relative)
    duration: float = 0.0
    completeness: int = 0
    first_frame: int = 0
    last_frame: int = 0
    # What the verdict is made of.
    syn_from_a: int = 0
    syn_ack_from_b: int = 0
    handshake_ack: bool = False
    data_ab: int = 0
    data_ba: int = 0
    payload_ab: int = 0
    payload_ba: int = 0
    fin_a: int = 0
    fin_b: int = 0
    rst_a: int = 0
    rst_b: int = 0
    retransmissions: int = 0
    data_answered_by_rst: int = 0
    verdict: str = ""
    pending_data_from: str = field(default="", repr=False)  # "a"/"b": data awaiting an answer

    @property
    def endpoint_a(self) -> str:
        return _endpoint(self.address_a, self.port_a)

    @property
    def endpoint_b(self) -> str:
        return _endpoint(self.address_b, self.port_b)

    @property
    def completeness_text(self) -> str:
        return completeness_text(self.completeness)

    def swap(self) -> None:
        """Make B the A side (the first SYN came from the side we first took for B)."""
        self.address_a, self.address_b = self.address_b, self.address_a
        self.port_a, self.port_b = self.port_b, self.port_a
        self.packets_ab, self.packets_ba = self.packets_ba, self.packets_ab
        self.bytes_ab, self.bytes_ba = self.bytes_ba, self.bytes_ab
        self.data_ab, self.data_ba = self.data_ba, self.data_ab
        self.payload_ab, self.payload_ba = self.payload_ba, self.payload_ab
        self.fin_a, self.fin_b = self.fin_b, self.fin_a
        self.rst_a, self.rst_b = self.rst_b, self.rst_a
        self.pending_data_from = {"a": "b", "b": "a"}.get(self.pending_data_from, "")


def _endpoint(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


class ConversationTable:
    """Incremental conversation statistics: ``add`` each packet dict, then ``summaries()``."""

    #: :meth:`add` reads no HTTP, TLS or DNS view of a packet: a read feeding only this
    #: table need not make them (:meth:`Analyzer.packets` ``payload_views``).
    payload_views = False

    def __init__(self) -> None:
        self._streams: dict[int, ConversationSummary] = {}
        self._time_origin: float | None = None

    def add(self, p: Packet | dict) -> None:
        """Count one packet (an analyzer record, or a Wireshark field dict such as tshark's)."""
        if type(p) is not Packet:
            p = from_fields(p)  # type: ignore[arg-type]
        stream = p.stream
        if stream is None:
            return
        src, dst = p.src or "?", p.dst or "?"
        sport, dport = p.sport or 0, p.dport or 0
        rel = p.time_relative
        frame = p.number
        conv = self._streams.get(stream)
        if conv is None:
            conv = ConversationSummary(int(stream), src, sport, dst, dport, start=rel,
                                       first_frame=frame)
            self._streams[stream] = conv
        flags = p.flags
        syn, ack, fin, rst = flags & 0x02, flags & 0x10, flags & 0x01, flags & 0x04
        from_a = sport == conv.port_a and src == conv.address_a
        if syn and not ack and not from_a and not conv.syn_from_a:
            conv.swap()  # the client is whoever sent the first SYN
            from_a = True
        length = p.frame_len
        payload = p.seglen
        if from_a:
            conv.packets_ab += 1
            conv.bytes_ab += length
        else:
            conv.packets_ba += 1
            conv.bytes_ba += length
        if syn and not ack and from_a:
            conv.syn_from_a += 1
        elif syn and ack and not from_a:
            conv.syn_ack_from_b += 1
        elif ack and from_a and conv.syn_ack_from_b and not conv.handshake_ack and not payload:
            conv.handshake_ack = True
        if payload > 0 and not syn:
            if from_a:
                conv.data_ab += 1
                conv.payload_ab += payload
            else:
                conv.data_ba += 1
                conv.payload_ba += payload
            conv.pending_data_from = "a" if from_a else "b"
        if p.aflags & RETRANSMITTED:
            conv.retransmissions += 1
        if fin:
            if from_a:
                conv.fin_a += 1
            else:
                conv.fin_b += 1
        if rst:
            if from_a:
                conv.rst_a += 1
            else:
                conv.rst_b += 1
            if conv.pending_data_from == ("b" if from_a else "a"):
                conv.data_answered_by_rst += 1
            conv.pending_data_from = ""
        if p.completeness is not None:
            # The last packet's value: what Wireshark shows once the whole stream is seen.
            conv.completeness = p.completeness
        if rel - conv.start > conv.duration:
            conv.duration = rel - conv.start
        conv.last_frame = frame

    def summaries(self) -> list[ConversationSummary]:
        result = sorted(self._streams.values(), key=lambda c: c.stream)
        for conv in result:
            conv.verdict = verdict(conv)
        return result


def verdict(c: ConversationSummary) -> str:
    """One line a student can read: how it opened, what it carried, how it ended."""
    data = c.data_ab + c.data_ba
    if c.syn_from_a and c.syn_ack_from_b and (c.handshake_ack or data or c.fin_a or c.fin_b):
        opening = "handshake"
    elif c.syn_from_a and c.syn_ack_from_b:
        opening = "handshake without final ACK"
    elif c.syn_from_a and c.rst_b and not c.syn_ack_from_b:
        return "SYN answered by RST: connection refused (nothing listening on port " \
               f"{c.port_b})"
    elif c.syn_from_a:
        return "SYN never answered" + (f" ({c.syn_from_a} attempts)" if c.syn_from_a > 1 else "")
    else:
        opening = "no handshake"

    parts: list[str] = []
    if data:
        what = f"{data} data segment{'s' if data != 1 else ''}"
        if c.data_ab and c.data_ba:
            what += f" ({c.data_ab} A→B, {c.data_ba} B→A)"
        elif c.data_ba:
            what += " (B→A)"
        parts.append(what)
    else:
        parts.append("no data")
    if c.retransmissions:
        parts.append(f"{c.retransmissions} retransmission{'s' if c.retransmissions != 1 else ''}")

    if opening == "no handshake" and data and c.data_answered_by_rst >= data:
        ending = "every segment answered by RST"
    elif c.fin_a and c.fin_b:
        ending = "FIN teardown"
        if c.rst_a or c.rst_b:
            ending += " then RST"
    elif c.rst_a or c.rst_b:
        who = "A" if c.rst_a and not c.rst_b else "B" if c.rst_b and not c.rst_a else "both sides"
        ending = f"reset by {who}"
    elif c.fin_a or c.fin_b:
        ending = f"half-closed (FIN from {'A' if c.fin_a else 'B'} only)"
    else:
        ending = "still open at end of capture"

    if opening == "no handshake":
        return "no handshake; " + ", ".join([*parts, ending])
    return ", ".join([opening, *parts, ending])


def summarize(packets: Iterable[Packet | dict]) -> list[ConversationSummary]:
    """Summaries of every TCP stream in ``packets`` (consumed once, in order)."""
    table = ConversationTable()
    for d in packets:
        table.add(d)
    return table.summaries()


def _human_bytes(n: int) -> str:
    if n < 10_000:
        return str(n)
    for unit, size in (("MB", 1_000_000), ("kB", 1_000)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return str(n)


def render(summaries: list[ConversationSummary]) -> str:
    """The conversations table, columns aligned, verdict last so it may run long."""
    if not summaries:
        return "No TCP conversations."
    header = ("Stream", "Address A", "Address B", "Pkts A→B", "Bytes A→B", "Pkts B→A",
              "Bytes B→A", "Start", "Duration", "Completeness", "Verdict")
    rows = [
        (
            str(c.stream), safe_text(c.endpoint_a), safe_text(c.endpoint_b), str(c.packets_ab),
            _human_bytes(c.bytes_ab), str(c.packets_ba), _human_bytes(c.bytes_ba),
            f"{c.start:.6f}", f"{c.duration:.6f}", c.completeness_text, c.verdict,
        )
        for c in summaries
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    right = {0, 3, 4, 5, 6, 7, 8}

    def line(cells: tuple[str, ...]) -> str:
        out = []
        for i, cell in enumerate(cells):
            if i == len(cells) - 1:
                out.append(cell)
            elif i in right:
                out.append(cell.rjust(widths[i]))
            else:
                out.append(cell.ljust(widths[i]))
        return "  ".join(out).rstrip()

    total_packets = sum(c.packets_ab + c.packets_ba for c in summaries)
    lines = [line(header), line(tuple("─" * w for w in widths[:-1]) + ("─" * 7,))]
    lines += [line(r) for r in rows]
    lines.append(f"{len(summaries)} TCP conversation{'s' if len(summaries) != 1 else ''}, "
                 f"{total_packets} packet{'s' if total_packets != 1 else ''}")
    return "\n".join(lines)


def to_json(summaries: list[ConversationSummary]) -> dict:
    """The ``--json`` summary object (``{"summary": "conversations", ...}``)."""
    return {
        "summary": "conversations",
        "conversations": [
            {
                "tcp.stream": c.stream,
                "address_a": c.address_a, "port_a": c.port_a,
                "address_b": c.address_b, "port_b": c.port_b,
                "packets_a_to_b": c.packets_ab, "bytes_a_to_b": c.bytes_ab,
                "packets_b_to_a": c.packets_ba, "bytes_b_to_a": c.bytes_ba,
                "start": c.start, "duration": c.duration,
                "tcp.completeness": c.completeness, "completeness": c.completeness_text,
                "data_segments_a_to_b": c.data_ab, "data_segments_b_to_a": c.data_ba,
                "retransmissions": c.retransmissions,
                "first_frame": c.first_frame, "last_frame": c.last_frame,
                "verdict": c.verdict,
            }
            for c in summaries
        ],
    }
