"""DNS messages (RFC 1035) — just enough to carry the course CSV's DNS rows. No I/O here.

Builds a standard query for a name and a response with one A/AAAA answer, using name
compression for the answer (a pointer to the question name at offset 12), as real
resolvers do. Parses headers and question names back for the analyzer.

Over TCP (RFC 1035 §4.2.2, RFC 7766 §8) every message is preceded by a 2-byte length;
:class:`TcpFramer` splits one direction's byte stream into messages, however the
segments cut them.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

from tcplab.packet import ipv4, ipv6
from tcplab.packet.errors import ParseError
from tcplab.packet.stack import ip_address

HEADER = struct.Struct("!HHHHHH")
PORT = 53
TYPE_A = 1
TYPE_AAAA = 28
CLASS_IN = 1
FLAG_QR = 0x8000  # response
FLAG_RD = 0x0100  # recursion desired
FLAG_RA = 0x0080  # recursion available

_QUERY = re.compile(r"^\s*(?:standard\s+)?query\s*:?\s*(?:(?:A|AAAA)\s+)?(?P<name>[^\s]+)\s*$", re.I)
_RESPONSE = re.compile(
    r"^\s*(?:standard\s+query\s+)?response\s*:?\s*(?:(?:A|AAAA)\s+)?(?P<name>[^\s]+)\s*(?:->|=>|:|\s)\s*(?:(?:A|AAAA)\s+)?(?P<addr>[0-9a-fA-F:.]+)\s*$",
    re.I,
)


def encode_name(name: str) -> bytes:
    """Domain name → length-prefixed labels ending in the root label."""
    name = name.rstrip(".")
    out = bytearray()
    for label in name.split(".") if name else []:
        raw = label.encode("idna") if not label.isascii() else label.encode("ascii")
        if not 0 < len(raw) < 64:
            raise ValueError(f"DNS label {label!r} must be 1–63 bytes")
        out.append(len(raw))
        out += raw
    out.append(0)
    if len(out) > 255:
        raise ValueError(f"DNS name {name!r} is longer than 255 bytes")
    return bytes(out)


def build_query(txid: int, name: str, qtype: int = TYPE_A) -> bytes:
    return HEADER.pack(txid, FLAG_RD, 1, 0, 0, 0) + encode_name(name) + struct.pack("!HH", qtype, CLASS_IN)


def build_response(txid: int, name: str, address: str, ttl: int = 300) -> bytes:
    """A response with the question echoed and one answer pointing back at it (0xC00C)."""
    if ":" in address:
        qtype, rdata = TYPE_AAAA, ipv6.addr(address)
    else:
        qtype, rdata = TYPE_A, ipv4.addr(address)
    question = encode_name(name) + struct.pack("!HH", qtype, CLASS_IN)
    answer = struct.pack("!HHHIH", 0xC00C, qtype, CLASS_IN, ttl, len(rdata)) + rdata
    return HEADER.pack(txid, FLAG_QR | FLAG_RD | FLAG_RA, 1, 1, 0, 0) + question + answer


def parse_text_form(text: str) -> tuple[str, str, str | None] | None:
    """Recognise the CSV's ``Query: NAME`` / ``Response: NAME -> ADDR`` forms.

    Returns ("query", name, None) or ("response", name, address), or None for other text.
    """
    m = _RESPONSE.match(text)
    if m:
        addr = m.group("addr")
        try:
            ip_address(addr)
        except ValueError:
            return None
        return "response", m.group("name").rstrip("."), addr
    m = _QUERY.match(text)
    if m:
        return "query", m.group("name").rstrip("."), None
    return None


def read_name(buf: bytes, offset: int) -> tuple[str, int]:
    """Read a (possibly compressed) name at ``offset`` → (name, offset after it)."""
    labels: list[str] = []
    end = None
    hops = 0
    while True:
        if offset >= len(buf):
            raise ParseError("DNS", "name", offset, "runs past the end of the message")
        length = buf[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(buf):
                raise ParseError("DNS", "name pointer", offset, "truncated")
            if end is None:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | buf[offset + 1]
            hops += 1
            if hops > 32:
                raise ParseError("DNS", "name pointer", offset, "pointer loop")
            continue
        if length == 0:
            return ".".join(labels), (end if end is not None else offset + 1)
        labels.append(buf[offset + 1 : offset + 1 + length].decode("ascii", "replace"))
        offset += 1 + length


def summarize(buf: bytes) -> str:
    """Wireshark-like Info text, e.g. ``Standard query 0x1a2b A example.com``."""
    if len(buf) < 12:
        raise ParseError("DNS", "header", 0, f"needs 12 bytes, only {len(buf)}")
    txid, flags, qd, an, _ns, _ar = HEADER.unpack_from(buf, 0)
    name, pos = read_name(buf, 12) if qd else ("", 12)
    qtype = struct.unpack_from("!H", buf, pos)[0] if qd and pos + 2 <= len(buf) else 0
    tname = {TYPE_A: "A", TYPE_AAAA: "AAAA"}.get(qtype, str(qtype))
    kind = "Standard query response" if flags & FLAG_QR else "Standard query"
    return f"{kind} 0x{txid:04x} {tname} {name}"


#: Below this a "message" cannot hold even the 12-byte header (RFC 1035 §4.1.1).
MIN_MESSAGE_LEN = 12


def frame_tcp(message: bytes) -> bytes:
    """The 2-byte length prefix + ``message``, as DNS over TCP sends it."""
    if len(message) > 0xFFFF:
        raise ValueError(f"DNS message of {len(message)} bytes does not fit the 16-bit TCP length")
    return len(message).to_bytes(2, "big") + message


@dataclass(slots=True)
class TcpFramer:
    """One direction of a DNS-over-TCP connection: stream bytes in, whole messages out.

    Holds at most one incomplete message (≤ 65,537 bytes: the length field's limit).
    A length below the 12-byte header is not DNS; the framer then stops and keeps the
    error (``broken``), naming the stream offset, so a port-53 stream carrying something
    else is never mistaken for DNS.
    """

    pending: bytearray = field(default_factory=bytearray)
    fed: int = 0
    broken: ParseError | None = None

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Append ``data``; return (stream offset of the length prefix, message) for each completed one."""
        if self.broken is not None:
            self.fed += len(data)
            return []
        base = self.fed - len(self.pending)
        self.pending += data
        self.fed += len(data)
        out: list[tuple[int, bytes]] = []
        pos = 0
        buf = self.pending
        while len(buf) - pos >= 2:
            length = (buf[pos] << 8) | buf[pos + 1]
            if length < MIN_MESSAGE_LEN:
                self.broken = ParseError("DNS", "TCP length", base + pos,
                                         f"{length} is below the {MIN_MESSAGE_LEN}-byte DNS header")
                buf.clear()
                return out
            if len(buf) - pos - 2 < length:
                break
            out.append((base + pos, bytes(buf[pos + 2 : pos + 2 + length])))
            pos += 2 + length
        del buf[:pos]
        return out
