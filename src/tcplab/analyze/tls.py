"""TLS records as tshark 4.0 shows them without keys: Info words, version, ``tls.*`` fields.

What this module is for: the record-layer half of Wireshark's TLS dissector, for one TCP
connection. :class:`TlsSession` holds what Wireshark keeps per connection (the session
version, each side's Change Cipher Spec frame, a handshake message cut across records)
and turns the whole records of one segment into the Info column (``Server Hello,
Change Cipher Spec, Encrypted Handshake Message``), the Protocol column (``TLSv1.2``)
and the fields (``tls.record.content_type``, ``tls.handshake.type``,
``tls.handshake.extensions_server_name`` …). Records cut across TCP segments are put
together by :mod:`~tcplab.analyze.tls_dns` before they get here.

Wireshark's rules, each checked against tshark 4.0:

* the session version is set by the first record that is not a Client Hello (its record
  version), then by the Server Hello (its version, or the ``supported_versions``
  extension for TLS 1.3); the Protocol column names the session version once known,
  else the record's own (a Client Hello in ``0x0301`` records shows ``TLSv1``);
* a handshake record is "Encrypted Handshake Message" when it holds 16 bytes or more and
  either starts with five zero bytes, follows this side's Change Cipher Spec in an
  earlier frame, has a message type TLS does not define, or claims 64 KiB or more;
* an alert of two bytes with a known level and description is shown in words, any other
  is "Encrypted Alert"; TLS 1.3 application records are ``tls.record.opaque_type``.

What it must never do: I/O, or keep more than one handshake message per direction.
"""

from __future__ import annotations

import struct

from tcplab.analyze.render import add_field as _add
from tcplab.packet import tls as _tls

#: A handshake message Wireshark would rather call encrypted (is_encrypted_handshake_message).
_MAX_PLAIN_HANDSHAKE = 0x10000

VERSION_SHORT_NAMES = {0x0300: "SSLv3", 0x0301: "TLSv1", 0x0302: "TLSv1.1", 0x0303: "TLSv1.2",
                       0x0304: "TLSv1.3", 0x0002: "SSLv2", 0xFEFF: "DTLSv1.0", 0xFEFD: "DTLSv1.2",
                       0x0100: "DTLS 1.0 (OpenSSL pre 0.9.8f)", 0x0101: "GMTLSv1"}

#: Record versions the heuristic accepts on ports no dissector owns (is_sslv3_or_tls).
_HEURISTIC_VERSIONS = frozenset({0x0300, 0x0301, 0x0302, 0x0303, 0x0101})
_EXT_SUPPORTED_VERSIONS = 43


def looks_like_tls(buf: bytes, start: int) -> bool:
    """Wireshark's TLS heuristic: a Handshake or Application Data record header at ``start``.

    Used on ports no dissector claims (tshark's list is :data:`~tcplab.analyze.tls_dns.TLS_PORTS`):
    content type 22 or 23, SSL 3.0 – TLS 1.2 (or GM/T) record version, length 1 – 18431.
    """
    if len(buf) - start < 5 or buf[start] not in (22, 23):
        return False
    version, length = struct.unpack_from("!HH", buf, start + 1)
    return version in _HEURISTIC_VERSIONS and 0 < length < _tls.MAX_RECORD_LEN


#: Content types Wireshark 4.0 dissects: RFC 5246's 20–23, heartbeat (24, RFC 6520) and
#: tls12_cid (25, RFC 9146, which it shows with an empty Info).
_RECORD_TYPES = frozenset({20, 21, 22, 23, 24, 25})


def record_header_ok(buf: bytes | bytearray, pos: int) -> bool:
    """Could a record start at ``pos``? (content type 20–25, SSL/TLS major version 3, legal length)."""
    ctype, version, length = _tls.RECORD_HEADER.unpack_from(buf, pos)
    return ctype in _RECORD_TYPES and version >> 8 == 3 and length <= _tls.MAX_RECORD_LEN


