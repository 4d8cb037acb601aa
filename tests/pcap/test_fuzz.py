"""Hostile bytes: any mutation of a valid capture yields records or one CaptureFormatError.

Never another exception (IndexError, struct.error, MemoryError...), never a hang: every
byte of a capture file is treated as hostile.
"""

from __future__ import annotations

import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcplab.packet import link
from tcplab.pcap import (
    CaptureFormatError,
    CustomBlockRecord,
    PcapngWriter,
    PcapWriter,
    open_capture,
)
from tests.pcap import craft
from tests.pcap.captools import BASE_NS, sample_frame


def _pcap(ns: bool, order: str) -> bytes:
    out = io.BytesIO()
    with PcapWriter(out, link.LINKTYPE_ETHERNET, nanosecond=ns, byteorder=order) as w:
        for i in range(6):
            w.write(sample_frame(i), BASE_NS + i)
    return out.getvalue()


def _pcapng(order: str) -> bytes:
    out = io.BytesIO()
    with PcapngWriter(out, link.LINKTYPE_ETHERNET, byteorder=order, interface_name="lo") as w:
        other = w.add_interface(link.LINKTYPE_NULL, nanosecond=False)
        for i in range(6):
            w.write(sample_frame(i), BASE_NS + i, comment=f"c{i}" if i % 2 else None,
                    interface=other if i == 3 else 0)
    e = "<" if order == "little" else ">"
    extra = craft.spb(sample_frame(9), endian=e) + craft.packet_block(b"abc", ts=5, endian=e)
    return out.getvalue() + extra


SEEDS = [_pcap(False, "little"), _pcap(True, "big"), _pcapng("little"), _pcapng("big")]


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["set", "flip", "cut", "insert", "word"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if not data:
            break
        if kind == "set":
            data[pos] = draw(st.integers(0, 255))
        elif kind == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        else:  # overwrite 4 bytes with an extreme value: lengths, ids, magics
            data[pos:pos + 4] = draw(st.sampled_from(
                [b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x0a\x0d\x0d\x0a", b"\x0c\x00\x00\x00",
                 b"\x00\x00\x00\x0c", b"\x01\x00\x00\x00", b"\x06\x00\x00\x00", b"\x4d\x3c\x2b\x1a"]))
    return bytes(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated())
def test_mutated_files_fail_only_with_capture_format_error(data: bytes) -> None:
    try:
        with open_capture(io.BytesIO(data)) as reader:
            for count, rec in enumerate(reader, 1):
                assert 0 <= rec.offset < len(data)
                assert len(rec.data) <= len(data)
                # A custom block belongs to no interface: before any IDB it says 0 of none.
                assert 0 <= rec.interface < max(len(reader.interfaces),
                                                isinstance(rec, CustomBlockRecord))
                assert count < 100
    except CaptureFormatError as exc:
        assert 0 <= exc.offset <= len(data) + 16
        assert exc.reason
