"""TLS record layer (RFC 8446 §5, RFC 5246 §6.2) and handshake message headers. No I/O here.

Record (5-byte header, then the fragment)::

    0      content type(8) | legacy version(16) | length(16) — at most 2^14 + 2048 (RFC 5246 §6.2.3)
    5      fragment: handshake messages, an alert, change_cipher_spec, application data

Handshake message (inside type 22 records; several may share a record, one may span
several)::

    0      handshake type(8) | length(24) | body

Names are Wireshark's ("Client Hello", "Application Data"), so Info columns read the
same. Once a side has sent ChangeCipherSpec (TLS ≤ 1.2) or in TLS 1.3 after the Server
Hello, its handshake records are encrypted: :class:`RecordStream` reports them as
"Encrypted Handshake Message", as tshark does without keys.

:class:`RecordStream` is the sans-IO framer for one direction of a TCP stream: feed it
the bytes in sequence order and it returns complete records; a record cut across
segments waits (bounded by the largest legal record) for the segment that completes it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from tcplab.packet.errors import ParseError

RECORD_HEADER = struct.Struct("!BHH")
RECORD_HEADER_LEN = 5
#: RFC 5246 §6.2.3: TLSCiphertext.length must not exceed 2^14 + 2048.
MAX_RECORD_LEN = (1 << 14) + 2048

CHANGE_CIPHER_SPEC = 20
ALERT = 21
HANDSHAKE = 22
APPLICATION_DATA = 23
HEARTBEAT = 24

CONTENT_TYPE_NAMES = {
    CHANGE_CIPHER_SPEC: "Change Cipher Spec",
    ALERT: "Alert",
    HANDSHAKE: "Handshake",
    APPLICATION_DATA: "Application Data",
    HEARTBEAT: "Heartbeat",
}

VERSION_NAMES = {
    0x0300: "SSL 3.0",
    0x0301: "TLS 1.0",
    0x0302: "TLS 1.1",
    0x0303: "TLS 1.2",
    0x0304: "TLS 1.3",
}

CLIENT_HELLO = 1
SERVER_HELLO = 2
HANDSHAKE_TYPE_NAMES = {
    0: "Hello Request",
    CLIENT_HELLO: "Client Hello",
    SERVER_HELLO: "Server Hello",
    3: "Hello Verify Request",
    4: "New Session Ticket",
    5: "End of Early Data",
    6: "Hello Retry Request",
    8: "Encrypted Extensions",
    11: "Certificate",
    12: "Server Key Exchange",
    13: "Certificate Request",
    14: "Server Hello Done",
    15: "Certificate Verify",
    16: "Client Key Exchange",
    20: "Finished",
    21: "Certificate URL",
    22: "Certificate Status",
    23: "Supplemental Data",
    24: "Key Update",
    25: "Compressed Certificate",
    67: "Next Protocol",
    254: "Message Hash",
}

ALERT_LEVEL_NAMES = {1: "Warning", 2: "Fatal"}
#: Alert descriptions (RFC 8446 §6, RFC 5246 §7.2) in Wireshark's wording.
ALERT_DESCRIPTION_NAMES = {
    0: "Close Notify", 10: "Unexpected Message", 20: "Bad Record MAC", 21: "Decryption Failed",
    22: "Record Overflow", 30: "Decompression Failure", 40: "Handshake Failure",
    41: "No Certificate", 42: "Bad Certificate", 43: "Unsupported Certificate",
    44: "Certificate Revoked", 45: "Certificate Expired", 46: "Certificate Unknown",
    47: "Illegal Parameter", 48: "Unknown CA", 49: "Access Denied", 50: "Decode Error",
    51: "Decrypt Error", 60: "Export Restriction", 70: "Protocol Version",
    71: "Insufficient Security", 80: "Internal Error", 86: "Inappropriate Fallback",
    90: "User Canceled", 100: "No Renegotiation", 109: "Missing Extension",
    110: "Unsupported Extension", 111: "Certificate Unobtainable", 112: "Unrecognized Name",
    113: "Bad Certificate Status Response", 114: "Bad Certificate Hash Value",
    115: "Unknown PSK Identity", 116: "Certificate Required", 120: "No application Protocol",
}

#: RFC 8446 §4.1.3: a Server Hello with this random is a Hello Retry Request.
HELLO_RETRY_RANDOM = bytes.fromhex(
    "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")

EXT_SERVER_NAME = 0  # RFC 6066 §3
EXT_SUPPORTED_VERSIONS = 43  # RFC 8446 §4.2.1


@dataclass(slots=True, frozen=True)
class Record:
    content_type: int
    version: int
    #: The fragment (``length`` bytes after the header).
    fragment: bytes
    #: Offset of the record header in the bytes the stream (or ``parse_records``) was fed.
    offset: int

    @property
    def length(self) -> int:
        return len(self.fragment)

    @property
    def type_name(self) -> str:
        return CONTENT_TYPE_NAMES.get(self.content_type, f"Unknown ({self.content_type})")

    @property
    def version_name(self) -> str:
        return VERSION_NAMES.get(self.version, f"Unknown (0x{self.version:04x})")


@dataclass(slots=True, frozen=True)
class HandshakeHeader:
    handshake_type: int
    length: int
    offset: int

    @property
    def name(self) -> str:
        return HANDSHAKE_TYPE_NAMES.get(self.handshake_type, f"Unknown ({self.handshake_type})")


def build_record(content_type: int, fragment: bytes, version: int = 0x0303) -> bytes:
    if len(fragment) > MAX_RECORD_LEN:
        raise ValueError(f"TLS record of {len(fragment)} bytes exceeds {MAX_RECORD_LEN}")
    return RECORD_HEADER.pack(content_type, version, len(fragment)) + fragment


def build_handshake(handshake_type: int, body: bytes) -> bytes:
    return bytes((handshake_type,)) + len(body).to_bytes(3, "big") + body


def _check_header(content_type: int, version: int, length: int, at: int) -> None:
    if content_type not in CONTENT_TYPE_NAMES:
        raise ParseError("TLS", "content type", at, f"{content_type} is not a TLS record type (20-24)")
    if version >> 8 != 3:
        raise ParseError("TLS", "version", at + 1, f"0x{version:04x} is not SSL 3.0 or TLS 1.x")
    if length > MAX_RECORD_LEN:
        raise ParseError("TLS", "length", at + 3, f"{length} exceeds the {MAX_RECORD_LEN}-byte maximum")


def looks_like_record(buf: bytes | memoryview, offset: int = 0) -> bool:
    """Could ``buf[offset:]`` start a TLS record? (Heuristic for ports other than 443.)"""
    if len(buf) - offset < RECORD_HEADER_LEN:
        return False
    ctype, version, length = RECORD_HEADER.unpack_from(buf, offset)
    return ctype in CONTENT_TYPE_NAMES and version >> 8 == 3 and version & 0xFF <= 4 and \
        length <= MAX_RECORD_LEN


def parse_records(buf: bytes | memoryview) -> tuple[list[Record], int]:
    """The complete records at the start of ``buf`` and how many bytes they span.

    A header that cannot be TLS raises :class:`ParseError` naming field and offset.
    """
    records: list[Record] = []
    pos = 0
    n = len(buf)
    while n - pos >= RECORD_HEADER_LEN:
        ctype, version, length = RECORD_HEADER.unpack_from(buf, pos)
        _check_header(ctype, version, length, pos)
        end = pos + RECORD_HEADER_LEN + length
        if end > n:
            break
        records.append(Record(ctype, version, bytes(buf[pos + RECORD_HEADER_LEN : end]), pos))
        pos = end
    return records, pos


def handshake_headers(fragment: bytes) -> list[HandshakeHeader]:
    """The handshake message headers that start inside one record's fragment."""
    out: list[HandshakeHeader] = []
    pos = 0
    while len(fragment) - pos >= 4:
        htype = fragment[pos]
        length = int.from_bytes(fragment[pos + 1 : pos + 4], "big")
        out.append(HandshakeHeader(htype, length, pos))
        pos += 4 + length
    return out


