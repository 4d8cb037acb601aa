"""Frame bytes → layered field dictionary (link, IPv4/IPv6, TCP/UDP/ICMP), malformed-safe.

What this module is for: the per-packet half of the analyzer. :func:`dissect` walks one
captured frame down its layers and writes Wireshark display-filter fields (``eth.src``,
``ip.ttl``, ``tcp.flags``…) into the packet's dictionary; :func:`tcp_info` writes the
TCP Info column once :mod:`~tcplab.analyze.tcp_analysis` has numbered the segment.

It is the analyzer's hot path, so the common frames (Null/Loopback, Ethernet, raw IP,
IPv4, TCP with no options or the kernel's NOP,NOP,Timestamps) are unpacked straight
from the record bytes with precompiled ``struct``s; anything rarer goes through the
packet engine's parsers (:mod:`tcplab.packet.link`, :mod:`~tcplab.packet.ipv6`,
:func:`tcplab.packet.tcp.parse_options`), which also word every error.

Damaged bytes never raise: the frame gets ``_ws.malformed`` (the reason, naming the
layer, field and byte offset), Protocol/Info say ``[Malformed Packet: …]`` and the run
goes on. What it must never do: I/O, or keep state between frames.
"""

from __future__ import annotations

import socket
import struct
from types import ModuleType

from tcplab.analyze import dhcp as _dhcp
from tcplab.analyze import dns as _dns
from tcplab.analyze import network as _network
from tcplab.analyze import tcp_analysis as ta
from tcplab.analyze import wsdata as _wsdata
from tcplab.packet import ipv6 as _ipv6
from tcplab.packet import link as _link
from tcplab.packet import tcp as _tcp
from tcplab.packet.checksum import ones_complement_sum
from tcplab.packet.errors import ParseError
from tcplab.pcap.records import LINKTYPE_PCAPNG_CUSTOM

_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIHHHH")
_UDP = struct.Struct("!HHHH")
_U32LE = struct.Struct("<I")
_U32BE = struct.Struct("!I")
_U16BE = struct.Struct("!H")
# Linux puts NOP, NOP, Timestamps (kind 8, length 10) in every segment after the handshake.
_NOP_NOP_TS = 0x0101080A
_TS_WORDS = struct.Struct("!III")

#: UDP port of Dropbox's LAN sync discovery (tshark's db-lsp-disc).
_DROPBOX_DISCOVERY_PORT = 17500
#: UDP port of L2TP (RFC 2661), whose dissector is imported by the first frame that needs it.
_L2TP_PORT = 1701


def _l2tp() -> ModuleType:
    from tcplab.analyze import l2tp

    return l2tp

_PROTO_NAMES = {1: "ICMP", 6: "TCP", 17: "UDP", 58: "ICMPv6", 2: "IGMP", 47: "GRE", 50: "ESP"}

# Address → text caches: captures repeat a handful of addresses, and inet_ntoa/MAC
# formatting is a measurable share of the per-packet cost. Bounded: cleared when full.
_CACHE_MAX = 4096
_ntoa_cache: dict[bytes, str] = {}
_mac_cache: dict[bytes, str] = {}
_mac_pairs: dict[bytes, tuple[str, str]] = {}  # destination+source MAC bytes → their texts


# Flag texts by flag value: formatting them per packet was a tenth of the list view's time.
_FLAGS_STR = tuple(_tcp.flags_str(i) for i in range(512))
_FLAGS_TEXT = tuple(_tcp.flags_text(i) for i in range(512))
# The flag fields of each flag value, merged into a packet's dict in one call.
_FLAG_FIELDS = tuple(
    {"tcp.flags": i, "tcp.flags.str": _FLAGS_STR[i], "tcp.flags.syn": (i >> 1) & 1,
     "tcp.flags.ack": (i >> 4) & 1, "tcp.flags.fin": i & 1, "tcp.flags.reset": (i >> 2) & 1,
     "tcp.flags.push": (i >> 3) & 1}
    for i in range(512))


def protocol_name(proto: int) -> str:
    """IANA protocol number → the name Wireshark shows (``TCP``, ``UDP``…)."""
    return _PROTO_NAMES.get(proto) or f"IP protocol {proto}"


def _ntoa(raw: bytes) -> str:
    text = _ntoa_cache.get(raw)
    if text is None:
        if len(_ntoa_cache) >= _CACHE_MAX:
            _ntoa_cache.clear()
        text = _ntoa_cache[raw] = socket.inet_ntoa(raw)
    return text


