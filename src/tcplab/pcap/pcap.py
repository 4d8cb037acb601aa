"""Classic libpcap files: read (µs, ns and Kuznetzov variants, either byte order) and write.

Layout (tcpdump.org "pcap savefile format", draft-ietf-opsawg-pcap)::

    global header (24 bytes)
      0   magic        0xA1B2C3D4 (µs) / 0xA1B23C4D (ns) / 0xA1B2CD34 (Kuznetzov, µs)
      4   version      major 2, minor 4
      8   thiszone, sigfigs (historic, always 0)
      16  snaplen
      20  link type    (low 26 bits; the top bits may carry FCS information)
    record header (16 bytes, 24 for Kuznetzov's "modified" pcap)
      0   ts seconds | 4 ts µs or ns | 8 captured length | 12 original length
      16  (Kuznetzov only) ifindex(4) protocol(2) packet type(1) padding(1)

The byte order of the whole file is the writer's, told by how the magic reads. Reading
streams the file in chunks and never holds more than one chunk plus one record; the
writer never does anything but append. This module parses bytes it is given by
:mod:`tcplab.pcap.reader` and never opens files itself.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from typing import BinaryIO, Literal

from tcplab.pcap.records import (
    DEFAULT_SNAPLEN,
    MAX_RECORD_BYTES,
    READ_CHUNK,
    CaptureFormatError,
    Interface,
    Record,
)
from tcplab.pcap.writer import FLUSH_THRESHOLD, CaptureWriter, timestamp_error

MAGIC_MICRO = 0xA1B2C3D4
MAGIC_NANO = 0xA1B23C4D
MAGIC_KUZNETZOV = 0xA1B2CD34  # Alexey Kuznetzov's patched libpcap (Red Hat 6 era)

GLOBAL_HEADER_LEN = 24
RECORD_HEADER_LEN = 16
KUZNETZOV_RECORD_HEADER_LEN = 24
VERSION_MAJOR = 2
VERSION_MINOR = 4
LINKTYPE_FIELD_MASK = 0x03FFFFFF  # bits 26-31 hold FCS length flags (LT_FCS_LENGTH)

# The magic as its four bytes appear in a file, for format detection.
MAGIC_BYTES = {
    struct.pack("<I", MAGIC_MICRO): ("<", False, RECORD_HEADER_LEN),
    struct.pack(">I", MAGIC_MICRO): (">", False, RECORD_HEADER_LEN),
    struct.pack("<I", MAGIC_NANO): ("<", True, RECORD_HEADER_LEN),
    struct.pack(">I", MAGIC_NANO): (">", True, RECORD_HEADER_LEN),
    struct.pack("<I", MAGIC_KUZNETZOV): ("<", False, KUZNETZOV_RECORD_HEADER_LEN),
    struct.pack(">I", MAGIC_KUZNETZOV): (">", False, KUZNETZOV_RECORD_HEADER_LEN),
}

_NS_PER_S = 1_000_000_000
_new_record = tuple.__new__  # Record(...) without the Python-level __new__: the hot path


class PcapHeader:
    """What the global header says, plus how to read the records that follow it."""

    __slots__ = ("endian", "nanosecond", "record_header_len", "version", "snaplen", "linktype")

    def __init__(
        self, endian: str, nanosecond: bool, record_header_len: int, version: tuple[int, int],
        snaplen: int, linktype: int,
    ) -> None:
        self.endian = endian
        self.nanosecond = nanosecond
        self.record_header_len = record_header_len
        self.version = version
        self.snaplen = snaplen
        self.linktype = linktype

    @property
    def interface(self) -> Interface:
        return Interface(
            linktype=self.linktype,
            snaplen=self.snaplen,
            ticks_per_second=_NS_PER_S if self.nanosecond else 1_000_000,
        )


def parse_global_header(buf: bytes, path: str) -> PcapHeader:
    """Decode the 24-byte global header at the start of ``buf`` (the magic is already known good)."""
    if len(buf) < GLOBAL_HEADER_LEN:
        raise CaptureFormatError(
            path, len(buf),
            f"truncated pcap global header: file ends after {len(buf)} of {GLOBAL_HEADER_LEN} bytes",
        )
    endian, nanosecond, rec_len = MAGIC_BYTES[buf[:4]]
    major, minor, _zone, _sigfigs, snaplen, network = struct.unpack_from(endian + "HHiIII", buf, 4)
    if major != VERSION_MAJOR:
        raise CaptureFormatError(
            path, 4, f"pcap version {major}.{minor} is not supported (expected {VERSION_MAJOR}.x)"
        )
    return PcapHeader(endian, nanosecond, rec_len, (major, minor), snaplen, network & LINKTYPE_FIELD_MASK)


def fill(read: Callable[[int], bytes], rest: bytes, need: int) -> bytes:
    """``rest`` plus at least ``need - len(rest)`` more bytes from ``read``, or all that is left.

    Reads at least a whole chunk so refills stay rare; loops because pipes and
    decompressors may return short reads before the end.
    """
    parts = [rest]
    have = len(rest)
    while have < need:
        chunk = read(max(READ_CHUNK, need - have))
        if not chunk:
            break
        parts.append(chunk)
        have += len(chunk)
    return b"".join(parts) if len(parts) > 1 else rest


def iter_records(
    read: Callable[[int], bytes],
    buf: bytes,
    path: str,
    header: PcapHeader,
    done: Callable[[], None],
    *,
    plain: bool = False,
) -> Iterator[Record]:
    """Yield every record after the global header; ``buf`` holds the bytes read so far.

    ``plain`` yields each record as a plain tuple of :class:`Record`'s fields, in its
    order, for a loop that unpacks it at once (the analyzer): making the NamedTuple
    instance (``tuple.__new__(Record, ...)``) costs a third of reading a record.
    Damage (a truncated record, an absurd captured length) raises
    :class:`CaptureFormatError` after every earlier record has been yielded.
    """
    unpack_from = struct.Struct(header.endian + "IIII").unpack_from
    hlen = header.record_header_len
    frac_scale = 1 if header.nanosecond else 1000
    linktype = header.linktype
    # Wireshark's rule: a record may exceed the snaplen (some writers lie about it) but not
    # the largest packet any tool produces; beyond that the header is garbage.
    limit = min(max(header.snaplen, DEFAULT_SNAPLEN), MAX_RECORD_BYTES)
    pos = GLOBAL_HEADER_LEN
    base = 0  # file offset of buf[0]
    n = len(buf)
    new = _new_record
    try:
        while True:
            if n - pos < hlen:
                base += pos
                buf = fill(read, buf[pos:], hlen)
                pos = 0
                n = len(buf)
                if n == 0:
                    return
                if n < hlen:
                    raise CaptureFormatError(
                        path, base,
                        f"truncated record header: file ends after {n} of {hlen} bytes",
                    )
            sec, frac, caplen, orig_len = unpack_from(buf, pos)
            if caplen > limit:
                raise CaptureFormatError(
                    path, base + pos + 8,
                    f"record captured length {caplen} exceeds the file's snaplen {header.snaplen} "
                    f"and the {limit}-byte maximum; the record header is damaged",
                )
            start = pos + hlen
            end = start + caplen
            if end > n:
                base += pos
                buf = fill(read, buf[pos:], hlen + caplen)
                pos = 0
                n = len(buf)
                start = hlen
                end = hlen + caplen
                if end > n:
                    raise CaptureFormatError(
                        path, base + hlen,
                        f"truncated record data: record at offset {base} says {caplen} captured "
                        f"bytes, the file ends after {n - hlen}",
                    )
            record = (sec * _NS_PER_S + frac * frac_scale, buf[start:end], orig_len, linktype, 0,
                      base + pos, None)
            yield record if plain else new(Record, record)  # type: ignore[misc]
            pos = end
    finally:
        done()


class PcapWriter(CaptureWriter):
    """Append records to a classic pcap file; the global header is written at construction.

    ``write`` is the hot path of the encapsulator and the live capture: one precompiled
    struct pack for the record header and two appends to a buffer.
    """

    format = "pcap"

    def __init__(
        self,
        target: str | os.PathLike[str] | BinaryIO,
        linktype: int,
        *,
        snaplen: int = DEFAULT_SNAPLEN,
        nanosecond: bool = False,
        byteorder: Literal["little", "big"] = "little",
    ) -> None:
        if byteorder not in ("little", "big"):
            raise ValueError(f"byteorder must be 'little' or 'big', not {byteorder!r}")
        if not 0 < snaplen <= 0xFFFFFFFF:
            raise ValueError(f"snaplen {snaplen} is outside 1..4294967295")
        endian = "<" if byteorder == "little" else ">"
        self.linktype = linktype
        self.snaplen = snaplen
        self.nanosecond = nanosecond
        self._pack = struct.Struct(endian + "IIII").pack
        self._frac_div = 1 if nanosecond else 1000
        header = struct.pack(
            endian + "IHHiIII", MAGIC_NANO if nanosecond else MAGIC_MICRO,
            VERSION_MAJOR, VERSION_MINOR, 0, 0, snaplen, linktype,
        )
        super().__init__(target, header)

    def write(
        self, data: bytes, timestamp_ns: int, orig_len: int | None = None, comment: str | None = None
    ) -> None:
        """Append one record. ``comment`` is accepted for API symmetry; classic pcap cannot hold it.

        Data longer than the snaplen is cut to it, as a capture would, keeping ``orig_len``.
        """
        caplen = len(data)
        if orig_len is None:
            orig_len = caplen
        if caplen > self.snaplen:
            data = data[: self.snaplen]
            caplen = self.snaplen
        sec, frac = divmod(timestamp_ns, _NS_PER_S)
        try:
            head = self._pack(sec, frac // self._frac_div, caplen, orig_len)
        except struct.error:
            if not 0 <= sec <= 0xFFFFFFFF:
                raise timestamp_error(timestamp_ns, "classic pcap") from None
            raise ValueError(f"original length {orig_len} is not a 32-bit unsigned value") from None
        buf = self._buf
        buf += head
        buf += data
        self.packets_written += 1
        self.bytes_written += RECORD_HEADER_LEN + caplen
        if len(buf) >= FLUSH_THRESHOLD:
            self._drain()
