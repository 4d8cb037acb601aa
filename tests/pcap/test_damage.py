"""Damaged files: every good record first, then one error naming the byte offset and what was expected."""

from __future__ import annotations

import gzip
import io
import random
import struct

import pytest

from tcplab.errors import InputError
from tcplab.pcap import CaptureFormatError, PcapngWriter, PcapWriter, Record, open_capture
from tcplab.pcap.records import READ_CHUNK
from tests.pcap import craft
from tests.pcap.captools import BASE_NS, sample_frame


def read_until_error(data: bytes) -> tuple[list[Record], CaptureFormatError | None]:
    records: list[Record] = []
    try:
        with open_capture(io.BytesIO(data)) as reader:
            for rec in reader:
                records.append(rec)
    except CaptureFormatError as exc:
        return records, exc
    return records, None


def good_pcap(n: int = 3, endian: str = "<") -> bytes:
    body = b"".join(craft.pcap_record(sample_frame(i), sec=1000 + i, endian=endian) for i in range(n))
    return craft.pcap_header(endian) + body


def good_pcapng(n: int = 3) -> bytes:
    return craft.shb() + craft.idb() + b"".join(craft.epb(sample_frame(i), ts=i) for i in range(n))


# --- not a capture at all -------------------------------------------------------------------


def test_empty_file(tmp_path) -> None:
    path = tmp_path / "empty.pcap"
    path.write_bytes(b"")
    with pytest.raises(CaptureFormatError, match="empty") as info:
        open_capture(path)
    assert info.value.offset == 0 and info.value.path == str(path)


def test_csv_given_instead_of_a_capture(tmp_path) -> None:
    path = tmp_path / "messages.csv"
    path.write_text("msg_id,app_protocol,src_app,dst_app,message,timestamp\n1,HTTP,a,b,hi,0\n")
    with pytest.raises(CaptureFormatError) as info:
        open_capture(path)
    message = str(info.value)
    assert "not a pcap or pcapng file (magic 0x6d73675f)" in message
    assert "is it a CSV?" in message and "msg_id" in message and "byte offset 0" in message
    assert isinstance(info.value, InputError)


def test_unknown_binary_magic() -> None:
    with pytest.raises(CaptureFormatError, match=r"magic 0xdeadbeef.*a1b2c3d4"):
        open_capture(io.BytesIO(b"\xde\xad\xbe\xef" + bytes(40)))


def test_missing_file_and_directory_are_input_errors(tmp_path) -> None:
    with pytest.raises(InputError, match="cannot open capture file"):
        open_capture(tmp_path / "nope.pcap")
    with pytest.raises(InputError, match="cannot open capture file"):
        open_capture(tmp_path)


# --- classic pcap ---------------------------------------------------------------------------


@pytest.mark.parametrize("length", [4, 10, 23])
def test_truncated_global_header(length: int) -> None:
    with pytest.raises(CaptureFormatError, match=f"truncated pcap global header.*after {length} of 24") as info:
        open_capture(io.BytesIO(good_pcap()[:length]))
    assert info.value.offset == length


def test_unsupported_pcap_version() -> None:
    data = craft.pcap_header(version=(3, 0)) + craft.pcap_record(b"abc")
    with pytest.raises(CaptureFormatError, match=r"pcap version 3\.0 is not supported") as info:
        open_capture(io.BytesIO(data))
    assert info.value.offset == 4


@pytest.mark.parametrize("endian", ["<", ">"])
def test_truncated_record_header(endian: str) -> None:
    data = good_pcap(3, endian)
    records, exc = read_until_error(data + craft.pcap_record(b"abcdef", endian=endian)[:9])
    assert len(records) == 3 and exc is not None
    assert exc.offset == len(data)
    assert "truncated record header: file ends after 9 of 16 bytes" in str(exc)