def _mac(raw: bytes) -> str:
    text = _mac_cache.get(raw)
    if text is None:
        if len(_mac_cache) >= _CACHE_MAX:
            _mac_cache.clear()
        text = _mac_cache[raw] = raw.hex(":")
    return text


class TcpSegment:
    """What the conversation tracker needs from one TCP segment (built only for TCP frames)."""

    __slots__ = ("src", "dst", "sport", "dport", "seq", "ack", "flags", "seglen", "window",
                 "wscale", "options_text", "payload", "payload_offset")

    def __init__(self, src: str, dst: str, sport: int, dport: int, seq: int, ack: int,
                 flags: int, seglen: int, window: int, wscale: int | None,
                 options_text: str, payload: bytes, payload_offset: int = 0) -> None:
        self.src = src
        self.dst = dst
        self.sport = sport
        self.dport = dport
        self.seq = seq
        self.ack = ack
        self.flags = flags
        self.seglen = seglen
        self.window = window
        self.wscale = wscale
        self.options_text = options_text
        self.payload = payload
        self.payload_offset = payload_offset  # where the payload starts in the frame bytes


def _malformed(d: dict, err: ParseError | str, protocol: str | None = None) -> None:
    reason = str(err)
    d["_ws.malformed"] = reason
    d["_ws.col.Protocol"] = protocol or (err.protocol if isinstance(err, ParseError) else "Frame")
    d["_ws.col.Info"] = f"[Malformed Packet: {reason}]"
    d["_ws.expert"] = "Malformed Packet"


def _expert(d: dict, err: ParseError) -> None:
    """A fault the dissection survives (tshark's expert info, not a malformed packet).

    The frame keeps every layer and goes through the TCP analysis, as in tshark; the
    reason (layer, field, byte offset) is kept in ``_ws.expert.message``.
    """
    _expert_note(d, str(err))


def _expert_note(d: dict, reason: str) -> None:
    """Add ``reason`` to the frame's ``_ws.expert.message`` (its faults, ``; ``-separated)."""
    old = d.get("_ws.expert.message")
    d["_ws.expert.message"] = reason if old is None else f"{old}; {reason}"


def _sound_options(raw: bytes) -> int:
    """How many leading bytes of an options area parse (the rest holds a bad length)."""
    i, n = 0, len(raw)
    while i < n:
        kind = raw[i]
        if kind == _tcp.OPT_EOL:
            return n
        if kind == _tcp.OPT_NOP:
            i += 1
            continue
        if i + 1 >= n or raw[i + 1] < 2 or i + raw[i + 1] > n:
            return i
        i += raw[i + 1]
    return n


def _truncated(d: dict, protocol: str) -> None:
    """Headers cut by the capture's snapshot length: Wireshark's wording, not "malformed"."""
    d["_ws.col.Protocol"] = protocol
    d["_ws.col.Info"] = "[Packet size limited during capture]"
    d["_ws.short"] = True


def _link_layer(data: bytes, linktype: int, d: dict) -> tuple[int, str | None, str]:
    """Return (offset of the network header, "IPv4"/"IPv6"/None, frame.protocols prefix)."""
    if linktype == 0:  # Null/Loopback: family in the capturing host's byte order
        if len(data) < 4:
            raise ParseError("Null/Loopback", "family", 0, f"needs 4 bytes, only {len(data)} captured")
        family = _U32LE.unpack_from(data)[0]
        if family > 0xFFFF:
            family = _U32BE.unpack_from(data)[0]
        return 4, "IPv4" if family == 2 else "IPv6" if family in _link.AF_INET6_VALUES else None, "null"
    if linktype == 1:
        if len(data) < 14:
            raise ParseError("Ethernet", "header", 0, f"needs 14 bytes, only {len(data)} captured")
        d["eth.dst"] = _mac(data[0:6])
        d["eth.src"] = _mac(data[6:12])
        ethertype = _U16BE.unpack_from(data, 12)[0]
        if ethertype in (0x0800, 0x86DD):
            d["eth.type"] = ethertype
            return 14, "IPv4" if ethertype == 0x0800 else "IPv6", "eth:ethertype"
        hdr = _link.parse(linktype, data)  # VLAN tags, PPPoE and other types
        d["eth.type"] = hdr.fields.get("Type")
        if "PPPoE Session ID" in hdr.fields:  # RFC 2516 session stage: PPP inside
            at = hdr.header_len - 8  # the PPPoE header: 6 bytes, then the 2-byte PPP protocol
            d["pppoe.code"] = data[at + 1]
            d["pppoe.session_id"] = hdr.fields["PPPoE Session ID"]
            d["pppoe.payload_length"] = _U16BE.unpack_from(data, at + 4)[0]
            d["ppp.protocol"] = hdr.fields["PPP Protocol"]
            return hdr.header_len, hdr.network, "eth:ethertype:pppoes:ppp"
        return hdr.header_len, hdr.network, "eth:ethertype"
    if linktype in (101, 12, 14, 228, 229):
        if not data:
            raise ParseError("Raw IP", "version", 0, "empty frame")
        v = data[0] >> 4
        return 0, "IPv4" if v == 4 else "IPv6" if v == 6 else None, "raw"
    hdr = _link.parse(linktype, data)
    prefix = {108: "loop", 113: "sll:ethertype", 276: "sll:ethertype"}.get(linktype, "frame")
    return hdr.header_len, hdr.network, prefix


