"""What every capture reader hands out: records, interface descriptions, and the format error.

Shared by :mod:`tcplab.pcap.pcap` and :mod:`tcplab.pcap.pcapng` so that the analyzer and
the live capture see one record type whatever the file format. No I/O here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import NamedTuple

from tcplab.errors import InputError

#: Wireshark's WTAP_MAX_PACKET_SIZE_STANDARD: the largest packet a capture tool writes by
#: default, and the snaplen our writers put in their headers.
DEFAULT_SNAPLEN = 262144

#: A record (or pcapng block) larger than this is treated as damage rather than read into
#: memory: a corrupt length field must never make us allocate gigabytes. 16 MiB is far
#: above any real link MTU (the largest, USB/D-Bus captures, stay below 256 KiB) and is
#: the order of Wireshark's own per-block ceiling.
MAX_RECORD_BYTES = 16 * 1024 * 1024

#: Readers pull the file in chunks of this size: large enough that the per-read system
#: call cost vanishes, small enough that memory stays flat for any file size.
READ_CHUNK = 1024 * 1024


class Record(NamedTuple):
    """One captured packet. A NamedTuple because analyzers read hundreds of thousands per second."""

    timestamp_ns: int  #: nanoseconds since the Unix epoch
    data: bytes  #: the captured bytes (possibly shorter than the packet on the wire)
    orig_len: int  #: the packet's length on the wire
    linktype: int  #: link type of the interface this record came from
    interface: int  #: index into ``reader.interfaces`` (always 0 for classic pcap)
    offset: int  #: byte offset of the record's header (pcapng: block start) in the file
    comment: str | None  #: pcapng ``opt_comment`` of the packet block, else None


@dataclass(slots=True)
class Interface:
    """A capture interface: what a classic pcap header or a pcapng IDB says about the link."""

    linktype: int
    snaplen: int
    #: pcapng ``if_name`` (e.g. "lo"), None when absent and always for classic pcap.
    name: str | None = None
    #: pcapng ``if_description``.
    description: str | None = None
    #: Timestamp ticks per second: 1_000_000 (µs, the default) or 1_000_000_000 (ns), or
    #: any 10**n / 2**n that a pcapng ``if_tsresol`` declares.
    ticks_per_second: int = 1_000_000
    #: pcapng ``if_tsoffset``: whole seconds added to every timestamp of this interface.
    tsoffset: int = 0
    #: Which pcapng section (0-based) described this interface.
    section: int = 0

    @property
    def tsresol_ns(self) -> float:
        """Duration of one timestamp tick in nanoseconds (1000.0 for µs, 1.0 for ns)."""
        return 1e9 / self.ticks_per_second


class CaptureFormatError(InputError):
    """The bytes at ``offset`` in ``path`` are not what the capture format requires there.

    Raised only after every good record before the damage has been handed out, so a
    caller can keep what it already read and report the rest.
    """

    def __init__(self, path: str, offset: int, message: str) -> None:
        self.path = path
        self.offset = offset
        self.reason = message
        super().__init__(f"{path}: byte offset {offset}: {message}")


def source_name(source: object) -> str:
    """A printable name for a path or file object, for error messages."""
    if isinstance(source, str | os.PathLike):
        return os.fsdecode(source)
    name = getattr(source, "name", None)
    if isinstance(name, str | bytes | os.PathLike):
        return os.fsdecode(name)
    return "<stream>"
