"""Differential tests: our packet bytes equal scapy's, and our parsers read scapy's packets back.

scapy is an independent implementation of the same RFCs; hypothesis feeds both the same
random headers and payloads. A mismatch means one of us misreads a field layout.
"""

from __future__ import annotations

import socket
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

scapy_all = pytest.importorskip("scapy.all")
from scapy.layers.inet import IP, TCP, UDP, IPOption  # noqa: E402
from scapy.layers.inet6 import (  # noqa: E402
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.l2 import CookedLinux, CookedLinuxV2, Dot1Q, Ether, Loopback  # noqa: E402
from scapy.packet import Raw  # noqa: E402

from tcplab.packet import ipv4, ipv6, link, stack, tcp, udp  # noqa: E402

SETTINGS = settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
ipv4_addr = st.binary(min_size=4, max_size=4)
ipv6_addr = st.binary(min_size=16, max_size=16)
payloads = st.binary(max_size=300)

# One TCP option as (scapy tuple, our TCPOption, packed size).
_tcp_option = st.one_of(
    u16.map(lambda v: (("MSS", v), tcp.mss(v), 4)),
    st.integers(0, 14).map(lambda v: (("WScale", v), tcp.window_scale(v), 3)),
    st.just((("SAckOK", b""), tcp.sack_permitted(), 2)),
    st.lists(st.tuples(u32, u32), min_size=1, max_size=4).map(
        lambda blocks: (("SAck", tuple(x for b in blocks for x in b)), tcp.sack(blocks),
                        2 + 8 * len(blocks))
    ),
    st.tuples(u32, u32).map(lambda t: (("Timestamp", t), tcp.timestamps(*t), 10)),
    st.just((("NOP", None), tcp.NOP, 1)),
)


@st.composite
def tcp_options(draw) -> tuple[list, list[tcp.TCPOption]]:
    """Options that fit the 40-byte limit, sometimes closed by an explicit EOL."""
    scapy_opts, ours, size = [], [], 0
    for candidate in draw(st.lists(_tcp_option, max_size=8)):
        s, o, n = candidate
        if size + n > 40:
            break
        scapy_opts.append(s)
        ours.append(o)
        size += n
    if size < 40 and draw(st.booleans()):
        scapy_opts.append(("EOL", None))
        ours.append(tcp.EOL)
    return scapy_opts, ours


# IPv4 options that scapy knows: NOP, Router Alert (RFC 2113), Record Route with one slot.
_ip_option = st.sampled_from([b"\x01", b"\x94\x04\x00\x00", b"\x07\x07\x04\x00\x00\x00\x00"])


def _pad4(raw: bytes) -> bytes:
    return raw + b"\x00" * (-len(raw) % 4)


def _ntop(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)


@st.composite
def ipv4_fields(draw, *, reserved_flag: bool = False) -> dict:
    opts = draw(st.lists(_ip_option, max_size=4))
    return {
        "src": draw(ipv4_addr), "dst": draw(ipv4_addr), "identification": draw(u16),
        "ttl": draw(u8), "df": draw(st.booleans()), "mf": draw(st.booleans()),
        "evil": draw(st.booleans()) if reserved_flag else False,
        "fragment_offset": draw(st.integers(0, 0x1FFF)), "dscp": draw(st.integers(0, 63)),
        "ecn": draw(st.integers(0, 3)), "options": opts,
    }


@st.composite
def tcp_fields(draw) -> dict:
    scapy_opts, ours = draw(tcp_options())
    return {
        "sport": draw(u16), "dport": draw(u16), "seq": draw(u32), "ack": draw(u32),
        "flags": draw(st.integers(0, 0x1FF)), "window": draw(u16), "urgent": draw(u16),
        "reserved": draw(st.integers(0, 7)), "scapy_options": scapy_opts, "options": ours,
    }


def scapy_ipv4(f: dict, **extra) -> IP:
    return IP(
        src=_ntop(f["src"]), dst=_ntop(f["dst"]), id=f["identification"], ttl=f["ttl"],
        flags=(4 if f["evil"] else 0) | (2 if f["df"] else 0) | (1 if f["mf"] else 0),
        frag=f["fragment_offset"], tos=(f["dscp"] << 2) | f["ecn"],
        options=[IPOption(o) for o in f["options"]], **extra,
    )


def scapy_tcp(t: dict) -> TCP:
    return TCP(
        sport=t["sport"], dport=t["dport"], seq=t["seq"], ack=t["ack"], flags=t["flags"],
        window=t["window"], urgptr=t["urgent"], reserved=t["reserved"], options=t["scapy_options"],
    )


def our_segment(src: bytes, dst: bytes, t: dict, payload: bytes) -> bytes:
    return tcp.build_segment(
        src, dst, t["sport"], t["dport"], payload, seq=t["seq"], ack=t["ack"], flags=t["flags"],
        window=t["window"], urgent=t["urgent"], options=tcp.pack_options(t["options"]),
        reserved=t["reserved"],
    )


# --- our bytes == scapy's bytes -------------------------------------------------------------


@SETTINGS
@given(ip=ipv4_fields(), t=tcp_fields(), payload=payloads)
def test_ipv4_tcp_bytes_equal_scapy(ip: dict, t: dict, payload: bytes) -> None:
    segment = our_segment(ip["src"], ip["dst"], t, payload)
    header = ipv4.build_header(
        ip["src"], ip["dst"], len(segment), protocol=tcp.PROTOCOL_NUMBER,
        identification=ip["identification"], ttl=ip["ttl"], df=ip["df"], mf=ip["mf"],
        fragment_offset=ip["fragment_offset"], dscp=ip["dscp"], ecn=ip["ecn"],
        options=_pad4(b"".join(ip["options"])),
    )
    assert header + segment == bytes(scapy_ipv4(ip) / scapy_tcp(t) / Raw(payload))


@SETTINGS
@given(src=ipv4_addr, dst=ipv4_addr, t=tcp_fields(), payload=payloads, ident=u16, ttl=u8,
       df=st.booleans())
def test_stack_tcp_packet_equals_scapy(src, dst, t, payload, ident, ttl, df) -> None:
    t["urgent"] = t["reserved"] = 0  # stack.tcp_packet leaves these at zero
    ours = stack.tcp_packet(
        src, dst, t["sport"], t["dport"], payload, seq=t["seq"], ack=t["ack"], flags=t["flags"],
        window=t["window"], options=tcp.pack_options(t["options"]), identification=ident,
        ttl=ttl, df=df,
    )
    theirs = IP(src=_ntop(src), dst=_ntop(dst), id=ident, ttl=ttl, flags=2 if df else 0) / \
        scapy_tcp(t) / Raw(payload)
    assert ours == bytes(theirs)


@SETTINGS
@given(src=ipv4_addr, dst=ipv4_addr, sport=u16, dport=u16, payload=payloads, ident=u16, ttl=u8,
       df=st.booleans())
def test_ipv4_udp_bytes_equal_scapy(src, dst, sport, dport, payload, ident, ttl, df) -> None:
    ours = stack.udp_packet(src, dst, sport, dport, payload, identification=ident, ttl=ttl, df=df)
    theirs = IP(src=_ntop(src), dst=_ntop(dst), id=ident, ttl=ttl, flags=2 if df else 0) / \
        UDP(sport=sport, dport=dport) / Raw(payload)
    assert ours == bytes(theirs)


def test_udp_checksum_that_computes_to_zero_is_sent_as_ffff() -> None:
    src = dst = ipv4.addr("10.0.0.1")
    for value in range(0x10000):
        payload = value.to_bytes(2, "big")
        dgram = udp.build_datagram(src, dst, 1234, 53, payload)
        if dgram[6:8] == b"\xff\xff":
            break
    else:
        pytest.fail("no two-byte payload gives a zero UDP checksum")
    assert dgram == bytes(IP(src="10.0.0.1", dst="10.0.0.1") / UDP(sport=1234, dport=53) /
                          Raw(payload))[20:]
    assert udp.verify_checksum(src, dst, dgram).good


@SETTINGS
@given(src=ipv6_addr, dst=ipv6_addr, t=tcp_fields(), payload=payloads, hlim=u8, tc=u8,
       fl=st.integers(0, 0xFFFFF))
def test_ipv6_tcp_bytes_equal_scapy(src, dst, t, payload, hlim, tc, fl) -> None:
    segment = our_segment(src, dst, t, payload)
    ours = ipv6.build_header(src, dst, len(segment), next_header=6, hop_limit=hlim,
                             traffic_class=tc, flow_label=fl) + segment
    theirs = IPv6(src=_ntop(src), dst=_ntop(dst), hlim=hlim, tc=tc, fl=fl) / scapy_tcp(t) / \
        Raw(payload)
    assert ours == bytes(theirs)
    if tc == 0 and fl == 0:
        t2 = dict(t, urgent=0, reserved=0)
        via_stack = stack.tcp_packet(
            src, dst, t["sport"], t["dport"], payload, seq=t["seq"], ack=t["ack"],
            flags=t["flags"], window=t["window"], options=tcp.pack_options(t["options"]), ttl=hlim,
        )
        assert via_stack == bytes(IPv6(src=_ntop(src), dst=_ntop(dst), hlim=hlim) /
                                  scapy_tcp(t2) / Raw(payload))


@SETTINGS
@given(src=ipv6_addr, dst=ipv6_addr, sport=u16, dport=u16, payload=payloads, hlim=u8)
def test_ipv6_udp_bytes_equal_scapy(src, dst, sport, dport, payload, hlim) -> None:
    ours = stack.udp_packet(src, dst, sport, dport, payload, ttl=hlim)
    theirs = IPv6(src=_ntop(src), dst=_ntop(dst), hlim=hlim) / UDP(sport=sport, dport=dport) / \
        Raw(payload)
    assert ours == bytes(theirs)


def _packet() -> bytes:
    return stack.tcp_packet(ipv4.addr("127.0.0.1"), ipv4.addr("127.0.0.1"), 5074, 80, b"hi")


def test_link_frames_equal_scapy() -> None:
    pkt = _packet()
    scapy_ip = IP(pkt)
    zero = "00:00:00:00:00:00"
    assert stack.frame(link.LINKTYPE_ETHERNET, pkt) == bytes(Ether(src=zero, dst=zero) / scapy_ip)
    assert stack.frame(link.LINKTYPE_NULL, pkt) == bytes(Loopback(type=2) / scapy_ip)
    sll = CookedLinux(pkttype=4, lladdrtype=772, lladdrlen=6, src=b"\x00" * 8, proto=0x0800)
    assert stack.frame(link.LINKTYPE_LINUX_SLL, pkt) == bytes(sll / scapy_ip)
    sll2 = CookedLinuxV2(proto=0x0800, ifindex=1, lladdrtype=772, pkttype=4, lladdrlen=6,
                         src=b"\x00" * 8)
    assert stack.frame(link.LINKTYPE_LINUX_SLL2, pkt) == bytes(sll2 / scapy_ip)
    assert stack.frame(link.LINKTYPE_RAW, pkt) == pkt
    pkt6 = stack.tcp_packet(ipv6.addr("::1"), ipv6.addr("::1"), 1, 2, b"v6")
    assert stack.frame(link.LINKTYPE_ETHERNET, pkt6) == bytes(Ether(src=zero, dst=zero) / IPv6(pkt6))


# --- our parsers read scapy's packets field for field ----------------------------------------

_SCAPY_OPTION_KINDS = {"EOL": 0, "NOP": 1, "MSS": 2, "WScale": 3, "SAckOK": 4, "SAck": 5,
                       "Timestamp": 8}


def _our_option_view(option: tcp.TCPOption) -> tuple:
    value = option.value
    if option.kind in (tcp.OPT_EOL, tcp.OPT_NOP):
        value = None
    elif option.kind == tcp.OPT_SACK:
        value = tuple(x for block in value for x in block)  # type: ignore[union-attr]
    return option.kind, value


def assert_tcp_matches(ours: tcp.TCPHeader, theirs: TCP) -> None:
    assert (ours.src_port, ours.dst_port, ours.seq, ours.ack) == \
        (theirs.sport, theirs.dport, theirs.seq, theirs.ack)
    assert (ours.data_offset, ours.reserved, ours.flags) == \
        (theirs.dataofs, theirs.reserved, int(theirs.flags))
    assert (ours.window, ours.checksum, ours.urgent) == \
        (theirs.window, theirs.chksum, theirs.urgptr)
    assert [_our_option_view(o) for o in ours.options] == \
        [(_SCAPY_OPTION_KINDS[name], value) for name, value in theirs.options]


@SETTINGS
@given(ip=ipv4_fields(reserved_flag=True), t=tcp_fields(), payload=payloads)
def test_parsers_read_scapy_ipv4_tcp(ip: dict, t: dict, payload: bytes) -> None:
    wire = bytes(scapy_ipv4(ip) / scapy_tcp(t) / Raw(payload))
    theirs_ip = IP(wire)
    ours = ipv4.parse(wire)
    assert (ours.version, ours.ihl, ours.total_length, ours.identification) == \
        (theirs_ip.version, theirs_ip.ihl, theirs_ip.len, theirs_ip.id)
    assert (ours.dscp << 2 | ours.ecn, ours.flags, ours.fragment_offset) == \
        (theirs_ip.tos, int(theirs_ip.flags), theirs_ip.frag)
    assert (ours.reserved_flag, ours.df, ours.mf) == (ip["evil"], ip["df"], ip["mf"])
    assert (ours.ttl, ours.protocol, ours.checksum) == (theirs_ip.ttl, theirs_ip.proto, theirs_ip.chksum)
    assert (ours.src_str, ours.dst_str) == (theirs_ip.src, theirs_ip.dst)
    assert ours.options == b"".join(bytes(o) for o in theirs_ip.options)
    assert ipv4.verify_checksum(wire).good
    seg_at = ours.header_length
    assert_tcp_matches(tcp.parse(wire, seg_at), TCP(wire[seg_at:]))
    assert tcp.verify_checksum(ours.src, ours.dst, wire[seg_at:]).good
    assert wire[seg_at + tcp.parse(wire, seg_at).header_length:] == payload


@SETTINGS
@given(src=ipv6_addr, dst=ipv6_addr, t=tcp_fields(), payload=payloads, hlim=u8, tc=u8,
       fl=st.integers(0, 0xFFFFF), ext=st.lists(st.sampled_from(["hbh", "dst", "rt", "frag"]),
                                                max_size=3))
def test_parsers_read_scapy_ipv6_tcp(src, dst, t, payload, hlim, tc, fl, ext) -> None:
    layers = IPv6(src=_ntop(src), dst=_ntop(dst), hlim=hlim, tc=tc, fl=fl)
    makers = {"hbh": IPv6ExtHdrHopByHop, "dst": IPv6ExtHdrDestOpt, "rt": IPv6ExtHdrRouting,
              "frag": lambda: IPv6ExtHdrFragment(offset=0, m=0)}
    for name in ext:
        layers = layers / makers[name]()
    wire = bytes(layers / scapy_tcp(t) / Raw(payload))
    theirs = IPv6(wire)
    ours = ipv6.parse(wire)
    assert (ours.src_str, ours.dst_str, ours.hop_limit) == (theirs.src, theirs.dst, theirs.hlim)
    assert (ours.traffic_class, ours.flow_label, ours.payload_length, ours.next_header) == \
        (theirs.tc, theirs.fl, theirs.plen, theirs.nh)
    assert ours.upper_protocol == 6
    assert ours.upper_offset == len(wire) - len(bytes(theirs[TCP]))
    segment = wire[ours.upper_offset:]
    assert_tcp_matches(tcp.parse(segment), TCP(segment))
    assert tcp.verify_checksum(ours.src, ours.dst, segment).good


@SETTINGS
@given(v6=st.booleans(), sport=u16, dport=u16, payload=payloads, data=st.data())
def test_parsers_read_scapy_udp(v6, sport, dport, payload, data) -> None:
    if v6:
        ip = IPv6(src=_ntop(data.draw(ipv6_addr)), dst=_ntop(data.draw(ipv6_addr)))
    else:
        ip = IP(src=_ntop(data.draw(ipv4_addr)), dst=_ntop(data.draw(ipv4_addr)))
    wire = bytes(ip / UDP(sport=sport, dport=dport) / Raw(payload))
    theirs = UDP(wire[40 if v6 else 20:])
    at = 40 if v6 else ipv4.parse(wire).header_length
    ours = udp.parse(wire, at)
    assert (ours.src_port, ours.dst_port, ours.length, ours.checksum) == \
        (theirs.sport, theirs.dport, theirs.len, theirs.chksum)
    header = ipv6.parse(wire) if v6 else ipv4.parse(wire)
    status = udp.verify_checksum(header.src, header.dst, wire[at:])
    assert status is not None and status.good


_mac = st.binary(min_size=6, max_size=6).map(lambda b: ":".join(f"{x:02x}" for x in b))


@SETTINGS
@given(dst=_mac, src=_mac, vlans=st.lists(st.integers(0, 4095), max_size=2), v6=st.booleans())
def test_link_parse_reads_scapy_ethernet(dst, src, vlans, v6) -> None:
    frame = Ether(dst=dst, src=src)
    for vid in vlans:
        frame = frame / Dot1Q(vlan=vid)
    wire = bytes(frame / (IPv6() if v6 else IP()) / TCP())
    parsed = link.parse(link.LINKTYPE_ETHERNET, wire)
    assert parsed.header_len == 14 + 4 * len(vlans)
    assert parsed.network == ("IPv6" if v6 else "IPv4")
    assert (parsed.fields["Destination"], parsed.fields["Source"]) == (dst, src)
    if vlans:
        assert parsed.fields["VLAN"] == vlans[-1]


@SETTINGS
@given(pkttype=st.integers(0, 4), hatype=u16, addr=st.binary(min_size=6, max_size=6),
       v6=st.booleans(), ifindex=u32)
def test_link_parse_reads_scapy_cooked(pkttype, hatype, addr, v6, ifindex) -> None:
    proto = 0x86DD if v6 else 0x0800
    inner = IPv6() if v6 else IP()
    mac = ":".join(f"{b:02x}" for b in addr)
    wire = bytes(CookedLinux(pkttype=pkttype, lladdrtype=hatype, lladdrlen=6, src=addr + b"\0\0",
                             proto=proto) / inner)
    parsed = link.parse(link.LINKTYPE_LINUX_SLL, wire)
    assert (parsed.header_len, parsed.network) == (16, "IPv6" if v6 else "IPv4")
    assert parsed.fields["Packet type"] == pkttype
    assert parsed.fields["Link-layer address type"] == hatype
    assert parsed.fields["Source"] == mac
    wire2 = bytes(CookedLinuxV2(proto=proto, ifindex=ifindex, lladdrtype=hatype, pkttype=pkttype,
                                lladdrlen=6, src=addr + b"\0\0") / inner)
    parsed2 = link.parse(link.LINKTYPE_LINUX_SLL2, wire2)
    assert (parsed2.header_len, parsed2.network) == (20, "IPv6" if v6 else "IPv4")
    assert parsed2.fields["Interface index"] == ifindex
    assert parsed2.fields["Packet type"] == pkttype and parsed2.fields["Source"] == mac


@pytest.mark.parametrize(("family", "network"), [(2, "IPv4"), (24, "IPv6"), (28, "IPv6"),
                                                 (30, "IPv6"), (10, "IPv6"), (7, None)])
def test_link_parse_reads_scapy_loopback_in_either_byte_order(family, network) -> None:
    little = bytes(Loopback(type=family) / IP())
    assert struct.unpack_from("<I", little)[0] == family  # scapy writes host (little) order
    big = struct.pack(">I", family) + little[4:]
    for wire in (little, big):
        parsed = link.parse(link.LINKTYPE_NULL, wire)
        assert (parsed.header_len, parsed.network, parsed.fields["Family"]) == (4, network, family)
