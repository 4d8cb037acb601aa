"""Open any capture file: detect classic pcap vs pcapng (and gzip around either) and stream records.

This is the thin I/O shell: it opens the file, looks at the first bytes, and hands the
byte stream to the format module's parser. It never parses record layouts itself and
never reads more than a chunk ahead.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Iterator
from typing import BinaryIO

from tcplab.errors import InputError
from tcplab.pcap import pcap, pcapng
from tcplab.pcap.records import READ_CHUNK, CaptureFormatError, Interface, Record, source_name

GZIP_MAGIC = b"\x1f\x8b"


class CaptureReader:
    """An open capture: iterate it for :class:`Record` s; use it as a context manager.

    Attributes: ``format`` ("pcap" or "pcapng"), ``path``, ``interfaces`` (grows while a
    multi-section pcapng is read), ``linktype`` (the first interface's), ``byteorder``
    ("little"/"big", of the first section), ``compressed`` (True for gzip input),
    ``sections`` (pcapng section headers; empty for classic pcap).
    """

    def __init__(
        self,
        path: str,
        fmt: str,
        records: Iterator[Record],
        interfaces: list[Interface],
        byteorder: str,
        close: Callable[[], None],
        *,
        compressed: bool = False,
        sections: list[pcapng.Section] | None = None,
        version: tuple[int, int] = (0, 0),
    ) -> None:
        self.path = path
        self.format = fmt
        self.interfaces = interfaces
        self.byteorder = byteorder
        self.compressed = compressed
        self.sections = sections if sections is not None else []
        self.version = version
        self._records = records
        self._close = close

    @property
    def linktype(self) -> int | None:
        """The first interface's link type (None for a pcapng without interfaces)."""
        return self.interfaces[0].linktype if self.interfaces else None

    @property
    def snaplen(self) -> int | None:
        return self.interfaces[0].snaplen if self.interfaces else None

    def __iter__(self) -> Iterator[Record]:
        # Hand out the generator itself: `for` loops then run at generator speed with no
        # extra method call per record.
        return self._records

    def __next__(self) -> Record:
        return next(self._records)

    def close(self) -> None:
        self._records.close()
        self._close()

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<CaptureReader {self.format} {self.path!r} linktype={self.linktype}>"


#: Compressed bytes fed to the decompressor per step, and the most it may produce from
#: them: bounds memory against a "zip bomb" while keeping calls rare.
GZIP_INPUT_CHUNK = 64 * 1024


class _GzipStream:
    """A read function over gzip input that hands out everything that decompresses.

    :class:`gzip.GzipFile` throws away the bytes it decompressed in a call that then meets
    the end of a truncated file, so a cut ``.pcap.gz`` showed no packets at all; tshark
    shows every packet before the cut. Here the decompressor is driven by hand: good
    bytes are returned first, and the damage is raised by the next read, naming how far
    into the compressed bytes it is and how much came out before it. Concatenated gzip
    members (``cat a.gz b.gz``) are read one after another, as gzip(1) does; bytes after
    the last member that are not another member are ignored, as gzip(1) ignores them.
    """

    def __init__(self, raw: BinaryIO, path: str) -> None:
        self._raw = raw
        self._path = path
        self._dec = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._pending = b""  # compressed bytes of the next member, read past the last one
        self._consumed = 0  # compressed bytes read from the file
        self._delivered = 0  # uncompressed bytes handed out
        self._error: CaptureFormatError | None = None
        self._eof = False

    def _damage(self, detail: str) -> CaptureFormatError:
        return CaptureFormatError(
            self._path, self._delivered,
            f"compressed data is damaged: {detail} (within the first {self._consumed} "
            f"compressed bytes, after {self._delivered} uncompressed bytes)",
        )

    def _next_member(self) -> bool:
        """Start decompressing the member after the one that just ended; False at the end."""
        tail = self._dec.unused_data + self._pending
        if not tail:
            tail = self._raw.read(GZIP_INPUT_CHUNK)
            self._consumed += len(tail)
        if not tail.startswith(GZIP_MAGIC):
            return False
        self._dec = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._pending = tail
        return True

    def _step(self, size: int) -> bytes:
        """Up to ``size`` more uncompressed bytes; b"" only at the clean end of the input."""
        while True:
            if self._dec.eof and not self._next_member():
                self._eof = True
                return b""
            data = self._pending or self._dec.unconsumed_tail
            self._pending = b""
            if not data:
                data = self._raw.read(GZIP_INPUT_CHUNK)
                if not data:
                    raise self._damage(f"the file ends at byte {self._consumed}, before the end "
                                       "of the compressed stream")
                self._consumed += len(data)
            try:
                # max_length bounds what one step may inflate: no "zip bomb" at once.
                out = self._dec.decompress(data, size)
            except zlib.error as exc:
                raise self._damage(str(exc)) from None
            if out:
                self._delivered += len(out)
                return out

    def read(self, size: int) -> bytes:
        if self._error is not None:
            raise self._error
        if self._eof:
            return b""
        parts: list[bytes] = []
        have = 0
        try:
            while have < size:
                out = self._step(size - have)
                if not out:
                    break
                parts.append(out)
                have += len(out)
        except CaptureFormatError as exc:
            if not parts:
                raise
            self._error = exc  # hand out what did decompress; the next read says why it stops
        return parts[0] if len(parts) == 1 else b"".join(parts)


def _describe_bad_magic(head: bytes) -> str:
    if not head:
        return "the file is empty (0 bytes); expected a pcap or pcapng header"
    magic = head[:4]
    text = f"not a pcap or pcapng file (magic 0x{magic.hex()})"
    sample = head[:64]
    try:
        decoded = sample.decode("utf-8")
    except UnicodeDecodeError:
        decoded = ""
    if decoded and all(c.isprintable() or c in "\r\n\t" for c in decoded.lstrip("\ufeff")):
        first_line = decoded.lstrip("\ufeff").splitlines()[0][:40] if decoded.strip() else ""
        hint = "a CSV? use 'tcplab encap' to turn it into packets" if "," in decoded else "text?"
        return f"{text}: it starts with {first_line!r}, is it {hint}"
    if len(head) < 4:
        return f"{text}: only {len(head)} bytes, too short for any capture header"
    return f"{text}, expected a1b2c3d4 / a1b23c4d (pcap, either byte order) or 0a0d0d0a (pcapng)"


def open_capture(source: str | os.PathLike[str] | BinaryIO, *,
                 plain: bool = False) -> CaptureReader:
    """Open a classic pcap or pcapng file (optionally gzip-compressed) for streaming.

    ``source`` is a path or a binary file object (left open on close; it need not be
    seekable, so pipes work). A file that is not a capture at all, or whose headers are
    damaged, raises :class:`CaptureFormatError` here; damage later in the file is raised
    by the iteration after every good record before it. ``plain`` lets a classic pcap's
    records come as plain tuples in :class:`Record`'s field order, for a caller that
    unpacks each at once and reads no attribute (the analyzer); pcapng records are
    :class:`Record` s either way.
    """
    path = source_name(source)
    if isinstance(source, str | os.PathLike):
        try:
            raw: BinaryIO = open(source, "rb", buffering=0)  # noqa: SIM115
        except OSError as exc:
            raise InputError(f"{path}: cannot open capture file: {exc.strerror}") from None
        owns = True
    else:
        raw = source
        owns = False

    closers: list[Callable[[], None]] = []
    if owns:
        closers.append(raw.close)

    def close() -> None:
        while closers:
            closers.pop()()

    try:
        read: Callable[[int], bytes] = raw.read
        head = read(READ_CHUNK)
        if not isinstance(head, bytes | bytearray):
            raise InputError(f"{path}: capture files must be opened in binary mode ('rb')")
        head = pcap.fill(read, bytes(head), 4)
        compressed = False
        if head[:2] == GZIP_MAGIC:
            compressed = True
            read = _GzipStream(_Replay(head, raw), path).read
            head = pcap.fill(read, b"", 4)
        if head[:4] in pcap.MAGIC_BYTES:
            head = pcap.fill(read, head, pcap.GLOBAL_HEADER_LEN)
            header = pcap.parse_global_header(head, path)
            records = pcap.iter_records(read, head, path, header, close, plain=plain)
            return CaptureReader(
                path, "pcap", records, [header.interface],
                "little" if header.endian == "<" else "big", close,
                compressed=compressed, version=header.version,
            )
        if head[:4] == pcapng.SHB_MAGIC:
            state = pcapng.ReaderState()
            blocks = pcapng.iter_blocks(read, head, path, state, close)
            next(blocks)  # read the header blocks up to the first packet
            first = state.sections[0]
            return CaptureReader(
                path, "pcapng", blocks, state.interfaces,  # type: ignore[arg-type]
                first.byteorder, close, compressed=compressed, sections=state.sections,
                version=first.version,
            )
        raise CaptureFormatError(path, 0, _describe_bad_magic(head))
    except BaseException:
        close()
        raise


class _Replay:
    """A file object that first returns bytes already read, then continues from the file.

    Lets us sniff the magic of a non-seekable stream and still hand the whole stream to
    the gzip decompressor.
    """

    def __init__(self, head: bytes, raw: BinaryIO) -> None:
        self._head = head
        self._raw = raw

    def read(self, size: int = -1) -> bytes:
        if self._head:
            if size < 0:
                data, self._head = self._head + self._raw.read(), b""
                return data
            data, self._head = self._head[:size], self._head[size:]
            return data
        return self._raw.read(size)

    def close(self) -> None:
        """The underlying file is closed by whoever opened it."""
