"""TLS and DNS over TCP: which streams carry them, and their messages put back together.

What this module is for: the per-connection half of Wireshark's TLS and DNS-over-TCP
dissection. :class:`AppLayer` sees every TCP segment with payload, in capture order, and
decides as tshark 4.0 does which streams are TLS (:data:`TLS_PORTS`, or the first segment
that starts like a TLS Handshake/Application Data record on any other port — the
``tls`` heuristic, after which the whole conversation is TLS) and which are DNS (TCP 53 and
5353). It joins records and DNS messages that TCP cut across segments (RFC 1035 §4.2.2's
2-byte length before each message) and returns an :class:`AppFrame` for the segment: the
Protocol and Info columns and the ``tls.*``/``dns.*`` fields, or tshark's
``[TCP segment of a reassembled PDU]`` note on a segment that only carries part of one.

tshark's wording, checked against it:

* TLS: Info lists every whole record of the segment (``Application Data, Application
  Data``); a segment that starts a record finished later shows only the note in one pass
  and the TCP summary plus the note in two (``tshark -2``); a middle segment shows the TCP
  summary plus the note;
* DNS over TCP: Info is the last whole message of the segment (two queries in one segment
  show the second), a segment with only part of one shows the TCP summary plus the note.

Retransmitted and out-of-order segments are not given to either dissector (as for HTTP:
:func:`tcplab.analyze.dissect.app_layer`); a gap in the byte stream drops a half-received
record. Memory is bounded: at most one record (≤ 18,437 bytes) or DNS message (≤ 65,537
bytes) per direction, and :data:`MAX_PENDING_BYTES` over all connections; past it a cut
record is not kept and its tail shows as plain TCP.

What it must never do: I/O, or keep anything per packet.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from tcplab.analyze import dns as _dns
from tcplab.analyze import tcp_analysis as _ta
from tcplab.analyze.tls import TlsSession, looks_like_tls, record_header_ok
from tcplab.packet import tls as _tls

#: TCP ports Wireshark 4.0 hands to its TLS dissector by default (``tshark -G decodes``).
TLS_PORTS = frozenset({324, 443, 465, 636, 802, 853, 993, 995, 1300, 2221, 2443, 3249, 3250,
                       3251, 3252, 3496, 5061, 5671, 5684, 5868, 8883, 11207, 19999, 27017})
DNS_PORTS = _dns.TCP_PORTS
#: Record types the TLS heuristic accepts as a conversation's first (Handshake, Application Data).
TLS_HEURISTIC_TYPES = (22, 23)

#: Bytes of cut records and messages kept over all connections (each direction holds at
#: most one): a capture of many half-sent records cannot grow memory past this.
MAX_PENDING_BYTES = 64 * 1024 * 1024
#: Frames a first pass records as carrying part of a message completed later (for ``-2``'s
#: ``tcp.reassembled_in``); past it the rest go without the field.
MAX_INDEX_ENTRIES = 1 << 20

NOTE = "[TCP segment of a reassembled PDU]"
_NO_SUBDISSECTOR = (_ta.RETRANSMISSION | _ta.FAST_RETRANSMISSION | _ta.OUT_OF_ORDER
                    | _ta.SPURIOUS_RETRANSMISSION)
_M32 = 0xFFFFFFFF
_U16 = struct.Struct("!H")
_TLS, _DNS = 1, 2

#: AppFrame.note values: columns given; the TCP summary plus the note; the note alone.
SHOWN, TCP_AND_NOTE, NOTE_ONLY = 0, 1, 2


class AppFrame:
    """What TLS or DNS made of one segment: columns, fields, and the layers it adds.

    ``protocols`` is appended to ``frame.protocols`` (``":tls"``, ``":dns"``, or ``""`` for
    a segment TCP only buffered); ``note`` says whether the columns are the TLS/DNS ones
    or TCP's with the reassembly note.
    """

    __slots__ = ("protocol", "info", "fields", "protocols", "note", "malformed")

    def __init__(self, protocol: str, info: str, fields: dict, protocols: str, note: int,
                 malformed: str | None = None) -> None:
        self.protocol = protocol
        self.info = info
        self.fields = fields
        self.protocols = protocols
        self.note = note
        self.malformed = malformed

    def columns(self, tcp_info: Callable[[], str]) -> tuple[str, str]:
        """Protocol and Info; ``tcp_info`` makes the TCP summary when the note needs it."""
        if self.note == SHOWN:
            return self.protocol, self.info
        if self.note == NOTE_ONLY:
            return "TCP", NOTE
        return "TCP", f"{tcp_info()} {NOTE}"

    def write(self, d: dict, tcp_info: Callable[[], str]) -> None:
        """Put the fields, columns and protocol chain into a packet's field dictionary."""
        d.update(self.fields)
        d["frame.protocols"] += self.protocols
        d["_ws.col.Protocol"], d["_ws.col.Info"] = self.columns(tcp_info)
        if self.malformed:
            d["_ws.malformed"] = self.malformed
            d["_ws.expert"] = "Malformed Packet"


