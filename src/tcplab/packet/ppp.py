"""PPP (RFC 1661) as tunnels carry it: the frame header and the control-protocol header. No I/O here.

PPPoE carries a bare 2-byte protocol number (its own module, :mod:`tcplab.packet.pppoe`).
L2TP (:mod:`tcplab.packet.l2tp`) carries the frame in HDLC-like framing (RFC 1662 §3)
without flags, FCS or byte stuffing::

    [address 0xff | control 0x03]   absent when Address-and-Control-Field-Compression is on
    protocol (16 bits, or 8 when Protocol-Field-Compression is on: an odd first byte)

LCP, IPCP and IPV6CP packets (RFC 1661 §5, RFC 1332, RFC 5072) start with
code(8) | identifier(8) | length(16); LCP's Echo, Discard, Identification and
Time-Remaining packets then carry a 4-byte magic number.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from tcplab.packet.errors import ParseError

ADDRESS_ALL_STATIONS = 0xFF
CONTROL_UI = 0x03

# PPP protocol numbers (IANA "PPP DLL Protocol Numbers").
PPP_IPV4 = 0x0021
PPP_IPV6 = 0x0057
PPP_LCP = 0xC021
PPP_NAMES = {
    PPP_IPV4: "Internet Protocol version 4",
    PPP_IPV6: "Internet Protocol version 6",
    0x8021: "Internet Protocol Control Protocol",
    0x8057: "IPv6 Control Protocol",
    PPP_LCP: "Link Control Protocol",
    0xC023: "Password Authentication Protocol",
    0xC223: "Challenge Handshake Authentication Protocol",
}
NETWORK = {PPP_IPV4: "IPv4", PPP_IPV6: "IPv6"}
#: The control protocols whose packets open with code, identifier and length.
CODED = frozenset({PPP_LCP, 0x8021, 0x8057})
#: LCP codes whose packets carry a magic number after the header (RFC 1661 §5.8–5.9, RFC 1570).
LCP_MAGIC_CODES = frozenset({9, 10, 11, 12, 13})

_CONTROL = struct.Struct("!BBH")


@dataclass(slots=True, frozen=True)
class PPPFrame:
    #: The address and control bytes, or None when the sender compressed them away.
    address: int | None
    control: int | None
    protocol: int
    #: Bytes from the start of the frame to the packet it carries.
    header_len: int


def build_frame(protocol: int, packet: bytes, *, compress_address: bool = False) -> bytes:
    """A PPP frame in HDLC-like framing, as L2TP carries it (RFC 2661 §3.2)."""
    head = b"" if compress_address else bytes((ADDRESS_ALL_STATIONS, CONTROL_UI))
    return head + struct.pack("!H", protocol) + packet


def parse_frame(buf: bytes | memoryview, offset: int, end: int) -> PPPFrame:
    """The PPP header at ``offset`` (the frame ends at ``end``); errors name the absolute offset."""
    at = offset
    address = control = None
    if end - at >= 2 and buf[at] == ADDRESS_ALL_STATIONS and buf[at + 1] == CONTROL_UI:
        address, control = ADDRESS_ALL_STATIONS, CONTROL_UI
        at += 2
    if at >= end:
        raise ParseError("PPP", "protocol", at, "no bytes left for the protocol field")
    if buf[at] & 1:  # RFC 1661 §6.5: a compressed (one-byte) protocol number is odd
        return PPPFrame(address, control, buf[at], at + 1 - offset)
    if end - at < 2:
        raise ParseError("PPP", "protocol", at, "needs 2 bytes, only 1 left")
    return PPPFrame(address, control, (buf[at] << 8) | buf[at + 1], at + 2 - offset)


def parse_control(buf: bytes | memoryview, offset: int, end: int) -> tuple[int, int, int]:
    """(code, identifier, length) of an LCP/IPCP/IPV6CP packet at ``offset``."""
    if end - offset < _CONTROL.size:
        raise ParseError("PPP", "control header", offset,
                         f"needs 4 bytes, only {max(end - offset, 0)} captured")
    return _CONTROL.unpack_from(buf, offset)
