"""IPv4 header (RFC 791): build and parse every field. No I/O here.

Layout (20 bytes + options)::

    0      version(4) IHL(4) | DSCP(6) ECN(2) | total length(16)
    4      identification(16)                | flags(3) fragment offset(13)
    8      TTL(8) | protocol(8)              | header checksum(16)
    12     source address(32)
    16     destination address(32)
    20     options (IHL*4 - 20 bytes)
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

from tcplab.packet.checksum import ChecksumStatus, internet_checksum, verify_ipv4_header
from tcplab.packet.errors import ParseError

HEADER = struct.Struct("!BBHHHBBH4s4s")
MIN_HEADER_LEN = 20

# Protocol numbers (IANA "Assigned Internet Protocol Numbers").
PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ICMPV6 = 58

PROTOCOL_NAMES = {PROTO_ICMP: "ICMP", PROTO_TCP: "TCP", PROTO_UDP: "UDP", PROTO_ICMPV6: "ICMPv6"}

# Flags in the high bits of the 16-bit flags/fragment-offset word.
FLAG_RESERVED = 0x8000  # "evil bit" (RFC 3514), must be zero
FLAG_DF = 0x4000  # don't fragment
FLAG_MF = 0x2000  # more fragments
OFFSET_MASK = 0x1FFF  # fragment offset, in 8-byte units

DEFAULT_TTL = 64  # Linux's default (net.ipv4.ip_default_ttl)


def addr(text: str) -> bytes:
    """Dotted-quad text → 4 bytes, with an error that names the bad address."""
    try:
        return socket.inet_pton(socket.AF_INET, text.strip())
    except (OSError, ValueError):
        raise ValueError(f"{text!r} is not an IPv4 address (expected a.b.c.d)") from None


def ntoa(raw: bytes) -> str:
    """4 bytes → dotted-quad text."""
    return socket.inet_ntoa(raw)


def build_header(
    src: bytes,
    dst: bytes,
    payload_len: int,
    *,
    protocol: int = PROTO_TCP,
    identification: int = 0,
    ttl: int = DEFAULT_TTL,
    df: bool = False,
    mf: bool = False,
    fragment_offset: int = 0,
    dscp: int = 0,
    ecn: int = 0,
    options: bytes = b"",
) -> bytes:
    """Lay down an IPv4 header with total length and checksum filled in.

    ``options`` must already be padded to a multiple of 4 bytes (RFC 791 ends the
    option list with EOL and pads with zeros); the IHL follows from its length.
    """
    if len(options) % 4 or len(options) > 40:
        raise ValueError("IPv4 options must be a multiple of 4 bytes and at most 40 bytes")
    ihl = 5 + len(options) // 4
    total = ihl * 4 + payload_len
    if total > 0xFFFF:
        raise ValueError(f"IPv4 total length {total} exceeds 65535")
    frag = (FLAG_DF if df else 0) | (FLAG_MF if mf else 0) | (fragment_offset & OFFSET_MASK)
    head = HEADER.pack(
        0x40 | ihl,
        (dscp << 2) | ecn,
        total,
        identification & 0xFFFF,
        frag,
        ttl,
        protocol,
        0,
        src,
        dst,
    )
    if options:
        head += options
    csum = internet_checksum(head)
    return head[:10] + csum.to_bytes(2, "big") + head[12:]


@dataclass(slots=True)
class IPv4Header:
    """A parsed (or to-be-built) IPv4 header. Addresses are 4-byte ``bytes``."""

    src: bytes
    dst: bytes
    protocol: int = PROTO_TCP
    identification: int = 0
    ttl: int = DEFAULT_TTL
    df: bool = False
    mf: bool = False
    reserved_flag: bool = False
    fragment_offset: int = 0
    dscp: int = 0
    ecn: int = 0
    total_length: int = 0
    ihl: int = 5
    version: int = 4
    checksum: int = 0
    options: bytes = field(default=b"")

    @property
    def header_length(self) -> int:
        return self.ihl * 4

    @property
    def src_str(self) -> str:
        return socket.inet_ntoa(self.src)

    @property
    def dst_str(self) -> str:
        return socket.inet_ntoa(self.dst)

    @property
    def flags(self) -> int:
        """The 3-bit flags field as Wireshark shows it (``ip.flags``): 0x2 = DF, 0x1 = MF."""
        return (4 if self.reserved_flag else 0) | (2 if self.df else 0) | (1 if self.mf else 0)

    @property
    def is_fragment(self) -> bool:
        return self.mf or self.fragment_offset != 0

    def pack(self, payload_len: int) -> bytes:
        """Bytes of this header for a payload of ``payload_len`` bytes (length and checksum computed)."""
        return build_header(
            self.src,
            self.dst,
            payload_len,
            protocol=self.protocol,
            identification=self.identification,
            ttl=self.ttl,
            df=self.df,
            mf=self.mf,
            fragment_offset=self.fragment_offset,
            dscp=self.dscp,
            ecn=self.ecn,
            options=self.options,
        )


def parse(buf: bytes | memoryview, offset: int = 0) -> IPv4Header:
    """Parse the IPv4 header at ``offset``; errors name the field and absolute byte offset."""
    avail = len(buf) - offset
    if avail < MIN_HEADER_LEN:
        raise ParseError("IPv4", "header", offset, f"needs 20 bytes, only {max(avail, 0)} captured")
    vihl, tos, total, ident, frag, ttl, proto, csum, src, dst = HEADER.unpack_from(buf, offset)
    version = vihl >> 4
    if version != 4:
        raise ParseError("IPv4", "version", offset, f"is {version}, expected 4")
    ihl = vihl & 0x0F
    if ihl < 5:
        raise ParseError("IPv4", "header length (IHL)", offset, f"{ihl * 4} bytes is below the minimum 20")
    if ihl * 4 > avail:
        raise ParseError(
            "IPv4", "header length (IHL)", offset, f"{ihl * 4} bytes but only {avail} captured"
        )
    if total < ihl * 4:
        raise ParseError(
            "IPv4", "total length", offset + 2, f"{total} is smaller than the header length {ihl * 4}"
        )
    return IPv4Header(
        src=src,
        dst=dst,
        protocol=proto,
        identification=ident,
        ttl=ttl,
        df=bool(frag & FLAG_DF),
        mf=bool(frag & FLAG_MF),
        reserved_flag=bool(frag & FLAG_RESERVED),
        fragment_offset=frag & OFFSET_MASK,
        dscp=tos >> 2,
        ecn=tos & 3,
        total_length=total,
        ihl=ihl,
        version=version,
        checksum=csum,
        options=bytes(buf[offset + 20 : offset + ihl * 4]),
    )


def verify_checksum(buf: bytes | memoryview, offset: int = 0) -> ChecksumStatus:
    """Verify the header checksum of the IPv4 header at ``offset``."""
    ihl = buf[offset] & 0x0F
    return verify_ipv4_header(buf[offset : offset + ihl * 4])
