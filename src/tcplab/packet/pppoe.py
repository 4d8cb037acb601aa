"""PPPoE (RFC 2516) and the PPP protocol field it carries: how DSL links put IP in Ethernet. No I/O here.

Ethernet type 0x8863 carries the discovery stage, 0x8864 the session stage. Header (6 bytes)::

    0      version(4)=1 type(4)=1 | code(8) | session id(16)
    4      length(16): bytes of PPPoE payload that follow (the rest of the frame may be padding)

In the session stage (code 0) the payload is a PPP frame without address/control bytes
(RFC 1661 §2, RFC 2516 §7): a 2-byte protocol number, then the packet, e.g. 0x0021 IPv4.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from tcplab.packet.errors import ParseError
from tcplab.packet.ppp import NETWORK, PPP_IPV4, PPP_IPV6, PPP_NAMES

__all__ = ["PPP_IPV4", "PPP_IPV6", "PPP_NAMES", "PPPoEHeader", "build_session", "parse"]

ETHERTYPE_DISCOVERY = 0x8863
ETHERTYPE_SESSION = 0x8864

HEADER = struct.Struct("!BBHH")
HEADER_LEN = 6
PPP_PROTOCOL_LEN = 2
VERSION_TYPE = 0x11  # version 1, type 1: the only values RFC 2516 defines

CODE_SESSION = 0x00
CODE_NAMES = {
    CODE_SESSION: "Session Data",
    0x07: "Active Discovery Offer (PADO)",
    0x09: "Active Discovery Initiation (PADI)",
    0x19: "Active Discovery Request (PADR)",
    0x65: "Active Discovery Session-confirmation (PADS)",
    0xA7: "Active Discovery Terminate (PADT)",
}

# The PPP protocol numbers live with PPP (tcplab.packet.ppp); PPPoE's callers find them here too.

@dataclass(slots=True, frozen=True)
class PPPoEHeader:
    code: int
    session_id: int
    length: int
    #: The PPP protocol of a session-stage frame; None in the discovery stage.
    ppp_protocol: int | None
    #: Bytes from the start of the PPPoE header to the packet it carries.
    header_len: int

    @property
    def network(self) -> str | None:
        """"IPv4"/"IPv6" when the PPP frame carries IP, else None (LCP, discovery...)."""
        return NETWORK.get(self.ppp_protocol) if self.ppp_protocol is not None else None

    @property
    def code_name(self) -> str:
        return CODE_NAMES.get(self.code, f"Unknown (0x{self.code:02x})")


def build_session(session_id: int, ppp_protocol: int, packet: bytes) -> bytes:
    """PPPoE session header + PPP protocol + ``packet`` (what goes after Ethernet type 0x8864)."""
    return HEADER.pack(VERSION_TYPE, CODE_SESSION, session_id, PPP_PROTOCOL_LEN + len(packet)) + \
        struct.pack("!H", ppp_protocol) + packet


def parse(buf: bytes | memoryview, offset: int = 0, *, session: bool = True) -> PPPoEHeader:
    """Parse the PPPoE header at ``offset`` (and the PPP protocol when ``session``).

    Errors name the field and the absolute byte offset.
    """
    avail = len(buf) - offset
    if avail < HEADER_LEN:
        raise ParseError("PPPoE", "header", offset, f"needs 6 bytes, only {max(avail, 0)} captured")
    vt, code, sid, length = HEADER.unpack_from(buf, offset)
    if vt != VERSION_TYPE:
        raise ParseError("PPPoE", "version/type", offset,
                         f"is {vt >> 4}/{vt & 15}, RFC 2516 defines only 1/1")
    if length > avail - HEADER_LEN:
        raise ParseError("PPPoE", "payload length", offset + 4,
                         f"{length} bytes but only {avail - HEADER_LEN} captured")
    if not session:
        return PPPoEHeader(code, sid, length, None, HEADER_LEN)
    if code != CODE_SESSION:
        raise ParseError("PPPoE", "code", offset + 1,
                         f"0x{code:02x} ({CODE_NAMES.get(code, 'unknown')}) in a session-stage frame")
    if length < PPP_PROTOCOL_LEN:
        raise ParseError("PPP", "protocol", offset + HEADER_LEN,
                         f"needs 2 bytes, the PPPoE length is {length}")
    (proto,) = struct.unpack_from("!H", buf, offset + HEADER_LEN)
    return PPPoEHeader(code, sid, length, proto, HEADER_LEN + PPP_PROTOCOL_LEN)
