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

    #: False for a record whose block carries no time (a pcapng Simple Packet Block or
    #: custom block): its ``timestamp_ns`` is then the previous record's, so relative
    #: times never go backwards, and a renderer leaves the time column empty as tshark does.
    has_timestamp = True


class UntimedRecord(Record):
    """A packet from a pcapng Simple Packet Block, which has no timestamp (pcapng §4.4)."""

    __slots__ = ()
    has_timestamp = False


class NoTimestamp(int):
    """The ``timestamp_ns`` of a record whose block has no time: the previous record's value.

    An ``int`` (so relative times and every sum still work, and never run backwards) whose
    type says the time is a stand-in: the analyzer sees it in the 7-tuple it unpacks and
    leaves the time out of the frame's fields and its Time column empty, as tshark does.
    """

    __slots__ = ()


class CustomBlockData(bytes):
    """A custom block's frame bytes, carrying the block's ``pen`` and ``copyable`` with them.

    The analyzer unpacks records as 7-tuples; this is how a custom block's Private
    Enterprise Number and copy rule reach the ``frame.cb_pen``/``frame.cb_copy`` fields.
    """

    pen: int
    copyable: bool


#: Not a real link type: the record is a pcapng custom block (types 0x00000BAD and
#: 0x40000BAD), which tshark 4.0 counts as a frame of its own ("PCAPNG Custom Block").
LINKTYPE_PCAPNG_CUSTOM = -1


class CustomBlockRecord(Record):
    """A pcapng custom block handed out as a frame, as tshark numbers it.

    ``data`` is the block's custom data and options (what tshark shows as the frame's
    bytes, after the Private Enterprise Number); ``pen`` is that number and ``copyable``
    says whether the block type allows copying it to a new file (0x00000BAD) or not
    (0x40000BAD). The instance dict holds those two; custom blocks are rare.
    """

    has_timestamp = False
    pen: int
    copyable: bool


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


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def civil_time(timestamp_ns: int) -> tuple[int, int, int, int, int, int, int]:
    """UTC (year, month, day, hour, minute, second, nanosecond) of any record timestamp.

    Integer calendar arithmetic (H. Hinnant's ``civil_from_days``, proleptic Gregorian)
    instead of :mod:`datetime`, whose years stop at 9999: a pcapng timestamp is 64 bits
    of ticks, so a damaged or hostile file can say year 586524, and tshark shows it.
    """
    seconds, nanos = divmod(timestamp_ns, 1_000_000_000)
    days, rest = divmod(seconds, 86400)
    hour, rest = divmod(rest, 3600)
    minute, second = divmod(rest, 60)
    z = days + 719468  # days from 0000-03-01 to 1970-01-01
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (month <= 2)
    return year, month, day, hour, minute, second, nanos


def arrival_time_text(timestamp_ns: int) -> str:
    """tshark's "Arrival Time" for a record, e.g. ``Feb  8, 2024 10:00:00.123456789 UTC``.

    Works for every timestamp a capture can hold (see :func:`civil_time`).
    """
    year, month, day, hour, minute, second, nanos = civil_time(timestamp_ns)
    return f"{_MONTHS[month - 1]} {day:2d}, {year} {hour:02d}:{minute:02d}:{second:02d}.{nanos:09d} UTC"
