"""IPv6 fixed header (RFC 8200): build and parse; extension headers are skipped when parsing.

Layout (40 bytes)::

    0      version(4) traffic class(8) flow label(20)
    4      payload length(16) | next header(8) | hop limit(8)
    8      source address(128)
    24     destination address(128)
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from tcplab.packet.errors import ParseError

HEADER = struct.Struct("!IHBB16s16s")
HEADER_LEN = 40
DEFAULT_HOP_LIMIT = 64

# Extension headers that share the generic "next header, length in 8-octet units" layout.
_EXTENSIONS = {0, 43, 60, 135, 139, 140}
_FRAGMENT = 44


def addr(text: str) -> bytes:
    """IPv6 text → 16 bytes, with an error naming the bad address."""
    try:
        return socket.inet_pton(socket.AF_INET6, text.strip())
    except (OSError, ValueError):
        raise ValueError(f"{text!r} is not an IPv6 address") from None


def ntoa(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6, raw)


def build_header(
    src: bytes,
    dst: bytes,
    payload_len: int,
    *,
    next_header: int = 6,
    hop_limit: int = DEFAULT_HOP_LIMIT,
    traffic_class: int = 0,
    flow_label: int = 0,
) -> bytes:
    if payload_len > 0xFFFF:
        raise ValueError(f"IPv6 payload length {payload_len} exceeds 65535 (jumbograms unsupported)")
    first = (6 << 28) | ((traffic_class & 0xFF) << 20) | (flow_label & 0xFFFFF)
    return HEADER.pack(first, payload_len, next_header, hop_limit, src, dst)


@dataclass(slots=True)
class IPv6Header:
    src: bytes
    dst: bytes
    next_header: int = 6
    hop_limit: int = DEFAULT_HOP_LIMIT
    traffic_class: int = 0
    flow_label: int = 0
    payload_length: int = 0
    #: The upper-layer protocol after skipping extension headers, and where it starts
    #: (relative to the start of the IPv6 header).
    upper_protocol: int = 6
    upper_offset: int = HEADER_LEN

    @property
    def src_str(self) -> str:
        return socket.inet_ntop(socket.AF_INET6, self.src)

    @property
    def dst_str(self) -> str:
        return socket.inet_ntop(socket.AF_INET6, self.dst)


def parse(buf: bytes | memoryview, offset: int = 0) -> IPv6Header:
    avail = len(buf) - offset
    if avail < HEADER_LEN:
        raise ParseError("IPv6", "header", offset, f"needs 40 bytes, only {max(avail, 0)} captured")
    first, plen, nxt, hlim, src, dst = HEADER.unpack_from(buf, offset)
    if first >> 28 != 6:
        raise ParseError("IPv6", "version", offset, f"is {first >> 28}, expected 6")
    upper, pos = nxt, HEADER_LEN
    while upper in _EXTENSIONS or upper == _FRAGMENT:
        if offset + pos + 8 > len(buf):
            raise ParseError("IPv6", "extension header", offset + pos, "truncated")
        following = buf[offset + pos]
        size = 8 if upper == _FRAGMENT else (buf[offset + pos + 1] + 1) * 8
        upper, pos = following, pos + size
    return IPv6Header(
        src=src,
        dst=dst,
        next_header=nxt,
        hop_limit=hlim,
        traffic_class=(first >> 20) & 0xFF,
        flow_label=first & 0xFFFFF,
        payload_length=plen,
        upper_protocol=upper,
        upper_offset=pos,
    )
