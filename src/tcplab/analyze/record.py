"""The one packet representation every analyzer view reads: :class:`Packet`, made by :class:`Analyzer`.

What this module is for: speed without a second copy of the analysis. For the frames that
make up almost every capture — Ethernet, Null/Loopback or raw IP carrying IPv4 (no IP
options, not fragmented, fully captured) carrying TCP — :meth:`Analyzer.packets` unpacks
link, IPv4 and TCP headers with one precompiled ``struct`` straight from the record bytes
and runs the shared TCP analysis step (:meth:`TcpTracker.step`), and a data segment of a direction
carrying HTTP goes through the reassembly (:mod:`~tcplab.analyze.reassembly`), whose
verdict the record keeps for its HTTP columns and fields. The result is a small
slotted :class:`Packet`: frame number, times, addresses, ports, flags, lengths, the
analysis flags and the stream's shown bases. Every other frame (IPv6, UDP, ARP, IP options,
damaged or cut packets…) goes through the full dissector (:mod:`~tcplab.analyze.dissect`),
which fills the same attributes plus the field dictionary at once; both kinds share the
conversation table and frame numbering (``tests/analyze/test_record.py`` holds them equal).

Views read the attributes (the packet list, conversations, HTTP) or ask for fields by
their Wireshark names (:meth:`Packet.get`, ``in``, ``[]`` — display filters, explanations,
flow graphs): names the record holds are answered from it, any other one renders the
Wireshark-keyed dictionary (:meth:`Packet.fields`) — for ``--json``, the detail tree and
filters on fields the record lacks — once, for that packet only.

What it must never do: keep anything per packet between frames (state is per conversation
only), or decide a protocol rule of its own — the analysis rules live in
:mod:`~tcplab.analyze.tcp_analysis`, the HTTP/chat recognition in
:mod:`~tcplab.analyze.http`, the Info wording in :mod:`~tcplab.analyze.dissect`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from typing import Any

from tcplab.analyze import dissect as _dissect
from tcplab.analyze import http as _http
from tcplab.analyze import network as _network
from tcplab.analyze import reassembly as _reassembly
from tcplab.analyze import tcp_analysis as _ta
from tcplab.analyze.http import CHAT_PORTS
from tcplab.analyze.tls_dns import DNS_PORTS, TLS_HEURISTIC_TYPES, TLS_PORTS, AppLayer
from tcplab.errors import InputError
from tcplab.packet.errors import ParseError
from tcplab.pcap.records import LINKTYPE_PCAPNG_CUSTOM

__all__ = ["Analyzer", "CaptureDamage", "Packet", "from_fields"]

_M32 = 0xFFFFFFFF
_FIN, _SYN, _RST, _ACK, _URG = 0x001, 0x002, 0x004, 0x010, 0x020
#: Analysis flags Wireshark also files under ``tcp.analysis.retransmission``.
RETRANSMITTED = _ta.RETRANSMISSION | _ta.FAST_RETRANSMISSION | _ta.SPURIOUS_RETRANSMISSION
# Retransmitted or out-of-order data is not handed to sub-dissectors (Wireshark's
# tcp.no_subdissector_on_error behaviour as tshark 4.0 shows it): no HTTP, no chat.
_NO_SUBDISSECTOR = RETRANSMITTED | _ta.OUT_OF_ORDER


class CaptureDamage(InputError):
    """The capture file is damaged after some good records (raised after they were all handed out)."""

    def __init__(self, message: str, packets_read: int, offset: int | None,
                 reason: str = "") -> None:
        super().__init__(message)
        self.packets_read = packets_read
        self.offset = offset
        self.reason = reason or message

    @classmethod
    def after(cls, exc: Exception, good: int) -> CaptureDamage:
        """The damage a reader reported, worded with the number of good packets before it."""
        return cls(f"{exc} (after {good} good packet{'s' if good != 1 else ''}; "
                   "the rest of the file cannot be read)", good, getattr(exc, "offset", None),
                   getattr(exc, "reason", ""))

    def as_packet(self) -> dict:
        """The damaged record as a pseudo-packet, so lists and JSON show it in its place."""
        where = f" at byte {self.offset}" if self.offset is not None else ""
        reason = f"capture record{where}: {self.reason}"
        return {"frame.number": self.packets_read + 1, "_ws.malformed": reason,
                "_ws.col.Protocol": "Frame", "_ws.col.Info": f"[Malformed Packet: {reason}]",
                "_ws.col.Source": "", "_ws.col.Destination": ""}


# The packet-list line of a record, in Wireshark's column order, and the one for the
# commonest TCP segment (ACK set, no URG, no tags) in a single format. They are bytes
# (UTF-8, as the list is written): bytes formatting copies the text between fields with
# one memcpy and writes numbers without a temporary str. The Protocol column comes
# padded (``_proto``), so that padding counts characters, not bytes.
_LINE = b"%6d %11.6f %s %s %6d %s"
_TCP_LINE = b"%6d %11.6f %s " + b"TCP".ljust(8) + b" %6d %s [%s] Seq=%d Ack=%d Win=%d Len=%d%s"
# The kernel's NOP,NOP,Timestamps options are kept as their unpacked words (``_opts`` is
# then a tuple) and put into text only by the views that print them.
_TS_TEXT = "TSval=%d TSecr=%d"
_TCP_TS_LINE = _TCP_LINE[:-2] + b" " + _TS_TEXT.encode()
_FLAGS_TEXT = _dissect._FLAGS_TEXT
_FLAGS_BYTES = tuple(text.encode() for text in _FLAGS_TEXT)


def _proto(name: str) -> bytes:
    """The Protocol column's text, padded to its width."""
    return ("%-8s" % name).encode()  # noqa: UP031


def _ack_line(number: int, time_relative: float, addrs: bytes, frame_len: int, ports: bytes,
              flags: int, seq: int, ack: int, window: int, seglen: int,
              opts: str | tuple[int, int, int]) -> bytes:
    """The commonest segment's line (ACK set, no URG, no analysis tags) in one format.

    Made from the numbers alone, so that the list's loop can write it for a frame it
    makes no record for (:meth:`Analyzer.list_blocks`) exactly as the record would.
    """
    if type(opts) is tuple:  # NOP,NOP,Timestamps: its two numbers in the same format
        return _TCP_TS_LINE % (number, time_relative, addrs, frame_len, ports,
                               _FLAGS_BYTES[flags], seq, ack, window, seglen, opts[1], opts[2])
    return _TCP_LINE % (number, time_relative, addrs, frame_len, ports, _FLAGS_BYTES[flags],
                        seq, ack, window, seglen, opts.encode())


_TCP_PROTO = _proto("TCP")
_chat_info = _http.chat_info


