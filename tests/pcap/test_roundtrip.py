"""Write → read round trips for both formats, both timestamp precisions and both byte orders."""

from __future__ import annotations

import io
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcplab.packet import link
from tcplab.pcap import (
    CaptureReader,
    PcapngWriter,
    PcapWriter,
    Record,
    open_capture,
    open_writer,
)
from tests.pcap.captools import BASE_NS, read_all, sample_frame

VARIANTS = [
    (fmt, ns, order)
    for fmt in ("pcap", "pcapng")
    for ns in (False, True)
    for order in ("little", "big")
]


def _writer(fmt: str, target, linktype: int, ns: bool, order: str, **kw):
    cls = PcapWriter if fmt == "pcap" else PcapngWriter
    return cls(target, linktype, nanosecond=ns, byteorder=order, **kw)


@pytest.mark.parametrize(("fmt", "ns", "order"), VARIANTS)
def test_round_trip_every_variant(tmp_path, fmt: str, ns: bool, order: str) -> None:
    path = tmp_path / f"rt.{fmt}"
    frames = [sample_frame(i) for i in range(200)]
    stamps = [BASE_NS + i * 1_234_567 for i in range(200)]
    with _writer(fmt, path, link.LINKTYPE_ETHERNET, ns, order) as w:
        for frame, ts in zip(frames, stamps):
            w.write(frame, ts)
        assert w.packets_written == 200
    assert w.bytes_written == path.stat().st_size
    with open_capture(path) as reader:
        assert reader.format == fmt
        assert reader.byteorder == order
        assert reader.linktype == link.LINKTYPE_ETHERNET
        assert reader.interfaces[0].tsresol_ns == (1.0 if ns else 1000.0)
        records = list(reader)
    assert [r.data for r in records] == frames
    expected = stamps if ns else [t // 1000 * 1000 for t in stamps]
    assert [r.timestamp_ns for r in records] == expected
    assert all(r.orig_len == len(r.data) and r.linktype == 1 and r.interface == 0 for r in records)
    assert all(r.comment is None for r in records)


@pytest.mark.parametrize(("fmt", "ns", "order"), VARIANTS)
def test_record_offsets_point_at_record_headers(tmp_path, fmt: str, ns: bool, order: str) -> None:
    path = tmp_path / f"off.{fmt}"
    with _writer(fmt, path, link.LINKTYPE_NULL, ns, order) as w:
        for i in range(20):
            w.write(sample_frame(i, link.LINKTYPE_NULL), BASE_NS + i)
    raw = path.read_bytes()
    for rec in read_all(path):
        if fmt == "pcap":
            caplen = struct.unpack_from("<I" if order == "little" else ">I", raw, rec.offset + 8)[0]
            assert raw[rec.offset + 16 : rec.offset + 16 + caplen] == rec.data
        else:
            btype = struct.unpack_from("<I" if order == "little" else ">I", raw, rec.offset)[0]
            assert btype == 6
            assert raw[rec.offset + 28 : rec.offset + 28 + len(rec.data)] == rec.data


_records = st.lists(
    st.tuples(
        st.binary(max_size=300),
        st.integers(min_value=0, max_value=(1 << 32) - 1),  # seconds that classic pcap can hold
        st.integers(min_value=0, max_value=999_999_999),
        st.integers(min_value=0, max_value=2000),  # extra bytes on the wire beyond caplen
        # Trailing NULs of a pcapng option string are taken as padding (some writers pad
        # with them) and dropped by the reader, so round-tripped comments are NUL-free text;
        # and text, so no lone surrogates (a str that has no UTF-8 form).
        st.none() | st.text(alphabet=st.characters(blacklist_characters="\x00",
                                                   blacklist_categories=("Cs",)), max_size=40),
    ),
    max_size=30,
)


@settings(deadline=None, max_examples=60)
@given(records=_records, variant=st.sampled_from(VARIANTS))
def test_round_trip_random_records(records, variant) -> None:
    fmt, ns, order = variant
    out = io.BytesIO()
    w = _writer(fmt, out, link.LINKTYPE_RAW, ns, order)
    for data, sec, nsec, extra, comment in records:
        w.write(data, sec * 1_000_000_000 + nsec, len(data) + extra, comment=comment)
    w.flush()
    got = list(open_capture(io.BytesIO(out.getvalue())))
    assert len(got) == len(records)
    for rec, (data, sec, nsec, extra, comment) in zip(got, records):
        assert rec.data == data
        assert rec.orig_len == len(data) + extra
        assert rec.timestamp_ns == sec * 1_000_000_000 + (nsec if ns else nsec // 1000 * 1000)
        assert rec.linktype == link.LINKTYPE_RAW
        expected_comment = comment if fmt == "pcapng" else None
        assert rec.comment == expected_comment


def test_pcapng_comments_survive(tmp_path) -> None:
    path = tmp_path / "c.pcapng"
    with PcapngWriter(path, link.LINKTYPE_ETHERNET) as w:
        w.write(sample_frame(1), BASE_NS, comment="three-way handshake, SYN")
        w.write(sample_frame(2), BASE_NS + 1)
        w.write(sample_frame(3), BASE_NS + 2, comment="שלום – unicode survives")
        w.write(sample_frame(4), BASE_NS + 3, comment="")
    assert [r.comment for r in read_all(path)] == [
        "three-way handshake, SYN", None, "שלום – unicode survives", "",
    ]


def test_pcapng_several_interfaces(tmp_path) -> None:
    path = tmp_path / "multi.pcapng"
    with PcapngWriter(path, link.LINKTYPE_ETHERNET, interface_name="lo") as w:
        null_if = w.add_interface(link.LINKTYPE_NULL, nanosecond=False, name="lo0")
        raw_if = w.add_interface(link.LINKTYPE_RAW, snaplen=64)
        w.write(sample_frame(0), BASE_NS)
        w.write(sample_frame(1, link.LINKTYPE_NULL), BASE_NS + 5_000, interface=null_if)
        w.write(sample_frame(2, link.LINKTYPE_RAW, size=200), BASE_NS + 9, interface=raw_if)
    with open_capture(path) as reader:
        records = list(reader)
        names = [i.name for i in reader.interfaces]
        assert names == ["lo", "lo0", None]
        assert [i.linktype for i in reader.interfaces] == [1, 0, 101]
    assert [(r.interface, r.linktype) for r in records] == [(0, 1), (1, 0), (2, 101)]
    assert records[1].timestamp_ns == (BASE_NS + 5_000) // 1000 * 1000
    assert len(records[2].data) == 64 and records[2].orig_len > 64


def test_pcapng_several_sections_concatenated(tmp_path) -> None:
    first, second = tmp_path / "a.pcapng", tmp_path / "b.pcapng"
    with PcapngWriter(first, link.LINKTYPE_ETHERNET, application="first") as w:
        w.write(sample_frame(0), BASE_NS)
    with PcapngWriter(second, link.LINKTYPE_NULL, byteorder="big", nanosecond=False,
                      application="second") as w:
        w.write(sample_frame(1, link.LINKTYPE_NULL), BASE_NS + 10_000)
        w.write(sample_frame(2, link.LINKTYPE_NULL), BASE_NS + 20_000)
    both = tmp_path / "both.pcapng"
    both.write_bytes(first.read_bytes() + second.read_bytes())
    with open_capture(both) as reader:
        records = list(reader)
        assert [s.application for s in reader.sections] == ["first", "second"]
        assert [s.byteorder for s in reader.sections] == ["little", "big"]
        assert [i.section for i in reader.interfaces] == [0, 1]
    assert [(r.interface, r.linktype) for r in records] == [(0, 1), (1, 0), (1, 0)]
    assert records[1].offset > first.stat().st_size


def test_snaplen_cuts_data_and_keeps_orig_len(tmp_path) -> None:
    for fmt in ("pcap", "pcapng"):
        path = tmp_path / f"snap.{fmt}"
        with open_writer(path, link.LINKTYPE_ETHERNET, snaplen=60) as w:
            w.write(sample_frame(1, size=500), BASE_NS)
        (rec,) = read_all(path)
        assert len(rec.data) == 60
        assert rec.orig_len == len(sample_frame(1, size=500))


def test_open_writer_picks_format_by_extension(tmp_path) -> None:
    for name, fmt, cls in [("a.pcapng", "pcapng", PcapngWriter), ("a.pcap", "pcap", PcapWriter),
                           ("a.cap", "pcap", PcapWriter), ("A.PCAPNG", "pcapng", PcapngWriter)]:
        with open_writer(tmp_path / name, link.LINKTYPE_NULL) as w:
            assert isinstance(w, cls)
        with open_capture(tmp_path / name) as r:
            assert r.format == fmt
    with open_writer(tmp_path / "forced.pcap", 1, format="pcapng") as w:
        assert isinstance(w, PcapngWriter)
    with pytest.raises(ValueError, match="unknown capture format"):
        open_writer(tmp_path / "x", 1, format="erf")  # type: ignore[arg-type]


def test_header_is_on_disk_before_any_packet(tmp_path) -> None:
    for fmt in ("pcap", "pcapng"):
        path = tmp_path / f"empty.{fmt}"
        w = open_writer(path, link.LINKTYPE_ETHERNET)
        # Not closed: what a killed process leaves behind must already be a valid file.
        assert read_all(path) == []
        w.write(sample_frame(0), BASE_NS)
        w.flush()
        assert len(read_all(path)) == 1
        w.close()


def test_file_on_disk_always_ends_on_a_record_boundary(tmp_path) -> None:
    # Without flush the OS may hold fewer records, but never part of one.
    for fmt in ("pcap", "pcapng"):
        path = tmp_path / f"partial.{fmt}"
        w = open_writer(path, link.LINKTYPE_ETHERNET)
        for i in range(5000):
            w.write(sample_frame(i), BASE_NS + i)
            if i % 997 == 0:
                assert len(read_all(path)) <= i + 1  # raises if a record were cut
        w.close()
        assert len(read_all(path)) == 5000


def test_closed_writer_refuses_writes(tmp_path) -> None:
    w = PcapWriter(tmp_path / "x.pcap", 1)
    w.close()
    w.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        w.write(b"abc", 0)


def test_caller_stream_is_left_open() -> None:
    out = io.BytesIO()
    with PcapWriter(out, 1) as w:
        w.write(b"abc", 5000)
    assert not out.closed
    src = io.BytesIO(out.getvalue())
    with open_capture(src) as reader:
        assert isinstance(reader, CaptureReader)
        assert next(reader) == Record(5000, b"abc", 3, 1, 0, 24, None)
    assert not src.closed


def test_unstorable_values_are_refused() -> None:
    w = PcapWriter(io.BytesIO(), 1)
    with pytest.raises(ValueError, match="timestamp"):
        w.write(b"x", -1)
    with pytest.raises(ValueError, match="timestamp"):
        w.write(b"x", (1 << 32) * 1_000_000_000)
    with pytest.raises(ValueError, match="original length"):
        w.write(b"x", 0, orig_len=1 << 33)
    ng = PcapngWriter(io.BytesIO(), 1)
    with pytest.raises(ValueError, match="timestamp"):
        ng.write(b"x", -5)
    with pytest.raises(ValueError, match="byteorder"):
        PcapWriter(io.BytesIO(), 1, byteorder="middle")  # type: ignore[arg-type]
    assert w.packets_written == 0 and ng.packets_written == 0


def test_reads_from_a_pipe_like_stream_with_short_reads() -> None:
    out = io.BytesIO()
    with PcapngWriter(out, 1) as w:
        for i in range(50):
            w.write(sample_frame(i), BASE_NS + i, comment=str(i))

    class Trickle(io.RawIOBase):
        """Returns at most 7 bytes per read, like a slow pipe."""

        def __init__(self, data: bytes) -> None:
            self._data = memoryview(data)

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            chunk = bytes(self._data[: min(size if size >= 0 else 7, 7)])
            self._data = self._data[len(chunk):]
            return chunk

    records = list(open_capture(Trickle(out.getvalue())))  # type: ignore[arg-type]
    assert [r.comment for r in records] == [str(i) for i in range(50)]
    assert [r.data for r in records] == [sample_frame(i) for i in range(50)]


def test_gzip_compressed_captures_are_read(tmp_path) -> None:
    import gzip

    for fmt in ("pcap", "pcapng"):
        plain = tmp_path / f"g.{fmt}"
        with open_writer(plain, 1) as w:
            for i in range(30):
                w.write(sample_frame(i), BASE_NS + i * 1000)
        packed = tmp_path / f"g.{fmt}.gz"
        packed.write_bytes(gzip.compress(plain.read_bytes()))
        with open_capture(packed) as reader:
            assert reader.compressed and reader.format == fmt
            assert list(reader) == read_all(plain)


def test_text_mode_stream_is_refused_clearly() -> None:
    from tcplab.errors import InputError

    with pytest.raises(InputError, match="binary mode"):
        open_capture(io.StringIO("not bytes"))  # type: ignore[arg-type]


def test_fcs_bits_in_the_link_type_field_are_masked() -> None:
    # The top bits of the pcap link-type field say "frames carry an FCS of N bytes".
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 0x14000001)
    with open_capture(io.BytesIO(header + struct.pack("<IIII", 1, 2, 3, 3) + b"abc")) as r:
        assert r.linktype == 1
        assert [rec.linktype for rec in r] == [1]


def test_pcapng_snaplen_zero_means_no_limit() -> None:
    out = io.BytesIO()
    with PcapngWriter(out, 1, snaplen=0) as w:
        w.write(b"z" * 5000, 1)
    (rec,) = list(open_capture(io.BytesIO(out.getvalue())))
    assert rec.data == b"z" * 5000
