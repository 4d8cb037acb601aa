"""Files other tools write, read the way tshark 4.0 reads them (each case checked against tshark).

Custom blocks are frames; a block length that is not a multiple of 4 is rounded up;
Simple Packet Blocks have no time (and never a negative relative one); any 64-bit
timestamp has a calendar date; a truncated gzip capture yields every packet that
decompresses, then names the damage.
"""

from __future__ import annotations

import gzip
import io
import random
import struct
import subprocess

import pytest

from tcplab.pcap import (
    LINKTYPE_PCAPNG_CUSTOM,
    CaptureFormatError,
    CustomBlockRecord,
    PcapngWriter,
    PcapWriter,
    UntimedRecord,
    arrival_time_text,
    civil_time,
    open_capture,
)
from tests.pcap import craft
from tests.pcap.captools import BASE_NS, our_frames, read_all, sample_frame, tshark_frames
from tests.support import require_tshark

T0 = 1_700_000_000_000_000  # µs: the default if_tsresol
PEN = 32473  # RFC 5612's documentation enterprise number


def _custom(payload: bytes, copyable: bool = True, endian: str = "<") -> bytes:
    return craft.block(0x00000BAD if copyable else 0x40000BAD,
                       struct.pack(endian + "I", PEN) + craft.pad4(payload), endian)


