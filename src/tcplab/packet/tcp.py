"""TCP header (RFC 9293) with its options: build and parse every field. No I/O here.

Layout (20 bytes + options)::

    0      source port(16)                   | destination port(16)
    4      sequence number(32)
    8      acknowledgment number(32)
    12     data offset(4) reserved(3) NS(1)  | CWR ECE URG ACK PSH RST SYN FIN | window(16)
    16     checksum(16)                      | urgent pointer(16)
    20     options (data offset*4 - 20 bytes)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from tcplab.packet.checksum import (
    ChecksumStatus,
    internet_checksum,
    pseudo_header,
    verify_transport,
)
from tcplab.packet.errors import ParseError

HEADER = struct.Struct("!HHIIHHHH")
MIN_HEADER_LEN = 20
PROTOCOL_NUMBER = 6

# Flags (the low 9 bits of the offset/flags word).
FIN = 0x001  # no more data from sender
SYN = 0x002  # synchronize sequence numbers
RST = 0x004  # reset the connection
PSH = 0x008  # push: deliver to the application now
ACK = 0x010  # acknowledgment field is significant
URG = 0x020  # urgent pointer field is significant
ECE = 0x040  # ECN-Echo (RFC 3168)
CWR = 0x080  # congestion window reduced (RFC 3168)
NS = 0x100  # ECN-nonce concealment (RFC 3540, historic)
FLAG_MASK = 0x1FF

# Wireshark's order and names for the packet-list "[SYN, ACK]" text: lowest bit first
# (FIN, SYN, RST, PSH, ACK, URG, ECE, CWR, AE), as in "[FIN, PSH, ACK]". tshark 4.0 calls
# bit 8 "AE" (Accurate ECN, which reuses the historic NS bit) and adds "Reserved" when
# any of the three reserved bits above it is set.
_FLAG_NAMES = (
    (FIN, "FIN"),
    (SYN, "SYN"),
    (RST, "RST"),
    (PSH, "PSH"),
    (ACK, "ACK"),
    (URG, "URG"),
    (ECE, "ECE"),
    (CWR, "CWR"),
    (NS, "AE"),
    (0xE00, "Reserved"),
)
# tshark's tcp.flags.str: 12 characters for the 12 bits, high bit first; "R" for a set
# reserved bit, "A" (AE) for bit 8, "·" for any clear bit.
_FLAG_STR_LETTERS = "RRRACEUAPRSF"

# Option kinds (IANA "TCP Option Kind Numbers").
OPT_EOL = 0  # end of option list (RFC 9293)
OPT_NOP = 1  # no-operation, used for alignment (RFC 9293)
OPT_MSS = 2  # maximum segment size (RFC 9293 §3.7.1)
OPT_WSCALE = 3  # window scale (RFC 7323 §2)
OPT_SACK_PERMITTED = 4  # SACK permitted (RFC 2018)
OPT_SACK = 5  # selective acknowledgment blocks (RFC 2018)
OPT_TIMESTAMP = 8  # timestamps TSval/TSecr (RFC 7323 §3)

OPTION_NAMES = {
    OPT_EOL: "EOL",
    OPT_NOP: "NOP",
    OPT_MSS: "MSS",
    OPT_WSCALE: "WS",
    OPT_SACK_PERMITTED: "SACK_PERM",
    OPT_SACK: "SACK",
    OPT_TIMESTAMP: "TS",
}


@dataclass(frozen=True, slots=True)
class TCPOption:
    """One TCP option: its kind and raw data (the bytes after kind and length)."""

    kind: int
    data: bytes = b""

    def pack(self) -> bytes:
        if self.kind in (OPT_EOL, OPT_NOP):
            return bytes((self.kind,))
        return bytes((self.kind, 2 + len(self.data))) + self.data

    @property
    def name(self) -> str:
        return OPTION_NAMES.get(self.kind, f"Unknown({self.kind})")

    @property
    def value(self) -> object:
        """The decoded value: int for MSS/WS, (tsval, tsecr) for TS, [(left, right)] for SACK."""
        d = self.data
        if self.kind == OPT_MSS and len(d) == 2:
            return int.from_bytes(d, "big")
        if self.kind == OPT_WSCALE and len(d) == 1:
            return d[0]
        if self.kind == OPT_TIMESTAMP and len(d) == 8:
            return struct.unpack("!II", d)
        if self.kind == OPT_SACK and len(d) % 8 == 0:
            return [struct.unpack_from("!II", d, i) for i in range(0, len(d), 8)]
        return d


def mss(value: int) -> TCPOption:
    return TCPOption(OPT_MSS, value.to_bytes(2, "big"))


def window_scale(shift: int) -> TCPOption:
    return TCPOption(OPT_WSCALE, bytes((shift,)))


def sack_permitted() -> TCPOption:
    return TCPOption(OPT_SACK_PERMITTED)


def sack(blocks: list[tuple[int, int]]) -> TCPOption:
    return TCPOption(OPT_SACK, b"".join(struct.pack("!II", left, right) for left, right in blocks))


def timestamps(tsval: int, tsecr: int) -> TCPOption:
    return TCPOption(OPT_TIMESTAMP, struct.pack("!II", tsval, tsecr))


NOP = TCPOption(OPT_NOP)
EOL = TCPOption(OPT_EOL)


def pack_options(options: list[TCPOption] | tuple[TCPOption, ...]) -> bytes:
    """Concatenate options and pad with EOL/zero bytes to a 4-byte boundary."""
    raw = b"".join(o.pack() for o in options)
    if len(raw) % 4:
        raw += b"\x00" * (4 - len(raw) % 4)
    if len(raw) > 40:
        raise ValueError(f"TCP options are {len(raw)} bytes; the header allows at most 40")
    return raw


def parse_options(buf: bytes, base_offset: int = 20) -> list[TCPOption]:
    """Parse an options area; ``base_offset`` is only used to word errors."""
    options: list[TCPOption] = []
    i = 0
    n = len(buf)
    while i < n:
        kind = buf[i]
        if kind == OPT_EOL:
            options.append(EOL)
            break
        if kind == OPT_NOP:
            options.append(NOP)
            i += 1
            continue
        if i + 1 >= n:
            raise ParseError("TCP", "option length", base_offset + i, f"option kind {kind} has no length byte")
        length = buf[i + 1]
        if length < 2 or i + length > n:
            raise ParseError(
                "TCP", "option length", base_offset + i + 1,
                f"option kind {kind} claims {length} bytes, {n - i} remain",
            )
        options.append(TCPOption(kind, bytes(buf[i + 2 : i + length])))
        i += length
    return options


def flags_text(flags: int) -> str:
    """Wireshark's packet-list flag text, e.g. ``PSH, ACK`` (``<None>`` when no flag is set).

    ``flags`` is the 9 flag bits, optionally with the reserved bits above them
    (``reserved << 9 | flags``), as tshark 4.0 shows them.
    """
    names = [name for bit, name in _FLAG_NAMES if flags & bit]
    return ", ".join(names) if names else "<None>"


def flags_str(flags: int) -> str:
    """tshark's ``tcp.flags.str`` (e.g. ``·······AP···``) for the 12 bits (reserved << 9 | flags)."""
    return "".join(
        letter if flags & (1 << (11 - i)) else "·" for i, letter in enumerate(_FLAG_STR_LETTERS)
    )