class Packet:
    """One frame: what every view needs, with the Wireshark field dictionary made on demand.

    Attributes (``None`` where the layer is absent): ``number``, ``ts_ns``,
    ``time_relative`` (seconds since the first frame), ``frame_len``, ``cap_len``, ``data``
    (the frame bytes), ``linktype``, ``comment``; for TCP ``src``/``dst`` (address text),
    ``sport``/``dport``, ``flags``, ``seglen`` (payload bytes), ``seq_raw``/``ack_raw``,
    ``window_value``, ``stream``, ``aflags`` (the analysis flag bits of
    :mod:`~tcplab.analyze.tcp_analysis`), ``completeness`` (as shown on this frame), and
    the shown relative numbers as :attr:`seq`, :attr:`ack`, :attr:`window`.

    A record is also a read-only mapping of Wireshark field names (``get``, ``in``,
    ``[]``): the names it holds are answered from its attributes, any other renders
    :meth:`fields` once.
    """

    __slots__ = (
        "number", "ts_ns", "time_relative", "frame_len", "cap_len", "data", "linktype",
        "comment", "interface", "src", "dst", "sport", "dport", "flags", "seglen", "seq_raw",
        "ack_raw", "window_value", "urgent", "payload_start", "payload_end", "stream",
        "aflags", "fbase", "rbase", "scale", "completeness", "dup_num", "dup_frame",
        "_addrs", "_ports", "_opts", "_http", "_app", "_pdu", "_fields", "_ctx",
    )

    # -- shown values ----------------------------------------------------------------------
    @property
    def seq(self) -> int:
        """Relative sequence number (``tcp.seq``)."""
        return (self.seq_raw - self.fbase) & _M32

    @property
    def ack(self) -> int:
        """Relative ack number (``tcp.ack``; tshark shows the raw one without the ACK bit)."""
        return (self.ack_raw - self.rbase) & _M32 if self.flags & _ACK else self.ack_raw

    @property
    def nxtseq(self) -> int:
        nxt = self.seq_raw + self.seglen + (1 if self.flags & (_SYN | _FIN) else 0)
        return (nxt - self.fbase) & _M32

    @property
    def window(self) -> int:
        """The calculated window (``tcp.window_size``): scaled except on a SYN (RFC 7323 §2.2)."""
        scale = self.scale
        if self.flags & _SYN or scale < 0:
            return self.window_value
        return self.window_value << scale

    @property
    def payload(self) -> bytes:
        return self.data[self.payload_start : self.payload_end] if self.seglen else b""

    # -- views ---------------------------------------------------------------------------
    def fields(self) -> dict:
        """The Wireshark-keyed field dictionary (made once, on first use)."""
        d = self._fields
        if d is None:
            d = self._fields = self._ctx._render(self)
        return d

    def http_fields(self) -> dict:
        """The ``http.*`` fields (and Protocol/Info) of this frame's payload; empty if none."""
        d = self._fields
        if d is not None:
            return d
        h = self._http
        if h is None:
            h = self._http = {}
            view = self._pdu
            if view is not None and self._app is None:
                h.update(_pdu_fields(view, self._ctx))
                h["_ws.col.Protocol"], h["_ws.col.Info"] = self.columns()
        return h

    def http_message(self) -> tuple[str | None, str | None, int | None, str | None] | None:
        """``(method, uri, code, phrase)`` of the HTTP message this frame starts, or None.

        What the HTTP summary needs, without the header fields :meth:`http_fields` adds.
        """
        d = self._fields
        if d is not None:
            method = d.get("http.request.method")
            code = d.get("http.response.code")
            if method is None and code is None:
                return None
            return method, d.get("http.request.uri"), code, d.get("http.response.phrase")
        view = self._pdu
        if view is not None and view.messages and self._app is None:
            return view.messages[0].entry[1:]
        return None

    def http_messages(self) -> list[tuple[str | None, str | None, int | None, str | None]]:
        """``(method, uri, code, phrase)`` of every HTTP message this frame completes.

        Two pipelined requests in one segment are two entries (tshark dissects both);
        a message carried by several segments counts on the segment completing it.
        """
        d = self._fields
        if d is not None:
            methods = d.get("http.request.method")
            codes = d.get("http.response.code")
            if isinstance(methods, list) or isinstance(codes, list):
                return _listed_messages(d)
            one = self.http_message()
            return [] if one is None else [one]
        view = self._pdu
        if view is None or self._app is not None:
            return []
        return view.entries or [m.entry[1:] for m in view.messages]

    def columns(self) -> tuple[str, str]:
        """The Protocol and Info columns."""
        d = self._fields
        if d is not None:
            return d["_ws.col.Protocol"], d["_ws.col.Info"]
        if self._app is not None:  # TLS or DNS (tls_dns.AppLayer) made the columns
            return self._app.columns(self._tcp_info)
        cols = None
        if self.seglen and not self.aflags & _NO_SUBDISSECTOR:
            view = self._pdu
            if view is not None:
                return _pdu_columns(view, self._ctx.tracker.final is not None, self._tcp_info,
                                    self._tags(), self.data, self.payload_start,
                                    end=self.payload_end)
            ports = self._ctx.chat_ports
            if self.sport in ports or self.dport in ports:
                cols = ("CHAT", _chat_info(self.data[self.payload_start : self.payload_end],
                                           to_server=self.dport in ports))
        return cols or ("TCP", self._tcp_info())

    def _tags(self) -> str:
        aflags = self.aflags
        return _dissect.tags_text(aflags, self.dup_frame, self.dup_num) if aflags else ""

    def _tcp_info(self) -> str:
        aflags = self.aflags
        tags = _dissect.tags_text(aflags, self.dup_frame, self.dup_num) if aflags else ""
        flags = self.flags
        if self._ctx.absolute:
            seq, ack = self.seq_raw, self.ack_raw
        else:
            seq = (self.seq_raw - self.fbase) & _M32
            ack = (self.ack_raw - self.rbase) & _M32 if flags & _ACK else self.ack_raw
        opts = self._opts
        text = _TS_TEXT % (opts[1], opts[2]) if type(opts) is tuple else opts.lstrip(" ")
        return _dissect.info_text(tags, self.sport, self.dport, flags, seq, ack, self.window,
                                  self.urgent, self.seglen, text)

    def list_line(self) -> str:
        """The packet-list line (No. Time Source Destination Protocol Length Info)."""
        return self.list_bytes().decode()

    def list_bytes(self) -> bytes:
        """:meth:`list_line` in UTF-8, which is what the list view writes."""
        if self._fields is not None:
            return _packet_line(self._fields).encode()
        if self._app is not None:
            cols = self._app.columns(self._tcp_info)
            return _LINE % (self.number, self.time_relative, self._addrs, _proto(cols[0]),
                            self.frame_len, cols[1].encode())
        if type(self.ts_ns) is not int:  # no time of its own (pcap.NoTimestamp): none shown
            return _packet_line(self.fields()).encode()
        flags = self.flags
        seglen = self.seglen
        aflags = self.aflags
        if seglen and not aflags & _NO_SUBDISSECTOR:
            # columns(), without its call: HTTP (as the reassembly placed it), then chat.
            view = self._pdu
            cols = None
            if view is not None:
                shown = view.shown
                if shown is not None and shown[3] == self.payload_end - self.payload_start:
                    # _pdu_columns' first answer, without its call: one whole message, its
                    # body as long as the last one this shared view's columns were made for
                    # (shown[4]: those columns as the line writes them).
                    if not aflags:
                        proto, info = shown[4]
                        return _LINE % (self.number, self.time_relative, self._addrs, proto,
                                        self.frame_len, info)
                    cols = shown[2]
                    cols = (cols[0], _dissect.tags_text(aflags, self.dup_frame, self.dup_num)
                            + cols[1])
                else:
                    cols = _pdu_columns(view, self._ctx.tracker.final is not None,
                                        self._tcp_info,
                                        _dissect.tags_text(aflags, self.dup_frame, self.dup_num)
                                        if aflags else "", self.data, self.payload_start,
                                        end=self.payload_end)
            else:
                ports = self._ctx.chat_ports
                if self.sport in ports or self.dport in ports:
                    cols = ("CHAT", _chat_info(self.data[self.payload_start : self.payload_end],
                                               to_server=self.dport in ports))
            if cols is not None:
                return _LINE % (self.number, self.time_relative, self._addrs, _proto(cols[0]),
                                self.frame_len, cols[1].encode())
        if flags & (_ACK | _URG) == _ACK and not aflags:
            # The commonest segment, in one format: no tags, no Urg, Ack shown.
            if self._ctx.absolute:
                seq, ack = self.seq_raw, self.ack_raw
            else:
                seq = (self.seq_raw - self.fbase) & _M32
                ack = (self.ack_raw - self.rbase) & _M32
            scale = self.scale
            return _ack_line(self.number, self.time_relative, self._addrs, self.frame_len,
                             self._ports, flags, seq, ack,
                             self.window_value if flags & _SYN or scale < 0
                             else self.window_value << scale, seglen, self._opts)
        return _LINE % (self.number, self.time_relative, self._addrs, _TCP_PROTO,
                        self.frame_len, self._tcp_info().encode())

    # -- the mapping of Wireshark field names ------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        if self._fields is None:
            getter = _HELD.get(key)
            if getter is not None:
                value = getter(self)
                return default if value is None else value
        return self.fields().get(key, default)

    def __contains__(self, key: object) -> bool:
        if self._fields is None:
            getter = _HELD.get(key)  # type: ignore[call-overload]
            if getter is not None:
                return getter(self) is not None
        return key in self.fields()

    def __getitem__(self, key: str) -> Any:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self.fields())

    def keys(self) -> Any:
        return self.fields().keys()

    def items(self) -> Any:
        return self.fields().items()

    def __repr__(self) -> str:
        return f"<Packet {self.number} stream={self.stream} {self.src}:{self.sport} → {self.dst}:{self.dport}>"


