"""ICMP for IPv4 (RFC 792): build echo messages, parse every message and the header it quotes. No I/O here.

Layout (8 bytes, then data)::

    0      type(8) | code(8) | checksum(16)
    4      echo (0, 8), timestamp (13, 14): identifier(16) | sequence number(16)
           destination unreachable (3): unused(16) | next-hop MTU(16) (RFC 1191, code 4)
           redirect (5): gateway address(32);  others: unused / type-specific
    8      data: for errors (3, 4, 5, 11, 12) the offending IP header and at least the
           first 8 bytes of its payload (RFC 792; RFC 1812 §4.3.2.3 allows more) —
           enough to name the UDP/TCP ports of the datagram that failed.

Names follow Wireshark's Info column ("Echo (ping) request", "Destination unreachable
(Port unreachable)").
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from tcplab.packet import ipv4
from tcplab.packet.checksum import ChecksumStatus, internet_checksum
from tcplab.packet.errors import ParseError

HEADER = struct.Struct("!BBHHH")
HEADER_LEN = 8
PROTOCOL_NUMBER = 1

ECHO_REPLY = 0
DEST_UNREACHABLE = 3
SOURCE_QUENCH = 4
REDIRECT = 5
ECHO_REQUEST = 8
ROUTER_ADVERTISEMENT = 9
ROUTER_SOLICITATION = 10
TIME_EXCEEDED = 11
PARAMETER_PROBLEM = 12
TIMESTAMP_REQUEST = 13
TIMESTAMP_REPLY = 14

TYPE_NAMES = {
    ECHO_REPLY: "Echo (ping) reply",
    DEST_UNREACHABLE: "Destination unreachable",
    SOURCE_QUENCH: "Source quench (flow control)",
    REDIRECT: "Redirect",
    ECHO_REQUEST: "Echo (ping) request",
    ROUTER_ADVERTISEMENT: "Router advertisement",
    ROUTER_SOLICITATION: "Router solicitation",
    TIME_EXCEEDED: "Time-to-live exceeded",
    PARAMETER_PROBLEM: "Parameter problem",
    TIMESTAMP_REQUEST: "Timestamp request",
    TIMESTAMP_REPLY: "Timestamp reply",
    15: "Information request",
    16: "Information reply",
    17: "Address mask request",
    18: "Address mask reply",
    42: "Extended Echo request",  # RFC 8335 (PROBE)
    43: "Extended Echo reply",
}
CODE_NAMES = {
    DEST_UNREACHABLE: {
        0: "Network unreachable",
        1: "Host unreachable",
        2: "Protocol unreachable",
        3: "Port unreachable",
        4: "Fragmentation needed",
        5: "Source route failed",
        6: "Destination network unknown",
        7: "Destination host unknown",
        8: "Source host isolated",
        9: "Network administratively prohibited",
        10: "Host administratively prohibited",
        11: "Network unreachable for TOS",
        12: "Host unreachable for TOS",
        13: "Communication administratively filtered",
        14: "Host precedence violation",
        15: "Precedence cutoff in effect",
    },
    REDIRECT: {
        0: "Redirect for network",
        1: "Redirect for host",
        2: "Redirect for TOS and network",
        3: "Redirect for TOS and host",
    },
    TIME_EXCEEDED: {0: "Time to live exceeded in transit", 1: "Fragment reassembly time exceeded"},
    PARAMETER_PROBLEM: {0: "Pointer indicates the error", 1: "Required option missing", 2: "Bad length"},
    42: {0: "No error"},
    43: {0: "No error", 1: "Malformed query", 2: "No such interface", 3: "No such table entry",
         4: "Multiple interfaces satisfy query"},
}
#: Router advertisement codes (RFC 1256, RFC 5944 §2.1) as Wireshark names them.
_MOBILE_IP_CODES = {0: "Normal router advertisement", 16: "Does not route common traffic"}
#: Messages that quote the IP header of the datagram that caused them.
ERROR_TYPES = frozenset({DEST_UNREACHABLE, SOURCE_QUENCH, REDIRECT, TIME_EXCEEDED, PARAMETER_PROBLEM})
#: Messages whose second word is identifier | sequence number.
ID_SEQ_TYPES = frozenset({ECHO_REPLY, ECHO_REQUEST, TIMESTAMP_REQUEST, TIMESTAMP_REPLY, 15, 16, 17, 18})
#: Request type → its reply type, for request/response pairing.
REPLY_TO = {ECHO_REQUEST: ECHO_REPLY, TIMESTAMP_REQUEST: TIMESTAMP_REPLY, 15: 16, 17: 18}


def build_echo(identifier: int, sequence: int, data: bytes = b"", *, reply: bool = False) -> bytes:
    """An Echo request (or reply) with its checksum (over the whole message, RFC 792)."""
    msg = HEADER.pack(ECHO_REPLY if reply else ECHO_REQUEST, 0, 0, identifier & 0xFFFF,
                      sequence & 0xFFFF) + data
    return msg[:2] + internet_checksum(msg).to_bytes(2, "big") + msg[4:]


def build_error(icmp_type: int, code: int, offending: bytes, *, rest: int = 0) -> bytes:
    """An error message quoting ``offending`` (the IP header + the first 8 payload bytes)."""
    msg = struct.pack("!BBHI", icmp_type, code, 0, rest) + offending
    return msg[:2] + internet_checksum(msg).to_bytes(2, "big") + msg[4:]


@dataclass(slots=True, frozen=True)
class Quoted:
    """The datagram an error message quotes: its IP header and the start of its payload."""

    ip: ipv4.IPv4Header
    #: Offset of the quoted IP header in the ICMP message.
    offset: int
    #: Source and destination port of a quoted UDP or TCP header (its first 4 bytes).
    src_port: int | None = None
    dst_port: int | None = None
    #: A quoted TCP header's sequence number (bytes 4-8), when quoted.
    tcp_seq: int | None = None


@dataclass(slots=True, frozen=True)
class ICMPMessage:
    icmp_type: int
    code: int
    checksum: int
    #: Echo / timestamp messages: identifier and sequence number; else None.
    identifier: int | None
    sequence: int | None
    #: The second 32-bit word as is (unused, gateway, MTU, pointer...).
    rest: int
    #: Error messages: the quoted datagram (None when too little was quoted to read it).
    quoted: Quoted | None
    #: Length of the whole message (header + data).
    length: int

    @property
    def type_name(self) -> str:
        return TYPE_NAMES.get(self.icmp_type, "Unknown ICMP (obsolete or malformed?)")

    @property
    def code_name(self) -> str | None:
        return CODE_NAMES.get(self.icmp_type, {}).get(self.code)

    @property
    def is_error(self) -> bool:
        return self.icmp_type in ERROR_TYPES

    def summary(self, ttl: int | None = None) -> str:
        """Wireshark's Info text before any pairing note.

        ``Echo (ping) request  id=0x0001, seq=1/256, ttl=64``: the type name padded to 20
        columns (packet-icmp.c's ``%-20s``, so ``Redirect             (Redirect for host)``
        too), the code's name, the sequence number read both ways (some stacks write it
        little-endian), then the IP TTL when given.
        """
        name, code = self.type_name, self.code_name
        if self.icmp_type == ROUTER_ADVERTISEMENT and self.code in _MOBILE_IP_CODES:
            # packet-icmp.c names every code-0/16 router advertisement after Mobile IP.
            name, code = "Mobile IP Advertisement", _MOBILE_IP_CODES[self.code]
        text = f"{name:<20}"
        if code is not None:
            text += f" ({code})"
        if self.identifier is not None and self.sequence is not None:
            seq = self.sequence
            swapped = ((seq & 0xFF) << 8) | (seq >> 8)
            text = f"{text} id=0x{self.identifier:04x}, seq={seq}/{swapped}"
            if ttl is not None:
                text += f", ttl={ttl}"
        return text


def parse(buf: bytes | memoryview, offset: int = 0, end: int | None = None) -> ICMPMessage:
    """Parse the ICMP message in ``buf[offset:end]``; errors name the field and absolute offset.

    A quoted datagram that cannot be read (too short, not IPv4) leaves ``quoted`` None
    rather than failing the message: a router may quote less than RFC 792 asks.
    """
    end = len(buf) if end is None else min(end, len(buf))
    avail = end - offset
    if avail < HEADER_LEN:
        raise ParseError("ICMP", "header", offset, f"needs 8 bytes, only {max(avail, 0)} captured")
    itype, code, csum, word1, word2 = HEADER.unpack_from(buf, offset)
    rest = (word1 << 16) | word2
    identifier = sequence = None
    if itype in ID_SEQ_TYPES:
        identifier, sequence = word1, word2
    quoted = None
    if itype in ERROR_TYPES:
        quoted = _quoted(buf, offset + HEADER_LEN, end)
    return ICMPMessage(itype, code, csum, identifier, sequence, rest, quoted, avail)


def _quoted(buf: bytes | memoryview, at: int, end: int) -> Quoted | None:
    # The quoted header's lengths describe the original datagram, not this message, so
    # parse it over exactly the bytes present.
    try:
        ip = ipv4.parse(bytes(buf[at:end]))
    except ParseError:
        return None
    l4 = at + ip.header_length
    if ip.fragment_offset or ip.protocol not in (ipv4.PROTO_TCP, ipv4.PROTO_UDP) or l4 + 4 > end:
        return Quoted(ip, at)
    sport, dport = struct.unpack_from("!HH", buf, l4)
    seq = struct.unpack_from("!I", buf, l4 + 4)[0] if ip.protocol == ipv4.PROTO_TCP and l4 + 8 <= end else None
    return Quoted(ip, at, sport, dport, seq)


def verify_checksum(message: bytes | memoryview) -> ChecksumStatus:
    """The checksum covers the whole ICMP message (no pseudo-header, unlike ICMPv6)."""
    computed = internet_checksum(bytes(message[:2]) + b"\x00\x00" + bytes(message[4:]))
    stated = (message[2] << 8) | message[3]
    return ChecksumStatus(stated, computed)


class EchoPairs:
    """Pairs echo replies with their requests, for the "(request in N)" note. Sans-IO, bounded.

    Keyed by (requester, responder, identifier, sequence); the oldest requests are
    forgotten beyond ``limit`` so a ping flood cannot grow memory. Serves ICMPv6 too.
    """

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self._requests: dict[tuple[bytes, bytes, int, int], int] = {}

    def request(self, src: bytes, dst: bytes, identifier: int, sequence: int, frame: int) -> None:
        key = (src, dst, identifier, sequence)
        self._requests.pop(key, None)
        if len(self._requests) >= self.limit:
            del self._requests[next(iter(self._requests))]
        self._requests[key] = frame

    def reply(self, src: bytes, dst: bytes, identifier: int, sequence: int) -> int | None:
        """The frame of the matching request (the reply travels the other way), or None."""
        return self._requests.get((dst, src, identifier, sequence))
