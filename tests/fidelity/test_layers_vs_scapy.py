"""Random IPv6 extension-header chains and ICMP errors built by scapy, walked by tcplab.packet.

scapy lays the headers down independently of us; for any chain it builds, our walk must
find every extension header where scapy put it, with the same type, and land on the UDP
header scapy placed after them.
"""

from __future__ import annotations

import random

from tcplab.packet import icmp, icmpv6, ipv6


def test_random_extension_chains_match_scapys_layout() -> None:
    from scapy.layers.inet import UDP
    from scapy.layers.inet6 import (
        IPv6,
        IPv6ExtHdrDestOpt,
        IPv6ExtHdrFragment,
        IPv6ExtHdrHopByHop,
        IPv6ExtHdrRouting,
        PadN,
    )
    from scapy.packet import Raw

    kinds = [
        (ipv6.HOP_BY_HOP, lambda r: IPv6ExtHdrHopByHop(options=[PadN(optdata=b"\x00" * r.choice([0, 4, 12]))])),
        (ipv6.DEST_OPTIONS, lambda r: IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\x00" * r.choice([2, 10]))])),
        (ipv6.ROUTING, lambda r: IPv6ExtHdrRouting(addresses=["::2"] * r.randint(0, 2))),
        (ipv6.FRAGMENT, lambda r: IPv6ExtHdrFragment(offset=0, m=0, id=r.randrange(1 << 32))),
    ]
    rng = random.Random(6)
    for _ in range(300):
        chain = [rng.choice(kinds) for _ in range(rng.randint(0, 6))]
        pkt = IPv6(src="::1", dst="::1")
        for _kind, make in chain:
            pkt = pkt / make(rng)
        pkt = pkt / UDP(sport=1, dport=2) / Raw(b"x" * rng.randint(0, 20))
        raw = bytes(pkt)
        h = ipv6.parse(raw)
        expected = []
        layer = pkt.payload
        for kind, _make in chain:
            expected.append((kind, len(raw) - len(bytes(layer)), len(bytes(layer)) - len(bytes(layer.payload))))
            layer = layer.payload
        assert [(e.header_type, e.offset, e.length) for e in h.extensions] == expected
        assert (h.upper_protocol, h.upper_offset) == (17, len(raw) - len(bytes(pkt[UDP])))


def test_icmp_errors_built_by_scapy() -> None:
    from scapy.layers.inet import ICMP, IP, UDP, IPerror, TCPerror, UDPerror
    from scapy.layers.inet6 import ICMPv6DestUnreach, IPerror6, IPv6

    inner = IPerror(src="10.0.0.1", dst="10.0.0.2") / UDPerror(sport=1234, dport=53)
    for code in range(16):
        raw = bytes(ICMP(type=3, code=code) / inner)
        msg = icmp.parse(raw)
        assert icmp.verify_checksum(raw).good and msg.code_name is not None
        assert (msg.quoted.ip.src_str, msg.quoted.src_port, msg.quoted.dst_port) == ("10.0.0.1", 1234, 53)
    raw = bytes(ICMP(type=11, code=0) / IPerror(src="10.0.0.3", dst="10.0.0.4") / TCPerror(sport=9, dport=80, seq=77))
    assert icmp.parse(raw).quoted.tcp_seq == 77 and icmp.parse(raw).summary().startswith("Time-to-live exceeded")
    echo = bytes(IP(src="127.0.0.1", dst="127.0.0.1") / ICMP(id=0x1234, seq=7) / b"payload")[20:]
    assert echo == icmp.build_echo(0x1234, 7, b"payload")
    six = IPv6(src="::1", dst="::1") / ICMPv6DestUnreach(code=4) / IPerror6(src="::1", dst="::2") / UDP(sport=7, dport=9)
    raw6 = bytes(six)
    msg6 = icmpv6.parse(raw6, 40)
    assert icmpv6.verify_checksum(ipv6.addr("::1"), ipv6.addr("::1"), raw6[40:]).good
    assert msg6.quoted_ports == (7, 9) and msg6.quoted.dst_str == "::2"
