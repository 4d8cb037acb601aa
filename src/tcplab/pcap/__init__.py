"""Capture files: read classic pcap and pcapng, write either, always streaming.

``open_capture(path)`` detects the format (classic pcap in µs or ns, either byte order;
pcapng with any number of sections and interfaces, either byte order; gzip around
either) and yields :class:`Record` s one at a time. ``open_writer(path, linktype)`` picks
:class:`PcapWriter` or :class:`PcapngWriter` by extension. Damage in a file raises
:class:`CaptureFormatError` naming the byte offset, after the good records before it.

Nothing here knows about IP or TCP: records are opaque bytes plus a link type, and
:mod:`tcplab.packet` takes it from there.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from tcplab.pcap.pcap import PcapWriter
from tcplab.pcap.pcapng import PcapngWriter
from tcplab.pcap.reader import CaptureReader, open_capture
from tcplab.pcap.records import (
    DEFAULT_SNAPLEN,
    LINKTYPE_PCAPNG_CUSTOM,
    CaptureFormatError,
    CustomBlockData,
    CustomBlockRecord,
    Interface,
    NoTimestamp,
    Record,
    UntimedRecord,
    arrival_time_text,
    civil_time,
)

__all__ = [
    "DEFAULT_SNAPLEN",
    "CaptureFormatError",
    "CaptureReader",
    "CustomBlockData",
    "CustomBlockRecord",
    "Interface",
    "LINKTYPE_PCAPNG_CUSTOM",
    "NoTimestamp",
    "PcapWriter",
    "PcapngWriter",
    "Record",
    "UntimedRecord",
    "arrival_time_text",
    "civil_time",
    "format_for_path",
    "open_capture",
    "open_writer",
]


def format_for_path(path: str | os.PathLike[str]) -> Literal["pcap", "pcapng"]:
    """``.pcapng`` (also ``.ntar``, Wireshark's old name for it) means pcapng; anything else pcap."""
    name = os.fsdecode(path).lower()
    return "pcapng" if name.endswith((".pcapng", ".ntar")) else "pcap"


def open_writer(
    path: str | os.PathLike[str],
    linktype: int,
    *,
    format: Literal["pcap", "pcapng"] | None = None,  # noqa: A002 - the name callers use
    **kw: Any,
) -> PcapWriter | PcapngWriter:
    """A writer for ``path``: pcapng when ``format`` says so or the name ends in ``.pcapng``."""
    fmt = format or format_for_path(path)
    if fmt == "pcapng":
        return PcapngWriter(path, linktype, **kw)
    if fmt == "pcap":
        return PcapWriter(path, linktype, **kw)
    raise ValueError(f"unknown capture format {fmt!r} (expected 'pcap' or 'pcapng')")