_MISSING = object()
_packet_line: Callable[[dict], str]  # render.packet_line, bound below (render imports nothing of ours)


def _pdu_columns(view: _reassembly.SegmentView, second_pass: bool,
                 tcp_info: Callable[[], str], tags: str, data: bytes = b"",
                 start: int = 0, layers: list | None = None,
                 end: int | None = None) -> tuple[str, str]:
    """Protocol and Info of a segment the HTTP reassembly placed (tshark 4.0's texts).

    A segment completing messages is HTTP, its Info their first lines (and that of a
    message it begins); one that only carries part of a message is TCP with the note. In
    one pass tshark writes the first line of a message a segment begins before the note
    (the HTTP dissector ran on it); its second pass shows the TCP summary there instead.
    ``tags`` (the analysis tags, :func:`~tcplab.analyze.dissect.tags_text`) open the HTTP
    texts too, as in tshark. Each message's body dissector adds its part
    (:func:`_body_layers`; ``data[start:]`` is the segment's payload, or ``layers`` the
    caller already worked out; ``end``, when given, where the payload ends in ``data``).
    """
    if end is None:
        end = len(data)
    if view.messages:
        cols = view.cols
        if cols is not None and layers is None:
            # A shared view (one whole message, its body the rest of the segment): the
            # columns of the last body of this length, when its bytes do not matter.
            shown = view.shown
            length = end - start - len(view.messages[0].head) if data else 0
            if shown is not None and shown[0] == length:
                cols = shown[2]
                return (cols[0], tags + cols[1]) if tags else cols
            layers = _body_layers(view, data, start, end)
            proto, info = cols = _pdu_columns(view, second_pass, tcp_info, "", data, start,
                                              layers, end)
            if length <= 0 or _http.prefix_free(view.messages[0].head):
                # (the payload's length too: Packet.list_bytes compares that one)
                view.shown = (length, layers, cols, end - start,
                              (_proto(cols[0]), cols[1].encode()))
            return (proto, tags + info) if tags else cols
        if layers is None:
            layers = _body_layers(view, data, start, end)
        if cols is not None and layers[0] is None:
            return (cols[0], tags + cols[1]) if tags else cols
        proto = "HTTP"
        lines = []
        for m, layer in zip(view.messages, layers, strict=True):
            line = m.entry[0][1]
            if layer is not None:
                line += layer[2]
                proto = "HTTP" + layer[1] if layer[1] and proto == "HTTP" else proto
            lines.append(line)
        # A message begun after them shows too, except in tshark's second pass when the
        # reassembled buffer of the first one was cut where it begins (Message.final_length).
        first = view.messages[0]
        # (In tshark's second pass a message begun right after the reassembled one is not
        # dissected there, nor one its cut buffer left out; one begun after further whole
        # messages is.)
        if view.opens and view.started is not None and not (
                second_pass and first.segments is not None
                and (len(lines) == 1 or first.final_length < first.length)):
            lines.append(view.started[0][1])
        return proto, tags + " ".join(lines)
    if view.started is not None and not second_pass:
        return "TCP", tags + view.started[0][1] + " " + _reassembly.SEGMENT_NOTE
    return "TCP", tcp_info() + _reassembly.SEGMENT_NOTE


def _body_layers(view: _reassembly.SegmentView, data: bytes, start: int,
                 end: int | None = None) -> list[tuple[str, str, str, int | None] | None]:
    """:func:`~tcplab.analyze.http.body_layer` of each message the segment completes.

    Work per message, not per segment: a message over several segments brings its body's
    length and first bytes (:attr:`~tcplab.analyze.reassembly.Message.body`); one whole
    message alone in its segment (a view shared by such segments) has its body right after
    its header block, to the segment's end.
    """
    if end is None:
        end = len(data)
    out = []
    for m in view.messages:
        body = m.body
        if body is None:
            at = start + len(m.head)
            body = ((end - at, data[at : min(at + _http.BODY_PREFIX, end)]) if data
                    else (0, b""))
        out.append(_http.body_layer(m.head, body[0], body[1]) if body[0] > 0 else None)
    return out


def _pdu_fields(view: _reassembly.SegmentView, ctx: Analyzer) -> dict:
    """The ``http.*`` and ``tcp.segment*``/``tcp.reassembled*`` fields of a placed segment.

    Several messages in one segment give each ``http.*`` field as a list (tshark shows
    every occurrence); one message gives plain values. Read-only: the fields of one whole
    message alone in its segment are its shared :meth:`~reassembly.Message.http_fields`.
    """
    fields: dict[str, Any] = {}
    if view.reassembled_in is not None and (view.opens or view.part):
        fields["tcp.reassembled_in"] = view.reassembled_in
    messages = view.messages
    if not messages:
        return fields
    first = messages[0]
    if first.segments is not None:
        fields["tcp.segment"] = list(first.segments)
        fields["tcp.segment.count"] = first.count
        fields["tcp.reassembled.length"] = (first.final_length if ctx.tracker.final is not None
                                            else first.length)
    if len(messages) == 1:
        if not fields:
            return first.http_fields()
        fields.update(first.http_fields())
        return fields
    per = [m.http_fields() for m in messages]
    for h in per:
        for k, v in h.items():
            fields.setdefault(k, []).append(v)
    return fields