def dissect(data: bytes, linktype: int, d: dict, *, orig_len: int | None = None,
            checksums: bool = True, payload: bool = True,
            net: _network.NetworkLayers | None = None) -> TcpSegment | None:
    """Dissect one frame into ``d``; return the TCP segment's values when the frame is TCP.

    ``orig_len`` (the length on the wire) tells a snapshot-length cut from a damaged
    packet. With ``checksums`` the IP and TCP/UDP checksums are verified
    (``*.checksum.status`` "good"/"bad"), as Wireshark does with validation enabled.
    ``payload`` keeps the TCP payload bytes in ``d`` (``tcp.payload``). ``net`` is the
    capture's state for fragments and ICMP echo pairing (:mod:`~tcplab.analyze.network`);
    without it a frame is dissected on its own, as with ``--no-defrag``.
    """
    cut = orig_len is not None and orig_len > len(data)
    # Fast path for the two commonest frames: Ethernet carrying IPv4 (Linux lo, every LAN)
    # and BSD Null/Loopback with AF_INET in little-endian (the seed's captures).
    if linktype == 1 and data[12:14] == b"\x08\x00":
        macs = data[:12]
        pair = _mac_pairs.get(macs)
        if pair is None:
            if len(_mac_pairs) >= _CACHE_MAX:
                _mac_pairs.clear()
            pair = _mac_pairs[macs] = (_mac(data[0:6]), _mac(data[6:12]))
        d["eth.dst"], d["eth.src"] = pair
        d["eth.type"] = 0x0800
        return _dissect_ipv4(data, 14, "eth:ethertype", d, cut, checksums, payload, net)
    if linktype == 0 and data[0:4] == b"\x02\x00\x00\x00":
        return _dissect_ipv4(data, 4, "null", d, cut, checksums, payload, net)
    if linktype == LINKTYPE_PCAPNG_CUSTOM:
        _custom_block(data, d)
        return None
    try:
        off, network, protos = _link_layer(data, linktype, d)
    except ParseError as err:
        if cut:
            _truncated(d, err.protocol)
        else:
            _malformed(d, err)
        d["frame.protocols"] = "frame"
        return None
    if network == "IPv4":
        return _dissect_ipv4(data, off, protos, d, cut, checksums, payload, net)
    if network == "IPv6":
        return _dissect_ipv6(data, off, protos, d, cut, checksums, payload, net)
    d["frame.protocols"] = protos
    if "ppp.protocol" in d:  # PPP's own control protocols (LCP echo, IPCP...) inside PPPoE
        _network.ppp_control(data, off, d)
        return None
    if d.get("eth.type") == 0x8863:  # PPPoE discovery (PADI, PADO...)
        _network.pppoe_discovery(data, off, d)
        return None
    d["_ws.col.Protocol"] = protos.split(":")[0].upper()
    d["_ws.col.Info"] = "Non-IP frame"
    if "eth.type" in d and d["eth.type"] == _link.ETHERTYPE_ARP:
        _network.arp(data, off, d)
    return None


#: Private Enterprise Numbers (IANA) tshark names in a custom block's Info when Wireshark's
#: enterprises.tsv is not installed (with it, every number it lists); others are "Unknown".
_ENTERPRISES = {0: "Reserved", 2: "IBM (https://w3.ibm.com/standards )", 9: "ciscoSystems",
                11: "Hewlett-Packard", 311: "Microsoft", 2636: "Juniper Networks, Inc.",
                6876: "VMware Inc.", 8072: "net-snmp", 30065: "Arista Networks, Inc.",
                32473: "Example Enterprise Number for Documentation Use"}