def _known_version(version: int) -> int:
    """tls_try_get_version: a version Wireshark adopts for the session (0 if it would not)."""
    if 0x0300 <= version <= 0x0304:
        return version
    if 0x7F0E <= version <= 0x7F1C:  # TLS 1.3 drafts 14–28
        return 0x0304
    return 0


class _Hello:
    __slots__ = ("version", "suites", "sni", "supported", "retry", "whole")

    def __init__(self) -> None:
        #: False when the body ends before its compression method(s): tshark calls it malformed.
        self.whole = False
        self.version: int | None = None
        self.suites: list[int] = []
        self.sni: str | None = None
        self.supported: list[int] = []
        self.retry = False


def _parse_hello(body: bytes, client: bool) -> _Hello:
    """Version, cipher suites, SNI and supported_versions of a Client/Server Hello body.

    Walks RFC 8446 §4.1.2/§4.1.3 as far as the bytes go; a length that runs past the body
    ends the walk with what was read.
    """
    h = _Hello()
    n = len(body)
    if n < 2:
        return h
    h.version = int.from_bytes(body[0:2], "big")
    h.retry = not client and body[2:34] == _tls.HELLO_RETRY_RANDOM
    pos = 34
    if pos >= n:
        return h
    pos += 1 + body[pos]
    if client:
        if pos + 2 > n:
            return h
        slen = int.from_bytes(body[pos : pos + 2], "big")
        pos += 2
        h.suites = [int.from_bytes(body[i : i + 2], "big")
                    for i in range(pos, min(pos + slen, n) - 1, 2)]
        pos += slen
        if pos >= n:
            return h
        pos += 1 + body[pos]
    else:
        if pos + 2 > n:
            return h
        h.suites = [int.from_bytes(body[pos : pos + 2], "big")]
        pos += 3
    h.whole = pos <= n
    if pos + 2 > n:
        return h
    ext_end = min(n, pos + 2 + int.from_bytes(body[pos : pos + 2], "big"))
    pos += 2
    while pos + 4 <= ext_end:
        etype, elen = struct.unpack_from("!HH", body, pos)
        data = body[pos + 4 : min(pos + 4 + elen, ext_end)]
        if etype == _tls.EXT_SERVER_NAME and client and len(data) >= 5 and data[2] == 0:
            nlen = int.from_bytes(data[3:5], "big")
            h.sni = data[5 : 5 + nlen].decode("ascii", "replace")
        elif etype == _EXT_SUPPORTED_VERSIONS:
            if client and data:
                h.supported = [int.from_bytes(data[i : i + 2], "big")
                               for i in range(1, min(1 + data[0], len(data)) - 1, 2)]
            elif len(data) >= 2:
                h.supported = [int.from_bytes(data[0:2], "big")]
        pos += 4 + elen
    return h


class Malformed(Exception):
    """A record or handshake message tshark marks ``[Malformed Packet]`` (dissection stops)."""


class _Side:
    """What Wireshark keeps per direction: its Change Cipher Spec frame, a cut handshake message.

    ``hs_pending`` holds the start of a handshake message an earlier record began (at most
    :data:`_MAX_PLAIN_HANDSHAKE` + 4 bytes: a longer claim is followed by count alone,
    ``hs_seen`` bytes so far, as tshark still treats the records that follow as its rest).
    """

    __slots__ = ("ccs_frame", "hs_pending", "hs_seen")

    def __init__(self) -> None:
        self.ccs_frame = 0
        self.hs_pending: bytearray | None = None
        self.hs_seen = 0


