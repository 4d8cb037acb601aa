"""The Internet checksum (RFC 1071) and the pseudo-headers that TCP/UDP fold into it.

Speed matters (the encapsulator checksums every packet it writes), so there is no
per-byte Python loop. The trick: read the buffer as one big-endian integer
N = Σ wᵢ·65536ⁱ over its 16-bit words wᵢ. Because 65536 ≡ 1 (mod 65535), N mod 65535
equals Σ wᵢ mod 65535 — exactly the end-around-carry (one's-complement) sum of the
words, computed by CPython's C big-integer code. One's complement has two zeros
(0x0000 and 0xFFFF); a non-zero sum that reduces to 0 is reported as 0xFFFF, which is
what the carry-folding loop of RFC 1071 §4.1 produces.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

_PSEUDO4 = struct.Struct("!4s4sBBH")
_PSEUDO6 = struct.Struct("!16s16sI3xB")


def ones_complement_sum(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """One's-complement sum of ``data`` as 16-bit big-endian words, plus ``initial``.

    An odd-length buffer is padded with one zero byte at the end (RFC 1071 §4.1).
    The result is in 0..0xFFFF; 0 only when every word (and ``initial``) is zero.
    """
    if len(data) & 1:
        data = bytes(data) + b"\x00"
    n = int.from_bytes(data, "big") + initial
    if n == 0:
        return 0
    s = n % 0xFFFF
    return s if s else 0xFFFF


def internet_checksum(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """The value to store in a checksum field: the complement of the one's-complement sum.

    Compute it with the checksum field zeroed. ``initial`` lets callers add a
    pseudo-header sum without concatenating buffers.
    """
    return ~ones_complement_sum(data, initial) & 0xFFFF


def ipv4_pseudo_header(src: bytes, dst: bytes, protocol: int, length: int) -> bytes:
    """RFC 9293 §3.1 pseudo-header: source, destination, zero, protocol, TCP/UDP length."""
    return _PSEUDO4.pack(src, dst, 0, protocol, length)


def ipv6_pseudo_header(src: bytes, dst: bytes, next_header: int, length: int) -> bytes:
    """RFC 8200 §8.1 pseudo-header: source, destination, upper-layer length, zeros, next header."""
    return _PSEUDO6.pack(src, dst, length, next_header)


def pseudo_header(src: bytes, dst: bytes, protocol: int, length: int) -> bytes:
    """The IPv4 or IPv6 pseudo-header, chosen by the address length (4 or 16 bytes)."""
    if len(src) == 4:
        return ipv4_pseudo_header(src, dst, protocol, length)
    return ipv6_pseudo_header(src, dst, protocol, length)


def transport_checksum(src: bytes, dst: bytes, protocol: int, segment: bytes | bytearray) -> int:
    """Checksum for a TCP/UDP ``segment`` (header with checksum zeroed, plus payload)."""
    return internet_checksum(pseudo_header(src, dst, protocol, len(segment)) + bytes(segment))


@dataclass(frozen=True, slots=True)
class ChecksumStatus:
    """The verdict on a stored checksum, worded the way Wireshark shows it."""

    stored: int
    expected: int

    @property
    def good(self) -> bool:
        return self.stored == self.expected

    def __str__(self) -> str:
        if self.good:
            return f"0x{self.stored:04x} [correct]"
        return f"0x{self.stored:04x} incorrect, should be 0x{self.expected:04x}"

    @property
    def word(self) -> str:
        """'good' or 'bad' — Wireshark's ``*.checksum.status`` vocabulary."""
        return "good" if self.good else "bad"


def verify_ipv4_header(header: bytes | bytearray | memoryview) -> ChecksumStatus:
    """Check an IPv4 header's checksum (bytes 10–11) against its contents."""
    stored = (header[10] << 8) | header[11]
    zeroed = bytes(header[:10]) + b"\x00\x00" + bytes(header[12:])
    return ChecksumStatus(stored, internet_checksum(zeroed))


def verify_transport(
    src: bytes, dst: bytes, protocol: int, segment: bytes | bytearray | memoryview, offset: int
) -> ChecksumStatus:
    """Check a TCP/UDP checksum stored at ``offset`` within ``segment`` (16 for TCP, 6 for UDP)."""
    seg = bytes(segment)
    stored = (seg[offset] << 8) | seg[offset + 1]
    zeroed = seg[:offset] + b"\x00\x00" + seg[offset + 2 :]
    expected = transport_checksum(src, dst, protocol, zeroed)
    if protocol == 17 and expected == 0:
        # RFC 768: a computed UDP checksum of zero is transmitted as all ones.
        expected = 0xFFFF
    return ChecksumStatus(stored, expected)