def _custom_block(data: bytes, d: dict) -> None:
    """A pcapng custom block (0x00000BAD/0x40000BAD) as tshark 4.0 lists it: a PCAPNG frame."""
    pen = getattr(data, "pen", None)
    copyable = getattr(data, "copyable", True)
    d["frame.protocols"] = "data" if data else ""
    if pen is not None:
        d["frame.cb_pen"] = pen
        signed = pen - (1 << 32) if pen >= 1 << 31 else pen  # Info prints it as a gint32
        d["frame.cb_copy"] = int(copyable)
        name = _wsdata.enterprises().get(pen) or _ENTERPRISES.get(pen, "Unknown")
        d["_ws.col.Info"] = (f"Custom Block: PEN = {name} ({signed}), "
                             f"will {'' if copyable else 'not '}be copied")
    else:
        d["_ws.col.Info"] = "Custom Block"
    if data:
        d["data.data"] = bytes(data)
        d["data.len"] = len(data)
    d["_ws.col.Protocol"] = "PCAPNG"
    d["_ws.col.Source"] = d["_ws.col.Destination"] = ""


def _dissect_ipv4(data: bytes, off: int, protos: str, d: dict, cut: bool, checksums: bool,
                  payload: bool = True,
                  net: _network.NetworkLayers | None = None) -> TcpSegment | None:
    n = len(data)
    protos += ":ip"
    d["frame.protocols"] = protos
    if n - off < 20:
        err = ParseError("IPv4", "header", off, f"needs 20 bytes, only {max(n - off, 0)} captured")
        _truncated(d, "IPv4") if cut else _malformed(d, err)
        return None
    vihl, tos, total, ident, frag, ttl, proto, csum, rsrc, rdst = _IPV4.unpack_from(data, off)
    src = _ntoa_cache.get(rsrc) or _ntoa(rsrc)
    dst = _ntoa_cache.get(rdst) or _ntoa(rdst)
    ihl = (vihl & 0x0F) * 4
    d["ip.version"] = vihl >> 4
    d["ip.hdr_len"] = ihl
    d["ip.dsfield"] = tos
    d["ip.len"] = total
    d["ip.id"] = ident
    d["ip.flags"] = frag >> 13
    d["ip.frag_offset"] = frag & 0x1FFF  # in 8-byte units, as the field is (and tshark 4.0)
    d["ip.ttl"] = ttl
    d["ip.proto"] = proto
    d["ip.checksum"] = csum
    d["ip.src"] = src
    d["ip.dst"] = dst
    d["_ws.col.Source"] = src
    d["_ws.col.Destination"] = dst
    d["_ip_offset"] = off
    if vihl >> 4 != 4:
        _malformed(d, ParseError("IPv4", "version", off, f"is {vihl >> 4}, expected 4"))
        return None
    if ihl < 20:
        _malformed(d, ParseError("IPv4", "header length (IHL)", off,
                                 f"{ihl} bytes is below the minimum 20"))
        return None
    if off + ihl > n:
        err = ParseError("IPv4", "header length (IHL)", off, f"{ihl} bytes but only {n - off} captured")
        _truncated(d, "IPv4") if cut else _malformed(d, err)
        return None
    if total < ihl:
        _malformed(d, ParseError("IPv4", "total length", off + 2,
                                 f"{total} is smaller than the header length {ihl}"))
        return None
    if checksums:
        # tshark with validation on writes the computed value beside every verdict; when the
        # sum is good it is the stored checksum, so only a bad header costs a second sum.
        good = ones_complement_sum(data[off : off + ihl]) == 0xFFFF
        d["ip.checksum.status"] = "good" if good else "bad"
        d["ip.checksum_calculated"] = csum if good else ~ones_complement_sum(
            data[off : off + 10] + data[off + 12 : off + ihl]) & 0xFFFF
    if not cut and off + total > n:
        # tshark goes on with the bytes there are ("IPv4 total length exceeds packet
        # length") and analyses the TCP segment in them: say so, do not drop the frame.
        _expert(d, ParseError("IPv4", "total length", off + 2,
                              f"{total} bytes but only {n - off} captured"))
        total = n - off
        d["_ip.short"] = True
    if frag & 0x3FFF:  # MF set or a non-zero offset: a fragment (network.py reassembles)
        return (net or _network.NetworkLayers(defragment=False)).ipv4_fragment(
            data, off, ihl, total, d, protos, checksums, payload)
    l4 = off + ihl
    end = off + total
    if proto == 6:
        return _dissect_tcp(data, l4, end, rsrc, rdst, src, dst, protos, d, cut, checksums,
                            payload)
    if proto == 17:
        return _dissect_udp(data, l4, end, rsrc, rdst, protos, d, cut, checksums, payload, net)
    if proto == 1:
        (net or _network.NetworkLayers(defragment=False)).icmp(data, l4, end, d, protos, checksums)
        return None
    d["_ws.col.Protocol"] = "IPv4"
    d["_ws.col.Info"] = f"{protocol_name(proto)} ({proto})"
    return None


