"""ICMPv6 (RFC 4443) and the Neighbor Discovery messages (RFC 4861) seen on every IPv6 link. No I/O here.

Layout (4 bytes, then the message body)::

    0      type(8) | code(8) | checksum(16) — over an IPv6 pseudo-header (RFC 8200 §8.1)
    4      echo (128, 129): identifier(16) | sequence(16)
           errors (1-4): unused / MTU (2) / pointer (4), then as much of the offending
           packet as fits in the minimum MTU (RFC 4443 §2.4 (c))
           neighbor solicitation/advertisement (135, 136): flags(32) | target address(128)

Type < 128 is an error, ≥ 128 informational (RFC 4443 §2.1).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from tcplab.packet import ipv6
from tcplab.packet.checksum import (
    ChecksumStatus,
    internet_checksum,
    pseudo_header,
    verify_transport,
)
from tcplab.packet.errors import ParseError

HEADER = struct.Struct("!BBHHH")
HEADER_LEN = 8  # the fixed 4 bytes plus the first word every message type defines
PROTOCOL_NUMBER = 58

DEST_UNREACHABLE = 1
PACKET_TOO_BIG = 2
TIME_EXCEEDED = 3
PARAMETER_PROBLEM = 4
ECHO_REQUEST = 128
ECHO_REPLY = 129
ROUTER_SOLICITATION = 133
ROUTER_ADVERTISEMENT = 134
NEIGHBOR_SOLICITATION = 135
NEIGHBOR_ADVERTISEMENT = 136
REDIRECT = 137

TYPE_NAMES = {
    DEST_UNREACHABLE: "Destination Unreachable",
    PACKET_TOO_BIG: "Packet Too Big",
    TIME_EXCEEDED: "Time Exceeded",
    PARAMETER_PROBLEM: "Parameter Problem",
    ECHO_REQUEST: "Echo (ping) request",
    ECHO_REPLY: "Echo (ping) reply",
    130: "Multicast Listener Query",
    131: "Multicast Listener Report",
    132: "Multicast Listener Done",
    ROUTER_SOLICITATION: "Router Solicitation",
    ROUTER_ADVERTISEMENT: "Router Advertisement",
    NEIGHBOR_SOLICITATION: "Neighbor Solicitation",
    NEIGHBOR_ADVERTISEMENT: "Neighbor Advertisement",
    REDIRECT: "Redirect",
    143: "Multicast Listener Report Message v2",
}
CODE_NAMES = {
    # Wireshark's wording (packet-icmpv6.c), so Info columns compare equal.
    DEST_UNREACHABLE: {
        0: "No route to destination",
        1: "Administratively prohibited",
        2: "Beyond scope of source address",
        3: "Address unreachable",
        4: "Port unreachable",
        5: "Source address failed ingress/egress policy",
        6: "Reject route to destination",
    },
    # packet-icmpv6.c writes these two tables in lower case.
    TIME_EXCEEDED: {0: "hop limit exceeded in transit", 1: "fragment reassembly time exceeded"},
    PARAMETER_PROBLEM: {
        0: "erroneous header field encountered",
        1: "unrecognized Next Header type encountered",
        2: "unrecognized IPv6 option encountered",
    },
}


def build_echo(src: bytes, dst: bytes, identifier: int, sequence: int, data: bytes = b"",
               *, reply: bool = False) -> bytes:
    """An Echo request/reply with its pseudo-header checksum (the addresses are 16 bytes)."""
    msg = HEADER.pack(ECHO_REPLY if reply else ECHO_REQUEST, 0, 0, identifier & 0xFFFF,
                      sequence & 0xFFFF) + data
    csum = internet_checksum(pseudo_header(src, dst, PROTOCOL_NUMBER, len(msg)) + msg)
    return msg[:2] + csum.to_bytes(2, "big") + msg[4:]


@dataclass(slots=True, frozen=True)
class ICMPv6Message:
    icmp_type: int
    code: int
    checksum: int
    identifier: int | None
    sequence: int | None
    #: The word after the checksum (MTU for Packet Too Big, pointer for Parameter Problem).
    rest: int
    #: Neighbor Solicitation/Advertisement and Redirect: the target address (16 bytes).
    target: bytes | None
    #: Errors: the quoted IPv6 header (None when too little was quoted to read it), and
    #: the ports of a quoted UDP/TCP header.
    quoted: ipv6.IPv6Header | None
    quoted_ports: tuple[int, int] | None
    length: int

    @property
    def type_name(self) -> str:
        return TYPE_NAMES.get(self.icmp_type, f"Unknown (0x{self.icmp_type:02x})")

    @property
    def code_name(self) -> str | None:
        return CODE_NAMES.get(self.icmp_type, {}).get(self.code)

    @property
    def is_error(self) -> bool:
        return self.icmp_type < 128

    @property
    def target_str(self) -> str | None:
        return ipv6.ntoa(self.target) if self.target is not None else None

    def summary(self, hop_limit: int | None = None) -> str:
        """Wireshark's Info text before any pairing note, e.g. ``Echo (ping) request id=0x1234, seq=1, hop limit=64``."""
        text = self.type_name
        code = self.code_name
        if code is not None:
            text += f" ({code})"
        if self.identifier is not None:
            text += f" id=0x{self.identifier:04x}, seq={self.sequence}"
            if hop_limit is not None:
                text += f", hop limit={hop_limit}"
        if self.target is not None and self.icmp_type in (NEIGHBOR_SOLICITATION, NEIGHBOR_ADVERTISEMENT):
            text += f" for {self.target_str}"
        return text