class _Direction:
    """One side's byte stream: the cut record/message waiting for its next segment."""

    __slots__ = ("buf", "next_seq", "frames")

    def __init__(self) -> None:
        self.buf: bytearray | None = None
        self.next_seq = 0
        self.frames: list[int] = []  # the frames that carried ``buf`` (its message so far)


class _Stream:
    __slots__ = ("kind", "tls", "sides")

    def __init__(self, kind: int) -> None:
        self.kind = kind
        self.tls: TlsSession | None = None
        self.sides: dict[tuple[str, int], _Direction] = {}


class AppLayer:
    """TLS and DNS-over-TCP state for one read of a capture (see the module docstring).

    ``two_pass`` words the first segment of a cut TLS record as ``tshark -2`` does;
    ``final_versions`` (stream → TLS version, from :meth:`final_versions` of a first pass)
    makes every frame of a stream name its final version, as ``tshark -2`` does;
    ``index`` (a first pass's :meth:`completions`) gives the segments carrying the first
    part of a message the frame completing it (``tcp.reassembled_in``).
    """

    def __init__(self, *, two_pass: bool = False,
                 final_versions: dict[int, int] | None = None,
                 index: dict[int, int] | None = None) -> None:
        self.two_pass = two_pass
        self._final = final_versions or {}
        self._index = index
        #: frame → the frame completing the message it carries part of (recorded here).
        self._completions: dict[int, int] = {}
        self._first_end = 0  # end of the first whole message in the last joined buffer
        #: Stream index → its TLS/DNS state, for the streams that are TLS or DNS.
        self.streams: dict[int, _Stream] = {}
        self._plain: set[int] = set()  # streams on no TLS/DNS port (the heuristic may still match)
        self._pending = 0

    def final_versions(self) -> dict[int, int]:
        """Each TLS stream's session version at the end of the read (0 = never learned)."""
        return {n: s.tls.version for n, s in self.streams.items()
                if s.tls is not None and s.tls.version}

    def completions(self) -> dict[int, int]:
        """Each frame carrying part of a message completed by a later one → that frame."""
        return self._completions

    def feed(self, frame: int, stream: int, src: str, sport: int, dport: int, seq: int,
             data: bytes, start: int, end: int, aflags: int) -> AppFrame | None:
        """One TCP segment's payload ``data[start:end]``; None if TLS/DNS have nothing to say."""
        if aflags & _NO_SUBDISSECTOR:
            return None
        streams = self.streams
        st = streams.get(stream)
        if st is None:
            st = self._new_stream(sport, dport) if stream not in self._plain else None
            if st is None:
                # No port dissector: the TLS heuristic looks at every segment until it matches.
                if not looks_like_tls(data, start):
                    self._plain.add(stream)
                    return None
                st = _Stream(_TLS)
            streams[stream] = st
        if st.kind == _TLS and st.tls is None:
            st.tls = TlsSession(self._final.get(stream, 0))
        side = st.sides.get((src, sport))
        if side is None:
            side = st.sides[(src, sport)] = _Direction()
        payload = data[start:end]
        buf = side.buf
        continuing = buf is not None and seq == side.next_seq
        if buf is not None:
            self._pending -= len(buf)
            side.buf = None
        joined = bytes(buf) + payload if continuing else payload  # type: ignore[arg-type]
        prior = side.frames if continuing else []
        self._first_end = 0
        if st.kind == _DNS:
            out = self._dns(side, seq, payload, joined, continuing)
        else:
            out = self._tls(st.tls, side, frame, seq, payload, joined, continuing)  # type: ignore[arg-type]
        done = continuing and self._first_end > 0  # completes the message begun before
        if side.buf is not None:  # a message goes on in the next segment
            side.frames = [*prior, frame] if continuing and not done else [frame]
        else:
            side.frames = []
        if out is not None:
            self._reassembly_fields(out, frame, prior if done else None, side.buf is not None)
        return out

    def _reassembly_fields(self, out: AppFrame, frame: int, prior: list[int] | None,
                           opens: bool) -> None:
        """TCP's reassembly fields, as tshark writes them for a PDU over several segments:
        on the completing segment the frames and the length, on the others (``-2``) the
        frame completing it."""
        if prior is not None:
            out.fields = {**out.fields, "tcp.segment": [*prior, frame],
                          "tcp.segment.count": len(prior) + 1,
                          "tcp.reassembled.length": self._first_end}
            completions = self._completions
            if len(completions) < MAX_INDEX_ENTRIES:
                for f in prior:
                    completions[f] = frame
        if self._index is not None and (opens or prior is None and out.note != SHOWN):
            done = self._index.get(frame)
            if done is not None:
                out.fields = {**out.fields, "tcp.reassembled_in": done}

    @staticmethod
    def _new_stream(sport: int, dport: int) -> _Stream | None:
        # tshark tries the lower port's dissector first.
        for port in sorted((sport, dport)):
            if port in DNS_PORTS:
                return _Stream(_DNS)
            if port in TLS_PORTS:
                return _Stream(_TLS)
        return None

    def _keep(self, side: _Direction, rest: bytes, seq: int, seglen: int) -> bool:
        """Keep a cut record/message for the next segment, within the global budget."""
        if self._pending + len(rest) > MAX_PENDING_BYTES:
            return False
        side.buf = bytearray(rest)
        side.next_seq = (seq + seglen) & _M32
        self._pending += len(rest)
        return True

    def _tls(self, session: TlsSession, side: _Direction, frame: int, seq: int, payload: bytes,
             buf: bytes, continuing: bool) -> AppFrame | None:
        if not continuing and len(buf) >= 5 and not record_header_ok(buf, 0):
            return None  # not a record: tshark leaves the segment to TCP ("tcp:data")
        records: list[tuple[int, int, bytes]] = []
        pos = 0
        n = len(buf)
        first_end = 0
        while n - pos >= 5 and record_header_ok(buf, pos):
            ctype, version, length = _tls.RECORD_HEADER.unpack_from(buf, pos)
            stop = pos + 5 + length
            if stop > n:
                break
            records.append((ctype, version, buf[pos + 5 : stop]))
            if not first_end:
                first_end = stop
            pos = stop
        self._first_end = first_end
        rest = n - pos
        if rest and (rest < 5 or record_header_ok(buf, pos)):
            self._keep(side, buf[pos:], seq, len(payload))
        if not records:
            if continuing:
                return AppFrame("TCP", "", {}, "", TCP_AND_NOTE)
            return AppFrame("TCP", "", {}, ":tls", TCP_AND_NOTE if self.two_pass else NOTE_ONLY)
        fields: dict = {}
        protocol, words, malformed, stopped = session.records(side, frame, records, fields)
        info = ", ".join(words) + ("[Malformed Packet]" if stopped else "")
        # tshark calls TLS once for a record it reassembled and once more for the bytes after it.
        calls = 2 if continuing and first_end < n else 1
        return AppFrame(protocol, info, fields, ":tls" * calls, SHOWN, malformed)

    def _dns(self, side: _Direction, seq: int, payload: bytes, buf: bytes,
             continuing: bool) -> AppFrame:
        pos = 0
        n = len(buf)
        fields: dict = {}
        info = ""
        malformed = None
        count = 0
        while n - pos >= 2:
            length = _U16.unpack_from(buf, pos)[0]
            if pos + 2 + length > n:
                break
            text, values, bad = _dns.dissect_message(buf[pos + 2 : pos + 2 + length])
            _dns.merge(fields, {"dns.length": [length], **values})
            info, malformed = text, bad
            count += 1
            pos += 2 + length
            if count == 1:
                self._first_end = pos
        if pos < n:
            self._keep(side, buf[pos:], seq, len(payload))
        if not count:
            return AppFrame("TCP", "", {}, "", TCP_AND_NOTE)
        return AppFrame("DNS", info, fields, ":dns", SHOWN, malformed)