def _dissect_ipv6(data: bytes, off: int, protos: str, d: dict, cut: bool, checksums: bool,
                  payload: bool = True,
                  net: _network.NetworkLayers | None = None) -> TcpSegment | None:
    protos += ":ipv6"
    d["frame.protocols"] = protos
    try:
        h = _ipv6.parse(data, off)
    except ParseError as err:
        _truncated(d, "IPv6") if cut else _malformed(d, err)
        return None
    src, dst = h.src_str, h.dst_str
    # tshark 4.0 files the version under ip.version too, so 'ip.version == 6' selects IPv6.
    d["ip.version"] = d["ipv6.version"] = 6
    d["ipv6.tclass"] = h.traffic_class
    d["ipv6.flow"] = h.flow_label
    d["ipv6.src"] = src
    d["ipv6.dst"] = dst
    d["ipv6.plen"] = h.payload_length
    d["ipv6.hlim"] = h.hop_limit
    d["ipv6.nxt"] = h.next_header
    d["_ws.col.Source"] = src
    d["_ws.col.Destination"] = dst
    l4 = off + h.upper_offset
    end = off + 40 + h.payload_length
    if not cut and end > len(data):
        _expert(d, ParseError("IPv6", "payload length", off + 4,
                              f"{h.payload_length} bytes but only {len(data) - off - 40} captured"))
        end = len(data)
        d["_ip.short"] = True
    if h.fragment is not None or h.upper_protocol == 58:
        return (net or _network.NetworkLayers(defragment=False)).ipv6(data, off, h, end, d, protos,
                                                                      cut, checksums, payload)
    if h.upper_protocol == 6:
        return _dissect_tcp(data, l4, end, h.src, h.dst, src, dst, protos, d, cut, checksums,
                            payload)
    if h.upper_protocol == 17:
        return _dissect_udp(data, l4, end, h.src, h.dst, protos, d, cut, checksums, payload, net)
    d["_ws.col.Protocol"] = "IPv6"
    d["_ws.col.Info"] = f"{_PROTO_NAMES.get(h.upper_protocol, 'IP protocol')} ({h.upper_protocol})"
    return None


def _pseudo_sum(rsrc: bytes, rdst: bytes, proto: int, length: int) -> int:
    # 2**16 ≡ 1 (mod 65535), so whole addresses can be added as integers (see checksum.py).
    return int.from_bytes(rsrc, "big") + int.from_bytes(rdst, "big") + proto + length


# Linux's SYN and SYN/ACK options: MSS, SACK_PERM, Timestamps, NOP, Window scale (20 bytes).
_LINUX_SYN = struct.Struct("!2sH4sII3sB")
_LINUX_SYN_MARKS = (b"\x02\x04", b"\x04\x02\x08\x0a", b"\x01\x03\x03")


def _options(raw: bytes, base: int) -> tuple[int | None, str, dict]:
    """Decode options for the Info column: (window-scale shift, Info text, fields)."""
    if len(raw) == 20:
        # Every Linux handshake segment carries the same layout: decoded in one unpack
        # instead of the general option walk (same texts, same fields in the same order).
        mss_kind, mss, perm_ts, tsval, tsecr, nop_ws, shift = _LINUX_SYN.unpack(raw)
        if (mss_kind, perm_ts, nop_ws) == _LINUX_SYN_MARKS:
            mult = 1 << min(shift, 14)
            return shift, f"MSS={mss} SACK_PERM TSval={tsval} TSecr={tsecr} WS={mult}", {
                "tcp.options.mss_val": mss, "tcp.options.sack_perm": True,
                "tcp.options.timestamp.tsval": tsval, "tcp.options.timestamp.tsecr": tsecr,
                "tcp.options.wscale.shift": shift, "tcp.options.wscale.multiplier": mult}
    return _walk_options(raw, base)