def _epb_length_unpadded(data: bytes, ts: int, endian: str = "<") -> bytes:
    """An EPB whose data is padded but whose length fields leave the padding out."""
    body = struct.pack(endian + "IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(data), len(data))
    total = 12 + len(body) + len(data)
    return (struct.pack(endian + "II", 6, total) + body + craft.pad4(data)
            + struct.pack(endian + "I", total))


@pytest.mark.parametrize("endian", ["<", ">"])
def test_custom_blocks_are_numbered_as_frames_like_tshark(tmp_path, endian: str) -> None:
    e = endian
    data = (craft.shb(e) + craft.idb(endian=e) + craft.epb(sample_frame(0), ts=T0, endian=e)
            + _custom(b"hello!!\x00", True, e) + craft.epb(sample_frame(1), ts=T0 + 10**6, endian=e)
            + _custom(b"nocopy\x00\x00", False, e) + craft.block(0x99, b"abcd", e)  # unknown: skipped
            + craft.block(5, b"\x00" * 12, e) + craft.epb(sample_frame(2), ts=T0 + 2 * 10**6, endian=e))
    path = tmp_path / "custom.pcapng"
    path.write_bytes(data)
    assert our_frames(path) == tshark_frames(path)
    records = read_all(path)
    custom = [r for r in records if isinstance(r, CustomBlockRecord)]
    assert [r.data for r in custom] == [b"hello!!\x00", b"nocopy\x00\x00"]
    assert [(r.pen, r.copyable, r.linktype) for r in custom] == \
        [(PEN, True, LINKTYPE_PCAPNG_CUSTOM), (PEN, False, LINKTYPE_PCAPNG_CUSTOM)]
    # Untimed frames carry the previous frame's time: relative times never go backwards.
    assert [r.timestamp_ns for r in records] == [T0 * 1000, T0 * 1000, (T0 + 10**6) * 1000,
                                                 (T0 + 10**6) * 1000, (T0 + 2 * 10**6) * 1000]
    # The records still unpack as 7-tuples, as every consumer reads them.
    ts, frame, orig_len, linktype, interface, offset, comment = custom[0]
    assert (frame, linktype, comment) == (b"hello!!\x00", -1, None)


@pytest.mark.parametrize("endian", ["<", ">"])
def test_block_length_not_a_multiple_of_4_reads_like_tshark(tmp_path, endian: str) -> None:
    odd = sample_frame(3)
    assert len(odd) % 4
    data = (craft.shb(endian) + craft.idb(endian=endian)
            + craft.epb(sample_frame(0), ts=T0, endian=endian)
            + _epb_length_unpadded(odd, T0 + 1, endian)
            + craft.epb(sample_frame(1), ts=T0 + 2, endian=endian))
    path = tmp_path / "odd.pcapng"
    path.write_bytes(data)
    assert our_frames(path) == tshark_frames(path)
    assert [r.data for r in read_all(path)] == [sample_frame(0), odd, sample_frame(1)]


def test_simple_packet_blocks_have_no_time_and_never_go_backwards(tmp_path) -> None:
    data = (craft.shb() + craft.idb() + craft.epb(sample_frame(0), ts=T0) + craft.spb(sample_frame(1))
            + craft.epb(sample_frame(2), ts=T0 + 2 * 10**6) + craft.spb(sample_frame(1)))
    path = tmp_path / "spb.pcapng"
    path.write_bytes(data)
    assert our_frames(path) == tshark_frames(path)
    records = read_all(path)
    assert [type(r) for r in records] == [type(records[0]), UntimedRecord] * 2
    assert [r.has_timestamp for r in records] == [True, False, True, False]
    times = [r.timestamp_ns for r in records]
    assert times == sorted(times) and times[1] == times[0]


def test_far_future_timestamps_are_read_and_dated_like_tshark(tmp_path) -> None:
    exe = require_tshark()
    stamps = [T0, (1 << 64) - 1, 12_600_000_000_000_000_000, 253_402_300_800_000_000]  # µs
    data = craft.shb() + craft.idb() + b"".join(
        craft.epb(sample_frame(i), ts=ts) for i, ts in enumerate(stamps))
    path = tmp_path / "future.pcapng"
    path.write_bytes(data)
    assert our_frames(path) == tshark_frames(path)
    out = subprocess.run([exe, "-r", str(path), "-V"], capture_output=True, text=True, timeout=60).stdout
    theirs = [line.split("Arrival Time: ", 1)[1] for line in out.splitlines() if "Arrival Time:" in line]
    assert [arrival_time_text(r.timestamp_ns) for r in read_all(path)] == theirs
    assert theirs[1] == "Jan 19, 586524 08:01:49.551615000 UTC"


def test_civil_time_agrees_with_datetime_where_datetime_reaches() -> None:
    from datetime import UTC, datetime

    rng = random.Random(5)
    lo = int(datetime(1, 1, 1, tzinfo=UTC).timestamp())
    hi = int(datetime(9999, 12, 31, tzinfo=UTC).timestamp())
    for sec in [0, -1, 951_782_400, 4_107_542_400, lo, hi] + [rng.randrange(lo, hi) for _ in range(2000)]:
        ns = sec * 1_000_000_000 + rng.randrange(10**9)
        dt = datetime.fromtimestamp(sec, UTC)
        assert civil_time(ns) == (dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second,
                                  ns % 10**9), sec


def _capture_bytes(fmt: str, n: int, seed: int = 3) -> bytes:
    out = io.BytesIO()
    writer = PcapWriter(out, 1) if fmt == "pcap" else PcapngWriter(out, 1)
    rng = random.Random(seed)
    for i in range(n):
        writer.write(sample_frame(i, size=rng.randrange(1, 1400)), BASE_NS + i * 1000)
    writer.flush()
    return out.getvalue()


def _read(data: bytes) -> tuple[int, CaptureFormatError | None]:
    count = 0
    try:
        with open_capture(io.BytesIO(data)) as reader:
            for _rec in reader:
                count += 1
    except CaptureFormatError as exc:
        return count, exc
    return count, None


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_truncated_gzip_yields_every_packet_tshark_shows(tmp_path, fmt: str) -> None:
    exe = require_tshark()
    packed = gzip.compress(_capture_bytes(fmt, 400))
    for cut in (len(packed) - 9, len(packed) // 2, 2000):  # the trailer lost; half; a sliver
        path = tmp_path / f"cut{cut}.{fmt}.gz"
        path.write_bytes(packed[:cut])
        count, exc = _read(packed[:cut])
        theirs = subprocess.run([exe, "-r", str(path), "-T", "fields", "-e", "frame.number"],
                                capture_output=True, text=True, timeout=60)
        assert count == len(theirs.stdout.split()), cut
        assert count > 0 and exc is not None
        assert "compressed data is damaged" in exc.reason and f"ends at byte {cut}" in exc.reason
        # The offset is where the records stop, in the uncompressed stream.
        assert exc.offset >= count * 16


def test_gzip_member_concatenation_and_corruption() -> None:
    plain = _capture_bytes("pcap", 50)
    half = len(plain) // 2
    joined = gzip.compress(plain[:half]) + gzip.compress(plain[half:])
    assert _read(joined) == (50, None)
    bad = bytearray(gzip.compress(plain))
    bad[len(bad) // 2] ^= 0xFF
    count, exc = _read(bytes(bad))
    assert exc is not None and "compressed data is damaged" in exc.reason and 0 <= count < 50