def _listed_messages(d: dict) -> list[tuple[str | None, str | None, int | None, str | None]]:
    """Every message of a field dict whose ``http.*`` fields are lists (requests first)."""
    def listed(name: str) -> list:
        v = d.get(name)
        return [] if v is None else v if isinstance(v, list) else [v]

    methods, uris = listed("http.request.method"), listed("http.request.uri")
    codes, phrases = listed("http.response.code"), listed("http.response.phrase")
    out: list[tuple[str | None, str | None, int | None, str | None]] = [
        (m, uris[i] if i < len(uris) else None, None, None) for i, m in enumerate(methods)]
    out += [(None, None, c, phrases[i] if i < len(phrases) else None) for i, c in enumerate(codes)]
    return out


def _flag_field(bits: int) -> Callable[[Packet], Any]:
    return lambda p: True if p.aflags & bits else None


# The analysis flag fields and the ``aflags`` bits each one tests.
_FLAG_BITS: dict[str, int] = {
    **{field: bit for bit, field in _ta.FIELD_OF_FLAG.items()},
    "tcp.analysis.retransmission": RETRANSMITTED,
}


def _http_field(name: str) -> Callable[[Packet], Any]:
    return lambda p: p.http_fields().get(name)


def _tcp_payload(p: Packet) -> bytes | None:
    return p.payload if p.seglen and p._ctx.payload else None


def _none(p: Packet) -> None:
    return None


# Fields a fast-path record holds as an int, never None, as a Python expression over the
# record ``p``: the record's getters below are made from these, and display filters
# compile tests on them into one generated function (filter.compile_filter) from the same
# text, so both read a field the same way.
_HELD_SOURCE: dict[str, str] = {
    "frame.number": "p.number",
    "frame.len": "p.frame_len",
    "frame.cap_len": "p.cap_len",
    "ip.version": "4",
    "tcp.srcport": "p.sport",
    "tcp.dstport": "p.dport",
    "tcp.stream": "p.stream",
    "tcp.len": "p.seglen",
    "tcp.flags": "p.flags",
    "tcp.flags.fin": "(p.flags & 1)",
    "tcp.flags.syn": "(p.flags >> 1 & 1)",
    "tcp.flags.reset": "(p.flags >> 2 & 1)",
    "tcp.flags.push": "(p.flags >> 3 & 1)",
    "tcp.flags.ack": "(p.flags >> 4 & 1)",
    "tcp.seq_raw": "p.seq_raw",
    "tcp.ack_raw": "p.ack_raw",
    "tcp.seq": "p.seq",
    "tcp.ack": "p.ack",
    "tcp.nxtseq": "p.nxtseq",
    "tcp.window_size_value": "p.window_value",
    "tcp.window_size": "p.window",
    "tcp.urgent_pointer": "p.urgent",
    "tcp.completeness": "p.completeness",
}

# Field names a record made by the fast path answers without rendering its dictionary, and
# how (None = the field is absent on such a frame). Each equals fields().get(name):
# tests/analyze/test_record.py checks every one on every golden capture.
_HELD: dict[str, Callable[[Packet], Any]] = {
    **{name: eval(f"lambda p: {source}") for name, source in _HELD_SOURCE.items()},  # noqa: S307
    "frame.time_relative": lambda p: p.time_relative,
    "frame.time_epoch": lambda p: p.ts_ns / 1e9,
    "frame.comment": lambda p: p.comment or None,
    "_raw": lambda p: p.data,
    "ip.src": lambda p: p.src,
    "ip.dst": lambda p: p.dst,
    "_ws.col.Source": lambda p: p.src,
    "_ws.col.Destination": lambda p: p.dst,
    "_ws.col.Protocol": lambda p: p.columns()[0],
    "_ws.col.Info": lambda p: p.columns()[1],
    "tcp.payload": _tcp_payload,
    "tcp.analysis.duplicate_ack_num": lambda p: p.dup_num if p.aflags & _ta.DUPLICATE_ACK else None,
    "tcp.analysis.duplicate_ack_frame": lambda p: (p.dup_frame if p.aflags & _ta.DUPLICATE_ACK
                                                   else None),
    **{field: _flag_field(bits) for field, bits in _FLAG_BITS.items()},
    **{name: _http_field(name) for name in (
        "http.request", "http.response", "http.request.method", "http.request.uri",
        "http.request.version", "http.response.code", "http.response.phrase",
        "http.response.version", "http.host", "http.content_length")},
    # Fast-path frames are IPv4 TCP with sound headers: these layers and marks are absent,
    # except the marks TLS or DNS put on a payload they find damaged.
    **{name: _none for name in (
        "ipv6.src", "ipv6.dst", "ipv6.version", "udp.srcport", "udp.dstport", "_ws.short",
        "_ws.expert.message", "icmp.type", "icmp.code")},
    "_ws.malformed": lambda p: p._app.malformed if p._app is not None else None,
    "_ws.expert": lambda p: ("Malformed Packet" if p._app is not None and p._app.malformed
                             else None),
}


def held_field(name: str) -> Callable[[Packet], Any] | None:
    """How a record whose dictionary is not made answers field ``name``, or None if it cannot.

    The getter returns the field's value, or None where the field is absent; it is only
    valid for a record made by the fast path whose dictionary is not made yet
    (``type(p) is Packet and p._fields is None``): such a record's ``get`` answers from it.
    Display filters compile against it, so that a test on a held field is one call, not a
    mapping lookup and then the call.
    """
    return _HELD.get(name)


def held_source(name: str) -> str | None:
    """Field ``name`` of a fast-path record as a Python expression over ``p``, or None.

    Only for fields such a record always holds as an int (never None), so that a display
    filter can compile a test on them into straight-line code; the same validity rule as
    :func:`held_field` (``type(p) is Packet and p._fields is None``).
    """
    return _HELD_SOURCE.get(name)


def analysis_bits(name: str) -> int | None:
    """The ``aflags`` bits an analysis flag field (``tcp.analysis.*``) is set by, or None."""
    return _FLAG_BITS.get(name)


def from_fields(d: dict) -> Packet:
    """A record from a Wireshark field dictionary (tshark's output, a test's hand-made dict).

    Every attribute is read from the dictionary, which stays the record's fields.
    """
    p = Packet.__new__(Packet)
    _fill_from_fields(p, d)
    p.aflags = 0
    for bit, field in _ta.FIELD_OF_FLAG.items():
        if d.get(field):
            p.aflags |= bit
    comp = d.get("tcp.completeness")
    p.completeness = None if comp is None else int(comp)
    p.stream = d.get("tcp.stream")
    return p


def _fill_from_fields(p: Packet, d: dict) -> None:
    p.number = int(d.get("frame.number", 0) or 0)
    p.time_relative = float(d.get("frame.time_relative", 0.0) or 0.0)
    p.ts_ns = int(float(d.get("frame.time_epoch", 0.0) or 0.0) * 1e9)
    p.frame_len = int(d.get("frame.len", 0) or 0)
    p.cap_len = int(d.get("frame.cap_len", p.frame_len) or 0)
    p.data = d.get("_raw", b"")
    p.linktype = d.get("_linktype")
    p.comment = d.get("frame.comment")
    p.interface = None
    # An ICMP error holds two IP layers (a list per field): the record names the outer one.
    p.src = _network._first(d.get("ip.src") or d.get("ipv6.src"))
    p.dst = _network._first(d.get("ip.dst") or d.get("ipv6.dst"))
    p.sport = d.get("tcp.srcport")
    p.dport = d.get("tcp.dstport")
    p.flags = int(d.get("tcp.flags", 0) or 0)
    p.seglen = int(d.get("tcp.len", 0) or 0)
    p.seq_raw = d.get("tcp.seq_raw")
    p.ack_raw = d.get("tcp.ack_raw")
    p.window_value = d.get("tcp.window_size_value")
    p.urgent = d.get("tcp.urgent_pointer")
    p.payload_start = p.payload_end = 0
    p.fbase = p.rbase = 0
    p.scale = _ta.WS_UNKNOWN
    p.dup_num = d.get("tcp.analysis.duplicate_ack_num")
    p.dup_frame = d.get("tcp.analysis.duplicate_ack_frame")
    p._addrs = p._ports = p._opts = None
    p._http = p._app = p._pdu = None
    p._fields = d
    p._ctx = None