def _walk_options(raw: bytes, base: int, sack_base: int = 0,
                  ack: int | None = None) -> tuple[int | None, str, dict]:
    """:func:`_options` for any layout, through the packet engine's option parser.

    SACK edges are shown relative to ``sack_base`` (the ISN of the direction whose bytes
    they acknowledge, the peer's), as Wireshark shows them; 0 keeps them raw. ``ack`` (the
    segment's raw ack number) lets a first block below it be marked as a D-SACK
    (RFC 2883 §4), as tshark's ``tcp.options.sack.dsack_*`` fields do.
    """
    fields: dict = {}
    parts = []
    wscale = None
    for opt in _tcp.parse_options(raw, base):
        kind = opt.kind
        value = opt.value
        if kind == _tcp.OPT_MSS and isinstance(value, int):
            fields["tcp.options.mss_val"] = value
            parts.append(f"MSS={value}")
        elif kind == _tcp.OPT_WSCALE and isinstance(value, int):
            wscale = value
            fields["tcp.options.wscale.shift"] = value
            fields["tcp.options.wscale.multiplier"] = 1 << min(value, 14)
            parts.append(f"WS={1 << min(value, 14)}")
        elif kind == _tcp.OPT_SACK_PERMITTED:
            fields["tcp.options.sack_perm"] = True
            parts.append("SACK_PERM")
        elif kind == _tcp.OPT_TIMESTAMP and isinstance(value, tuple):
            fields["tcp.options.timestamp.tsval"] = value[0]
            fields["tcp.options.timestamp.tsecr"] = value[1]
            parts.append(f"TSval={value[0]} TSecr={value[1]}")
        elif kind == _tcp.OPT_SACK and isinstance(value, list) and value:
            edges = [((le - sack_base) & 0xFFFFFFFF, (re - sack_base) & 0xFFFFFFFF)
                     for le, re in value]
            fields["tcp.options.sack_le"] = [le for le, _ in edges]
            fields["tcp.options.sack_re"] = [re for _, re in edges]
            fields["tcp.options.sack.count"] = len(edges)
            first_le, first_re = value[0]
            if ack is not None and (
                    (first_le - ack) & 0xFFFFFFFF >= 0x80000000  # LT_SEQ(le, ack)
                    or (len(value) > 1 and (first_le - value[1][0]) & 0xFFFFFFFF < 0x80000000
                        and (value[1][1] - first_re) & 0xFFFFFFFF < 0x80000000)):
                fields["tcp.options.sack.dsack_le"] = edges[0][0]
                fields["tcp.options.sack.dsack_re"] = edges[0][1]
                fields["tcp.options.sack.dsack"] = True
            parts.append(" ".join(f"SLE={le} SRE={re}" for le, re in edges))
    return wscale, " ".join(parts), fields


