"""L2TP version 2 (RFC 2661): the tunnel DSL and VPN providers carry PPP sessions in, over UDP 1701.

No I/O here. The header, every field after the first word optional::

    0      T L x x S x O P x x x x Ver(4)=2 | [length(16)]       T: control, L/S/O: fields present
           tunnel id(16) | session id(16)
           [Ns(16) | Nr(16)]                                      control messages always have them
           [offset size(16) | offset pad]                         data messages only

A data message (T=0) carries one PPP frame (:mod:`tcplab.packet.ppp`). A control message
(T=1) carries attribute-value pairs (§4.1)::

    M H x x x x length(10) | vendor id(16) | attribute type(16) | value

its first AVP the Message Type (vendor 0, type 0: SCCRQ, Hello…); a control message with
no AVP at all (length 12) is a Zero-Length Body acknowledgement (ZLB, §5.8).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from tcplab.packet.errors import ParseError

PORT = 1701

FLAG_TYPE = 0x8000
FLAG_LENGTH = 0x4000
FLAG_SEQUENCE = 0x0800
FLAG_OFFSET = 0x0200
FLAG_PRIORITY = 0x0100
VERSION_MASK = 0x000F
VERSION = 2

AVP_MANDATORY = 0x8000
AVP_HIDDEN = 0x4000
AVP_LENGTH_MASK = 0x03FF
AVP_HEADER_LEN = 6
AVP_MESSAGE_TYPE = 0
ZLB_LENGTH = 12  # a control header with Ns/Nr and nothing after it

#: Control message types (RFC 2661 §3.2, RFC 3931 §6, RFC 4951, RFC 4045), as Wireshark
#: abbreviates them in the Info column.
MESSAGE_TYPES = {
    1: "SCCRQ", 2: "SCCRP", 3: "SCCCN", 4: "StopCCN", 6: "Hello", 7: "OCRQ", 8: "OCRP",
    9: "OCCN", 10: "ICRQ", 11: "ICRP", 12: "ICCN", 14: "CDN", 15: "WEN", 16: "SLI",
    17: "MDMST", 18: "SRRQ", 19: "SRRP", 20: "ACK", 21: "FSQ", 22: "FSR", 23: "MSRQ",
    24: "MSRP", 25: "MSE", 26: "MSI", 27: "MSEN",
}

_WORD = struct.Struct("!H")
_AVP = struct.Struct("!HHH")


@dataclass(slots=True, frozen=True)
class Avp:
    mandatory: bool
    hidden: bool
    length: int
    vendor_id: int
    type: int
    value: bytes


@dataclass(slots=True, frozen=True)
class L2TPHeader:
    flags: int
    #: The Length field (the whole message, header included), or None when L=0.
    length: int | None
    tunnel_id: int
    session_id: int
    ns: int | None
    nr: int | None
    #: The Offset Size field, or None when O=0.
    offset_size: int | None
    #: Bytes from the start of the header to the PPP frame or the first AVP (offset pad included).
    header_len: int

    @property
    def is_control(self) -> bool:
        return bool(self.flags & FLAG_TYPE)

    @property
    def version(self) -> int:
        return self.flags & VERSION_MASK


def avp(attribute: int, value: bytes, *, mandatory: bool = True, vendor_id: int = 0) -> bytes:
    """One attribute-value pair (§4.1), for building control messages."""
    length = AVP_HEADER_LEN + len(value)
    if length > AVP_LENGTH_MASK:
        raise ValueError(f"an AVP holds at most {AVP_LENGTH_MASK} bytes, not {length}")
    return _AVP.pack((AVP_MANDATORY if mandatory else 0) | length, vendor_id, attribute) + value


def build_control(tunnel_id: int, session_id: int, ns: int, nr: int, avps: bytes = b"") -> bytes:
    """A control message: T, L and S set (§3.1 requires them), then the AVPs (none: a ZLB)."""
    length = ZLB_LENGTH + len(avps)
    return struct.pack("!HHHHHH", FLAG_TYPE | FLAG_LENGTH | FLAG_SEQUENCE | VERSION, length,
                       tunnel_id, session_id, ns, nr) + avps


def build_data(tunnel_id: int, session_id: int, ppp_frame: bytes, *, length: bool = False,
               sequence: tuple[int, int] | None = None, offset_pad: bytes | None = None,
               priority: bool = False) -> bytes:
    """A data message carrying ``ppp_frame``, with whichever optional fields are asked for."""
    flags = VERSION | (FLAG_PRIORITY if priority else 0)
    rest = struct.pack("!HH", tunnel_id, session_id)
    if sequence is not None:
        flags |= FLAG_SEQUENCE
        rest += struct.pack("!HH", *sequence)
    if offset_pad is not None:
        flags |= FLAG_OFFSET
        rest += _WORD.pack(len(offset_pad)) + offset_pad
    if length:
        flags |= FLAG_LENGTH
        total = 4 + len(rest) + len(ppp_frame)
        return struct.pack("!HH", flags, total) + rest + ppp_frame
    return _WORD.pack(flags) + rest + ppp_frame


def version_of(buf: bytes | memoryview, offset: int, end: int) -> int | None:
    """The version nibble of the message at ``offset`` (None with fewer than 2 bytes)."""
    return buf[offset + 1] & VERSION_MASK if end - offset >= 2 else None


def parse(buf: bytes | memoryview, offset: int, end: int) -> L2TPHeader:
    """The L2TPv2 header at ``offset`` (the UDP payload ends at ``end``).

    Errors name the field and the absolute byte offset. A control message's AVPs follow at
    ``offset + header_len`` (:func:`parse_avps`).
    """
    if end - offset < 2:
        raise ParseError("L2TP", "flags", offset, f"needs 2 bytes, only {max(end - offset, 0)} captured")
    (flags,) = _WORD.unpack_from(buf, offset)
    if flags & VERSION_MASK != VERSION:
        raise ParseError("L2TP", "version", offset + 1, f"is {flags & VERSION_MASK}, not 2")
    at = offset + 2
    need = 2 + (2 if flags & FLAG_LENGTH else 0) + 4 + (4 if flags & FLAG_SEQUENCE else 0) \
        + (2 if flags & FLAG_OFFSET else 0)
    if end - offset < need:
        raise ParseError("L2TP", "header", offset,
                         f"its flags (0x{flags:04x}) need {need} bytes, only {end - offset} captured")
    length = None
    if flags & FLAG_LENGTH:
        (length,) = _WORD.unpack_from(buf, at)
        if length < need or length > end - offset:
            raise ParseError("L2TP", "length", at,
                             f"{length} does not fit the header of {need} and the "
                             f"{end - offset} bytes after UDP")
        end = offset + length
        at += 2
    tunnel_id, session_id = struct.unpack_from("!HH", buf, at)
    at += 4
    ns = nr = None
    if flags & FLAG_SEQUENCE:
        ns, nr = struct.unpack_from("!HH", buf, at)
        at += 4
    offset_size = None
    if flags & FLAG_OFFSET:
        (offset_size,) = _WORD.unpack_from(buf, at)
        at += 2
        if at + offset_size > end:
            raise ParseError("L2TP", "offset size", at - 2,
                             f"{offset_size} bytes of padding but only {end - at} left")
        at += offset_size
    return L2TPHeader(flags, length, tunnel_id, session_id, ns, nr, offset_size, at - offset)


def parse_v3_control(buf: bytes | memoryview, offset: int, end: int) -> tuple[int, int | None, int, int]:
    """An L2TPv3 control message over UDP (RFC 3931 §3.2.1): (flags, length, connection id, AVP offset)."""
    if end - offset < 2:
        raise ParseError("L2TPv3", "flags", offset, f"needs 2 bytes, only {max(end - offset, 0)} captured")
    (flags,) = _WORD.unpack_from(buf, offset)
    need = 2 + (2 if flags & FLAG_LENGTH else 0) + 4 + (4 if flags & FLAG_SEQUENCE else 0)
    if end - offset < need:
        raise ParseError("L2TPv3", "header", offset,
                         f"its flags (0x{flags:04x}) need {need} bytes, only {end - offset} captured")
    at = offset + 2
    length = None
    if flags & FLAG_LENGTH:
        (length,) = _WORD.unpack_from(buf, at)
        at += 2
    (ccid,) = struct.unpack_from("!I", buf, at)
    return flags, length, ccid, at + 4 + (4 if flags & FLAG_SEQUENCE else 0)


def first_message_type(buf: bytes | memoryview, at: int, end: int) -> int | None:
    """The Message Type a control message's first AVP at ``at`` holds, read even when the AVP's
    length is damaged (as Wireshark names the message before it parses the AVPs)."""
    if end - at < AVP_HEADER_LEN + 2:
        return None
    _word, vendor, kind = _AVP.unpack_from(buf, at)
    if vendor != 0 or kind != AVP_MESSAGE_TYPE:
        return None
    return _WORD.unpack_from(buf, at + AVP_HEADER_LEN)[0]


def parse_avps(buf: bytes | memoryview, at: int, end: int) -> list[Avp]:
    """The attribute-value pairs from ``at`` to ``end``; errors name the AVP's offset."""
    out = []
    while at < end:
        if end - at < AVP_HEADER_LEN:
            raise ParseError("L2TP", "AVP header", at, f"needs 6 bytes, only {end - at} left")
        word, vendor, kind = _AVP.unpack_from(buf, at)
        length = word & AVP_LENGTH_MASK
        if length < AVP_HEADER_LEN or at + length > end:
            raise ParseError("L2TP", "AVP length", at,
                             f"{length} does not fit the {end - at} bytes left in the message")
        out.append(Avp(bool(word & AVP_MANDATORY), bool(word & AVP_HIDDEN), length, vendor, kind,
                       bytes(buf[at + AVP_HEADER_LEN : at + length])))
        at += length
    return out