def build_segment(
    src: bytes,
    dst: bytes,
    src_port: int,
    dst_port: int,
    payload: bytes = b"",
    *,
    seq: int = 0,
    ack: int = 0,
    flags: int = PSH | ACK,
    window: int = 8192,
    urgent: int = 0,
    options: bytes = b"",
    reserved: int = 0,
) -> bytes:
    """Lay down a TCP header (checksum over the pseudo-header computed) followed by ``payload``.

    ``src``/``dst`` are the IP addresses (4 or 16 bytes) that the pseudo-header needs;
    ``options`` must be the packed, padded option bytes (see :func:`pack_options`).
    """
    offset = 5 + len(options) // 4
    head = HEADER.pack(
        src_port,
        dst_port,
        seq & 0xFFFFFFFF,
        ack & 0xFFFFFFFF,
        (offset << 12) | ((reserved & 7) << 9) | (flags & FLAG_MASK),
        window,
        0,
        urgent,
    )
    seg = head + options + payload
    csum = internet_checksum(pseudo_header(src, dst, PROTOCOL_NUMBER, len(seg)) + seg)
    return seg[:16] + csum.to_bytes(2, "big") + seg[18:]


@dataclass(slots=True)
class TCPHeader:
    """A parsed (or to-be-built) TCP header."""

    src_port: int
    dst_port: int
    seq: int = 0
    ack: int = 0
    flags: int = PSH | ACK
    window: int = 8192
    checksum: int = 0
    urgent: int = 0
    data_offset: int = 5
    reserved: int = 0
    options: list[TCPOption] = field(default_factory=list)

    @property
    def header_length(self) -> int:
        return self.data_offset * 4

    def has(self, flag: int) -> bool:
        return bool(self.flags & flag)

    def option(self, kind: int) -> TCPOption | None:
        for o in self.options:
            if o.kind == kind:
                return o
        return None

    def pack(self, src: bytes, dst: bytes, payload: bytes = b"") -> bytes:
        """Header plus payload, checksum computed for the given IP addresses."""
        return build_segment(
            src,
            dst,
            self.src_port,
            self.dst_port,
            payload,
            seq=self.seq,
            ack=self.ack,
            flags=self.flags,
            window=self.window,
            urgent=self.urgent,
            options=pack_options(self.options),
            reserved=self.reserved,
        )


def parse(buf: bytes | memoryview, offset: int = 0, *, with_options: bool = True) -> TCPHeader:
    """Parse the TCP header at ``offset``; errors name the field and absolute byte offset."""
    avail = len(buf) - offset
    if avail < MIN_HEADER_LEN:
        raise ParseError("TCP", "header", offset, f"needs 20 bytes, only {max(avail, 0)} captured")
    sport, dport, seq, ack, off_flags, window, csum, urg = HEADER.unpack_from(buf, offset)
    data_offset = off_flags >> 12
    if data_offset < 5:
        raise ParseError("TCP", "data offset", offset + 12, f"{data_offset * 4} bytes is below the minimum 20")
    hlen = data_offset * 4
    if hlen > avail:
        raise ParseError("TCP", "data offset", offset + 12, f"header of {hlen} bytes but only {avail} captured")
    opts: list[TCPOption] = []
    if with_options and hlen > 20:
        opts = parse_options(bytes(buf[offset + 20 : offset + hlen]), offset + 20)
    return TCPHeader(
        src_port=sport,
        dst_port=dport,
        seq=seq,
        ack=ack,
        flags=off_flags & FLAG_MASK,
        window=window,
        checksum=csum,
        urgent=urg,
        data_offset=data_offset,
        reserved=(off_flags >> 9) & 7,
        options=opts,
    )


def verify_checksum(src: bytes, dst: bytes, segment: bytes | memoryview) -> ChecksumStatus:
    """Verify the checksum of a whole TCP ``segment`` (header + payload) between ``src`` and ``dst``."""
    return verify_transport(src, dst, PROTOCOL_NUMBER, segment, 16)
