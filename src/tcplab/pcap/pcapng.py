"""pcapng files (draft-ietf-opsawg-pcapng): read every packet block kind, write SHB + IDB + EPBs.

Wireshark saves pcapng by default, so users bring these. A file is a run of blocks::

    0   block type (4) | 4 block total length (4) | body ... | block total length again (4)

* Section Header Block (type 0x0A0D0D0A, a palindrome so it reads the same in either byte
  order) opens each section; its byte-order magic 0x1A2B3C4D says how to read the rest of
  the section. A file may hold several sections (``cat a.pcapng b.pcapng`` is valid).
* Interface Description Block (1): link type, snaplen, options such as ``if_name`` and
  ``if_tsresol`` (timestamp units: 10^-n s, or 2^-n s when the top bit is set; default µs).
  Interfaces are numbered from 0 within their section.
* Enhanced Packet Block (6): interface id, 64-bit timestamp, captured and original length,
  data padded to 4 bytes, options (``opt_comment``...).
* Simple Packet Block (3): original length and data only, from interface 0, no timestamp
  (handed out as an :class:`~tcplab.pcap.records.UntimedRecord` carrying the previous
  record's time, so relative times never go negative).
* Packet Block (2): the obsolete predecessor of the EPB, still read.
* Custom blocks (0x00000BAD, 0x40000BAD): tshark 4.0 numbers each as a frame, so they are
  handed out as :class:`~tcplab.pcap.records.CustomBlockRecord` s, or frame numbers shift.
* Anything else (name resolution, statistics, decryption secrets) is skipped.

A block length that is not a multiple of 4 is read as tshark 4.0 reads it: rounded up to
the next multiple of 4 (writers that forget the padding in the length still pad the data).

Record ``interface`` numbers are indexes into the reader's ``interfaces`` list, which spans
all sections (tshark 4.0's ``frame.interface_id`` restarts at 0 in each section). Parsing
works on bytes handed in by :mod:`tcplab.pcap.reader`; this module never opens files itself.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Literal

from tcplab.pcap.pcap import fill
from tcplab.pcap.records import (
    DEFAULT_SNAPLEN,
    LINKTYPE_PCAPNG_CUSTOM,
    MAX_RECORD_BYTES,
    CaptureFormatError,
    CustomBlockData,
    CustomBlockRecord,
    Interface,
    NoTimestamp,
    Record,
    UntimedRecord,
)
from tcplab.pcap.writer import FLUSH_THRESHOLD, CaptureWriter, timestamp_error

BLOCK_SHB = 0x0A0D0D0A
BLOCK_IDB = 0x00000001
BLOCK_PB = 0x00000002  # obsolete Packet Block
BLOCK_SPB = 0x00000003
BLOCK_NRB = 0x00000004
BLOCK_ISB = 0x00000005
BLOCK_EPB = 0x00000006
BLOCK_DSB = 0x0000000A
BLOCK_CB_COPY = 0x00000BAD  # custom block that may be copied to a new file
BLOCK_CB_NO_COPY = 0x40000BAD  # custom block that must not be

BLOCK_NAMES = {
    BLOCK_SHB: "section header",
    BLOCK_IDB: "interface description",
    BLOCK_PB: "packet",
    BLOCK_SPB: "simple packet",
    BLOCK_NRB: "name resolution",
    BLOCK_ISB: "interface statistics",
    BLOCK_EPB: "enhanced packet",
    BLOCK_DSB: "decryption secrets",
    BLOCK_CB_COPY: "custom",
    BLOCK_CB_NO_COPY: "custom",
}

SHB_MAGIC = b"\x0a\x0d\x0d\x0a"
BYTE_ORDER_MAGIC = 0x1A2B3C4D
_BOM_LITTLE = struct.pack("<I", BYTE_ORDER_MAGIC)
_BOM_BIG = struct.pack(">I", BYTE_ORDER_MAGIC)
VERSION_MAJOR = 1
VERSION_MINOR = 0

# Option codes. Codes 0 and 1 mean the same in every block.
OPT_ENDOFOPT = 0
OPT_COMMENT = 1
SHB_HARDWARE = 2
SHB_OS = 3
SHB_USERAPPL = 4
IF_NAME = 2
IF_DESCRIPTION = 3
IF_TSRESOL = 9
IF_TSOFFSET = 14

MIN_BLOCK_LEN = 12  # type, length, trailing length
SHB_MIN_LEN = 28
IDB_MIN_LEN = 20
EPB_MIN_LEN = 32
SPB_MIN_LEN = 16
PB_MIN_LEN = 32
CB_MIN_LEN = 16  # header, Private Enterprise Number, trailer

_NS_PER_S = 1_000_000_000
_new_record = tuple.__new__
_PAD = (b"", b"\x00\x00\x00", b"\x00\x00", b"\x00")  # indexed by len % 4


def ticks_per_second(tsresol: int) -> int:
    """Decode ``if_tsresol``: 10**n ticks per second, or 2**n when the top bit is set."""
    return 1 << (tsresol & 0x7F) if tsresol & 0x80 else 10**tsresol


@dataclass(slots=True)
class Section:
    """What a Section Header Block says (kept for ``tcplab analyze``'s file summary)."""

    offset: int
    byteorder: str
    version: tuple[int, int]
    application: str | None = None
    os: str | None = None
    hardware: str | None = None
    comment: str | None = None


class ReaderState:
    """Interfaces and sections found so far; shared with the reader object that the caller holds."""

    __slots__ = ("interfaces", "sections")

    def __init__(self) -> None:
        self.interfaces: list[Interface] = []
        self.sections: list[Section] = []


def _text(raw: bytes) -> str:
    # Option strings are UTF-8 without a terminator, but writers do leave NULs behind.
    return raw.rstrip(b"\x00").decode("utf-8", "replace")


def parse_options(
    buf: bytes, start: int, end: int, endian: str, path: str, base: int
) -> list[tuple[int, bytes]]:
    """The (code, value) options in ``buf[start:end]``; ``base`` is the file offset of buf[0]."""
    options: list[tuple[int, bytes]] = []
    unpack_from = struct.Struct(endian + "HH").unpack_from
    p = start
    while p + 4 <= end:
        code, length = unpack_from(buf, p)
        if code == OPT_ENDOFOPT:
            break
        vstart = p + 4
        vend = vstart + length
        if vend > end:
            raise CaptureFormatError(
                path, base + p + 2,
                f"option {code} claims {length} bytes, only {end - vstart} remain in its block",
            )
        options.append((code, buf[vstart:vend]))
        p = vstart + ((length + 3) & ~3)
    return options


def _comment(options: list[tuple[int, bytes]]) -> str | None:
    texts = [_text(v) for code, v in options if code == OPT_COMMENT]
    return "\n".join(texts) if texts else None


def iter_blocks(
    read: Callable[[int], bytes],
    buf: bytes,
    path: str,
    state: ReaderState,
    done: Callable[[], None],
) -> Iterator[Record | None]:
    """Walk the blocks from offset 0 (``buf`` holds the bytes read so far) and yield records.

    The first item is always ``None``: it is yielded just before the first packet (or at
    the end of a file without packets), so that priming the generator reads the header
    blocks and fills ``state.interfaces`` before the caller looks at them. Damage raises
    :class:`CaptureFormatError` after every earlier record has been yielded.
    """
    pos = 0
    base = 0  # file offset of buf[0]
    n = len(buf)
    primed = False
    new = _new_record
    interfaces = state.interfaces
    section_ifaces: list[int] = []  # this section's interface ids → indexes into interfaces
    # Per global interface: (multiplier, divisor, offset_ns, linktype) turning ticks into ns.
    convs: list[tuple[int, int, int, int]] = []
    endian = "<"
    head_unpack = struct.Struct("<II").unpack_from
    u32_unpack = struct.Struct("<I").unpack_from
    epb_unpack = struct.Struct("<IIIII").unpack_from
    pb_unpack = struct.Struct("<HHIIII").unpack_from
    last_ns = 0  # the time of the latest timed record, for blocks that carry none
    try:
        while True:
            if n - pos < MIN_BLOCK_LEN:
                base += pos
                buf = fill(read, buf[pos:], MIN_BLOCK_LEN)
                pos = 0
                n = len(buf)
                if n == 0:
                    break
                if n < MIN_BLOCK_LEN:
                    raise CaptureFormatError(
                        path, base,
                        f"truncated block header: file ends after {n} of {MIN_BLOCK_LEN} bytes",
                    )
            btype, blen = head_unpack(buf, pos)
            if btype == BLOCK_SHB:  # a palindrome: reads the same in either byte order
                bom = buf[pos + 8 : pos + 12]
                if bom == _BOM_LITTLE:
                    endian = "<"
                elif bom == _BOM_BIG:
                    endian = ">"
                else:
                    raise CaptureFormatError(
                        path, base + pos + 8,
                        f"section header has byte-order magic 0x{bom.hex()}, "
                        f"expected 0x{BYTE_ORDER_MAGIC:08x} in either byte order",
                    )
                head_unpack = struct.Struct(endian + "II").unpack_from
                u32_unpack = struct.Struct(endian + "I").unpack_from
                epb_unpack = struct.Struct(endian + "IIIII").unpack_from
                pb_unpack = struct.Struct(endian + "HHIIII").unpack_from
                blen = u32_unpack(buf, pos + 4)[0]
            if blen < MIN_BLOCK_LEN:
                raise CaptureFormatError(
                    path, base + pos + 4,
                    f"block length {blen} is invalid (must be at least {MIN_BLOCK_LEN}); "
                    f"expected the length of a {_block_name(btype)} block",
                )
            # tshark 4.0 (wiretap/pcapng.c) rounds a length that is not a multiple of 4 up
            # and reads on; the trailer may hold either value.
            stated = blen
            blen = (blen + 3) & ~3
            if blen > MAX_RECORD_BYTES:
                raise CaptureFormatError(
                    path, base + pos + 4,
                    f"{_block_name(btype)} block claims {blen} bytes, more than the "
                    f"{MAX_RECORD_BYTES}-byte limit; the block header is damaged",
                )
            if n - pos < blen:
                base += pos
                buf = fill(read, buf[pos:], blen)
                pos = 0
                n = len(buf)
                if n < blen:
                    raise CaptureFormatError(
                        path, base,
                        f"truncated {_block_name(btype)} block: its length field says {blen} "
                        f"bytes, the file ends after {n}",
                    )
            end = pos + blen
            trailer = u32_unpack(buf, end - 4)[0]
            if trailer != blen and trailer != stated:
                raise CaptureFormatError(
                    path, base + end - 4,
                    f"block length mismatch: the {_block_name(btype)} block at offset "
                    f"{base + pos} starts with length {stated} but ends with {trailer}",
                )

            if btype in (BLOCK_EPB, BLOCK_PB):
                if btype == BLOCK_EPB:
                    if blen < EPB_MIN_LEN:
                        raise _too_short(path, base + pos, btype, blen, EPB_MIN_LEN)
                    ifid, hi, lo, caplen, orig_len = epb_unpack(buf, pos + 8)
                    kind = "enhanced packet block"
                else:  # the obsolete Packet Block: the same, with a drops count in the middle
                    if blen < PB_MIN_LEN:
                        raise _too_short(path, base + pos, btype, blen, PB_MIN_LEN)
                    ifid, _drops, hi, lo, caplen, orig_len = pb_unpack(buf, pos + 8)
                    kind = "packet block"
                dstart = pos + 28
                dend = dstart + caplen
                if dend > end - 4:
                    raise CaptureFormatError(
                        path, base + pos + 20,
                        f"captured length {caplen} does not fit its {blen}-byte {kind}",
                    )
                if ifid >= len(section_ifaces):
                    raise _bad_interface(path, base + pos + 8, ifid, len(section_ifaces))
                g = section_ifaces[ifid]
                mul, div, off, linktype = convs[g]
                ostart = dstart + ((caplen + 3) & ~3)
                comment = None
                if ostart < end - 4:
                    comment = _comment(parse_options(buf, ostart, end - 4, endian, path, base))
                if not primed:
                    primed = True
                    yield None
                last_ns = (((hi << 32) | lo) * mul) // div + off
                yield new(
                    Record,
                    (last_ns, buf[dstart:dend], orig_len, linktype, g, base + pos, comment),
                )
            elif btype == BLOCK_SPB:
                if blen < SPB_MIN_LEN:
                    raise _too_short(path, base + pos, btype, blen, SPB_MIN_LEN)
                if not section_ifaces:
                    raise _bad_interface(path, base + pos, 0, 0)
                g = section_ifaces[0]
                orig_len = u32_unpack(buf, pos + 8)[0]
                caplen = min(orig_len, blen - 16)
                snaplen = interfaces[g].snaplen
                if snaplen:
                    caplen = min(caplen, snaplen)
                if not primed:
                    primed = True
                    yield None
                yield new(
                    UntimedRecord,
                    (NoTimestamp(last_ns), buf[pos + 12 : pos + 12 + caplen], orig_len, convs[g][3],
                     g, base + pos, None),
                )
            elif btype in (BLOCK_CB_COPY, BLOCK_CB_NO_COPY):
                if blen < CB_MIN_LEN:
                    raise _too_short(path, base + pos, btype, stated, CB_MIN_LEN)
                # The data's own length is not recorded: tshark takes the whole body after
                # the PEN (data and options) as the frame, up to the stated block length.
                data = CustomBlockData(buf[pos + 12 : pos + max(stated, CB_MIN_LEN) - 4])
                data.pen = u32_unpack(buf, pos + 8)[0]
                data.copyable = btype == BLOCK_CB_COPY
                if not primed:
                    primed = True
                    yield None
                # Custom blocks belong to no interface; they name the section's first one
                # (0 before any), an index a caller can always use when interfaces exist.
                rec = new(
                    CustomBlockRecord,
                    (NoTimestamp(last_ns), data, len(data), LINKTYPE_PCAPNG_CUSTOM,
                     section_ifaces[0] if section_ifaces else 0, base + pos, None),
                )
                rec.pen = u32_unpack(buf, pos + 8)[0]
                rec.copyable = btype == BLOCK_CB_COPY
                yield rec
            elif btype == BLOCK_IDB:
                if blen < IDB_MIN_LEN:
                    raise _too_short(path, base + pos, btype, blen, IDB_MIN_LEN)
                if not state.sections:
                    raise CaptureFormatError(path, base + pos, "interface block before any section header")
                iface = _interface(buf, pos, end, endian, path, base, len(state.sections) - 1)
                section_ifaces.append(len(interfaces))
                interfaces.append(iface)
                g = math.gcd(_NS_PER_S, iface.ticks_per_second)
                convs.append(
                    (_NS_PER_S // g, iface.ticks_per_second // g, iface.tsoffset * _NS_PER_S,
                     iface.linktype)
                )
            elif btype == BLOCK_SHB:
                if blen < SHB_MIN_LEN:
                    raise _too_short(path, base + pos, btype, blen, SHB_MIN_LEN)
                major, minor = struct.unpack_from(endian + "HH", buf, pos + 12)
                if major != VERSION_MAJOR:
                    raise CaptureFormatError(
                        path, base + pos + 12,
                        f"pcapng version {major}.{minor} is not supported (expected {VERSION_MAJOR}.x)",
                    )
                options = parse_options(buf, pos + 24, end - 4, endian, path, base)
                values = {code: _text(v) for code, v in options}
                state.sections.append(
                    Section(
                        offset=base + pos, byteorder="little" if endian == "<" else "big",
                        version=(major, minor), application=values.get(SHB_USERAPPL),
                        os=values.get(SHB_OS), hardware=values.get(SHB_HARDWARE),
                        comment=_comment(options),
                    )
                )
                section_ifaces = []
            # Every other block type (NRB, ISB, DSB...) carries nothing we show.
            pos = end
        if not primed:
            yield None
    finally:
        done()


def _block_name(btype: int) -> str:
    return BLOCK_NAMES.get(btype, f"type 0x{btype:08x}")


def _too_short(path: str, offset: int, btype: int, blen: int, minimum: int) -> CaptureFormatError:
    return CaptureFormatError(
        path, offset + 4,
        f"{_block_name(btype)} block length {blen} is below its minimum of {minimum} bytes",
    )


def _bad_interface(path: str, offset: int, ifid: int, known: int) -> CaptureFormatError:
    return CaptureFormatError(
        path, offset,
        f"packet refers to interface {ifid}, but its section has described only {known} "
        "interface(s) so far (expected an interface description block first)",
    )


def _interface(
    buf: bytes, pos: int, end: int, endian: str, path: str, base: int, section: int
) -> Interface:
    linktype, _reserved, snaplen = struct.unpack_from(endian + "HHI", buf, pos + 8)
    iface = Interface(linktype=linktype, snaplen=snaplen, section=section)
    for code, value in parse_options(buf, pos + 16, end - 4, endian, path, base):
        if code == IF_NAME:
            iface.name = _text(value)
        elif code == IF_DESCRIPTION:
            iface.description = _text(value)
        elif code == IF_TSRESOL and len(value) >= 1:
            iface.ticks_per_second = ticks_per_second(value[0])
        elif code == IF_TSOFFSET and len(value) >= 8:
            iface.tsoffset = struct.unpack_from(endian + "q", value)[0]
    return iface


def _option(endian: str, code: int, value: bytes) -> bytes:
    return struct.pack(endian + "HH", code, len(value)) + value + _PAD[len(value) % 4]


def _block(endian: str, btype: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack(endian + "II", btype, total) + body + struct.pack(endian + "I", total)


class PcapngWriter(CaptureWriter):
    """Append packets to a pcapng file: one section, one interface (more via :meth:`add_interface`).

    The SHB and the first IDB are written at construction. ``write`` builds one Enhanced
    Packet Block with a precompiled struct; a ``comment`` becomes its ``opt_comment``.
    """

    format = "pcapng"

    def __init__(
        self,
        target: str | os.PathLike[str] | BinaryIO,
        linktype: int,
        *,
        snaplen: int = DEFAULT_SNAPLEN,
        nanosecond: bool = True,
        byteorder: Literal["little", "big"] = "little",
        application: str = "tcplab",
        interface_name: str | None = None,
    ) -> None:
        if byteorder not in ("little", "big"):
            raise ValueError(f"byteorder must be 'little' or 'big', not {byteorder!r}")
        self._endian = e = "<" if byteorder == "little" else ">"
        self.linktype = linktype
        self.snaplen = snaplen
        self.nanosecond = nanosecond
        self._epb = struct.Struct(e + "IIIIIII").pack
        self._u32 = struct.Struct(e + "I").pack
        self._opt_head = struct.Struct(e + "HH").pack
        self._end_of_options = struct.pack(e + "HH", OPT_ENDOFOPT, 0)
        #: Per interface id: (snaplen, divisor from ns to the interface's ticks).
        self._ifaces: list[tuple[int, int]] = []
        shb_body = struct.pack(e + "IHHq", BYTE_ORDER_MAGIC, VERSION_MAJOR, VERSION_MINOR, -1)
        if application:
            shb_body += _option(e, SHB_USERAPPL, application.encode()) + self._end_of_options
        header = _block(e, BLOCK_SHB, shb_body)
        header += self._idb(linktype, snaplen, nanosecond, interface_name)
        super().__init__(target, header)

    def _idb(self, linktype: int, snaplen: int, nanosecond: bool, name: str | None) -> bytes:
        e = self._endian
        if not 0 <= linktype <= 0xFFFF:
            raise ValueError(f"link type {linktype} does not fit pcapng's 16-bit field")
        if not 0 <= snaplen <= 0xFFFFFFFF:
            raise ValueError(f"snaplen {snaplen} is outside 0..4294967295")
        body = struct.pack(e + "HHI", linktype, 0, snaplen)
        options = b""
        if name:
            options += _option(e, IF_NAME, name.encode())
        if nanosecond:
            options += _option(e, IF_TSRESOL, bytes((9,)))
        if options:
            body += options + self._end_of_options
        # An IDB snaplen of 0 means "no limit" (pcapng §4.2).
        self._ifaces.append((snaplen or 0xFFFFFFFF, 1 if nanosecond else 1000))
        return _block(e, BLOCK_IDB, body)

    def add_interface(
        self, linktype: int, *, snaplen: int = DEFAULT_SNAPLEN, nanosecond: bool = True,
        name: str | None = None,
    ) -> int:
        """Describe another interface (e.g. a second link type); returns its id for ``write``."""
        block = self._idb(linktype, snaplen, nanosecond, name)
        self._buf += block
        self.bytes_written += len(block)
        return len(self._ifaces) - 1

    def write(
        self,
        data: bytes,
        timestamp_ns: int,
        orig_len: int | None = None,
        comment: str | None = None,
        interface: int = 0,
    ) -> None:
        """Append one Enhanced Packet Block; data beyond the interface's snaplen is cut off."""
        snaplen, div = self._ifaces[interface]
        caplen = len(data)
        if orig_len is None:
            orig_len = caplen
        if caplen > snaplen:
            data = data[:snaplen]
            caplen = snaplen
        if timestamp_ns < 0:
            raise timestamp_error(timestamp_ns, "pcapng")
        ts = timestamp_ns // div
        pad = _PAD[caplen & 3]
        total = 32 + caplen + len(pad)
        options = b""
        if comment is not None:
            raw = comment.encode("utf-8")
            options = self._opt_head(OPT_COMMENT, len(raw)) + raw + _PAD[len(raw) & 3] + \
                self._end_of_options
            total += len(options)
        try:
            head = self._epb(BLOCK_EPB, total, interface, ts >> 32, ts & 0xFFFFFFFF, caplen, orig_len)
        except struct.error:
            if ts >> 64:
                raise timestamp_error(timestamp_ns, "pcapng") from None
            raise ValueError(f"original length {orig_len} is not a 32-bit unsigned value") from None
        buf = self._buf
        buf += head
        buf += data
        buf += pad
        if options:
            buf += options
        buf += self._u32(total)
        self.packets_written += 1
        self.bytes_written += total
        if len(buf) >= FLUSH_THRESHOLD:
            self._drain()
