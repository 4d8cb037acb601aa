"""L2TPv2 and PPP framing with exact bytes: what the builders write, what the parsers read, where they fail."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcplab.packet import ParseError, l2tp, ppp
from tests.support import expect_parse_error as expect


def test_control_message_bytes_and_fields() -> None:
    body = l2tp.avp(0, b"\x00\x06")
    msg = l2tp.build_control(1527, 0, 15, 2, body)
    # T, L, S set and version 2; length 20 = 12-byte header + one 8-byte AVP (nb6-http frame 22).
    assert msg == bytes.fromhex("c8020014" "05f70000" "000f0002" "80080000" "00000006")
    h = l2tp.parse(msg, 0, len(msg))
    assert (h.is_control, h.version, h.length, h.tunnel_id, h.session_id, h.ns, h.nr) == \
        (True, 2, 20, 1527, 0, 15, 2)
    assert h.header_len == 12 and h.offset_size is None
    [avp] = l2tp.parse_avps(msg, h.header_len, len(msg))
    assert (avp.mandatory, avp.hidden, avp.length, avp.vendor_id, avp.type, avp.value) == \
        (True, False, 8, 0, 0, b"\x00\x06")
    assert l2tp.first_message_type(msg, h.header_len, len(msg)) == 6
    zlb = l2tp.build_control(18994, 0, 2, 16)
    assert len(zlb) == l2tp.ZLB_LENGTH and l2tp.parse(zlb, 0, 12).length == 12


@pytest.mark.parametrize("shape, header_len", [
    ({}, 6), ({"length": True}, 8), ({"sequence": (3, 4)}, 10), ({"offset_pad": b"\x00\x00"}, 10),
    ({"length": True, "sequence": (1, 2), "offset_pad": b"", "priority": True}, 14),
])
def test_data_message_optional_fields(shape: dict, header_len: int) -> None:
    frame = ppp.build_frame(ppp.PPP_IPV4, b"\x45" + b"\x00" * 19)
    msg = l2tp.build_data(7, 3, frame, **shape)
    h = l2tp.parse(msg, 0, len(msg))
    assert not h.is_control and (h.tunnel_id, h.session_id) == (7, 3)
    assert h.header_len == header_len and msg[h.header_len:] == frame
    assert (h.length == len(msg)) if shape.get("length") else h.length is None
    assert (h.ns, h.nr) == shape.get("sequence", (None, None))
    assert bool(h.flags & l2tp.FLAG_PRIORITY) == shape.get("priority", False)


def test_ppp_frame_compressions() -> None:
    assert ppp.parse_frame(b"\xff\x03\x00\x57", 0, 4) == ppp.PPPFrame(0xFF, 0x03, ppp.PPP_IPV6, 4)
    assert ppp.parse_frame(b"\xc0\x21\x09", 0, 3) == ppp.PPPFrame(None, None, ppp.PPP_LCP, 2)
    assert ppp.parse_frame(b"\xff\x03\x21", 0, 3) == ppp.PPPFrame(0xFF, 0x03, ppp.PPP_IPV4, 3)
    assert ppp.parse_frame(b"\x21\x45", 0, 2) == ppp.PPPFrame(None, None, ppp.PPP_IPV4, 1)
    assert ppp.build_frame(ppp.PPP_LCP, b"x", compress_address=True) == b"\xc0\x21x"
    assert ppp.parse_control(b"\x09\x24\x00\x08", 0, 4) == (9, 36, 8)


def test_errors_name_field_and_offset() -> None:
    expect(lambda: l2tp.parse(b"\x00\x00\xc8", 2, 3), "L2TP", "flags", 2, "needs 2 bytes")
    expect(lambda: l2tp.parse(b"\x00\x03", 0, 2), "L2TP", "version", 1, "is 3")
    expect(lambda: l2tp.parse(b"\xc8\x02\x00\x14\x00", 0, 5), "L2TP", "header", 0, "need 12 bytes")
    too_long = struct.pack("!HHHHHH", 0xC802, 400, 9, 0, 0, 0)
    expect(lambda: l2tp.parse(too_long, 0, 12), "L2TP", "length", 2, "400 does not fit")
    pad = l2tp.build_data(1, 2, b"", offset_pad=b"\x00")[:-1]
    expect(lambda: l2tp.parse(pad, 0, len(pad)), "L2TP", "offset size", 6, "1 bytes of padding")
    overrun = struct.pack("!HHH", 0x8000 | 40, 0, 0) + b"\x00\x06"
    expect(lambda: l2tp.parse_avps(overrun, 0, 8), "L2TP", "AVP length", 0, "40 does not fit")
    expect(lambda: l2tp.parse_avps(b"\x00" * 10, 6, 10), "L2TP", "AVP header", 6, "only 4 left")
    assert l2tp.first_message_type(overrun, 0, 8) == 6  # named although the AVP is damaged
    expect(lambda: ppp.parse_frame(b"\xff\x03", 0, 2), "PPP", "protocol", 2, "no bytes left")
    expect(lambda: ppp.parse_frame(b"\x00", 0, 1), "PPP", "protocol", 0, "only 1 left")
    expect(lambda: ppp.parse_control(b"\x09\x01", 0, 2), "PPP", "control header", 0, "needs 4")
    with pytest.raises(ValueError):
        l2tp.avp(1, b"x" * 1020)


@given(st.binary(max_size=64))
def test_parsers_raise_only_parse_errors(data: bytes) -> None:
    for fn in (lambda: l2tp.parse(data, 0, len(data)), lambda: l2tp.parse_avps(data, 0, len(data)),
               lambda: ppp.parse_frame(data, 0, len(data)), lambda: ppp.parse_control(data, 0, len(data))):
        try:
            fn()
        except ParseError:
            pass
    assert l2tp.first_message_type(data, 0, len(data)) in (None, *range(1 << 16))
