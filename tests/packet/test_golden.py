"""The seed's captured frame 351, reproduced byte for byte."""

from tcplab.packet import ipv4, link, stack, tcp
from tcplab.packet.checksum import verify_ipv4_header

GOLDEN_FRAME = bytes.fromhex(
    "02000000"
    "4500003a000100004006 7cbb 7f000001 7f000001".replace(" ", "")
    + "13d23039 00000000 00000000 5018 2000 b54e 0000".replace(" ", "")
    + b"GET /blog HTTP/1.1".hex()
)
LOOPBACK = ipv4.addr("127.0.0.1")


def build_golden_packet() -> bytes:
    return stack.tcp_packet(
        LOOPBACK, LOOPBACK, 5074, 12345, b"GET /blog HTTP/1.1",
        seq=0, ack=0, flags=tcp.PSH | tcp.ACK, window=8192, identification=1, ttl=64, df=False,
    )


def test_golden_ip_packet_is_exact() -> None:
    packet = build_golden_packet()
    assert len(packet) == 58
    assert packet == GOLDEN_FRAME[4:]
    assert packet[10:12] == b"\x7c\xbb"
    assert packet[36:38] == b"\xb5\x4e"


def test_golden_frame_with_null_link_header() -> None:
    frame = stack.frame(link.LINKTYPE_NULL, build_golden_packet())
    assert len(frame) == 62
    assert frame == GOLDEN_FRAME


def test_golden_parses_back_field_for_field() -> None:
    ip = ipv4.parse(GOLDEN_FRAME, 4)
    assert (ip.version, ip.ihl, ip.dscp, ip.ecn, ip.total_length) == (4, 5, 0, 0, 58)
    assert (ip.identification, ip.df, ip.mf, ip.fragment_offset, ip.ttl) == (1, False, False, 0, 64)
    assert (ip.protocol, ip.checksum, ip.src_str, ip.dst_str) == (6, 0x7CBB, "127.0.0.1", "127.0.0.1")
    assert verify_ipv4_header(GOLDEN_FRAME[4:24]).good
    t = tcp.parse(GOLDEN_FRAME, 24)
    assert (t.src_port, t.dst_port, t.seq, t.ack, t.data_offset) == (5074, 12345, 0, 0, 5)
    assert (t.flags, t.window, t.checksum, t.urgent) == (0x018, 8192, 0xB54E, 0)
    assert tcp.flags_text(t.flags) == "PSH, ACK"
    assert tcp.verify_checksum(ip.src, ip.dst, GOLDEN_FRAME[24:]).good
    assert GOLDEN_FRAME[44:] == b"GET /blog HTTP/1.1"
    lh = link.parse(link.LINKTYPE_NULL, GOLDEN_FRAME)
    assert (lh.header_len, lh.network) == (4, "IPv4")