def client_hello_server_name(body: bytes) -> str | None:
    """The SNI host name of a Client Hello body (after its 4-byte handshake header), if any.

    Walks legacy_version, random, session id, cipher suites and compression methods to
    the extensions (RFC 8446 §4.1.2); any length that runs past the body ends the walk.
    """
    try:
        pos = 2 + 32
        pos += 1 + body[pos]
        pos += 2 + int.from_bytes(body[pos : pos + 2], "big")
        pos += 1 + body[pos]
        ext_end = pos + 2 + int.from_bytes(body[pos : pos + 2], "big")
        pos += 2
        ext_end = min(ext_end, len(body))
        while pos + 4 <= ext_end:
            etype, elen = struct.unpack_from("!HH", body, pos)
            data = body[pos + 4 : pos + 4 + elen]
            if etype == EXT_SERVER_NAME and len(data) >= 5 and data[2] == 0:
                nlen = int.from_bytes(data[3:5], "big")
                return data[5 : 5 + nlen].decode("ascii", "replace")
            pos += 4 + elen
    except (IndexError, struct.error):
        return None
    return None


@dataclass(slots=True)
class RecordStream:
    """One direction of a TLS connection: bytes in (TCP sequence order), records out."""

    #: Bytes waiting for the rest of their record; at most one record's worth.
    pending: bytearray = field(default_factory=bytearray)
    #: Total bytes fed so far (a record's ``offset`` counts from the stream's start).
    fed: int = 0
    #: Set once this side's handshake records are encrypted.
    encrypted: bool = False
    #: Set when the bytes stopped looking like TLS; further bytes are ignored.
    broken: ParseError | None = None
    #: The highest version seen in a Server Hello / record header (0 until known).
    version: int = 0

    def feed(self, data: bytes) -> list[Record]:
        """Append ``data``; return the records it completes (the rest waits)."""
        if self.broken is not None:
            self.fed += len(data)
            return []
        base = self.fed - len(self.pending)
        self.pending += data
        self.fed += len(data)
        try:
            records, used = parse_records(self.pending)
        except ParseError as err:
            self.broken = ParseError(err.protocol, err.field, base + err.offset, err.reason)
            self.pending.clear()
            return []
        del self.pending[:used]
        return [Record(r.content_type, r.version, r.fragment, base + r.offset) for r in records]

    def describe(self, record: Record) -> list[str]:
        """Wireshark's Info words for a record, updating the encrypted state.

        After ChangeCipherSpec this side's handshake records are ciphertext. (TLS 1.3
        sends everything after the Server Hello as Application Data records anyway; its
        ChangeCipherSpec is only the middlebox-compatibility dummy of RFC 8446 §D.4.)
        """
        if record.content_type == CHANGE_CIPHER_SPEC:
            self.encrypted = True
            return ["Change Cipher Spec"]
        if record.content_type == ALERT and self.encrypted:
            return ["Encrypted Alert"]
        if record.content_type != HANDSHAKE:
            return [record.type_name]
        if self.encrypted:
            return ["Encrypted Handshake Message"]
        names = [h.name for h in handshake_headers(record.fragment)]
        return names or ["Encrypted Handshake Message"]
