"""The packet-list line the live commands print for each frame. No I/O here.

The analyzer owns packet-list rendering; this module only adapts a live frame to it, so
``capture``, ``inject`` and ``analyze`` print the same columns. If the analyzer is not
installed in this build, a minimal line built from :mod:`tcplab.packet` parsers is used.
"""

from __future__ import annotations

from tcplab.packet import ipv4, ipv6, link, tcp, udp
from tcplab.packet.errors import ParseError


def packet_line(number: int, relative_ns: int, data: bytes, wire_length: int,
                linktype: int) -> str:
    """``No. Time Source Destination Protocol Length Info`` for one captured frame."""
    return _minimal_line(number, relative_ns, data, wire_length, linktype)


def _minimal_line(number: int, relative_ns: int, data: bytes, wire_length: int,
                  linktype: int) -> str:
    src = dst = "?"
    proto = "?"
    info = ""
    try:
        header = link.parse(linktype, data)
        offset = header.header_len
        if header.network == "IPv4":
            ip = ipv4.parse(data, offset)
            src, dst = ip.src_str, ip.dst_str
            offset += ip.header_length
            end = min(len(data), offset - ip.header_length + ip.total_length)
            protocol, raw_src, raw_dst = ip.protocol, ip.src, ip.dst
        elif header.network == "IPv6":
            ip6 = ipv6.parse(data, offset)
            src, dst = ipv6.ntoa(ip6.src), ipv6.ntoa(ip6.dst)
            end = min(len(data), offset + 40 + ip6.payload_length)
            offset += ip6.upper_offset
            protocol, raw_src, raw_dst = ip6.upper_protocol, ip6.src, ip6.dst
        else:
            fields = header.fields
            kind = fields.get("Type", fields.get("Protocol", 0))
            return _columns(number, relative_ns, "-", "-", f"0x{kind:04x}", wire_length, "")
        del raw_src, raw_dst
        if protocol == tcp.PROTOCOL_NUMBER:
            seg = tcp.parse(data, offset, with_options=False)
            length = end - offset - seg.header_length
            proto = "TCP"
            info = (f"{seg.src_port} → {seg.dst_port} [{tcp.flags_text(seg.flags)}] "
                    f"Seq={seg.seq} Ack={seg.ack} Win={seg.window} Len={max(length, 0)}")
        elif protocol == udp.PROTOCOL_NUMBER:
            dgram = udp.parse(data, offset)
            proto = "UDP"
            info = f"{dgram.src_port} → {dgram.dst_port} Len={max(dgram.length - 8, 0)}"
        else:
            proto = ipv4.PROTOCOL_NAMES.get(protocol, str(protocol))
    except ParseError as exc:
        info = f"[Malformed Packet: {exc}]"
    return _columns(number, relative_ns, src, dst, proto, wire_length, info)


def _columns(number: int, relative_ns: int, src: str, dst: str, proto: str, length: int,
             info: str) -> str:
    seconds = relative_ns / 1e9
    return f"{number:>5} {seconds:>11.6f} {src:<15} {dst:<15} {proto:<5} {length:>5} {info}"
