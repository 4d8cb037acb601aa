"""The file handling shared by the pcap and pcapng writers: whole-record buffering and flushing.

Records are collected in our own buffer and handed to the operating system only in whole
records, so whatever a killed process leaves on disk ends on a record boundary (and after
:meth:`CaptureWriter.flush` it holds every record written). The format modules lay down the
bytes; this module must never know a format's layout.
"""

from __future__ import annotations

import os
from typing import BinaryIO

from tcplab.errors import InputError

#: Hand the buffer to the OS once it holds this much: big enough that system calls cost
#: nothing per record, small enough to be irrelevant for memory.
FLUSH_THRESHOLD = 256 * 1024


class CaptureWriter:
    """Base of :class:`~tcplab.pcap.pcap.PcapWriter` and :class:`~tcplab.pcap.pcapng.PcapngWriter`.

    ``packets_written`` counts records; ``bytes_written`` counts every byte of the file
    so far, headers included (some may still sit in the buffer until :meth:`flush`).
    """

    format: str = ""

    def __init__(self, target: str | os.PathLike[str] | BinaryIO, header: bytes) -> None:
        if isinstance(target, str | os.PathLike):
            try:
                self._file: BinaryIO = open(target, "wb", buffering=0)  # noqa: SIM115
            except OSError as exc:
                raise InputError(
                    f"{os.fsdecode(target)}: cannot write capture file: {exc.strerror}"
                ) from None
            self._owns = True
            self.path = os.fsdecode(target)
        else:
            self._file = target
            self._owns = False
            self.path = str(getattr(target, "name", "<stream>"))
        self._buf = bytearray()
        self._closed = False
        self.packets_written = 0
        self.bytes_written = 0
        # The header goes out at once: a capture killed before its first packet is still
        # a valid, empty file that Wireshark opens.
        self._buf += header
        self.bytes_written = len(header)
        self.flush()

    def _drain(self) -> None:
        """Hand every buffered (whole) record to the file object."""
        if not self._buf:
            return
        data = bytes(self._buf)
        self._buf.clear()
        view = memoryview(data)
        write = self._file.write
        while view:
            n = write(view)
            if n is None:  # some file-like objects return nothing and take it all
                break
            view = view[n:]

    def flush(self) -> None:
        """Push buffered records to the operating system; the file is then valid as it stands."""
        if self._closed:
            return
        self._drain()
        flush = getattr(self._file, "flush", None)
        if flush is not None:
            flush()

    def close(self) -> None:
        """Flush, and close the file if we opened it (a caller's stream stays open)."""
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            # Shadow the hot-path method instead of testing a flag on every write.
            self.write = self._write_after_close  # type: ignore[method-assign]
            if self._owns:
                self._file.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def _write_after_close(self, *args: object, **kwargs: object) -> None:
        raise ValueError(f"{self.path}: write to a closed capture writer")

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def timestamp_error(timestamp_ns: int, fmt: str) -> ValueError:
    """The error for a timestamp the format cannot store (before 1970, or too far ahead)."""
    return ValueError(f"timestamp {timestamp_ns} ns cannot be stored in {fmt} (must be >= 0 and fit the format)")