def _dissect_tcp(data: bytes, l4: int, end: int, rsrc: bytes, rdst: bytes, src: str, dst: str,
                 protos: str, d: dict, cut: bool, checksums: bool,
                 keep_payload: bool = True) -> TcpSegment | None:
    protos += ":tcp"
    d["frame.protocols"] = protos
    n = len(data)
    if n - l4 < 20:
        err = ParseError("TCP", "header", l4, f"needs 20 bytes, only {max(n - l4, 0)} captured")
        _truncated(d, "TCP") if cut else _malformed(d, err)
        return None
    sport, dport, seq, ack, offflags, window, csum, urg = _TCP.unpack_from(data, l4)
    thl = (offflags >> 12) * 4
    flags = offflags & 0x1FF
    d["tcp.srcport"] = sport
    d["tcp.dstport"] = dport
    d["tcp.seq_raw"] = seq
    d["tcp.ack_raw"] = ack
    d["tcp.hdr_len"] = thl
    d.update(_FLAG_FIELDS[flags])
    d["tcp.window_size_value"] = window
    d["tcp.checksum"] = csum
    d["tcp.urgent_pointer"] = urg
    if thl < 20:
        _malformed(d, ParseError("TCP", "data offset", l4 + 12, f"{thl} bytes is below the minimum 20"))
        return None
    if l4 + thl > end:
        _malformed(d, ParseError("TCP", "data offset", l4 + 12,
                                 f"header of {thl} bytes but the IP payload holds {end - l4}"))
        # tshark runs the sequence analysis on the fixed header before the options fail
        # to fit: the segment's SYN still counts towards its stream's completeness.
        d["_tcp.analysed_header"] = True
        return None
    if l4 + thl > n:
        err = ParseError("TCP", "data offset", l4 + 12, f"header of {thl} bytes but only {n - l4} captured")
        _truncated(d, "TCP") if cut else _malformed(d, err)
        return None
    seglen = end - l4 - thl
    d["tcp.len"] = seglen
    wscale = None
    options_text = ""
    if thl > 20:
        raw_opts = data[l4 + 20 : l4 + thl]
        d["_tcp.options"] = raw_opts
        if thl == 32 and _U32BE.unpack_from(raw_opts)[0] == _NOP_NOP_TS:
            _, tsval, tsecr = _TS_WORDS.unpack_from(raw_opts)
            d["tcp.options.timestamp.tsval"] = tsval
            d["tcp.options.timestamp.tsecr"] = tsecr
            options_text = f"TSval={tsval} TSecr={tsecr}"
        else:
            try:
                wscale, options_text, fields = _options(raw_opts, l4 + 20)
            except ParseError as err:
                # tshark reports an option whose length overruns as expert info and keeps
                # the segment (and its stream): the options before the bad one still count.
                _expert(d, err)
                wscale, options_text, fields = _walk_options(
                    raw_opts[: _sound_options(raw_opts)], l4 + 20)
            d.update(fields)
        d["_tcp.options_summary"] = options_text
        d["_tcp.options_offset"] = l4 + 20
    payload = data[l4 + thl : end]
    if seglen and keep_payload:
        d["tcp.payload"] = payload
    if checksums:
        if cut or end > n or "_ip.short" in d:
            d["tcp.checksum.status"] = "unverified"
        else:
            total = ones_complement_sum(data[l4:end], _pseudo_sum(rsrc, rdst, 6, end - l4))
            if total == 0xFFFF:
                d["tcp.checksum.status"] = "good"
                d["tcp.checksum_calculated"] = csum  # tshark writes it with every verdict
            else:
                d["tcp.checksum.status"] = "bad"
                d["tcp.checksum_calculated"] = ~(ones_complement_sum(
                    data[l4 : l4 + 16] + b"\x00\x00" + data[l4 + 18 : end],
                    _pseudo_sum(rsrc, rdst, 6, end - l4))) & 0xFFFF
    return TcpSegment(src, dst, sport, dport, seq, ack, flags, seglen, window, wscale,
                      options_text, payload, l4 + thl)


def _udp_checksum(data: bytes, l4: int, length: int, csum: int, rsrc: bytes, rdst: bytes, d: dict,
                  cut: bool) -> None:
    """tshark's UDP checksum verdict (validation on) for the datagram at ``data[l4:l4 + length]``.

    A zero checksum means "none computed" over IPv4 (RFC 768: status "not present") but is
    forbidden over IPv6 (RFC 8200 §8.1: "illegal", an expert error) — both judged from the field
    alone, so even on a cut frame; any other checksum needs the whole datagram, and a frame cut
    short of it is "unverified". The computed value accompanies every good or bad verdict.
    """
    if csum == 0:
        if len(rsrc) == 4:
            d["udp.checksum.status"] = "not present"
        else:
            d["udp.checksum.status"] = "illegal"
            _expert_note(d, "UDP checksum: Illegal checksum value (0)")
        return
    if cut or l4 + length > len(data):
        d["udp.checksum.status"] = "unverified"
        return
    pseudo = _pseudo_sum(rsrc, rdst, 17, length)
    if ones_complement_sum(data[l4 : l4 + length], pseudo) == 0xFFFF:
        d["udp.checksum.status"] = "good"
        d["udp.checksum_calculated"] = csum
    else:
        d["udp.checksum.status"] = "bad"
        calc = ~ones_complement_sum(data[l4 : l4 + 6] + data[l4 + 8 : l4 + length], pseudo) & 0xFFFF
        d["udp.checksum_calculated"] = calc or 0xFFFF  # RFC 768: a computed 0 is sent as 0xFFFF