def test_truncated_record_data() -> None:
    data = good_pcap(3)
    records, exc = read_until_error(data + craft.pcap_record(b"x" * 100)[:16 + 40])
    assert [r.data for r in records] == [sample_frame(i) for i in range(3)]
    assert exc is not None and exc.offset == len(data) + 16
    assert f"record at offset {len(data)} says 100 captured bytes, the file ends after 40" in str(exc)


def test_absurd_captured_length() -> None:
    data = good_pcap(2)
    bad = data + struct.pack("<IIII", 1, 2, 0xFFFFFFF0, 60) + b"x" * 60
    records, exc = read_until_error(bad)
    assert len(records) == 2 and exc is not None
    assert exc.offset == len(data) + 8  # the caplen field itself
    assert "captured length 4294967280 exceeds the file's snaplen 65535" in str(exc)


def test_caplen_a_little_over_snaplen_is_tolerated_as_wireshark_does() -> None:
    data = craft.pcap_header(snaplen=64) + craft.pcap_record(b"y" * 100)
    records, exc = read_until_error(data)
    assert exc is None and len(records[0].data) == 100


# --- pcapng ---------------------------------------------------------------------------------


def test_pcapng_bad_byte_order_magic() -> None:
    data = bytearray(good_pcapng())
    data[8:12] = b"\x01\x02\x03\x04"
    with pytest.raises(CaptureFormatError, match="byte-order magic 0x01020304, expected 0x1a2b3c4d") as info:
        open_capture(io.BytesIO(bytes(data)))
    assert info.value.offset == 8


def test_pcapng_block_length_mismatch_after_good_packets() -> None:
    data = good_pcapng(3)
    bad_block = craft.block(6, struct.pack("<IIIII", 0, 0, 0, 4, 4) + b"abcd", trailer=40)
    assert len(bad_block) == 36
    records, exc = read_until_error(data + bad_block + craft.epb(b"never reached"))
    assert len(records) == 3 and exc is not None
    assert exc.offset == len(data) + 32
    assert (f"block length mismatch: the enhanced packet block at offset {len(data)} starts "
            "with length 36 but ends with 40") in str(exc)


@pytest.mark.parametrize("length", [8, 1 << 30])
def test_pcapng_impossible_block_length(length: int) -> None:
    data = good_pcapng(2)
    records, exc = read_until_error(data + struct.pack("<II", 6, length) + bytes(64))
    assert len(records) == 2 and exc is not None
    assert exc.offset == len(data) + 4
    assert "block length" in str(exc) or "claims" in str(exc)


def test_pcapng_length_not_a_multiple_of_4_is_rounded_up_then_checked() -> None:
    data = good_pcapng(2)
    records, exc = read_until_error(data + struct.pack("<II", 6, 30) + bytes(64))
    assert len(records) == 2 and exc is not None
    # Read as a 32-byte block (tshark's rounding), whose trailer then says 0.
    assert exc.offset == len(data) + 28
    assert "starts with length 30 but ends with 0" in str(exc)


def test_pcapng_truncated_block() -> None:
    data = good_pcapng(2)
    last = craft.epb(b"z" * 50)
    records, exc = read_until_error(data + last[:40])
    assert len(records) == 2 and exc is not None
    assert exc.offset == len(data)
    assert f"truncated enhanced packet block: its length field says {len(last)} bytes, the file ends after 40" in str(exc)


def test_pcapng_truncated_block_header() -> None:
    data = good_pcapng(2)
    records, exc = read_until_error(data + b"\x06\x00\x00\x00\x40")
    assert len(records) == 2 and exc is not None
    assert exc.offset == len(data) and "truncated block header" in str(exc)


def test_pcapng_caplen_larger_than_its_block() -> None:
    data = good_pcapng(1)
    records, exc = read_until_error(data + craft.epb(b"abcd", caplen=400))
    assert len(records) == 1 and exc is not None
    assert exc.offset == len(data) + 20 and "captured length 400 does not fit" in str(exc)


