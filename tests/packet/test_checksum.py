"""RFC 1071 checksum edge cases, checked against a plain word-by-word reference."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tcplab.packet import checksum, ipv4, tcp, udp
from tcplab.packet.checksum import (
    internet_checksum,
    ones_complement_sum,
    verify_ipv4_header,
    verify_transport,
)


def reference_sum(data: bytes, initial: int = 0) -> int:
    """RFC 1071 §4.1 as written: add 16-bit words, fold the carry each time."""
    if len(data) % 2:
        data += b"\x00"
    total = initial
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2000), initial=st.integers(0, 0xFFFF))
def test_matches_reference_for_any_length(data: bytes, initial: int) -> None:
    expected = reference_sum(data, initial)
    assert ones_complement_sum(data, initial) == expected
    assert internet_checksum(data, initial) == ~expected & 0xFFFF
    assert ones_complement_sum(bytearray(data)) == ones_complement_sum(memoryview(data))


def test_rfc1071_worked_example() -> None:
    # RFC 1071 §3: the bytes 00 01 f2 03 f4 f5 f6 f7 sum to 0xddf2.
    data = bytes.fromhex("0001f203f4f5f6f7")
    assert ones_complement_sum(data) == 0xDDF2
    assert internet_checksum(data) == 0x220D


def test_odd_length_pads_with_a_zero_byte_at_the_end() -> None:
    assert ones_complement_sum(b"\x01") == 0x0100
    assert ones_complement_sum(b"\xab\xcd\xef") == ones_complement_sum(b"\xab\xcd\xef\x00")
    assert internet_checksum(b"\x01\x02\x03") == ~(0x0102 + 0x0300) & 0xFFFF


def test_all_zero_and_empty() -> None:
    for n in (0, 1, 2, 7, 1500):
        assert ones_complement_sum(bytes(n)) == 0
        assert internet_checksum(bytes(n)) == 0xFFFF


def test_all_ones_is_negative_zero() -> None:
    for n in (2, 4, 1500):
        assert ones_complement_sum(b"\xff" * n) == 0xFFFF
        assert internet_checksum(b"\xff" * n) == 0x0000
    # A sum that wraps to a multiple of 0xFFFF is reported as 0xFFFF, never 0.
    assert ones_complement_sum(b"\x80\x00\x7f\xff") == 0xFFFF
    assert ones_complement_sum(b"\xff") == 0xFF00


def test_a_header_with_its_checksum_sums_to_all_ones() -> None:
    header = ipv4.build_header(ipv4.addr("10.1.2.3"), ipv4.addr("192.168.0.1"), 100, ttl=17)
    assert ones_complement_sum(header) == 0xFFFF
    assert verify_ipv4_header(header).good
    status = verify_ipv4_header(header[:10] + b"\x12\x34" + header[12:])
    assert not status.good and status.word == "bad"
    assert str(status) == f"0x1234 incorrect, should be 0x{header[10]:02x}{header[11]:02x}"
    assert str(verify_ipv4_header(header)).endswith("[correct]")


def test_transport_checksums_and_udp_zero_rule() -> None:
    src, dst = ipv4.addr("127.0.0.1"), ipv4.addr("127.0.0.1")
    seg = tcp.build_segment(src, dst, 1, 2, b"odd")
    assert tcp.verify_checksum(src, dst, seg).good
    damaged = seg[:-1] + bytes([seg[-1] ^ 1])
    assert not tcp.verify_checksum(src, dst, damaged).good
    dgram = udp.build_datagram(src, dst, 5, 6, b"payload")
    assert udp.verify_checksum(src, dst, dgram).good
    assert udp.verify_checksum(src, dst, dgram[:6] + b"\x00\x00" + dgram[8:]) is None
    # A stored 0xFFFF is what RFC 768 sends when the computed value is zero.
    for value in range(0x10000):
        d = udp.build_datagram(src, dst, 1234, 53, value.to_bytes(2, "big"))
        if d[6:8] == b"\xff\xff":
            assert verify_transport(src, dst, 17, d, 6).good
            break


def test_pseudo_headers() -> None:
    v4 = checksum.pseudo_header(b"\x01\x02\x03\x04", b"\x05\x06\x07\x08", 6, 40)
    assert v4 == bytes.fromhex("01020304050607080006" "0028")
    v6 = checksum.pseudo_header(bytes(15) + b"\x01", bytes(15) + b"\x02", 17, 70000)
    assert len(v6) == 40 and v6[32:36] == (70000).to_bytes(4, "big") and v6[36:] == b"\0\0\0\x11"