# ------------------------------------------------------------------------------ producer

# Link header + IPv4 without options + the fixed TCP header, in one unpack. Only the
# fields the views need are decoded; the rest are pad bytes.
#   link type field with version/IHL, total length, flags/fragment offset with TTL and
#   protocol, source, destination, TCP ports, seq, ack, data offset/flags, window,
#   urgent pointer
# Adjacent fields tested together are one field, tested with one comparison: the link
# type field and version/IHL (IPv4 without options); flags/fragment offset, TTL and
# protocol (not a fragment, TCP: ``& _NOT_FRAGMENT_TCP == 6``). The addresses and ports
# (IP source, IP destination, TCP source and destination port) are one 12-byte field,
# the key of the per-direction text cache and of the TCP analysis' conversation table.
_ETH_IP_TCP = struct.Struct("!12x3s x H 2x I 2x 12s IIHH 2x H")
_NULL_IP_TCP = struct.Struct("!5s x H 2x I 2x 12s IIHH 2x H")
_RAW_IP_TCP = struct.Struct("!1s x H 2x I 2x 12s IIHH 2x H")
_NOT_FRAGMENT_TCP = 0x3FFF00FF
_PORTS = struct.Struct("!HH")
# Directed 4-tuple bytes → (source, destination, source port, destination port, the
# Source/Destination columns, "sport → dport"). Bounded: cleared when full.
_DIRECTIONS_MAX = 4096
_ETH_MIN = 14 + 20 + 20
_RAW_MIN = 20 + 20
# Raw IP under every number platforms use for it (the version nibble tells v4 from v6).
_RAW_LINKTYPES = frozenset({101, 12, 14, 228, 229})
_NULL_MIN = 4 + 20 + 20
_ETHERTYPE_IPV4 = b"\x08\x00\x45"  # and version 4, IHL 5
_AF_INET_LE = b"\x02\x00\x00\x00\x45"
_IPV4_NO_OPTIONS = b"\x45"
_TS_WORDS = struct.Struct("!III")
_APP_PORTS = TLS_PORTS | DNS_PORTS
_TLS_FIRST_BYTES = frozenset(TLS_HEURISTIC_TYPES)


def _direction(key: bytes, chat_ports: frozenset[int]
               ) -> tuple[str, str, int, int, bytes, bytes, bool, bool]:
    """The texts of one directed 4-tuple, formatted once per direction, not per packet
    (the packet list's address and port columns in UTF-8).

    The last two items say whether a port is one TLS or DNS owns (tls_dns.TLS_PORTS,
    DNS_PORTS), and whether one is a chat port (its payload is shown as chat lines).
    """
    src = _dissect._ntoa(key[0:4])
    dst = _dissect._ntoa(key[4:8])
    sport, dport = _PORTS.unpack_from(key, 8)
    return (src, dst, sport, dport, ("%15s → %-15s" % (src, dst)).encode(),  # noqa: UP031
            f"{sport} → {dport}".encode(), sport in _APP_PORTS or dport in _APP_PORTS,
            sport in chat_ports or dport in chat_ports)


