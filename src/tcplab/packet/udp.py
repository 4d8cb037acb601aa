"""UDP header (RFC 768): build and parse. No I/O here.

Layout (8 bytes): source port(16) | destination port(16) | length(16) | checksum(16).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from tcplab.packet.checksum import (
    ChecksumStatus,
    internet_checksum,
    pseudo_header,
    verify_transport,
)
from tcplab.packet.errors import ParseError

HEADER = struct.Struct("!HHHH")
HEADER_LEN = 8
PROTOCOL_NUMBER = 17


def build_datagram(src: bytes, dst: bytes, src_port: int, dst_port: int, payload: bytes) -> bytes:
    """UDP header + payload with the pseudo-header checksum (IPv4 or IPv6 by address length)."""
    length = HEADER_LEN + len(payload)
    if length > 0xFFFF:
        raise ValueError(f"UDP datagram of {length} bytes exceeds 65535")
    dgram = HEADER.pack(src_port, dst_port, length, 0) + payload
    csum = internet_checksum(pseudo_header(src, dst, PROTOCOL_NUMBER, length) + dgram)
    if csum == 0:
        csum = 0xFFFF  # RFC 768: zero means "no checksum", so a computed zero is sent as all ones
    return dgram[:6] + csum.to_bytes(2, "big") + dgram[8:]


@dataclass(slots=True)
class UDPHeader:
    src_port: int
    dst_port: int
    length: int = HEADER_LEN
    checksum: int = 0


def parse(buf: bytes | memoryview, offset: int = 0) -> UDPHeader:
    avail = len(buf) - offset
    if avail < HEADER_LEN:
        raise ParseError("UDP", "header", offset, f"needs 8 bytes, only {max(avail, 0)} captured")
    sport, dport, length, csum = HEADER.unpack_from(buf, offset)
    if length < HEADER_LEN:
        raise ParseError("UDP", "length", offset + 4, f"{length} is below the header size 8")
    return UDPHeader(sport, dport, length, csum)


def verify_checksum(src: bytes, dst: bytes, datagram: bytes | memoryview) -> ChecksumStatus | None:
    """Verify a UDP checksum; ``None`` when the sender left it zero (allowed over IPv4)."""
    if datagram[6] == 0 and datagram[7] == 0 and len(src) == 4:
        return None
    return verify_transport(src, dst, PROTOCOL_NUMBER, datagram, 6)