def test_pcapng_unknown_interface_and_packet_before_any_interface() -> None:
    data = good_pcapng(1)
    records, exc = read_until_error(data + craft.epb(b"abcd", ifid=3))
    assert len(records) == 1 and exc is not None
    assert exc.offset == len(data) + 8
    assert "interface 3, but its section has described only 1" in str(exc)
    records, exc = read_until_error(craft.shb() + craft.spb(b"abc"))
    assert records == [] and exc is not None and exc.offset == 28


def test_pcapng_second_section_resets_interfaces() -> None:
    data = good_pcapng(1) + craft.shb(">")
    records, exc = read_until_error(data + craft.epb(b"abcd", endian=">"))
    assert len(records) == 1 and exc is not None and exc.offset == len(data) + 8


def test_pcapng_unsupported_version() -> None:
    with pytest.raises(CaptureFormatError, match=r"pcapng version 2\.0 is not supported"):
        open_capture(io.BytesIO(craft.shb(version=(2, 0)) + craft.idb()))


def test_pcapng_option_overrunning_its_block() -> None:
    idb = bytearray(craft.idb(opts=[(2, b"lo")]))
    struct.pack_into("<H", idb, 18, 200)  # if_name claims 200 bytes
    with pytest.raises(CaptureFormatError, match="option 2 claims 200 bytes") as info:
        open_capture(io.BytesIO(craft.shb() + bytes(idb)))
    assert info.value.offset == 28 + 18


def test_pcapng_unknown_blocks_are_skipped_custom_blocks_are_frames() -> None:
    data = (craft.shb() + craft.block(0x0BAD, struct.pack("<I", 32473) + b"custom!!") + craft.idb()
            + craft.block(4, b"\x00" * 8) + craft.epb(b"one") + craft.block(0x12345678, b"")
            + craft.epb(b"two"))
    records, exc = read_until_error(data)
    assert exc is None and [r.data for r in records] == [b"custom!!", b"one", b"two"]
    assert records[0].has_timestamp is False and records[0].pen == 0x7ED9


# --- truncation anywhere, across read-chunk boundaries --------------------------------------


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_truncation_at_any_point_keeps_every_complete_record(fmt: str) -> None:
    out = io.BytesIO()
    writer = PcapWriter(out, 1) if fmt == "pcap" else PcapngWriter(out, 1)
    rng = random.Random(7)
    frames = [bytes([i % 251]) * rng.randrange(0, 9000) for i in range(700)]  # ~3 MiB
    for i, frame in enumerate(frames):
        writer.write(frame, BASE_NS + i)
    writer.flush()
    data = out.getvalue()
    assert len(data) > 2 * READ_CHUNK
    full, exc = read_until_error(data)
    assert exc is None and len(full) == len(frames)
    starts = [r.offset for r in full]
    header_len = 16 if fmt == "pcap" else 28
    cuts = sorted({rng.randrange(starts[0], len(data)) for _ in range(25)}
                  | {READ_CHUNK - 1, READ_CHUNK, READ_CHUNK + 5, starts[300] + 3, starts[301]})
    for cut in cuts:
        records, exc = read_until_error(data[:cut])
        complete = [r for r, nxt in zip(full, starts[1:] + [len(data)]) if nxt <= cut]
        assert records == complete, cut
        if cut in starts:
            assert exc is None
            continue
        assert exc is not None, cut
        victim = starts[len(complete)]
        if fmt == "pcapng":
            assert exc.offset == victim
        elif cut - victim < header_len:
            assert exc.offset == victim and "record header" in exc.reason
        else:
            assert exc.offset == victim + header_len and "record data" in exc.reason


def test_damaged_gzip_stream() -> None:
    packed = gzip.compress(good_pcap(50))
    records, exc = read_until_error(packed[: len(packed) // 2])
    assert exc is not None and "compressed data is damaged" in str(exc)
    assert len(records) < 50
    assert all(r.data == sample_frame(i) for i, r in enumerate(records))