def parse(buf: bytes | memoryview, offset: int = 0, end: int | None = None) -> ICMPv6Message:
    """Parse the ICMPv6 message in ``buf[offset:end]``; errors name the field and absolute offset."""
    end = len(buf) if end is None else min(end, len(buf))
    avail = end - offset
    if avail < 4:
        raise ParseError("ICMPv6", "header", offset, f"needs 4 bytes, only {max(avail, 0)} captured")
    itype, code, csum = struct.unpack_from("!BBH", buf, offset)
    rest = struct.unpack_from("!I", buf, offset + 4)[0] if avail >= 8 else 0
    identifier = sequence = None
    target = None
    quoted = None
    ports = None
    if itype in (ECHO_REQUEST, ECHO_REPLY):
        if avail < 8:
            raise ParseError("ICMPv6", "identifier", offset + 4, f"needs 4 bytes, only {avail - 4} captured")
        identifier, sequence = rest >> 16, rest & 0xFFFF
    elif itype in (NEIGHBOR_SOLICITATION, NEIGHBOR_ADVERTISEMENT, REDIRECT):
        if avail < 24:
            raise ParseError("ICMPv6", "target address", offset + 8,
                             f"needs 16 bytes, only {max(avail - 8, 0)} captured")
        target = bytes(buf[offset + 8 : offset + 24])
    elif itype < 128 and avail >= 8 + ipv6.HEADER_LEN:
        inner = bytes(buf[offset + 8 : end])
        try:
            quoted = ipv6.parse(inner)
        except ParseError:
            quoted = None
        if quoted is not None and quoted.upper_protocol in (6, 17) and quoted.upper_offset + 4 <= len(inner):
            ports = struct.unpack_from("!HH", inner, quoted.upper_offset)
    return ICMPv6Message(itype, code, csum, identifier, sequence, rest, target, quoted, ports, avail)


def verify_checksum(src: bytes, dst: bytes, message: bytes | memoryview) -> ChecksumStatus:
    """ICMPv6 checksums cover a pseudo-header, like UDP and TCP (RFC 4443 §2.3)."""
    return verify_transport(src, dst, PROTOCOL_NUMBER, message, 2)
