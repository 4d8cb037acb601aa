"""IPv6 (RFC 8200): build the fixed header; parse it and walk the extension headers.

Fixed header (40 bytes)::

    0      version(4) traffic class(8) flow label(20)
    4      payload length(16) | next header(8) | hop limit(8)
    8      source address(128)
    24     destination address(128)

Extension headers (RFC 8200 §4) follow, each naming the next. Hop-by-Hop (0), Routing
(43), Destination Options (60), Mobility (135), HIP (139) and Shim6 (140) share one
layout: next header(8) | length in 8-octet units not counting the first 8 (8) | data.
Authentication Header (51, RFC 4302) counts its length in 4-octet units minus 2. The
Fragment header (44, §4.5) is always 8 bytes::

    0      next header(8) | reserved(8) | fragment offset(13) res(2) M(1)
    4      identification(32)

The walk stops at the upper-layer protocol, at ESP (50, encrypted) or No Next Header
(59), and at a non-first fragment, whose data is not the start of any header.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from tcplab.packet.errors import ParseError

HEADER = struct.Struct("!IHBB16s16s")
HEADER_LEN = 40
DEFAULT_HOP_LIMIT = 64

HOP_BY_HOP = 0
ROUTING = 43
FRAGMENT = 44
ESP = 50
AUTH = 51
NO_NEXT_HEADER = 59
DEST_OPTIONS = 60
MOBILITY = 135
HIP = 139
SHIM6 = 140

EXTENSION_NAMES = {
    HOP_BY_HOP: "Hop-by-Hop Options",
    ROUTING: "Routing Header",
    FRAGMENT: "Fragment Header",
    AUTH: "Authentication Header",
    DEST_OPTIONS: "Destination Options",
    MOBILITY: "Mobility Header",
    HIP: "Host Identity Protocol",
    SHIM6: "Shim6",
}
# Extension headers that share the generic "next header, length in 8-octet units" layout.
_EXTENSIONS = {HOP_BY_HOP, ROUTING, DEST_OPTIONS, MOBILITY, HIP, SHIM6}
_WALKED = _EXTENSIONS | {FRAGMENT, AUTH}
FRAGMENT_HEADER = struct.Struct("!BBHI")
FRAGMENT_OFFSET_MASK = 0xFFF8  # offset in 8-octet units, in the top 13 bits
FRAGMENT_MORE = 0x0001
#: More extension headers than this is an attack, not a packet (Linux stops far sooner).
MAX_EXTENSIONS = 16


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


def build_fragment_header(next_header: int, offset_bytes: int, more: bool, identification: int) -> bytes:
    """The 8-byte Fragment header; ``offset_bytes`` must be a multiple of 8 (RFC 8200 §4.5)."""
    if offset_bytes % 8 or not 0 <= offset_bytes <= 0xFFF8:
        raise ValueError(f"fragment offset {offset_bytes} is not a multiple of 8 in 0..65528")
    return FRAGMENT_HEADER.pack(next_header, 0, offset_bytes | (FRAGMENT_MORE if more else 0),
                                identification & 0xFFFFFFFF)


@dataclass(slots=True, frozen=True)
class Extension:
    """One extension header: its type, where it starts (from the IPv6 header) and its size."""

    header_type: int
    offset: int
    length: int

    @property
    def name(self) -> str:
        return EXTENSION_NAMES.get(self.header_type, f"Extension {self.header_type}")


@dataclass(slots=True, frozen=True)
class FragmentHeader:
    """What a Fragment header says. ``offset`` is in bytes (the field is 8-octet units)."""

    next_header: int
    offset: int
    more: bool
    identification: int

    @property
    def offset_units(self) -> int:
        """The field as written: 8-octet units (tshark's ``ipv6.fragment.offset``)."""
        return self.offset >> 3

    @property
    def is_fragment(self) -> bool:
        """False for an "atomic fragment" (offset 0, M clear: RFC 6946), a whole packet."""
        return self.more or self.offset != 0


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
    #: (relative to the start of the IPv6 header). For a fragment other than the first
    #: it is 44 (Fragment) and ``upper_offset`` is where the fragment's data starts: that
    #: data is the middle of a datagram, not a header to dissect.
    upper_protocol: int = 6
    upper_offset: int = HEADER_LEN
    #: Every extension header walked, in order.
    extensions: tuple[Extension, ...] = ()
    #: The Fragment header, when there is one.
    fragment: FragmentHeader | None = None

    @property
    def src_str(self) -> str:
        return socket.inet_ntop(socket.AF_INET6, self.src)

    @property
    def dst_str(self) -> str:
        return socket.inet_ntop(socket.AF_INET6, self.dst)


def parse(buf: bytes | memoryview, offset: int = 0) -> IPv6Header:
    """Parse the fixed header at ``offset`` and walk its extension headers.

    Errors name the field and the absolute byte offset: a truncated fixed header, a
    version other than 6, an extension header running past the captured bytes or past
    the payload length.
    """
    avail = len(buf) - offset
    if avail < HEADER_LEN:
        raise ParseError("IPv6", "header", offset, f"needs 40 bytes, only {max(avail, 0)} captured")
    first, plen, nxt, hlim, src, dst = HEADER.unpack_from(buf, offset)
    if first >> 28 != 6:
        raise ParseError("IPv6", "version", offset, f"is {first >> 28}, expected 6")
    upper, pos = nxt, HEADER_LEN
    # A jumbogram (payload length 0 with a Hop-by-Hop option) is bounded by the capture.
    limit = min(avail, HEADER_LEN + plen) if plen else avail
    extensions: list[Extension] = []
    fragment: FragmentHeader | None = None
    while upper in _WALKED:
        at = offset + pos
        if len(extensions) >= MAX_EXTENSIONS:
            raise ParseError("IPv6", "extension header", at,
                             f"more than {MAX_EXTENSIONS} extension headers")
        if pos + 8 > limit:
            what = "captured bytes" if pos + 8 > avail else f"payload length {plen}"
            raise ParseError("IPv6", EXTENSION_NAMES[upper], at, f"needs 8 bytes, runs past the {what}")
        following = buf[at]
        if upper == FRAGMENT:
            _nh, _res, word, ident = FRAGMENT_HEADER.unpack_from(buf, at)
            fragment = FragmentHeader(following, word & FRAGMENT_OFFSET_MASK, bool(word & FRAGMENT_MORE),
                                      ident)
            size = 8
        elif upper == AUTH:
            size = (buf[at + 1] + 2) * 4
        else:
            size = (buf[at + 1] + 1) * 8
        if pos + size > limit:
            what = "captured bytes" if pos + size > avail else f"payload length {plen}"
            raise ParseError("IPv6", f"{EXTENSION_NAMES[upper]} length", at + 1,
                             f"{size} bytes run past the {what}")
        extensions.append(Extension(upper, pos, size))
        pos += size
        if fragment is not None and fragment.offset:
            upper = FRAGMENT  # the rest is a datagram's middle: nothing to walk
            break
        upper = following
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
        extensions=tuple(extensions),
        fragment=fragment,
    )