class Analyzer:
    """Frames in capture order → :class:`Packet` records (or, for live use, field dicts).

    ``checksums`` verifies IP/TCP/UDP checksums in the rendered fields (Wireshark with
    validation on); ``absolute`` shows raw sequence numbers in the Info column
    (``tcp.seq`` stays relative); ``payload`` keeps ``tcp.payload`` bytes in the fields;
    ``final`` holds each stream's end state from a first pass
    (:meth:`TcpTracker.final_states`), making the shown values those of ``tshark -2``;
    ``network`` is the state of fragments and ICMP pairing (:mod:`~tcplab.analyze.network`;
    by default one that reassembles, or not when ``defragment`` is false).
    ``reassemble`` places every in-order data segment in its direction's HTTP byte
    stream (:mod:`~tcplab.analyze.reassembly`; False: each segment on its own), with
    ``reassembly_index`` (that first pass's record of completing frames) for ``-2``.
    """

    def __init__(
        self,
        linktype: int | None = None,
        *,
        checksums: bool = True,
        absolute: bool = False,
        payload: bool = True,
        chat_ports: frozenset[int] = CHAT_PORTS,
        interfaces: list[Any] | None = None,
        final: list[_ta.FinalState] | None = None,
        reassemble: bool = True,
        reassembly_index: dict | None = None,
        defragment: bool = True,
        network: _network.NetworkLayers | None = None,
        tls_versions: dict[int, int] | None = None,
        app_index: dict[int, int] | None = None,
    ) -> None:
        self.linktype = linktype
        self.checksums = checksums
        self.absolute = absolute
        self.payload = payload
        self.chat_ports = chat_ports
        self.interfaces = interfaces
        self.tracker = _ta.TcpTracker(final)
        #: HTTP over several segments, as Wireshark reassembles it (``reassemble=False``:
        #: each segment on its own, ``--no-reassemble``); ``reassembly_index`` is a first
        #: pass's :meth:`~tcplab.analyze.reassembly.Reassembler.completions` (``-2``).
        self.reassembler = _reassembly.Reassembler(carry=reassemble, index=reassembly_index)
        self.network = network or _network.NetworkLayers(defragment=defragment)
        #: TLS and DNS-over-TCP state; ``tls_versions`` are a first pass's final_versions(),
        #: ``app_index`` its completions() (``tcp.reassembled_in`` of cut TLS/DNS messages).
        self.app = AppLayer(two_pass=final is not None, final_versions=tls_versions,
                            index=app_index)
        self.count = 0
        self._first_ns: int | None = None
        self._if_names: list[str | None] = []
        self._any_name: bool | None = None

    # -- live: one frame at a time -----------------------------------------------------------
    def feed(self, record: Any) -> dict:
        """Analyse one :class:`tcplab.pcap.Record` (or anything with the same attributes)."""
        return self.packet(record.data, record.timestamp_ns, record.orig_len, record.linktype,
                           record.comment, record.interface).fields()

    def feed_frame(self, data: bytes, timestamp_ns: int, *, orig_len: int | None = None,
                   linktype: int | None = None, comment: str | None = None,
                   interface: int | None = None) -> dict:
        """Analyse one frame given as bytes plus its capture metadata."""
        return self.packet(data, timestamp_ns, orig_len, linktype, comment, interface).fields()

    def packet(self, data: bytes, timestamp_ns: int, orig_len: int | None, linktype: int | None,
               comment: str | None, interface: int | None) -> Packet:
        """One frame through the full dissector: its record, fields already made."""
        count = self.count = self.count + 1
        first = self._first_ns
        if first is None:
            first = self._first_ns = timestamp_ns
        lt = self.linktype if linktype is None else linktype
        if lt is None:
            raise ValueError("no link type: pass linktype to Analyzer() or feed_frame()")
        d = self._frame_fields(count, timestamp_ns, first, orig_len, data, lt, comment,
                               interface)
        net = self.network
        net.number, net.ts_ns = count, timestamp_ns
        seg = _dissect.dissect(data, lt, d, orig_len=orig_len, checksums=self.checksums,
                               payload=self.payload, net=net)
        p = Packet.__new__(Packet)
        _fill_from_fields(p, d)
        p.time_relative = (timestamp_ns - first) / 1e9
        p.ts_ns = timestamp_ns
        p._ctx = self
        if seg is None:
            if "_ws.col.Source" not in d:
                d["_ws.col.Source"] = d["_ws.col.Destination"] = ""
            p.stream = p.completeness = None
            p.aflags = 0
            p._app = None
            if "_ws.malformed" in d and "tcp.srcport" in d and p.src is not None:
                # A TCP header too damaged to analyse still belongs to its stream (tshark).
                conv = self.tracker.touch(count, p.src, p.sport, p.dst, p.dport, p.flags,
                                          "_tcp.analysed_header" in d)
                p.stream = d["tcp.stream"] = conv.stream
                p.completeness = d["tcp.completeness"] = self.tracker.shown_completeness(
                    conv, count)
            return p
        p.src, p.dst, p.sport, p.dport = seg.src, seg.dst, seg.sport, seg.dport
        p.seq_raw, p.ack_raw, p.flags, p.seglen = seg.seq, seg.ack, seg.flags, seg.seglen
        p.window_value = seg.window
        p.payload_start = seg.payload_offset
        p.payload_end = seg.payload_offset + len(seg.payload)
        if seg.payload_offset < 0:  # reassembled from IP fragments: not the frame's bytes
            p.payload_start = p.payload_end = 0
        p._pdu = None
        self._analyse(p, seg.wscale, bytes(seg.payload) if seg.payload_offset < 0 else None)
        p._app = (self.app.feed(count, p.stream, seg.src, seg.sport, seg.dport, seg.seq, data,
                                p.payload_start, p.payload_end, p.aflags)
                  if seg.seglen else None)
        self._write_analysis(d, p, seg)
        return p

    # -- a whole capture -------------------------------------------------------------------
    def packets(self, reader: Any, max_packets: int | None = None, *,
                skim: bool = False, payload_only: bool = False,
                payload_views: bool = True,
                keep: Callable[[Packet], bool] | None = None) -> Iterator[Packet]:
        """Every frame of ``reader`` as a record, in order; ``skim`` only runs the analysis.

        A skim yields nothing: it is the first pass of ``tshark -2``, which needs only each
        stream's end state (:meth:`TcpTracker.final_states`) — headers, no payload, no
        formatting. ``payload_only`` analyses every frame but makes no record for a
        fast-path segment without payload, for a reader that looks at payload alone (the
        HTTP summary), and a fast-path record it makes holds only what that reader reads
        (number, time_relative, seglen, comment, stream and the HTTP/TLS/DNS views).
        Not ``payload_views``: a fast-path segment's payload is not offered to HTTP, TLS or
        DNS (its record has none of their views), for a reader that looks at none of them
        (the conversation table). ``keep``, a display filter that on a fast-path record reads
        only the numbers its analysis gives (:func:`tcplab.analyze.filter.reads_held_only`),
        is applied as soon as those are set: a frame it rejects gets no more of a record
        and is not yielded (a frame the full dissector made is tested whole).
        Damage raises :class:`CaptureDamage` after every good record.
        """
        return self._frames(reader, max_packets, skim, payload_only, payload_views, keep, 0)

    def list_blocks(self, reader: Any, max_packets: int | None = None,
                    block: int = 2048) -> Iterator[list[bytes]]:
        """The packet list of ``reader``: its lines (UTF-8, no newline) in lists of ``block``.

        The same read as :meth:`packets`, with each record's :meth:`Packet.list_bytes`;
        but a fast-path frame whose line takes one of the two commonest forms (a segment
        without analysis tags, ACK set and no URG, that no sub-dissector claims; a whole
        HTTP message whose columns the reassembly made for an earlier one like it) has its
        line written from the numbers the analysis step gives, with no record made: most
        of a plain list's frames, and a record costs as much as its line. Damage raises
        :class:`CaptureDamage` after the block holding every good line.
        """
        if block < 1:
            raise ValueError(f"a block holds at least one line, not {block}")
        return self._frames(reader, max_packets, False, False, True, None, block)

    def _frames(self, reader: Any, max_packets: int | None, skim: bool, payload_only: bool,
                payload_views: bool, keep: Callable[[Packet], bool] | None,
                block: int) -> Iterator[Any]:
        """:meth:`packets` (``block`` 0) and :meth:`list_blocks`: one loop for both."""
        from tcplab.pcap import CaptureFormatError

        full = self.packet
        step = self.tracker.step
        shown = self.tracker.shown
        final = self.tracker.final
        eth_unpack = _ETH_IP_TCP.unpack_from
        null_unpack = _NULL_IP_TCP.unpack_from
        raw_unpack = _RAW_IP_TCP.unpack_from
        raw_types = _RAW_LINKTYPES
        ts_unpack = _TS_WORDS.unpack_from
        directions: dict[bytes, tuple[str, str, int, int, bytes, bytes, bool, bool]] = {}
        chat_ports = self.chat_ports
        absolute = self.absolute
        # The list's lines, when the loop writes them (list_blocks): handed out a block at
        # a time; ``line``, ``ack_line`` the two forms it writes without a record.
        lines: list[bytes] = []
        add_line = lines.append if block else None
        # Every frame adds one line: a block is full at a frame number, not a length
        # (never, for packets(): no frame number is -1).
        flush_at = self.count + block if block else -1
        line = _LINE
        ack_line = _ack_line
        options = _dissect._options
        nop_nop_ts = _dissect._NOP_NOP_TS
        dup_ack = _ta.DUPLICATE_ACK
        app_feed = self.app.feed
        # Which segments TLS/DNS must see, decided here without a call: a stream already
        # theirs, a TLS/DNS port, or a first byte the TLS heuristic could match.
        app_streams = self.app.streams
        tls_first = _TLS_FIRST_BYTES
        no_sub = _NO_SUBDISSECTOR
        http_first = _HTTP_FIRST
        reassemble = self._reassemble
        segment = self.reassembler.segment
        new = Packet.__new__
        limit = max_packets if max_packets is not None else -1
        empty = not payload_only  # records for segments without payload too
        views = payload_views
        count = self.count
        first = self._first_ns
        try:
            for ts, data, orig_len, linktype, interface, _offset, comment in reader:
                count += 1
                if first is None:
                    first = self._first_ns = ts
                n = len(data)
                fields: Any = None
                if orig_len == n:
                    if linktype == 1:
                        if n >= _ETH_MIN:
                            fields = eth_unpack(data)
                            if fields[0] != _ETHERTYPE_IPV4:
                                fields = None
                            off = 14
                    elif linktype == 0:
                        if n >= _NULL_MIN:
                            fields = null_unpack(data)
                            if fields[0] != _AF_INET_LE:
                                fields = None
                            off = 4
                    elif linktype in raw_types and n >= _RAW_MIN:
                        fields = raw_unpack(data)
                        if fields[0] != _IPV4_NO_OPTIONS:
                            fields = None
                        off = 0
                if fields is not None:
                    _, total, fragproto, key, seq, ack, offflags, window, urg = fields
                    thl = (offflags >> 12) << 2
                    end = off + total
                    l4 = off + 20
                    # IPv4 without options (tested above), not a fragment, TCP, lengths
                    # consistent: else the full dissector words what is unusual about it.
                    if (fragproto & _NOT_FRAGMENT_TCP != 6 or end > n or thl < 20
                            or l4 + thl > end):
                        fields = None
                    elif thl == 20:
                        opts = ""
                        wscale = None
                    elif thl == 32 and (opts := ts_unpack(data, l4 + 20))[0] == nop_nop_ts:
                        wscale = None  # opts: the words, formatted by a view that prints them
                    else:
                        try:
                            wscale, opts, _ = options(data[l4 + 20 : l4 + thl], l4 + 20)
                        except ParseError:
                            fields = None  # the dissector words the damage
                        else:
                            if "SLE=" in opts:
                                # SACK edges are shown relative to the peer's ISN, which
                                # the analysis knows: the full dissector rewrites them.
                                fields = None
                            elif opts:
                                opts = " " + opts
                if fields is None:
                    self.count = count - 1
                    p = full(data, ts, orig_len, linktype, comment, interface)
                    if add_line is not None:
                        add_line(p.list_bytes())
                    elif not skim and (keep is None or keep(p)):
                        yield p
                else:
                    texts = directions.get(key)
                    if texts is None:
                        if len(directions) >= _DIRECTIONS_MAX:
                            directions.clear()
                        texts = directions[key] = _direction(key, chat_ports)
                    src, dst, sport, dport, addrs, ports, app_port, chat = texts
                    flags = offflags & 0x1FF
                    start = l4 + thl  # where the payload begins
                    seglen = end - start
                    aflags, conv, fwd, rev = step(count, ts, key, src, dst, sport, dport, seq,
                                                  ack, flags, seglen, window, wscale)
                    app = view = None
                    if seglen and views:
                        if (app_port or data[start] in tls_first
                                or (app_streams and conv.stream in app_streams)):
                            app = app_feed(count, conv.stream, src, sport, dport, seq, data,
                                           start, end, aflags)
                        if app is None and not aflags & no_sub:
                            st = fwd.http
                            if st is not None:
                                view = segment(st, count, seq, data, start, end)
                            elif data[start] in http_first:
                                view = reassemble(conv, fwd, rev, count, seq, data, start, end)
                    if add_line is not None and not aflags and type(ts) is int and (
                            # list_blocks: the two commonest lines, without a record (what
                            # Packet.list_bytes would write, tested in the same order): a
                            # whole HTTP message like the one its view's columns were made
                            # for, or an ACK without URG that is not chat.
                            (view is not None and (cols := view.shown) is not None
                             and cols[3] == seglen)
                            or (view is None and app is None and flags & 0x30 == 0x10
                                and not (seglen and chat))):
                        if view is not None:
                            proto, info = cols[4]
                            add_line(line % (count, (ts - first) / 1e9, addrs, proto, n, info))
                        else:
                            if final is None:  # TcpTracker.shown's one-pass answer
                                fbase = fwd.base_seq
                                rbase = rev.base_seq
                                scale = fwd.win_scale
                            else:
                                fbase, rbase, scale, _ = shown(conv, fwd, rev, count)
                            add_line(ack_line(
                                count, (ts - first) / 1e9, addrs, n, ports, flags,
                                seq if absolute else (seq - fbase) & _M32,
                                ack if absolute else (ack - rbase) & _M32,
                                window if flags & _SYN or scale < 0 else window << scale,
                                seglen, opts))
                    elif not skim and (seglen or empty):
                        p = new(Packet)
                        p.number = count
                        p.seglen = seglen
                        p.stream = conv.stream
                        p._fields = None
                        if empty:
                            p.frame_len = p.cap_len = n
                            p.sport = sport
                            p.dport = dport
                            p.flags = flags
                            p.seq_raw = seq
                            p.ack_raw = ack
                            p.window_value = window
                            p.urgent = urg
                            p.aflags = aflags
                            if final is None:  # one pass: the running state (TcpTracker.shown)
                                p.fbase = fwd.base_seq
                                p.rbase = rev.base_seq
                                p.scale = fwd.win_scale
                                p.completeness = conv.before
                            elif fwd.shown is not None and conv.first_frame != count:
                                # TcpTracker.shown's answer for all frames but a stream's first
                                p.fbase, p.rbase, p.scale, p.completeness = fwd.shown
                            else:
                                p.fbase, p.rbase, p.scale, p.completeness = shown(
                                    conv, fwd, rev, count)
                            # All a filter that reads held fields alone can read is set here.
                            if keep is not None and not keep(p):
                                if count == limit:
                                    break
                                continue
                        p.time_relative = (ts - first) / 1e9
                        p.comment = comment
                        p._app = app
                        p._pdu = view
                        if not empty:  # the HTTP table reads no more than that
                            yield p
                            if count == limit:
                                break
                            continue
                        p.ts_ns = ts
                        p.data = data
                        p.linktype = linktype
                        p.interface = interface
                        p.src = src
                        p.dst = dst
                        p.payload_start = start
                        p.payload_end = end
                        if aflags & dup_ack:
                            p.dup_num = fwd.dupacknum
                            p.dup_frame = fwd.lastnondupack
                        else:
                            p.dup_num = p.dup_frame = None
                        p._addrs = addrs
                        p._ports = ports
                        p._opts = opts
                        p._http = None
                        p._ctx = self
                        if add_line is None:
                            yield p
                        else:
                            add_line(p.list_bytes())
                if count == flush_at:  # (list_blocks only: every frame adds one line)
                    yield lines
                    lines = []
                    add_line = lines.append
                    flush_at = count + block
                if count == limit:
                    break
        except CaptureFormatError as exc:
            # Raised by the reader, before the damaged record was counted.
            if lines:
                yield lines
                lines = []
            raise CaptureDamage.after(exc, count) from None
        else:
            if lines:
                yield lines
        finally:
            self.count = count  # once, not per frame (also when the caller stops early)

    # -- shared by both kinds of record ----------------------------------------------------
    def _analyse(self, p: Packet, wscale: int | None, payload: bytes | None = None) -> None:
        """Run the TCP analysis step for a record the full dissector made.

        ``payload`` is a segment's payload that is not in the frame's own bytes (a segment
        rebuilt from IP fragments): HTTP reassembly reads it from there.
        """
        aflags, conv, fwd, rev = self.tracker.step(
            p.number, p.ts_ns, _ta.flow_key(p.src, p.sport, p.dst, p.dport), p.src, p.dst,
            p.sport, p.dport, p.seq_raw, p.ack_raw, p.flags, p.seglen, p.window_value, wscale)
        if p.seglen and not aflags & _NO_SUBDISSECTOR:
            if payload is not None:
                if payload:
                    p._pdu = self._reassemble(conv, fwd, rev, p.number, p.seq_raw, payload,
                                              0, len(payload))
            elif p.payload_end > p.payload_start:
                p._pdu = self._reassemble(conv, fwd, rev, p.number, p.seq_raw, p.data,
                                          p.payload_start, p.payload_end)
        p.stream = conv.stream
        p.aflags = aflags
        p.fbase, p.rbase, p.scale, p.completeness = self.tracker.shown(conv, fwd, rev, p.number)
        if aflags & _ta.DUPLICATE_ACK:
            p.dup_num, p.dup_frame = fwd.dupacknum, fwd.lastnondupack
        else:
            p.dup_num = p.dup_frame = None

    def _reassemble(self, conv: _ta.Conversation, fwd: _ta.Flow, rev: _ta.Flow, frame: int,
                    seq: int, data: bytes, start: int,
                    end: int) -> _reassembly.SegmentView | None:
        """Place one in-order segment's payload in its direction's HTTP byte stream.

        Only directions that ever carried something starting like HTTP keep state.
        """
        st = fwd.http
        if st is None:
            if data[start] not in _HTTP_FIRST:
                return None
            st = fwd.http = self.reassembler.direction(
                (conv.stream, fwd is conv.a), rev.http,
                fwd.port in _reassembly.HTTP_PORTS or rev.port in _reassembly.HTTP_PORTS)
        return self.reassembler.segment(st, frame, seq, data, start, end)

    def _frame_fields(self, number: int, ts: int, first: int, orig_len: int | None, data: bytes,
                      lt: int, comment: str | None, interface: int | None) -> dict:
        cap = len(data)
        d: dict[str, Any] = {
            "frame.number": number,
            "frame.time_epoch": ts / 1e9,
            "frame.time_relative": (ts - first) / 1e9,
            "frame.len": cap if orig_len is None else orig_len,
            "frame.cap_len": cap,
            "_raw": data,
            "_linktype": lt,
        }
        if comment:
            d["frame.comment"] = comment
        if type(ts) is not int:  # pcap.NoTimestamp: a Simple Packet Block or custom block
            d["_untimed"] = True  # the time is the previous frame's: views leave it out
        # A custom block belongs to no interface: tshark shows no interface name for it.
        if interface is not None and self.interfaces and self._named and lt != LINKTYPE_PCAPNG_CUSTOM:
            name = self._interface_name(interface)
            if name:
                d["frame.interface_name"] = name
        return d

    def _render(self, p: Packet) -> dict:
        """The field dictionary of a fast-path record, exactly as the full dissector makes it."""
        first = self._first_ns
        d = self._frame_fields(p.number, p.ts_ns, p.ts_ns if first is None else first, p.frame_len,
                               p.data, p.linktype, p.comment, p.interface)
        seg = _dissect.dissect(p.data, p.linktype, d, orig_len=p.frame_len,
                               checksums=self.checksums, payload=self.payload)
        if seg is None:  # cannot happen for a frame the fast path took; said plainly if it does
            raise AssertionError(f"frame {p.number}: fast-path frame the dissector rejects")
        self._write_analysis(d, p, seg)
        return d

    def _write_analysis(self, d: dict, p: Packet, seg: _dissect.TcpSegment) -> None:
        """The TCP analysis fields and the application layer, in Wireshark's field order."""
        aflags = p.aflags
        flags = seg.flags
        if "tcp.options.sack_le" in d:
            _dissect.relative_sack(d, seg, p.rbase, absolute=self.absolute)
        if aflags & _ta.DUPLICATE_ACK:
            d["tcp.analysis.duplicate_ack_num"] = p.dup_num
            d["tcp.analysis.duplicate_ack_frame"] = p.dup_frame
        d["tcp.stream"] = p.stream
        d["tcp.seq"] = p.seq
        d["tcp.nxtseq"] = p.nxtseq
        d["tcp.ack"] = p.ack
        scale = p.scale
        d["tcp.window_size"] = p.window
        if not flags & _SYN:
            d["tcp.window_size_scalefactor"] = scale if scale < 0 else 1 << scale
        d["tcp.completeness"] = p.completeness
        if aflags:
            for bit, field in _ta.FIELD_OF_FLAG.items():
                if aflags & bit:
                    d[field] = True
            if aflags & (_ta.FAST_RETRANSMISSION | _ta.SPURIOUS_RETRANSMISSION):
                # Wireshark files fast and spurious retransmissions under
                # tcp.analysis.retransmission too (the Info column shows only the specific tag).
                d["tcp.analysis.retransmission"] = True
        app = p._app
        view = p._pdu
        if app is not None:  # TLS or DNS over TCP (tls_dns.AppLayer)
            app.write(d, lambda: _dissect.tcp_info(d, seg, aflags, absolute=self.absolute))
        elif view is not None:
            d.update(_pdu_fields(view, self))
            # Each message's body layer once, for the columns and for the fields.
            layers = _body_layers(view, p.data[: p.payload_end], p.payload_start)
            proto, info = _pdu_columns(
                view, self.tracker.final is not None,
                lambda: _dissect.tcp_info(d, seg, aflags, absolute=self.absolute),
                _dissect.tags_text(aflags, p.dup_frame, p.dup_num) if aflags else "",
                layers=layers)
            d["_ws.col.Protocol"], d["_ws.col.Info"] = proto, info
            if proto.startswith("HTTP"):
                d["frame.protocols"] += ":http"
                lengths = []
                for layer in layers:
                    if layer is not None:
                        d["frame.protocols"] += layer[0]
                        if layer[3] is not None:
                            lengths.append(layer[3])
                if lengths:
                    d["data.len"] = lengths[0] if len(lengths) == 1 else lengths
        elif seg.seglen and _chat(d, seg, aflags, self.chat_ports):
            d["frame.protocols"] += ":chat"
        else:
            d["_ws.col.Protocol"] = "TCP"
            d["_ws.col.Info"] = _dissect.tcp_info(d, seg, aflags, absolute=self.absolute)
            if seg.seglen and not aflags & _NO_SUBDISSECTOR:
                # tshark hands payload no dissector claims to "data" (retransmitted or
                # out-of-order data it hands to nobody: no data layer there).
                d["frame.protocols"] += ":data"
                d["data.len"] = seg.seglen

    def _interface_name(self, index: int) -> str | None:
        names = self._if_names
        if index >= len(names):  # pcapng files may describe interfaces as they go
            names[:] = [getattr(i, "name", None) for i in self.interfaces or ()]
            if index >= len(names):
                return None
        return names[index]

    @property
    def _named(self) -> bool:
        """Whether any interface has a name (classic pcap never does): skip the lookup if not."""
        if self._any_name is None or len(self._if_names) != len(self.interfaces or ()):
            self._if_names[:] = [getattr(i, "name", None) for i in self.interfaces or ()]
            self._any_name = any(self._if_names)
        return self._any_name


_HTTP_FIRST = _reassembly._FIRST_BYTES


def _chat(d: dict, seg: _dissect.TcpSegment, aflags: int, chat_ports: frozenset[int]) -> bool:
    """Chat lines on the chat ports (HTTP is the reassembly's, :func:`_pdu_columns`)."""
    if aflags & _NO_SUBDISSECTOR or not (seg.sport in chat_ports or seg.dport in chat_ports):
        return False
    d["_ws.col.Protocol"] = "CHAT"
    d["_ws.col.Info"] = _chat_info(seg.payload, to_server=seg.dport in chat_ports)
    return True


def _bind() -> None:
    global _packet_line
    from tcplab.analyze.render import packet_line

    _packet_line = packet_line


_bind()