def _dissect_udp(data: bytes, l4: int, end: int, rsrc: bytes, rdst: bytes, protos: str, d: dict,
                 cut: bool, checksums: bool, payload: bool = True,
                 net: _network.NetworkLayers | None = None) -> TcpSegment | None:
    """A UDP datagram and its payload; returns the TCP segment an L2TP tunnel in it carries."""
    d["frame.protocols"] = protos + ":udp"
    if len(data) - l4 < 8:
        err = ParseError("UDP", "header", l4, f"needs 8 bytes, only {max(len(data) - l4, 0)} captured")
        _truncated(d, "UDP") if cut else _malformed(d, err)
        return None
    sport, dport, length, csum = _UDP.unpack_from(data, l4)
    d["udp.srcport"] = sport
    d["udp.dstport"] = dport
    d["udp.length"] = length
    d["udp.checksum"] = csum
    if length < 8 or l4 + length > end:
        _malformed(d, ParseError("UDP", "length", l4 + 4,
                                 f"{length} does not fit the IP payload of {end - l4} bytes"))
        return None
    if checksums:
        _udp_checksum(data, l4, length, csum, rsrc, rdst, d, cut)
    d["_ws.col.Protocol"] = "UDP"
    d["_ws.col.Info"] = f"{sport} → {dport} Len={length - 8}"
    if (sport in _dns.UDP_PORTS or dport in _dns.UDP_PORTS) and length > 8:
        _dns.udp_message(data[l4 + 8 : l4 + length], d, cut=cut)
    elif (sport in _dhcp.PORTS and dport in _dhcp.PORTS) and length > 8:
        _dhcp.message(data[l4 + 8 : l4 + length], d, cut)
    elif _DROPBOX_DISCOVERY_PORT in (sport, dport) and length > 8:
        # Dropbox's LAN sync discovery broadcasts: a JSON object per datagram, which tshark
        # names and hands to its JSON dissector (no fields here beyond the layers).
        d["frame.protocols"] += ":db-lsp-disc:json"
        d["_ws.col.Protocol"] = "DB-LSP-DISC/JSON"
        d["_ws.col.Info"] = "Dropbox LAN sync Discovery Protocol, JavaScript Object Notation"
    elif _L2TP_PORT in (sport, dport) and length > 8 and (l2tp := _l2tp()).claims(data, l4 + 8, l4 + length):
        return l2tp.dissect(data, l4 + 8, l4 + length, d, d["frame.protocols"], cut, checksums,
                            payload, net)
    elif length > 8:  # no dissector for the payload: tshark's "data"
        d["frame.protocols"] += ":data"
        d["data.len"] = length - 8
    return None


def relative_sack(d: dict, seg: TcpSegment, base: int, *, absolute: bool = False) -> None:
    """Rewrite a segment's SACK fields and Info summary relative to ``base`` (the peer's ISN).

    The dissector reads options before the conversation is known, so the edges it wrote
    are raw; once the analysis has the peer's base (the one ``tcp.ack`` is relative to),
    the fields, the option summary and the detail tree show what tshark shows. With
    ``absolute`` the Info column keeps raw edges, as tshark without relative numbers does.
    """
    raw = d.get("_tcp.options")
    if not raw or "tcp.options.sack_le" not in d:
        return
    try:
        _, text, fields = _walk_options(raw, d["_tcp.options_offset"], base, seg.ack)
    except ParseError:
        return  # the damage was worded when the options were first read
    d.update(fields)
    d["_tcp.sack_base"] = base
    if not absolute:
        seg.options_text = text
        d["_tcp.options_summary"] = text


def tags_text(aflags: int, dup_frame: int | None, dup_num: int | None) -> str:
    """The analysis tags that open the Info column, in Wireshark's order, each with a space."""
    parts = []
    for bit, _name, text in ta.TAGS:
        if aflags & bit:
            if bit == ta.DUPLICATE_ACK:
                parts.append(f"[TCP Dup ACK {dup_frame}#{dup_num}] ")
            else:
                parts.append(f"[{text}] ")
    return "".join(parts)


def tcp_info(d: dict, seg: TcpSegment, aflags: int, *, absolute: bool = False) -> str:
    """Wireshark's TCP Info text: tags, ports, flags, Seq/Ack/Win/Len and option summary."""
    tags = (tags_text(aflags, d.get("tcp.analysis.duplicate_ack_frame"),
                      d.get("tcp.analysis.duplicate_ack_num")) if aflags else "")
    return info_text(tags, seg.sport, seg.dport, seg.flags,
                     seg.seq if absolute else d["tcp.seq"], seg.ack if absolute else d["tcp.ack"],
                     d["tcp.window_size"], d["tcp.urgent_pointer"], seg.seglen, seg.options_text)


def info_text(tags: str, sport: int, dport: int, flags: int, seq: int, ack: int, win: int,
              urg: int, seglen: int, options_text: str) -> str:
    """The TCP Info column from its values (``seq``/``ack`` as shown: relative or raw)."""
    info = f"{tags}{sport} → {dport} [{_FLAGS_TEXT[flags]}] Seq={seq}"
    if flags & _tcp.ACK:
        info += f" Ack={ack}"
    info += f" Win={win}"
    if flags & _tcp.URG:
        info += f" Urg={urg}"
    info += f" Len={seglen}"
    if options_text:
        info += " " + options_text
    return info

