"""The network layers the fast TCP/IPv4 path never meets: fragments, ICMP, ICMPv6, IPv6 extension headers.

What this module is for: the analyzer's view of the frames between "IP" and "a TCP segment"
that Wireshark users still expect to read — kernel-fragmented datagrams, pings, the
errors routers send back, Neighbor Discovery. :func:`tcplab.analyze.dissect.dissect` calls
it only for a fragment, an ICMP/ICMPv6 message or an IPv6 packet with a Fragment header,
so the per-packet cost of ordinary TCP frames is untouched.

The wording and the fields are tshark 4.0's (checked by
``tests/fidelity/test_network_layers.py``):

* fragments are reassembled by default (Wireshark's ``ip.defragment`` and
  ``ipv6.defragment``): the frame completing a datagram shows its upper layer (ICMP, UDP…)
  with ``ip.fragment``/``ipv6.fragment`` (the frames it was built from),
  ``*.fragment.count`` and ``*.reassembled.length``; the others say
  ``Fragmented IP protocol (proto=ICMP 1, off=1256, ID=8ad8)`` or ``IPv6 fragment (off=1232
  more=y ident=0x… nxt=58)``. With two passes (``tshark -2``) the earlier fragments also get
  ``ip.reassembled_in``/``ipv6.reassembled.in`` (and IPv4 ``[Reassembled in #N]`` in Info).
  Without reassembly (``--no-defrag``), a first fragment is dissected as far as its bytes go;
* ICMP echo Info is ``Echo (ping) request  id=0x7e57, seq=1/256, ttl=64``; a reply says
  ``(request in N)`` (``icmp.resp_to``, ``icmp.resptime`` in ms); with two passes a request
  says ``(reply in N)`` (``icmp.resp_in``) or ``(no response found!)``. ICMPv6 the same;
* the IP header (and UDP/TCP ports) quoted inside an ICMP error are a second ``ip``/``ipv6``
  layer: every such field holds two values, outer first (``ip.src`` = [router, original
  sender]), as tshark's ``-T fields`` prints ``10.0.0.2,10.0.0.1`` — so ``-Y 'udp'`` and
  ``-Y 'ip.proto == 17'`` match an ICMP port-unreachable, as they do in Wireshark.

Memory is bounded: :class:`tcplab.packet.defrag.Defragmenter`'s limits (partial datagrams,
fragments per datagram, buffered bytes, 30 s/60 s timeouts), a capped echo table, and a
capped first-pass table (:data:`FIRST_PASS_MAX`). What it must never do: I/O, or keep
anything per packet beyond those tables.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from tcplab.analyze import dns as _dns
from tcplab.analyze.render import add_field as _add
from tcplab.packet import defrag as _defrag
from tcplab.packet import icmp as _icmp
from tcplab.packet import icmpv6 as _icmpv6
from tcplab.packet import ipv4 as _ipv4
from tcplab.packet import ipv6 as _ipv6
from tcplab.packet.checksum import internet_checksum, ones_complement_sum, pseudo_header
from tcplab.packet.errors import ParseError

__all__ = ["FILTER_FIELDS", "FIRST_PASS_MAX", "ECHO_TABLE_MAX", "FirstPass", "NetworkLayers"]

#: Echo requests waiting for their reply. A ping flood of unanswered requests beyond this
#: forgets the oldest (their late replies then show no "(request in N)").
ECHO_TABLE_MAX = 4096
#: Frames the first of two passes remembers (fragment → completing frame, request →
#: reply): 8 bytes of ints and a dict slot each, about 20 MB at the cap. Past it, the second
#: pass shows those frames as one pass would (no "(reply in N)", no "[Reassembled in #N]").
FIRST_PASS_MAX = 200_000

#: Display-filter types of the fields this module writes (merged into filter.FIELDS).
FILTER_FIELDS: dict[str, tuple[str, int | None]] = {
    "ipv6.version": ("unsigned integer", 15),
    "ipv6.tclass": ("unsigned integer", 0xFF),
    "ipv6.flow": ("unsigned integer", 0xFFFFF),
    "ip.fragment": ("unsigned integer", 0xFFFFFFFF),
    "ip.fragment.count": ("unsigned integer", 0xFFFFFFFF),
    "ip.fragment.overlap": ("flag", None),
    "ip.fragment.overlap.conflict": ("flag", None),
    "ip.reassembled_in": ("unsigned integer", 0xFFFFFFFF),
    "ipv6.fragment.overlap": ("flag", None),
    "ip.fragment.error": ("unsigned integer", 0xFFFFFFFF),
    "ipv6.fragment.error": ("unsigned integer", 0xFFFFFFFF),
    "ipv6.fragment.overlap.conflict": ("flag", None),
    "ip.reassembled.length": ("unsigned integer", 0xFFFFFFFF),
    "ipv6.fraghdr.nxt": ("unsigned integer", 0xFF),
    "ipv6.fraghdr.offset": ("unsigned integer", 0x1FFF),
    "ipv6.fraghdr.more": ("boolean", None),
    "ipv6.fraghdr.ident": ("unsigned integer", 0xFFFFFFFF),
    "ipv6.fragment": ("unsigned integer", 0xFFFFFFFF),
    "ipv6.fragment.count": ("unsigned integer", 0xFFFFFFFF),
    "ipv6.reassembled.in": ("unsigned integer", 0xFFFFFFFF),
    "ipv6.reassembled.length": ("unsigned integer", 0xFFFFFFFF),
    "icmp.checksum": ("unsigned integer", 0xFFFF),
    "icmp.checksum.status": ("checksum status", None),
    "icmp.ident": ("unsigned integer", 0xFFFF),
    "icmp.seq": ("unsigned integer", 0xFFFF),
    "icmp.ident_le": ("unsigned integer", 0xFFFF),
    "icmp.seq_le": ("unsigned integer", 0xFFFF),
    "icmp.resp_in": ("unsigned integer", 0xFFFFFFFF),
    "icmp.resp_to": ("unsigned integer", 0xFFFFFFFF),
    "icmp.resptime": ("number", None),
    "icmp.resp_not_found": ("flag", None),
    "icmp.mtu": ("unsigned integer", 0xFFFF),
    "icmp.data_time": ("number", None),
    "icmp.data_time_relative": ("number", None),
    "icmpv6.type": ("unsigned integer", 0xFF),
    "icmpv6.code": ("unsigned integer", 0xFF),
    "icmpv6.checksum": ("unsigned integer", 0xFFFF),
    "icmpv6.checksum.status": ("checksum status", None),
    "icmpv6.echo.identifier": ("unsigned integer", 0xFFFF),
    "icmpv6.echo.sequence_number": ("unsigned integer", 0xFFFF),
    "icmpv6.resp_in": ("unsigned integer", 0xFFFFFFFF),
    "icmpv6.resp_to": ("unsigned integer", 0xFFFFFFFF),
    "icmpv6.resptime": ("number", None),
    "icmpv6.resp_not_found": ("flag", None),
    "icmpv6.mtu": ("unsigned integer", 0xFFFFFFFF),
    "icmpv6.nd.ns.target_address": ("IPv6 address", None),
    "icmpv6.nd.na.target_address": ("IPv6 address", None),
    "icmpv6.nd.na.flag.r": ("boolean", None),
    "icmpv6.nd.na.flag.s": ("boolean", None),
    "icmpv6.nd.na.flag.o": ("boolean", None),
    "icmpv6.opt.src_linkaddr": ("string", None),
    "icmpv6.opt.target_linkaddr": ("string", None),
    "data.len": ("unsigned integer", 0xFFFFFFFF),
    "pppoe.session_id": ("unsigned integer", 0xFFFF),
    "ppp.protocol": ("unsigned integer", 0xFFFF),
    "ppp.address": ("unsigned integer", 0xFF),
    "ppp.control": ("unsigned integer", 0xFF),
    "ppp.code": ("unsigned integer", 0xFF),
    "ppp.identifier": ("unsigned integer", 0xFF),
    "ppp.length": ("unsigned integer", 0xFFFF),
    "lcp.magic_number": ("unsigned integer", 0xFFFFFFFF),
    "pppoe.code": ("unsigned integer", 0xFF),
    "pppoe.payload_length": ("unsigned integer", 0xFFFF),
    "pppoed.tags.service_name": ("string", None),
    "pppoed.tags.ac_name": ("string", None),
}

_PROTO_NAMES = {1: "ICMP", 6: "TCP", 17: "UDP", 58: "ICMPv6", 2: "IGMP", 47: "GRE", 50: "ESP"}
# The fields of an IPv4 header, in the order tshark lists them (each becomes a list when an
# ICMP error quotes a second header).
_IPV4_FIELDS = ("ip.version", "ip.hdr_len", "ip.dsfield", "ip.len", "ip.id", "ip.flags",
                "ip.frag_offset", "ip.ttl", "ip.proto", "ip.checksum", "ip.checksum.status",
                "ip.src", "ip.dst")
_IPV6_FIELDS = ("ip.version", "ipv6.version", "ipv6.tclass", "ipv6.flow", "ipv6.plen",
                "ipv6.nxt", "ipv6.hlim", "ipv6.src", "ipv6.dst")
_QUAD = struct.Struct("!HHHH")
_NA_FLAGS = ((0x80000000, "rtr"), (0x40000000, "sol"), (0x20000000, "ovr"))


def _proto_name(proto: int) -> str:
    return _PROTO_NAMES.get(proto) or f"IP protocol {proto}"


@dataclass(slots=True)
class FirstPass:
    """What the first of two passes learnt for the second (``tshark -2``), bounded.

    ``reassembled_in``: fragment frame → the frame that completed its datagram;
    ``reply_in``: echo request frame → its reply's frame; ``last_frame``: the last frame
    recorded before a table filled (frames after it are shown as one pass would).
    """

    reassembled_in: dict[int, int] = field(default_factory=dict)
    reply_in: dict[int, int] = field(default_factory=dict)
    last_frame: int | None = None

    def _full(self, number: int) -> bool:
        if len(self.reassembled_in) + len(self.reply_in) >= FIRST_PASS_MAX:
            if self.last_frame is None:
                self.last_frame = number - 1
            return True
        return False

    def knows(self, number: int) -> bool:
        """Whether the first pass saw this frame with room to record it."""
        return self.last_frame is None or number <= self.last_frame


class _Echo:
    __slots__ = ("request", "ts_ns", "reply")

    def __init__(self, request: int, ts_ns: int) -> None:
        self.request = request
        self.ts_ns = ts_ns
        self.reply: int | None = None


class NetworkLayers:
    """Per-capture state of the network layers: the defragmenter and the echo table.

    ``defragment`` reassembles IPv4/IPv6 fragments (Wireshark's default); ``limits`` bounds
    the reassembly buffers; ``first_pass`` is what a first pass recorded (two-pass mode);
    ``record`` makes this the first pass, filling :attr:`learnt`. The analyzer sets
    :attr:`number` and :attr:`ts_ns` before each frame it dissects.
    """

    def __init__(self, *, defragment: bool = True, limits: _defrag.Limits | None = None,
                 first_pass: FirstPass | None = None, record: bool = False) -> None:
        self.defragment = defragment
        # Overlapping IPv6 fragments are reassembled as Wireshark does (not RFC 5722's drop).
        self.defrag = _defrag.Defragmenter(limits, rfc5722=False)
        self.first_pass = first_pass
        self.learnt: FirstPass | None = FirstPass() if record else None
        self.number = 0
        self.ts_ns = 0
        self._echoes: OrderedDict[tuple, _Echo] = OrderedDict()

    # -- IPv4 ------------------------------------------------------------------------------
    def ipv4_fragment(self, data: bytes, off: int, ihl: int, total: int, d: dict, protos: str,
                      checksums: bool, keep_payload: bool = True) -> Any:
        """A fragment (MF set or offset non-zero): hold it, or show the reassembled datagram.

        Returns the TCP segment when the reassembled datagram is TCP (see :func:`_tcp`), else None.
        """
        frag = d["ip.frag_offset"]
        byte_off = frag * 8
        proto = d["ip.proto"]
        ident = d["ip.id"]
        more = bool(d["ip.flags"] & 1)
        start = off + ihl
        piece = data[start : off + total]
        info = f"Fragmented IP protocol (proto={_proto_name(proto)} {proto}, off={byte_off}, ID={ident:04x})"
        if not self.defragment:
            if byte_off == 0 and proto in (1, 6, 17):
                self._upper4(piece, data[off + 12 : off + 16], data[off + 16 : off + 20], proto, d,
                             protos, checksums, whole=False)
                return None
            self._fragment_only(d, protos, "IPv4", info, len(piece))
            return None
        header = _ipv4.IPv4Header(src=data[off + 12 : off + 16], dst=data[off + 16 : off + 20],
                                  protocol=proto, identification=ident, mf=more,
                                  fragment_offset=frag)
        out = self.defrag.feed_ipv4(header, piece, self.ts_ns, self.number)
        if out.datagram is None:
            where = self._reassembled_in(d, "ip.reassembled_in")
            if where is not None:
                info += f" [Reassembled in #{where}]"
            self._fragment_only(d, protos, "IPv4", info, len(piece))
            return None
        dg = out.datagram
        self._learn(dg)
        _overlap(d, "ip", dg, out.conflict)
        d["_ip.fragments"] = dg.fragments
        d["ip.fragment"] = [tag for tag, _o, _l in dg.fragments if tag not in dg.conflicts]
        if dg.conflicts:
            d["ip.fragment.error"] = [tag for tag, _o, _l in dg.fragments if tag in dg.conflicts]
        d["ip.fragment.count"] = len(dg.fragments)
        d["ip.reassembled.length"] = len(dg.payload)
        return self._upper4(dg.payload, data[off + 12 : off + 16], data[off + 16 : off + 20],
                            dg.protocol, d, protos, checksums, whole=True, keep_payload=keep_payload)

    def _upper4(self, payload: bytes, rsrc: bytes, rdst: bytes, proto: int, d: dict, protos: str,
                checksums: bool, *, whole: bool, keep_payload: bool = True) -> Any:
        n = len(payload)
        if proto == 1:
            self.icmp(payload, 0, n, d, protos, checksums and whole)
        elif proto == 17:
            return _udp(payload, rsrc, rdst, d, protos, checksums, whole, keep_payload, self)
        elif proto == 6 and whole:
            return _tcp(payload, rsrc, rdst, d, protos, checksums, keep_payload)
        elif proto == 6:
            _tcp_alone(payload, rsrc, rdst, d, protos)
        else:
            d["frame.protocols"] = protos + ":data"
            d["_ws.col.Protocol"] = "IPv4"
            d["_ws.col.Info"] = f"{_proto_name(proto)} ({proto})"
            d["data.len"] = n
        return None

    @staticmethod
    def _fragment_only(d: dict, protos: str, protocol: str, info: str, length: int) -> None:
        d["frame.protocols"] = protos + ":data"
        d["_ws.col.Protocol"] = protocol
        d["_ws.col.Info"] = info
        d["data.len"] = length

    def _reassembled_in(self, d: dict, name: str) -> int | None:
        fp = self.first_pass
        if fp is None:
            return None
        where = fp.reassembled_in.get(self.number)
        if where is not None:
            d[name] = where
        return where

    def _learn(self, dg: _defrag.Datagram) -> None:
        learnt = self.learnt
        if learnt is None:
            return
        for tag, _o, _l in dg.fragments:
            if tag != self.number and not learnt._full(self.number):
                learnt.reassembled_in[tag] = self.number  # type: ignore[index]

    # -- ICMP ------------------------------------------------------------------------------
    def icmp(self, data: bytes, l4: int, end: int, d: dict, protos: str, checksums: bool) -> None:
        """An ICMP message in ``data[l4:end]`` (RFC 792): fields, Info, echo pairing, quoted header."""
        protos += ":icmp"
        d["frame.protocols"] = protos
        d["_ws.col.Protocol"] = "ICMP"
        try:
            msg = _icmp.parse(data, l4, end)
        except ParseError as err:
            _malformed(d, err, "ICMP")
            return
        d["icmp.type"] = msg.icmp_type
        d["icmp.code"] = msg.code
        d["icmp.checksum"] = msg.checksum
        if checksums and end > len(data):  # cut by the snapshot length: tshark cannot judge
            d["icmp.checksum.status"] = "unverified"
        elif checksums:
            good = ones_complement_sum(data[l4:end]) == 0xFFFF
            d["icmp.checksum.status"] = "good" if good else "bad"
        if msg.identifier is not None and msg.sequence is not None:
            ident, seq = msg.identifier, msg.sequence
            d["icmp.ident"] = ident
            d["icmp.ident_le"] = ((ident & 0xFF) << 8) | (ident >> 8)
            d["icmp.seq"] = seq
            d["icmp.seq_le"] = ((seq & 0xFF) << 8) | (seq >> 8)
            info = msg.summary(_first(d.get("ip.ttl")))
            if msg.icmp_type in (_icmp.ECHO_REQUEST, _icmp.ECHO_REPLY):
                info += self._pair(d, "icmp", msg.icmp_type == _icmp.ECHO_REQUEST, ident, seq,
                                   d.get("ip.src"), d.get("ip.dst"))
            d["_ws.col.Info"] = info
            if msg.icmp_type in (_icmp.ECHO_REQUEST, _icmp.ECHO_REPLY):  # others: fields, no data
                data_at = l4 + 8
                if min(end, len(data)) - data_at >= 8:  # captured: a cut echo may lack them
                    data_at += self._data_time(data, data_at, d)
                if end > data_at:
                    d["frame.protocols"] = protos + ":data"
                    d["data.len"] = end - data_at
            return
        if msg.icmp_type in (42, 43):  # RFC 8335 extended echo: identifier, then 8-bit sequence
            ident = msg.rest >> 16
            d["icmp.ident"] = ident
            d["icmp.ident_le"] = ((ident & 0xFF) << 8) | (ident >> 8)
        d["_ws.col.Info"] = msg.summary()
        if msg.icmp_type == _icmp.DEST_UNREACHABLE and msg.code == 4:
            d["icmp.mtu"] = msg.rest & 0xFFFF
        if msg.is_error and end - l4 >= 8 + 20:
            self._quoted4(data, l4 + 8, end, d, protos, checksums)

    def _data_time(self, data: bytes, at: int, d: dict) -> int:
        """The send time ``ping`` writes at the start of its data, read as Wireshark does.

        packet-icmp.c takes the first 8 bytes as seconds and microseconds (big-endian, else
        little-endian) when they fall within a day of the frame's time; 64-bit Linux ping
        writes a 16-byte timeval, whose first 8 bytes then read as (seconds, 0). Returns the
        bytes taken (8, or 0 when the data does not look like a time).
        """
        frame_secs = self.ts_ns // 1_000_000_000
        for fmt in ("!II", "<II"):
            secs, usecs = struct.unpack_from(fmt, data, at)
            diff = (secs - frame_secs) & 0xFFFFFFFF
            if diff >= 1 << 31:
                diff -= 1 << 32
            if abs(diff) < 86400 and usecs < 1_000_000:
                d["icmp.data_time"] = secs + usecs / 1e6
                d["icmp.data_time_relative"] = (self.ts_ns - secs * 1_000_000_000
                                                - usecs * 1000) / 1e9
                return 8
        return 0

    @staticmethod
    def _quoted4(data: bytes, at: int, end: int, d: dict, protos: str, checksums: bool = False) -> None:
        """The IPv4 header (and transport ports) an ICMP error quotes, as a second ip layer."""
        inner = data[at:end]
        try:
            ip = _ipv4.parse(inner)
        except ParseError:
            return
        ihl = ip.header_length
        if ihl > len(inner):
            return
        values = (ip.version, ihl, inner[1], ip.total_length, ip.identification,
                  inner[6] >> 5, ip.fragment_offset, ip.ttl, ip.protocol,
                  int.from_bytes(inner[10:12], "big"),
                  "good" if ones_complement_sum(inner[:ihl]) == 0xFFFF else "bad",
                  ip.src_str, ip.dst_str)
        for name, value in zip(_IPV4_FIELDS, values, strict=True):
            _add(d, name, value)
        protos += ":ip"
        l4 = ihl
        if ip.fragment_offset == 0:
            protos = _quoted_transport(inner, l4, len(inner), ip.protocol, d, protos,
                                       (inner[12:16], inner[16:20]) if checksums else None)
        d["frame.protocols"] = protos

    # -- IPv6 ------------------------------------------------------------------------------
    def ipv6(self, data: bytes, off: int, h: _ipv6.IPv6Header, end: int, d: dict, protos: str,
             cut: bool, checksums: bool, keep_payload: bool = True) -> Any:
        """An IPv6 packet with a Fragment header, or carrying ICMPv6: returns a TcpSegment or None."""
        from tcplab.analyze import dissect as _dissect

        f = h.fragment
        if f is not None:
            protos += ":ipv6.fraghdr"
            d["frame.protocols"] = protos
            d["ipv6.fraghdr.nxt"] = f.next_header
            d["ipv6.fraghdr.offset"] = f.offset_units
            d["ipv6.fraghdr.more"] = f.more
            d["ipv6.fraghdr.ident"] = f.identification
            if f.is_fragment:
                start = off + next(e.offset + e.length for e in h.extensions
                                   if e.header_type == _ipv6.FRAGMENT)
                piece = data[start:end]
                info = (f"IPv6 fragment (off={f.offset} more={'y' if f.more else 'n'} "
                        f"ident=0x{f.identification:08x} nxt={f.next_header})")
                if not self.defragment:
                    if f.offset == 0 and f.next_header in (6, 17, 58):
                        return self._upper6(piece, h, d, protos, False, checksums, keep_payload)
                    self._fragment_only(d, protos, "IPv6", info, len(piece))
                    return None
                out = self.defrag.feed_ipv6(h.src, h.dst, f, piece, self.ts_ns, self.number)
                if out.datagram is None:
                    self._reassembled_in(d, "ipv6.reassembled.in")
                    self._fragment_only(d, protos, "IPv6", info, len(piece))
                    return None
                dg = out.datagram
                self._learn(dg)
                _overlap(d, "ipv6", dg, out.conflict)
                d["_ip.fragments"] = dg.fragments
                d["ipv6.fragment"] = [tag for tag, _o, _l in dg.fragments if tag not in dg.conflicts]
                if dg.conflicts:
                    d["ipv6.fragment.error"] = [tag for tag, _o, _l in dg.fragments
                                                if tag in dg.conflicts]
                d["ipv6.fragment.count"] = len(dg.fragments)
                d["ipv6.reassembled.length"] = len(dg.payload)
                return self._upper6(dg.payload, h, d, protos, True, checksums, keep_payload,
                                    dg.protocol)
        if h.upper_protocol == _icmpv6.PROTOCOL_NUMBER:
            self.icmpv6(data, off + h.upper_offset, end, h, d, protos, checksums)
            return None
        l4 = off + h.upper_offset
        if h.upper_protocol == 6:
            return _dissect._dissect_tcp(data, l4, end, h.src, h.dst, h.src_str, h.dst_str, protos,
                                         d, cut, checksums, keep_payload)
        if h.upper_protocol == 17:
            return _dissect._dissect_udp(data, l4, end, h.src, h.dst, protos, d, cut, checksums,
                                         keep_payload, self)
        d["_ws.col.Protocol"] = "IPv6"
        d["_ws.col.Info"] = f"{_proto_name(h.upper_protocol)} ({h.upper_protocol})"
        return None

    def _upper6(self, payload: bytes, h: _ipv6.IPv6Header, d: dict, protos: str, whole: bool,
                checksums: bool, keep_payload: bool = True, proto: int | None = None) -> Any:
        proto = h.fragment.next_header if proto is None and h.fragment else proto
        n = len(payload)
        if proto == _icmpv6.PROTOCOL_NUMBER:
            self.icmpv6(payload, 0, n, h, d, protos, checksums and whole)
        elif proto == 17:
            return _udp(payload, h.src, h.dst, d, protos, checksums, whole, keep_payload, self)
        elif proto == 6 and whole:
            return _tcp(payload, h.src, h.dst, d, protos, checksums, keep_payload)
        elif proto == 6:
            _tcp_alone(payload, h.src, h.dst, d, protos)
        else:
            d["frame.protocols"] = protos + ":data"
            d["_ws.col.Protocol"] = "IPv6"
            d["_ws.col.Info"] = f"{_proto_name(proto or 0)} ({proto})"
            d["data.len"] = n
        return None

    def icmpv6(self, data: bytes, l4: int, end: int, h: _ipv6.IPv6Header, d: dict, protos: str,
               checksums: bool) -> None:
        """An ICMPv6 message (RFC 4443, RFC 4861): fields, Info, echo pairing, quoted header."""
        protos += ":icmpv6"
        d["frame.protocols"] = protos
        d["_ws.col.Protocol"] = "ICMPv6"
        try:
            msg = _icmpv6.parse(data, l4, end)
        except ParseError as err:
            _malformed(d, err, "ICMPv6")
            return
        d["icmpv6.type"] = msg.icmp_type
        d["icmpv6.code"] = msg.code
        d["icmpv6.checksum"] = msg.checksum
        if checksums and end > len(data):  # cut by the snapshot length: tshark cannot judge
            d["icmpv6.checksum.status"] = "unverified"
        elif checksums:
            body = data[l4:end]
            good = internet_checksum(pseudo_header(h.src, h.dst, 58, len(body)) + body) == 0
            d["icmpv6.checksum.status"] = "good" if good else "bad"
        kind = msg.icmp_type
        info = msg.type_name
        if msg.code_name is not None:
            info += f" ({msg.code_name})"
        if msg.identifier is not None and msg.sequence is not None:
            d["icmpv6.echo.identifier"] = msg.identifier
            d["icmpv6.echo.sequence_number"] = msg.sequence
            info += f" id=0x{msg.identifier:04x}, seq={msg.sequence}, hop limit={h.hop_limit}"
            info += self._pair(d, "icmpv6", kind == _icmpv6.ECHO_REQUEST, msg.identifier,
                               msg.sequence, h.src_str, h.dst_str)
            if end - l4 > 8:
                d["frame.protocols"] = protos + ":data"
                d["data.len"] = end - l4 - 8
        elif kind == _icmpv6.NEIGHBOR_SOLICITATION and msg.target is not None:
            d["icmpv6.nd.ns.target_address"] = msg.target_str
            info += f" for {msg.target_str}"
        elif kind == _icmpv6.NEIGHBOR_ADVERTISEMENT and msg.target is not None:
            d["icmpv6.nd.na.target_address"] = msg.target_str
            d["icmpv6.nd.na.flag.r"] = bool(msg.rest & 0x80000000)
            d["icmpv6.nd.na.flag.s"] = bool(msg.rest & 0x40000000)
            d["icmpv6.nd.na.flag.o"] = bool(msg.rest & 0x20000000)
            words = ", ".join(w for bit, w in _NA_FLAGS if msg.rest & bit)
            info += f" {msg.target_str}" + (f" ({words})" if words else "")
        elif kind == _icmpv6.PACKET_TOO_BIG:
            d["icmpv6.mtu"] = msg.rest
        options_at = _ND_OPTIONS_AT.get(kind)
        if options_at is not None:
            info += _nd_options(data, l4 + options_at, end, d)
        d["_ws.col.Info"] = info
        if msg.is_error and end - l4 >= 8 + _ipv6.HEADER_LEN:
            self._quoted6(data[l4 + 8 : end], d, protos, checksums)

    @staticmethod
    def _quoted6(inner: bytes, d: dict, protos: str, checksums: bool = False) -> None:
        """The IPv6 header (and transport ports) an ICMPv6 error quotes, as a second ipv6 layer."""
        try:
            q = _ipv6.parse(inner)
        except ParseError:
            return
        first = int.from_bytes(inner[:4], "big")
        values = (6, 6, (first >> 20) & 0xFF, first & 0xFFFFF, q.payload_length, q.next_header,
                  q.hop_limit, q.src_str, q.dst_str)
        for name, value in zip(_IPV6_FIELDS, values, strict=True):
            _add(d, name, value)
        protos += ":ipv6"
        if q.fragment is None or not q.fragment.is_fragment:
            protos = _quoted_transport(inner, q.upper_offset, len(inner), q.upper_protocol, d,
                                       protos, (q.src, q.dst) if checksums else None)
        d["frame.protocols"] = protos

    # -- echo pairing ------------------------------------------------------------------------
    def _pair(self, d: dict, proto: str, request: bool, ident: int, seq: int, src: Any,
              dst: Any) -> str:
        """Record a request or match a reply; the Info note tshark prints for it."""
        src, dst = _first(src), _first(dst)
        key = (proto, min(src, dst), max(src, dst), ident, seq)
        table = self._echoes
        number = self.number
        if request:
            entry = table.get(key)
            if entry is None or (entry.reply is not None and entry.request != number):
                table.pop(key, None)
                if len(table) >= ECHO_TABLE_MAX:
                    table.popitem(last=False)
                table[key] = _Echo(number, self.ts_ns)
            fp = self.first_pass
            if fp is None or not fp.knows(number):
                return ""
            reply = fp.reply_in.get(number)
            if reply is None:
                d[f"{proto}.resp_not_found"] = True
                return " (no response found!)"
            d[f"{proto}.resp_in"] = reply
            return f" (reply in {reply})"
        entry = table.get(key)
        if entry is None or entry.request >= number:
            return ""
        if entry.reply is None:
            entry.reply = number
            learnt = self.learnt
            if learnt is not None and not learnt._full(number):
                learnt.reply_in[entry.request] = number
        elif entry.reply != number:
            return ""  # a duplicate reply: tshark names no request for it
        d[f"{proto}.resp_to"] = entry.request
        d[f"{proto}.resptime"] = (self.ts_ns - entry.ts_ns) / 1e6
        return f" (request in {entry.request})"


#: PPP control protocols (RFC 1661, 1332, 5072, 1334, 1994) → Wireshark's Protocol column.
_PPP_CONTROL = {0xC021: "PPP LCP", 0x8021: "PPP IPCP", 0x8057: "PPP IPV6CP", 0xC023: "PPP PAP",
                0xC223: "PPP CHAP"}
#: LCP/IPCP/IPV6CP codes (RFC 1661 §5) as Wireshark words them.
_PPP_CODES = {1: "Configuration Request", 2: "Configuration Ack", 3: "Configuration Nak",
              4: "Configuration Reject", 5: "Termination Request", 6: "Termination Ack",
              7: "Code Reject", 8: "Protocol Reject", 9: "Echo Request", 10: "Echo Reply",
              11: "Discard Request", 12: "Identification", 13: "Time Remaining"}


def ppp_control_layer(proto: int) -> str | None:
    """The ``frame.protocols`` name of a PPP control protocol (``lcp``, ``ipcp``…), if known."""
    name = _PPP_CONTROL.get(proto)
    return name.split()[1].lower() if name else None


def ppp_control(data: bytes, off: int, d: dict, proto: int | None = None, *,
                end: int | None = None, tunnelled: bool = False) -> None:
    """A PPP frame that carries no IP (LCP, IPCP…): named as Wireshark lists it.

    Inside PPPoE such frames have no IP addresses, so the Source/Destination columns show
    the Ethernet addresses, as they do in Wireshark; inside an L2TP tunnel (``tunnelled``)
    they keep the tunnel's IP addresses. ``proto`` is the PPP protocol (PPPoE's, when None).
    """
    from tcplab.packet import ppp as _ppp

    proto = d["ppp.protocol"] if proto is None else proto
    end = len(data) if end is None else end
    name = _PPP_CONTROL.get(proto)
    if not tunnelled:
        d["_ws.col.Source"] = d.get("eth.src", "")
        d["_ws.col.Destination"] = d.get("eth.dst", "")
    if name is None:  # Wireshark names the number in Protocol and says so in Info
        d["_ws.col.Protocol"] = f"0x{proto:04x}"
        d["_ws.col.Info"] = f"PPP Unknown (0x{proto:04x})"
        return
    d["frame.protocols"] += ":" + ppp_control_layer(proto)
    d["_ws.col.Protocol"] = name
    if proto not in _ppp.CODED or off >= end:
        d["_ws.col.Info"] = name
        return
    code = data[off]
    d["_ws.col.Info"] = _PPP_CODES.get(code, f"Unknown (0x{code:02x})")
    try:
        code, ident, length = _ppp.parse_control(data, off, end)
    except ParseError:
        return
    d["ppp.code"], d["ppp.identifier"], d["ppp.length"] = code, ident, length
    if proto == _ppp.PPP_LCP and code in _ppp.LCP_MAGIC_CODES and length >= 8 and off + 8 <= end:
        d["lcp.magic_number"] = int.from_bytes(data[off + 4 : off + 8], "big")


def pppoe_discovery(data: bytes, off: int, d: dict) -> None:
    """A PPPoE discovery frame (RFC 2516 §5: PADI, PADO, PADR, PADS, PADT), as Wireshark lists it."""
    from tcplab.packet import pppoe as _pppoe

    d["frame.protocols"] += ":pppoed"
    d["_ws.col.Protocol"] = "PPPoED"
    d["_ws.col.Source"] = d.get("eth.src", "")
    dst = d.get("eth.dst", "")
    d["_ws.col.Destination"] = "Broadcast" if dst == "ff:ff:ff:ff:ff:ff" else dst
    try:
        h = _pppoe.parse(data, off, session=False)
    except ParseError as err:
        _malformed(d, err, "PPPoED")
        return
    d["pppoe.code"] = h.code
    d["pppoe.session_id"] = h.session_id
    d["pppoe.payload_length"] = h.length
    info = h.code_name
    at, end = off + _pppoe.HEADER_LEN, off + _pppoe.HEADER_LEN + h.length
    while at + 4 <= end:  # tags: type(16) | length(16) | value
        kind, length = struct.unpack_from("!HH", data, at)
        value = data[at + 4 : min(at + 4 + length, end)]
        if kind == 0x0101:
            d["pppoed.tags.service_name"] = value.decode("utf-8", "replace")
        elif kind == 0x0102:
            d["pppoed.tags.ac_name"] = name = value.decode("utf-8", "replace")
            info += f" AC-Name='{name}'"
        at += 4 + length
    d["_ws.col.Info"] = info


def outer_fields(d: dict) -> dict:
    """``d`` with each doubled IP field (an ICMP error's) reduced to its outer value."""
    if not isinstance(d.get("ip.version"), list):
        return d
    out = dict(d)
    for name in (*_IPV4_FIELDS, *_IPV6_FIELDS):
        value = out.get(name)
        if isinstance(value, list):
            out[name] = value[0]
    return out


def detail_lines(d: dict) -> list[str]:
    """The detail-pane lines of the layers this module dissects, in Wireshark's layout."""
    ind = "    "
    lines: list[str] = []
    if "ipv6.fraghdr.ident" in d:
        more = d["ipv6.fraghdr.more"]
        lines += ["Fragment Header for IPv6",
                  f"{ind}Next header: {_proto_name(d['ipv6.fraghdr.nxt'])} ({d['ipv6.fraghdr.nxt']})",
                  f"{ind}Offset: {d['ipv6.fraghdr.offset']} ({d['ipv6.fraghdr.offset'] * 8} bytes)",
                  f"{ind}More Fragments: {'Yes' if more else 'No'}",
                  f"{ind}Identification: 0x{d['ipv6.fraghdr.ident']:08x}"]
    frags = d.get("_ip.fragments")
    if frags:
        version = "IPv6" if "ipv6.fragment" in d else "IPv4"
        total = d.get("ip.reassembled.length", d.get("ipv6.reassembled.length"))
        lines.append(f"[{len(frags)} {version} Fragments ({total} bytes): "
                     + ", ".join(f"#{tag}({length})" for tag, _o, length in frags) + "]")
        lines += [f"{ind}[Frame: {tag}, payload: {o}-{o + length - 1} ({length} bytes)]"
                  for tag, o, length in frags]
        lines += [f"{ind}[Fragment count: {len(frags)}]",
                  f"{ind}[Reassembled {version} length: {total}]"]
    for where in ("ip.reassembled_in", "ipv6.reassembled.in"):
        if where in d:
            lines.append(f"[Reassembled {'IPv6' if 'ipv6' in where else 'IPv4'} in frame: {d[where]}]")
    for proto, title in (("icmp", "Internet Control Message Protocol"),
                         ("icmpv6", "Internet Control Message Protocol v6")):
        if f"{proto}.type" not in d:
            continue
        lines.append(title)
        lines.append(f"{ind}Type: {d[f'{proto}.type']}")
        lines.append(f"{ind}Code: {d[f'{proto}.code']}")
        status = d.get(f"{proto}.checksum.status")
        lines.append(f"{ind}Checksum: 0x{d[f'{proto}.checksum']:04x}"
                     + {None: " [unverified]", "good": " [correct]"}.get(status, " [incorrect]"))
        for name, label in ((f"{proto}.ident", "Identifier (BE)"), (f"{proto}.ident_le", "Identifier (LE)"),
                            (f"{proto}.seq", "Sequence Number (BE)"),
                            (f"{proto}.seq_le", "Sequence Number (LE)"),
                            ("icmpv6.echo.identifier", "Identifier"),
                            ("icmpv6.echo.sequence_number", "Sequence"),
                            (f"{proto}.mtu", "MTU"),
                            ("icmpv6.nd.ns.target_address", "Target Address"),
                            ("icmpv6.nd.na.target_address", "Target Address")):
            if name.startswith(proto + ".") and name in d:
                value = d[name]
                numbered = isinstance(value, int) and ("ident" in name or "seq" in name)
                lines.append(f"{ind}{label}: {value}" + (f" (0x{value:04x})" if numbered else ""))
        for name, label in ((f"{proto}.resp_in", "Response frame"), (f"{proto}.resp_to", "Request frame")):
            if name in d:
                lines.append(f"{ind}[{label}: {d[name]}]")
        if f"{proto}.resptime" in d:
            lines.append(f"{ind}[Response time: {d[f'{proto}.resptime']:.3f} ms]")
        if f"{proto}.resp_not_found" in d:
            lines.append(f"{ind}[No response seen]")
        if isinstance(d.get("ip.version"), list):
            inner = {name: d[name][-1] for name in (*_IPV4_FIELDS, *_IPV6_FIELDS)
                     if isinstance(d.get(name), list)}
            if "ip.src" in inner:
                lines.append(f"{ind}Internet Protocol Version 4, Src: {inner['ip.src']}, "
                             f"Dst: {inner['ip.dst']} (the datagram this error is about)")
            elif "ipv6.src" in inner:
                lines.append(f"{ind}Internet Protocol Version 6, Src: {inner['ipv6.src']}, "
                             f"Dst: {inner['ipv6.dst']} (the packet this error is about)")
        if "data.len" in d and "udp.srcport" not in d:
            lines.append(f"Data ({d['data.len']} bytes)")
    return lines


def _quoted_transport(inner: bytes, l4: int, n: int, proto: int, d: dict, protos: str,
                      addresses: tuple[bytes, bytes] | None = None) -> str:
    """Ports (and TCP sequence, UDP length/checksum) of a quoted transport header.

    With the quoted IP header's ``addresses`` (checksums on), a UDP datagram quoted whole gets
    its checksum verdict, as tshark gives it with validation on.
    """
    if proto == 17 and l4 + 8 <= n:
        sport, dport, length, csum = _QUAD.unpack_from(inner, l4)
        d["udp.srcport"], d["udp.dstport"] = sport, dport
        d["udp.length"], d["udp.checksum"] = length, csum
        protos += ":udp"
        if addresses is not None and length >= 8 and l4 + length <= n:
            from tcplab.analyze import dissect as _dissect

            _dissect._udp_checksum(inner, l4, length, csum, addresses[0], addresses[1], d, False)
        if n - l4 > 8 and 53 in (sport, dport):
            # tshark dissects the quoted DNS message as far as it was quoted (the fields only:
            # Protocol and Info stay the ICMP error's, and a cut message is no fault here).
            _info, values, _cut = _dns.dissect_message(inner[l4 + 8 : l4 + max(8, min(length, n - l4))])
            _dns.merge(d, values)
            protos += ":dns"
        elif n - l4 > 8:
            protos += ":data"
            d["data.len"] = n - l4 - 8
    elif proto == 6 and l4 + 4 <= n:
        sport, dport = struct.unpack_from("!HH", inner, l4)
        d["tcp.srcport"], d["tcp.dstport"] = sport, dport
        if l4 + 8 <= n:
            d["tcp.seq"] = struct.unpack_from("!I", inner, l4 + 4)[0]
        protos += ":tcp"
    return protos


#: Where Neighbor Discovery options start in each message (RFC 4861 §4.1-4.5).
_ND_OPTIONS_AT = {133: 8, 134: 16, 135: 24, 136: 24, 137: 40}


def _nd_options(data: bytes, at: int, end: int, d: dict) -> str:
    """The link-layer address options of an ND message, as Info words them (RFC 4861 §4.6.1).

    Source link-layer address → `` from 02:…``, target link-layer address → `` is at 02:…``;
    the walk stops at a zero length (malformed) or the message's end.
    """
    words = ""
    while at + 2 <= end:
        kind, units = data[at], data[at + 1]
        if units == 0 or at + units * 8 > end:
            break
        if kind in (1, 2) and units == 1:
            mac = data[at + 2 : at + 8].hex(":")
            name = "src_linkaddr" if kind == 1 else "target_linkaddr"
            d.setdefault(f"icmpv6.opt.{name}", mac)
            words += f" from {mac}" if kind == 1 else f" is at {mac}"
        at += units * 8
    return words


def _tcp(payload: bytes, rsrc: bytes, rdst: bytes, d: dict, protos: str, checksums: bool,
         keep_payload: bool) -> Any:
    """A TCP segment reassembled from IP fragments: dissected and handed to the TCP analysis.

    Its bytes are not the frame's, so the segment's ``payload_offset`` is -1: the record then
    keeps no frame range for it (``Packet.payload`` is empty; ``tcp.payload`` holds the bytes).
    """
    from tcplab.analyze import dissect as _dissect

    src, dst = d["_ws.col.Source"], d["_ws.col.Destination"]
    seg = _dissect._dissect_tcp(payload, 0, len(payload), rsrc, rdst, src, dst, protos, d, False,
                                checksums, keep_payload)
    if seg is not None:
        seg.payload_offset = -1
    return seg


def _udp(payload: bytes, rsrc: bytes, rdst: bytes, d: dict, protos: str, checksums: bool,
         whole: bool, keep_payload: bool, net: NetworkLayers) -> Any:
    """A UDP datagram reassembled from IP fragments (or, not ``whole``, a first fragment alone);
    returns the TCP segment a tunnel in it carries, whose bytes are not the frame's."""
    from tcplab.analyze import dissect as _dissect

    n = len(payload)
    # A first fragment alone (no reassembly): its UDP length speaks for the datagram.
    end = n if whole or n < 8 else max(n, (payload[4] << 8) | payload[5])
    seg = _dissect._dissect_udp(payload, 0, end, rsrc, rdst, protos, d, False, checksums and whole,
                                keep_payload, net)
    if seg is not None:
        seg.payload_offset = -1
    return seg


def _tcp_alone(piece: bytes, rsrc: bytes, rdst: bytes, d: dict, protos: str) -> None:
    """The start of a TCP segment in a first fragment left unreassembled (``--no-defrag``).

    As tshark with defragmentation off: the header is dissected and the payload offered to
    HTTP, but the segment's length is unknown, so it has no ``tcp.len`` and stays out of the
    TCP analysis (shown numbers are the raw ones).
    """
    from tcplab.analyze import dissect as _dissect
    from tcplab.analyze import http as _http

    src, dst = d["_ws.col.Source"], d["_ws.col.Destination"]
    seg = _dissect._dissect_tcp(piece, 0, len(piece), rsrc, rdst, src, dst, protos, d, False,
                                False, False)
    if seg is None:
        return
    d.pop("tcp.len", None)
    d["tcp.seq"], d["tcp.ack"] = seg.seq, seg.ack
    if not (seg.payload and _http.classify(seg.payload, seg.sport, seg.dport, d)):
        d["_ws.col.Protocol"] = "TCP"
        d["_ws.col.Info"] = _dissect.info_text("", seg.sport, seg.dport, seg.flags, seg.seq, seg.ack,
                                               seg.window, d["tcp.urgent_pointer"], seg.seglen,
                                               seg.options_text)
    else:
        d["frame.protocols"] += ":" + d["_ws.col.Protocol"].lower()


def _overlap(d: dict, layer: str, dg: _defrag.Datagram, conflict: bool) -> None:
    """Wireshark marks overlaps on the frame that lists the fragments."""
    frags = dg.fragments
    if any(o < prev_o + prev_l for (_t, prev_o, prev_l), (_u, o, _l)
           in zip(frags, frags[1:], strict=False)):
        d[f"{layer}.fragment.overlap"] = True
        if conflict:
            d[f"{layer}.fragment.overlap.conflict"] = True


def _first(value: Any) -> Any:
    """The outer value of a field an ICMP error may have doubled."""
    return value[0] if isinstance(value, list) else value


def _malformed(d: dict, err: ParseError, protocol: str) -> None:
    reason = str(err)
    d["_ws.malformed"] = reason
    d["_ws.col.Protocol"] = protocol
    d["_ws.col.Info"] = f"[Malformed Packet: {reason}]"
    d["_ws.expert"] = "Malformed Packet"


def arp(data: bytes, off: int, d: dict) -> None:
    """An ARP frame (RFC 826) as tshark lists it: Ethernet addresses by vendor name in
    Source/Destination, ``Who has 10.0.0.2? Tell 10.0.0.1`` / ``10.0.0.2 is at …`` in Info
    (Ethernet and IPv4 addresses; other hardware or protocol types keep Info ``ARP``)."""
    from tcplab.analyze.wsdata import ether_name

    d["frame.protocols"] += ":arp"
    d["_ws.col.Protocol"] = "ARP"
    d["_ws.col.Source"] = ether_name(d.get("eth.src", ""))
    d["_ws.col.Destination"] = ether_name(d.get("eth.dst", ""))
    d["_ws.col.Info"] = "ARP"
    if len(data) < off + 28 or data[off : off + 6] != b"\x00\x01\x08\x00\x06\x04":
        return
    oper = int.from_bytes(data[off + 6 : off + 8], "big")
    sha = ":".join(f"{b:02x}" for b in data[off + 8 : off + 14])
    spa = ".".join(str(b) for b in data[off + 14 : off + 18])
    tpa = ".".join(str(b) for b in data[off + 24 : off + 28])
    if oper == 1:
        d["_ws.col.Info"] = f"Gratuitous ARP for {spa} (Request)" if spa == tpa else f"Who has {tpa}? Tell {spa}"
    elif oper == 2:
        d["_ws.col.Info"] = f"{spa} is at {sha}"