def _values(d: dict, name: str) -> list:
    value = d.get(name)
    return [] if value is None else value if isinstance(value, list) else [value]


def detail_lines(d: dict) -> list[str]:
    """The TLS and DNS sections of the detail tree, from a packet's fields (names as tshark -V)."""
    from tcplab.analyze.dns import type_name
    from tcplab.analyze.tls import VERSION_SHORT_NAMES

    ind = "    "
    lines: list[str] = []
    versions = _values(d, "tls.record.version")
    if versions:
        lines.append("Transport Layer Security")
        types = iter(_values(d, "tls.record.content_type") + _values(d, "tls.record.opaque_type"))
        for version, length in zip(versions, _values(d, "tls.record.length"), strict=False):
            ctype = next(types, None)
            name = _tls.CONTENT_TYPE_NAMES.get(ctype, "Opaque") if ctype is not None else "Opaque"
            lines.append(f"{ind}{d.get('_ws.col.Protocol', 'TLS')} Record Layer: "
                         f"{name} ({ctype}), Version: 0x{version:04x}, Length: {length}")
        for htype, hlen in zip(_values(d, "tls.handshake.type"),
                               _values(d, "tls.handshake.length"), strict=False):
            lines.append(f"{ind}Handshake Type: {_tls.HANDSHAKE_TYPE_NAMES.get(htype, htype)} "
                         f"({htype}), Length: {hlen}")
        for sni in _values(d, "tls.handshake.extensions_server_name"):
            lines.append(f"{ind}Server Name: {sni}")
        for v in _values(d, "tls.handshake.extensions.supported_version"):
            lines.append(f"{ind}Supported Version: {VERSION_SHORT_NAMES.get(v, 'TLS')} (0x{v:04x})")
    for i, txid in enumerate(_values(d, "dns.id")):
        response = _values(d, "dns.flags.response")[i]
        flags = _values(d, "dns.flags")[i]
        lines.append(f"Domain Name System ({'response' if response else 'query'})")
        lines.append(f"{ind}Transaction ID: 0x{txid:04x}")
        lines.append(f"{ind}Flags: 0x{flags:04x}")
    if "dns.id" in d:
        for name, qtype in zip(_values(d, "dns.qry.name"), _values(d, "dns.qry.type"), strict=False):
            lines.append(f"{ind}Query: {name}: type {type_name(qtype)}")
        for name, rtype, ttl in zip(_values(d, "dns.resp.name"), _values(d, "dns.resp.type"),
                                    _values(d, "dns.resp.ttl"), strict=False):
            lines.append(f"{ind}Answer: {name}: type {type_name(rtype)}, TTL {ttl}")
        for kind in ("a", "aaaa", "cname", "ns", "ptr.domain_name", "mx.mail_exchange"):
            for value in _values(d, f"dns.{kind}"):
                lines.append(f"{ind}{kind.split('.')[0].upper()}: {value}")
    return lines