class TlsSession:
    """One TLS connection (both directions): records in, Info words and ``tls.*`` fields out.

    ``final_version`` is the session version at the end of the capture (from a first
    pass): with it every frame names that version, as ``tshark -2`` does.
    """

    __slots__ = ("version", "final_version", "_sides")

    def __init__(self, final_version: int = 0) -> None:
        self.version = 0
        self.final_version = final_version
        self._sides: dict[object, _Side] = {}

    def side(self, key: object) -> _Side:
        s = self._sides.get(key)
        if s is None:
            s = self._sides[key] = _Side()
        return s

    def records(self, side_key: object, frame: int, records: list[tuple[int, int, bytes]],
                fields: dict) -> tuple[str, list[str], str | None, bool]:
        """Describe whole records (content type, version, fragment) of one segment.

        Adds the ``tls.*`` fields to ``fields`` (repeated fields as lists); returns the
        Protocol column, the Info words in record order, why tshark would call the frame
        malformed (or None), and whether it stopped there (``[Malformed Packet]`` in Info,
        the words ending where it stopped) rather than only noting it (a heartbeat whose
        payload length cannot fit, RFC 6520 §4).
        """
        side = self.side(side_key)
        words: list[str] = []
        protocol = "TLS"
        noted = None
        for ctype, rversion, body in records:
            try:
                protocol = self._record(side, frame, ctype, rversion, body, fields, words)
            except Malformed as exc:
                shown = self.final_version or self.version or rversion
                return VERSION_SHORT_NAMES.get(shown, "TLS"), words, str(exc), True
            if (ctype == _tls.HEARTBEAT and len(body) >= 3 and body[0] in (1, 2)
                    and int.from_bytes(body[1:3], "big") + 3 + 16 > len(body)):
                noted = (f"TLS: heartbeat payload length {int.from_bytes(body[1:3], 'big')} "
                         f"does not fit its {len(body)}-byte record with 16 bytes of padding")
        return protocol, words, noted, False

    def _record(self, side: _Side, frame: int, ctype: int, rversion: int, body: bytes,
                fields: dict, words: list[str]) -> str:
        """One record: fields and Info words added; returns the Protocol column it sets."""
        if not self.version and (ctype != _tls.HANDSHAKE
                                 or (body and body[0] in _tls.HANDSHAKE_TYPE_NAMES
                                     and body[0] != _tls.CLIENT_HELLO)):
            self.version = _known_version(rversion)
        if ctype == _tls.APPLICATION_DATA and self.version == 0x0304:
            _add(fields, "tls.record.opaque_type", ctype)
        else:
            _add(fields, "tls.record.content_type", ctype)
        _add(fields, "tls.record.version", rversion)
        _add(fields, "tls.record.length", len(body))
        if ctype == _tls.CHANGE_CIPHER_SPEC:
            side.ccs_frame = frame
            _add(fields, "tls.change_cipher_spec", True)
            words.append("Change Cipher Spec")
        elif ctype == _tls.ALERT:
            words.append(self._alert(body, fields))
        elif ctype == _tls.HANDSHAKE:
            self._handshake(side, frame, body, fields, words)
        elif ctype == _tls.APPLICATION_DATA:
            if not body:
                raise Malformed("TLS: an Application Data record of 0 bytes")
            _add(fields, "tls.app_data", body)
            words.append("Application Data")
        elif ctype == _tls.HEARTBEAT:
            kind = body[0] if body else 0
            words.append({1: "Heartbeat Request", 2: "Heartbeat Response"}.get(
                kind, "Encrypted Heartbeat"))
        shown = self.final_version or self.version or rversion
        return VERSION_SHORT_NAMES.get(shown, "TLS")

    def _alert(self, body: bytes, fields: dict) -> str:
        _add(fields, "tls.alert_message", True)
        if len(body) == 2:
            level = _tls.ALERT_LEVEL_NAMES.get(body[0])
            desc = _tls.ALERT_DESCRIPTION_NAMES.get(body[1])
            if level and desc:
                _add(fields, "tls.alert_message.level", body[0])
                _add(fields, "tls.alert_message.desc", body[1])
                return f"Alert (Level: {level}, Description: {desc})"
        return "Encrypted Alert"

    def _handshake(self, side: _Side, frame: int, body: bytes, fields: dict,
                   words: list[str]) -> None:
        """The handshake messages of one record (and the rest of one an earlier record cut)."""
        pos = 0
        first = True
        pending = side.hs_pending
        if pending is not None:
            # The rest of a message an earlier record began (tshark's handshake reassembly).
            before = side.hs_seen
            side.hs_seen += len(body)
            room = _MAX_PLAIN_HANDSHAKE + 4 - len(pending)
            if room > 0:
                pending += body[:room]
            msg_len = 4 + int.from_bytes(pending[1:4], "big") if len(pending) >= 4 else 0
            if not msg_len or side.hs_seen < msg_len:
                return  # a middle fragment: nothing in Info (tls_show_handshake_details)
            side.hs_pending = None
            if len(pending) >= msg_len:
                self._message(bytes(pending[:msg_len]), fields, words)
            else:  # too long to have been kept: named, not dissected
                words.append(_tls.HANDSHAKE_TYPE_NAMES.get(pending[0], "Encrypted Handshake Message"))
            pos = msg_len - before
            first = False
        elif self._looks_encrypted(side, frame, body):
            words.append("Encrypted Handshake Message")
            return
        n = len(body)
        while pos < n:
            msg_len = 4 + int.from_bytes(body[pos + 1 : pos + 4], "big") if n - pos >= 4 else 0
            if msg_len == 0 or n - pos < msg_len:
                side.hs_pending = bytearray(body[pos : pos + _MAX_PLAIN_HANDSHAKE + 4])
                side.hs_seen = n - pos
                if first:
                    name = _tls.HANDSHAKE_TYPE_NAMES.get(body[pos], "Encrypted Handshake Message")
                    words.append(f"[{name} Fragment]")
                break
            if body[pos] not in _tls.HANDSHAKE_TYPE_NAMES and not first:
                break  # Wireshark only reports an unknown message if it opens the record
            self._message(body[pos : pos + msg_len], fields, words)
            pos += msg_len
            first = False

    @staticmethod
    def _looks_encrypted(side: _Side, frame: int, body: bytes) -> bool:
        """is_encrypted_handshake_message, for a capture without keys."""
        if len(body) < 16:
            return False
        if body[:5] == b"\x00\x00\x00\x00\x00" or (side.ccs_frame and frame > side.ccs_frame):
            return True
        return (body[0] not in _tls.HANDSHAKE_TYPE_NAMES
                or int.from_bytes(body[1:4], "big") >= _MAX_PLAIN_HANDSHAKE)

    def _message(self, msg: bytes, fields: dict, words: list[str]) -> None:
        """One whole handshake message (4-byte header + body): its Info word and fields."""
        htype = msg[0]
        name = _tls.HANDSHAKE_TYPE_NAMES.get(htype)
        if name is None:
            words.append("Encrypted Handshake Message")
            return
        _add(fields, "tls.handshake.type", htype)
        _add(fields, "tls.handshake.length", len(msg) - 4)
        if htype in (_tls.CLIENT_HELLO, _tls.SERVER_HELLO):
            hello = _parse_hello(msg[4:], htype == _tls.CLIENT_HELLO)
            if hello.retry:
                name = "Hello Retry Request"
            words.append(name)
            if not hello.whole:
                raise Malformed(f"TLS: {name} of {len(msg) - 4} bytes ends before its "
                                "compression methods")
            if hello.version is not None:
                _add(fields, "tls.handshake.version", hello.version)
            for suite in hello.suites:
                _add(fields, "tls.handshake.ciphersuite", suite)
            if hello.sni is not None:
                _add(fields, "tls.handshake.extensions_server_name", hello.sni)
            for v in hello.supported:
                _add(fields, "tls.handshake.extensions.supported_version", v)
            if htype == _tls.SERVER_HELLO:
                chosen = _known_version(hello.supported[0] if hello.supported else hello.version or 0)
                if chosen:
                    self.version = chosen
        else:
            words.append(name)
