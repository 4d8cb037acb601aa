"""The new layers with exact bytes: PPPoE, ICMP, ICMPv6, IPv6 extension headers, TLS records, DNS over TCP."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcplab.packet import dns, icmp, icmpv6, ipv4, ipv6, link, pppoe, stack, tls, udp
from tcplab.pcap import open_capture
from tests.fidelity.oracle import DATA
from tests.support import expect_parse_error as expect

LO4 = ipv4.addr("127.0.0.1")
LO6 = ipv6.addr("::1")



# --- PPPoE ----------------------------------------------------------------------------------


def test_pppoe_session_bytes_and_link_walk() -> None:
    inner = stack.tcp_packet(LO4, LO4, 1, 2, b"hi")
    session = pppoe.build_session(0xBEEF, pppoe.PPP_IPV4, inner)
    assert session[:8] == bytes.fromhex("1100beef") + (len(inner) + 2).to_bytes(2, "big") + b"\x00\x21"
    frame = b"\xaa" * 6 + b"\xbb" * 6 + b"\x81\x00\x00\x07" + b"\x88\x64" + session + b"\x00" * 4
    hdr = link.parse(link.LINKTYPE_ETHERNET, frame)
    assert (hdr.header_len, hdr.network) == (26, "IPv4")
    assert hdr.fields["VLAN"] == 7 and hdr.fields["PPPoE Session ID"] == 0xBEEF
    assert ipv4.parse(frame, hdr.header_len).total_length == len(inner)
    lcp = pppoe.build_session(1, 0xC021, b"\x09\x01\x00\x04")
    assert link.parse(link.LINKTYPE_ETHERNET, frame[:12] + b"\x88\x64" + lcp).network is None


def test_pppoe_errors_name_field_and_offset() -> None:
    eth = b"\x00" * 12 + b"\x88\x64"
    expect(lambda: link.parse(1, eth + b"\x11\x00"), "PPPoE", "header", 14, "only 2 captured")
    expect(lambda: link.parse(1, eth + b"\x21\x00\x00\x01\x00\x02\x00\x21"), "PPPoE", "version/type", 14, "2/1")
    expect(lambda: link.parse(1, eth + b"\x11\x00\x00\x01\x00\x09\x00\x21"), "PPPoE", "payload length", 18,
           "9 bytes but only 2 captured")
    expect(lambda: link.parse(1, eth + b"\x11\x09\x00\x01\x00\x00"), "PPPoE", "code", 15, "PADI")
    expect(lambda: link.parse(1, eth + b"\x11\x00\x00\x01\x00\x01\x00"), "PPP", "protocol", 20, "length is 1")
    disc = pppoe.parse(b"\x11\x09\x00\x00\x00\x00", session=False)
    assert disc.code_name == "Active Discovery Initiation (PADI)" and disc.network is None


# --- ICMP -----------------------------------------------------------------------------------


def test_icmp_echo_bytes_and_summary() -> None:
    msg = icmp.build_echo(0x7E57, 1, b"abcd")
    assert msg == bytes.fromhex("0800") + msg[2:4] + bytes.fromhex("7e570001") + b"abcd"
    assert icmp.verify_checksum(msg).good
    parsed = icmp.parse(msg)
    assert (parsed.identifier, parsed.sequence, parsed.quoted) == (0x7E57, 1, None)
    assert parsed.summary(64) == "Echo (ping) request  id=0x7e57, seq=1/256, ttl=64"
    reply = icmp.parse(icmp.build_echo(0x7E57, 258, reply=True))
    assert reply.summary() == "Echo (ping) reply    id=0x7e57, seq=258/513"


def test_icmp_error_quotes_ip_and_udp_header() -> None:
    dgram = stack.ip_packet(LO4, LO4, 17, udp.build_datagram(LO4, LO4, 46141, 9, b"x" * 17))
    err = icmp.build_error(icmp.DEST_UNREACHABLE, 3, dgram[:28])
    parsed = icmp.parse(err)
    assert parsed.is_error and parsed.summary() == "Destination unreachable (Port unreachable)"
    assert parsed.quoted is not None and parsed.quoted.offset == 8
    assert (parsed.quoted.src_port, parsed.quoted.dst_port) == (46141, 9)
    assert parsed.quoted.ip.total_length == 45  # the original's length, not the quote's
    seg = stack.tcp_packet(LO4, LO4, 1000, 80, b"", seq=0xDEADBEEF)
    assert icmp.parse(icmp.build_error(icmp.TIME_EXCEEDED, 0, seg[:28])).quoted.tcp_seq == 0xDEADBEEF
    assert icmp.parse(icmp.build_error(3, 1, b"\x45\x00")).quoted is None  # too little quoted
    expect(lambda: icmp.parse(err[:7]), "ICMP", "header", 0, "only 7 captured")


def test_echo_pairs_are_bounded() -> None:
    pairs = icmp.EchoPairs(limit=3)
    for seq in range(5):
        pairs.request(LO4, b"\x7f\x00\x00\x02", 1, seq, seq + 1)
    assert pairs.reply(b"\x7f\x00\x00\x02", LO4, 1, 4) == 5
    assert pairs.reply(b"\x7f\x00\x00\x02", LO4, 1, 0) is None  # forgotten, oldest first
    assert pairs.reply(LO4, b"\x7f\x00\x00\x02", 1, 4) is None  # the wrong direction


# --- ICMPv6 ---------------------------------------------------------------------------------


def test_icmpv6_echo_is_byte_identical_to_the_kernels() -> None:
    # Frame 13 of tests/data/icmp-lo.pcap: the echo request whose checksum the kernel filled in.
    with open_capture(DATA / "icmp-lo.pcap") as reader:
        frame = list(reader)[12].data
    msg = icmpv6.build_echo(LO6, LO6, 0x7E57, 1, bytes(range(16)))
    assert frame[14 + 40 :] == msg
    assert icmpv6.verify_checksum(LO6, LO6, msg).good
    parsed = icmpv6.parse(msg)
    assert parsed.summary(64) == "Echo (ping) request id=0x7e57, seq=1, hop limit=64"


def test_icmpv6_neighbor_solicitation_and_errors() -> None:
    ns = bytes([135, 0, 0, 0]) + b"\x00" * 4 + ipv6.addr("fe80::1")
    assert icmpv6.parse(ns).summary() == "Neighbor Solicitation for fe80::1"
    expect(lambda: icmpv6.parse(ns[:20]), "ICMPv6", "target address", 8, "only 12 captured")
    inner = stack.ip_packet(LO6, LO6, 17, udp.build_datagram(LO6, LO6, 53370, 9, b"x"))
    unreachable = icmpv6.parse(bytes([1, 4, 0, 0, 0, 0, 0, 0]) + inner)
    assert unreachable.quoted_ports == (53370, 9) and unreachable.is_error
    assert unreachable.summary() == "Destination Unreachable (Port unreachable)"


# --- IPv6 extension headers -----------------------------------------------------------------


def _with_extensions(payload_proto: int, payload: bytes, chain: list[tuple[int, bytes]]) -> bytes:
    """IPv6 header + extension headers (type, body after next-header byte) + payload."""
    raw = b""
    types = [t for t, _b in chain] + [payload_proto]
    for (_t, body), following in zip(chain, types[1:]):
        raw += bytes([following]) + body
    return ipv6.build_header(LO6, LO6, len(raw) + len(payload), next_header=types[0]) + raw + payload


def test_extension_headers_are_walked_to_the_upper_layer() -> None:
    seg = udp.build_datagram(LO6, LO6, 1, 2, b"data")
    hop = b"\x00" + b"\x01\x04\x00\x00\x00\x00"  # len 0 (8 bytes): PadN
    dest = b"\x01" + b"\x01\x0c" + b"\x00" * 12  # len 1 (16 bytes)
    ah = b"\x01\x00\x00" + b"\x00" * 8  # AH: length 1 → (1+2)*4 = 12 bytes
    frag = ipv6.build_fragment_header(17, 0, False, 0xCAFE)[1:]  # an atomic fragment
    pkt = _with_extensions(17, seg, [(0, hop), (60, dest), (51, ah), (44, frag)])
    h = ipv6.parse(pkt)
    assert [(e.header_type, e.offset, e.length) for e in h.extensions] == \
        [(0, 40, 8), (60, 48, 16), (51, 64, 12), (44, 76, 8)]
    assert (h.upper_protocol, h.upper_offset) == (17, 84)
    assert h.fragment == ipv6.FragmentHeader(17, 0, False, 0xCAFE) and not h.fragment.is_fragment
    assert udp.parse(pkt, h.upper_offset).dst_port == 2


def test_non_first_fragment_is_not_walked_into() -> None:
    frag = ipv6.build_fragment_header(6, 1232, True, 7)
    pkt = ipv6.build_header(LO6, LO6, 8 + 16, next_header=44) + frag + b"\x06" + b"\x00" * 15
    h = ipv6.parse(pkt)
    assert (h.upper_protocol, h.upper_offset) == (ipv6.FRAGMENT, 48)
    assert (h.fragment.offset, h.fragment.offset_units, h.fragment.more) == (1232, 154, True)
    assert ipv6.build_fragment_header(58, 1232, True, 0xCAD57C41) == bytes.fromhex("3a0004d1cad57c41")
    with pytest.raises(ValueError, match="multiple of 8"):
        ipv6.build_fragment_header(6, 13, False, 1)


def test_extension_header_errors_name_field_and_offset() -> None:
    long_dest = b"\x05" + b"\x00" * 6  # claims 48 bytes
    pkt = _with_extensions(17, b"\x00" * 8, [(60, long_dest)])
    expect(lambda: ipv6.parse(pkt), "IPv6", "Destination Options length", 41, "48 bytes run past the captured bytes")
    hop = _with_extensions(17, b"\x00" * 8, [(0, b"\x00" * 7)])
    shrunk = hop[:4] + (4).to_bytes(2, "big") + hop[6:]  # payload length 4: the header cannot fit
    expect(lambda: ipv6.parse(shrunk), "IPv6", "Hop-by-Hop Options", 40, "runs past the payload length 4")
    loop = ipv6.build_header(LO6, LO6, 8 * 20, next_header=60) + (b"\x3c\x00" + b"\x00" * 6) * 20
    expect(lambda: ipv6.parse(loop), "IPv6", "extension header", 40 + 8 * 16, "more than 16")


# --- TLS ------------------------------------------------------------------------------------


def _client_hello(sni: str) -> bytes:
    name = sni.encode()
    sni_ext = (0).to_bytes(2, "big") + (len(name) + 5).to_bytes(2, "big") + \
        (len(name) + 3).to_bytes(2, "big") + b"\x00" + len(name).to_bytes(2, "big") + name
    body = b"\x03\x03" + b"\x11" * 32 + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00" + \
        len(sni_ext).to_bytes(2, "big") + sni_ext
    return tls.build_handshake(tls.CLIENT_HELLO, body)


def test_tls_records_survive_any_segmentation() -> None:
    hello = tls.build_record(tls.HANDSHAKE, _client_hello("example.org"), 0x0301)
    stream_bytes = hello + tls.build_record(tls.CHANGE_CIPHER_SPEC, b"\x01") + \
        tls.build_record(tls.HANDSHAKE, b"\x8f" * 40) + tls.build_record(tls.APPLICATION_DATA, b"z" * 300) + \
        tls.build_record(tls.ALERT, b"\x55" * 26)
    assert stream_bytes[:3] == b"\x16\x03\x01"
    for cut in (1, 2, 5, 7, 64, len(stream_bytes)):
        s = tls.RecordStream()
        records = []
        for i in range(0, len(stream_bytes), cut):
            records += s.feed(stream_bytes[i : i + cut])
        assert [r.content_type for r in records] == [22, 20, 22, 23, 21]
        assert [r.offset for r in records] == [0, len(hello), len(hello) + 6, len(hello) + 51,
                                               len(hello) + 356]
        assert not s.pending
        words = [w for r in records for w in s.describe(r)]
        assert words == ["Client Hello", "Change Cipher Spec", "Encrypted Handshake Message",
                         "Application Data", "Encrypted Alert"]
    assert tls.client_hello_server_name(_client_hello("example.org")[4:]) == "example.org"
    assert tls.client_hello_server_name(_client_hello("example.org")[4:40]) is None


def test_tls_garbage_breaks_the_stream_with_its_offset() -> None:
    s = tls.RecordStream()
    assert s.feed(tls.build_record(23, b"ok")) != []
    s.feed(b"GET / HTTP/1.1\r\n")
    assert s.broken is not None and (s.broken.field, s.broken.offset) == ("content type", 7)
    assert s.feed(b"more") == [] and not s.pending
    expect(lambda: tls.parse_records(b"\x17\x03\x03\x50\x01"), "TLS", "length", 3, "exceeds")
    expect(lambda: tls.parse_records(b"\x17\x02\x00\x00\x01"), "TLS", "version", 1, "0x0200")
    assert tls.looks_like_record(b"\x16\x03\x01\x00\x05") and not tls.looks_like_record(b"GET /")


# --- DNS over TCP ---------------------------------------------------------------------------


@given(st.lists(st.integers(1, 40), min_size=1, max_size=30))
def test_dns_tcp_framing_under_any_segmentation(cuts: list[int]) -> None:
    msgs = [dns.build_query(i, f"host{i}.example") for i in range(4)]
    data = b"".join(dns.frame_tcp(m) for m in msgs)
    framer = dns.TcpFramer()
    out = []
    pos = 0
    for size in cuts * (len(data) // max(sum(cuts), 1) + 1):
        out += framer.feed(data[pos : pos + size])
        pos += size
        if pos >= len(data):
            break
    out += framer.feed(data[pos:])
    assert [m for _o, m in out] == msgs and framer.broken is None and not framer.pending
    offsets = [o for o, _m in out]
    assert offsets[0] == 0 and offsets[1] == len(msgs[0]) + 2


def test_dns_tcp_length_below_a_header_is_not_dns() -> None:
    framer = dns.TcpFramer()
    assert framer.feed(dns.frame_tcp(dns.build_query(1, "a.example"))) != []
    assert framer.feed(b"\x00\x05hello") == []
    assert framer.broken is not None and framer.broken.offset == 2 + 12 + 11 + 4
    assert "below the 12-byte DNS header" in framer.broken.reason
