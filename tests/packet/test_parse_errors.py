"""Parse errors name the protocol, the field and the absolute byte offset."""

from __future__ import annotations

import pytest

from tcplab.packet import ParseError, ipv4, ipv6, link, stack, tcp, udp
from tests.support import expect_parse_error as expect

LO = ipv4.addr("127.0.0.1")
PACKET = stack.tcp_packet(LO, LO, 1000, 80, b"data")
FRAME = stack.frame(link.LINKTYPE_ETHERNET, PACKET)



def test_ipv4_errors() -> None:
    expect(lambda: ipv4.parse(FRAME[:24], 14), "IPv4", "header", 14, "only 10 captured")
    bad_version = FRAME[:14] + b"\x65" + FRAME[15:]
    expect(lambda: ipv4.parse(bad_version, 14), "IPv4", "version", 14, "is 6, expected 4")
    short_ihl = FRAME[:14] + b"\x44" + FRAME[15:]
    expect(lambda: ipv4.parse(short_ihl, 14), "IPv4", "header length (IHL)", 14, "16 bytes")
    long_ihl = b"\x4f" + PACKET[1:20]
    expect(lambda: ipv4.parse(long_ihl), "IPv4", "header length (IHL)", 0,
           "60 bytes but only 20 captured")
    tiny_total = FRAME[:16] + b"\x00\x10" + FRAME[18:]
    expect(lambda: ipv4.parse(tiny_total, 14), "IPv4", "total length", 16, "16 is smaller")


def test_tcp_errors() -> None:
    at = 34
    expect(lambda: tcp.parse(FRAME[: at + 12], at), "TCP", "header", at, "only 12 captured")
    low_offset = bytearray(FRAME)
    low_offset[at + 12] = 0x40
    expect(lambda: tcp.parse(bytes(low_offset), at), "TCP", "data offset", at + 12, "16 bytes")
    high_offset = bytearray(FRAME)
    high_offset[at + 12] = 0xF0
    expect(lambda: tcp.parse(bytes(high_offset), at), "TCP", "data offset", at + 12,
           "header of 60 bytes")
    opts = tcp.pack_options([tcp.mss(1460), tcp.NOP, tcp.window_scale(7)])
    seg = bytearray(tcp.build_segment(LO, LO, 1, 2, b"", options=opts, flags=tcp.SYN))
    seg[21] = 9  # MSS claims 9 bytes; 8 remain in the options area
    expect(lambda: tcp.parse(bytes(seg)), "TCP", "option length", 21, "claims 9 bytes, 8 remain")
    seg[21] = 1  # below the minimum of 2
    expect(lambda: tcp.parse(bytes(seg)), "TCP", "option length", 21, "claims 1 bytes")
    seg[20:28] = b"\x01" * 7 + b"\x08"  # NOPs, then a timestamp kind with no length byte
    expect(lambda: tcp.parse(bytes(seg)), "TCP", "option length", 27, "has no length byte")
    assert tcp.parse(bytes(seg), with_options=False).options == []


def test_udp_errors() -> None:
    dgram = udp.build_datagram(LO, LO, 1, 2, b"x")
    expect(lambda: udp.parse(b"\x00" * 10 + dgram[:5], 10), "UDP", "header", 10, "only 5 captured")
    bad = dgram[:4] + b"\x00\x07" + dgram[6:]
    expect(lambda: udp.parse(bad), "UDP", "length", 4, "7 is below the header size 8")


def test_ipv6_errors() -> None:
    pkt = stack.tcp_packet(ipv6.addr("::1"), ipv6.addr("::2"), 1, 2, b"x")
    expect(lambda: ipv6.parse(pkt[:39]), "IPv6", "header", 0, "only 39 captured")
    expect(lambda: ipv6.parse(b"\x40" + pkt[1:]), "IPv6", "version", 0, "is 4, expected 6")
    hop_by_hop = b"\x60" + pkt[1:6] + b"\x00" + pkt[7:40] + b"\x06\x00\x00"
    expect(lambda: ipv6.parse(hop_by_hop), "IPv6", "Hop-by-Hop Options", 40, "runs past the captured bytes")


@pytest.mark.parametrize(
    ("linktype", "size", "protocol"),
    [
        (link.LINKTYPE_NULL, 3, "Null/Loopback"),
        (link.LINKTYPE_ETHERNET, 13, "Ethernet"),
        (link.LINKTYPE_LINUX_SLL, 15, "Linux cooked (SLL)"),
        (link.LINKTYPE_LINUX_SLL2, 19, "Linux cooked (SLL2)"),
        (link.LINKTYPE_RAW, 0, "Raw IP"),
    ],
)
def test_link_errors(linktype: int, size: int, protocol: str) -> None:
    frame = stack.frame(linktype, PACKET)[:size]
    with pytest.raises(ParseError) as info:
        link.parse(linktype, frame)
    assert info.value.protocol == protocol and info.value.offset == 0


def test_link_vlan_tag_truncated_and_unknown_linktype() -> None:
    tagged = bytes(12) + b"\x81\x00\x00"
    expect(lambda: link.parse(link.LINKTYPE_ETHERNET, tagged), "Ethernet", "802.1Q tag", 14,
           "truncated")
    expect(lambda: link.parse(147, b"anything"), "Link", "link type", 0, "147 is not supported")
