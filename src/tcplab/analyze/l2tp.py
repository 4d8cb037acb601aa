"""L2TP over UDP 1701 and the PPP session it tunnels, dissected as Wireshark does.

What this module is for: the one place where a frame holds a second network layer that is
the packet itself. DSL and VPN providers carry each subscriber's PPP session in L2TP
(RFC 2661), so a capture taken at the provider's side shows Ethernet → IPv4 → UDP → L2TP →
PPP → IPv6 → TCP → HTTP. tshark lists such a frame by its innermost packet (Source,
Destination, Protocol and Info are the tunnelled TCP segment's), counts its TCP segment in
the tunnelled conversation, and files the fields of both layers under their names: the
outer IPv4 header's ``ip.src`` and an inner IPv4 header's ``ip.src`` become one field with
two values, ``ip.version`` is ``4,6`` for IPv6 inside IPv4.

:func:`dissect` writes the L2TP header (and a control message's AVPs), the PPP header,
and then hands the tunnelled IPv4/IPv6 packet to the same dissector the frame's own IP
layer went through (:mod:`~tcplab.analyze.dissect`), into a dictionary of its own that is
then merged: repeated fields become lists in layer order (:func:`merge_inner`), the
columns are the inner packet's. A PPP control packet (LCP echo…) keeps the tunnel's IP
addresses in Source/Destination. Tunnels inside tunnels are followed :data:`MAX_DEPTH` deep.
No I/O; no state between frames.
"""

from __future__ import annotations

import struct
from typing import Any

from tcplab.analyze import network as _network
from tcplab.analyze.render import add_field as _add
from tcplab.packet import l2tp as _l2tp
from tcplab.packet import ppp as _ppp
from tcplab.packet.errors import ParseError

__all__ = ["FILTER_FIELDS", "MAX_DEPTH", "claims", "detail_lines", "dissect", "merge_inner", "views"]

#: How many tunnels deep a frame is followed; a deeper packet is shown as data. Each level
#: costs at least 30 bytes of headers, so without a bound a crafted 256 KB frame would recurse
#: thousands of times.
MAX_DEPTH = 4

#: Display-filter types of the fields this module writes (merged into filter.FIELDS).
FILTER_FIELDS: dict[str, tuple[str, int | None]] = {
    "l2tp.flags": ("unsigned integer", 0xFFFF),
    "l2tp.type": ("unsigned integer", 1),
    "l2tp.length_bit": ("boolean", None),
    "l2tp.seq_bit": ("boolean", None),
    "l2tp.offset_bit": ("boolean", None),
    "l2tp.priority": ("boolean", None),
    "l2tp.version": ("unsigned integer", 15),
    "l2tp.length": ("unsigned integer", 0xFFFF),
    "l2tp.tunnel": ("unsigned integer", 0xFFFF),
    "l2tp.session": ("unsigned integer", 0xFFFF),
    "l2tp.Ns": ("unsigned integer", 0xFFFF),
    "l2tp.Nr": ("unsigned integer", 0xFFFF),
    "l2tp.offset": ("unsigned integer", 0xFFFF),
    "l2tp.avp.mandatory": ("boolean", None),
    "l2tp.avp.hidden": ("boolean", None),
    "l2tp.avp.length": ("unsigned integer", 0x3FF),
    "l2tp.avp.vendor_id": ("unsigned integer", 0xFFFF),
    "l2tp.avp.type": ("unsigned integer", 0xFFFF),
    "l2tp.avp.message_type": ("unsigned integer", 0xFFFF),
    "l2tp.zero_length_body_message": ("flag", None),
    "l2tp.ccid": ("unsigned integer", 0xFFFFFFFF),
    "l2tp.sid": ("unsigned integer", 0xFFFFFFFF),
}

_DATA_MESSAGE = "Data    Message"  # Wireshark's spacing, kept so Info columns line up


def claims(data: bytes, at: int, end: int) -> bool:
    """Is the UDP payload at ``data[at:end]`` L2TP? Versions 2 and 3 are; Wireshark leaves any
    other datagram on port 1701 to the data dissector."""
    return _l2tp.version_of(data, at, end) in (2, 3)


def dissect(data: bytes, at: int, end: int, d: dict, protos: str, cut: bool, checksums: bool,
            payload: bool, net: Any) -> Any:
    """The L2TP message in ``data[at:end]`` (a UDP payload): returns a tunnelled TCP segment or None.

    ``end`` is where the datagram ends on the wire; the bytes may stop sooner when the
    capture's snapshot length cut the frame (``cut``).
    """
    protos += ":l2tp"
    d["frame.protocols"] = protos
    d["_ws.col.Protocol"] = "L2TP"
    reported, end = end, min(end, len(data))
    cut = cut and reported > end  # the snapshot length, not the sender, ended these bytes
    if _l2tp.version_of(data, at, end) == 3:
        _version3(data, at, end, d)
        return None
    try:
        h = _l2tp.parse(data, at, end, reported)
    except ParseError as err:
        _fault(d, "", err, cut)
        return None
    ids = f"(tunnel id={h.tunnel_id}, session id={h.session_id})"
    start = at + h.header_len
    if h.length is not None:
        cut = cut and at + h.length > end
        end = min(end, at + h.length)
    if h.is_control and h.length != _l2tp.ZLB_LENGTH and cut and \
            end - start < _l2tp.AVP_HEADER_LEN + 2:
        # Wireshark reads the message type for Info before it adds the header's fields.
        _fault(d, "", None, cut)
        return None
    _fields(h, d)
    if h.is_control:
        if h.length == _l2tp.ZLB_LENGTH:
            d["l2tp.zero_length_body_message"] = True
            d["_ws.col.Info"] = f"Control Message - ZLB      {ids}"  # Wireshark's spacing
            return None
        kind = _l2tp.first_message_type(data, start, end)
        info = (f"Control Message - {_message_name(kind)} {ids}" if kind is not None
                else f"Control Message {ids}")
        d["_ws.col.Info"] = info
        try:
            _avp_fields(_l2tp.parse_avps(data, start, end), d)
        except ParseError as err:
            _fault(d, info, err, cut)
            return None
        if cut:  # the AVPs go on past the captured bytes
            _fault(d, info, None, cut)
        return None
    info = d["_ws.col.Info"] = f"{_DATA_MESSAGE}            {ids}"
    if start >= end:
        return None
    protos += ":ppp"
    d["frame.protocols"] = protos
    try:
        frame = _ppp.parse_frame(data, start, end)
    except ParseError as err:
        if data[start : start + 2] == b"\xff\x03":  # the address and control were read
            _add(d, "ppp.address", _ppp.ADDRESS_ALL_STATIONS)
            _add(d, "ppp.control", _ppp.CONTROL_UI)
        d["_ws.col.Protocol"] = "PPP"
        _fault(d, info, err, cut)
        return None
    if frame.address is not None:
        _add(d, "ppp.address", frame.address)
        _add(d, "ppp.control", frame.control)
    _add(d, "ppp.protocol", frame.protocol)
    inner = start + frame.header_len
    network = _ppp.NETWORK.get(frame.protocol)
    if cut and (inner >= end or (frame.protocol in _ppp.CODED and end - inner < 4)):
        # The packet, or a control packet's header, was cut away: its layer is still named.
        layer = {"IPv4": "ip", "IPv6": "ipv6"}.get(network or "") or _network.ppp_control_layer(frame.protocol)
        d["frame.protocols"] = f"{protos}:{layer}" if layer else protos
        d["_ws.col.Protocol"] = "PPP"
        _fault(d, info, None, cut)
        return None
    if network is not None:
        if d.get("_tunnel.depth", 0) >= MAX_DEPTH:
            d["frame.protocols"] = protos + ":data"
            d["data.len"] = end - inner
            return None
        return _tunnelled(data, inner, end, network, d, protos, cut, checksums, payload, net)
    _network.ppp_control(data, inner, d, frame.protocol, end=end, tunnelled=True)
    if cut and "lcp.magic_number" not in d and d.get("ppp.code") in _ppp.LCP_MAGIC_CODES:
        _fault(d, d["_ws.col.Info"], None, cut)  # the magic number was cut
    return None


def _message_name(kind: int) -> str:
    return _l2tp.MESSAGE_TYPES.get(kind, f"Unknown ({kind})")


def _fault(d: dict, info: str, err: ParseError | None, cut: bool = False) -> None:
    """Damage past the words already read: Info keeps them, as Wireshark's does. In a frame the
    snapshot length cut, running out of bytes is the cut, not damage."""
    if cut:
        d["_ws.short"] = True
        d["_ws.col.Info"] = f"{info}[Packet size limited during capture]"
        return
    d["_ws.malformed"] = str(err)
    d["_ws.expert"] = "Malformed Packet"
    d["_ws.col.Info"] = f"{info}[Malformed Packet]"


def _version3(data: bytes, at: int, end: int, d: dict) -> None:
    """L2TPv3 over UDP (RFC 3931 §4.1.2.1): the control header, a data message's session id.

    A data message's cookie and sublayer are what the control connection negotiated, which a
    capture may not hold: Wireshark then shows the rest as data, and so does this.
    """
    d["_ws.col.Protocol"] = "L2TPv3"
    flags = (data[at] << 8) | data[at + 1]
    d["l2tp.version"] = 3
    if not flags & _l2tp.FLAG_TYPE:
        if end - at < 8:
            _fault(d, "", ParseError("L2TPv3", "session id", at + 4, f"needs 8 bytes, only {end - at} left"))
            return
        sid = int.from_bytes(data[at + 4 : at + 8], "big")
        d["l2tp.sid"] = sid
        d["_ws.col.Info"] = f"D[S:0x{sid:08x}]"
        if end > at + 8:
            d["frame.protocols"] += ":data"
            d["data.len"] = end - at - 8
        return
    try:
        flags, length, ccid, avps_at = _l2tp.parse_v3_control(data, at, end)
    except ParseError as err:
        _fault(d, "", err)
        return
    d["l2tp.flags"] = flags
    d["l2tp.type"] = 1
    d["l2tp.length_bit"] = bool(flags & _l2tp.FLAG_LENGTH)
    d["l2tp.seq_bit"] = bool(flags & _l2tp.FLAG_SEQUENCE)
    if length is not None:
        d["l2tp.length"] = length
    if flags & _l2tp.FLAG_SEQUENCE:
        d["l2tp.Ns"], d["l2tp.Nr"] = struct.unpack_from("!HH", data, avps_at - 4)
    d["l2tp.ccid"] = ccid
    if length == _l2tp.ZLB_LENGTH:
        d["l2tp.zero_length_body_message"] = True
    kind = _l2tp.first_message_type(data, avps_at, end)
    info = d["_ws.col.Info"] = (
        f"Control Message - ZLB (ccid=0x{ccid:08x})" if length == _l2tp.ZLB_LENGTH else
        f"Control Message - {_message_name(kind)} (ccid=0x{ccid:08x})" if kind is not None else
        f"Control Message (ccid=0x{ccid:08x})")
    try:
        _l2tp.parse_avps(data, avps_at, min(end, at + length) if length else end)
    except ParseError as err:
        _fault(d, info, err)


def _fields(h: _l2tp.L2TPHeader, d: dict) -> None:
    flags = h.flags
    d["l2tp.flags"] = flags
    d["l2tp.type"] = 1 if flags & _l2tp.FLAG_TYPE else 0
    d["l2tp.length_bit"] = bool(flags & _l2tp.FLAG_LENGTH)
    d["l2tp.seq_bit"] = bool(flags & _l2tp.FLAG_SEQUENCE)
    d["l2tp.offset_bit"] = bool(flags & _l2tp.FLAG_OFFSET)
    d["l2tp.priority"] = bool(flags & _l2tp.FLAG_PRIORITY)
    d["l2tp.version"] = h.version
    if h.length is not None:
        d["l2tp.length"] = h.length
    d["l2tp.tunnel"] = h.tunnel_id
    d["l2tp.session"] = h.session_id
    if h.ns is not None:
        d["l2tp.Ns"], d["l2tp.Nr"] = h.ns, h.nr
    if h.offset_size is not None:
        d["l2tp.offset"] = h.offset_size


def _avp_fields(avps: list[_l2tp.Avp], d: dict) -> None:
    for avp in avps:
        _add(d, "l2tp.avp.mandatory", avp.mandatory)
        _add(d, "l2tp.avp.hidden", avp.hidden)
        _add(d, "l2tp.avp.length", avp.length)
        _add(d, "l2tp.avp.vendor_id", avp.vendor_id)
        _add(d, "l2tp.avp.type", avp.type)
        if avp.vendor_id == 0 and avp.type == _l2tp.AVP_MESSAGE_TYPE and len(avp.value) >= 2 \
                and not avp.hidden:
            _add(d, "l2tp.avp.message_type", int.from_bytes(avp.value[:2], "big"))


def _tunnelled(data: bytes, at: int, end: int, network: str, d: dict, protos: str, cut: bool,
               checksums: bool, payload: bool, net: Any) -> Any:
    from tcplab.analyze import dissect as _dissect

    inner: dict = {"_tunnel.depth": d.get("_tunnel.depth", 0) + 1}
    layer = _dissect._dissect_ipv4 if network == "IPv4" else _dissect._dissect_ipv6
    # The inner packet ends where the UDP datagram does, not at the frame's padding.
    seg = layer(data[:end], at, protos, inner, cut, checksums, payload, net)
    merge_inner(d, inner)
    return seg


#: Private keys the outer layers keep (the detail tree and the report read the outer IP
#: header at ``_ip_offset``, as the doubled ``ip.*`` fields' first values describe it).
_OUTER_PRIVATE = frozenset({"_ip_offset"})


def merge_inner(d: dict, inner: dict) -> None:
    """Merge a tunnelled packet's fields into the frame's: repeated fields become lists.

    The outer layers' fields are kept first in ``_tunnel.outer`` and the inner packet's in
    ``_tunnel.inner``, for the detail tree (:func:`views`); the columns and
    ``frame.protocols`` become the inner packet's; faults are joined.
    """
    d["_tunnel.outer"] = dict(d)
    d["_tunnel.inner"] = inner
    for key, value in inner.items():
        if key in _OWN:  # the inner packet's own tunnel: its views are found through inner
            continue
        if key in ("frame.protocols", "_tunnel.depth"):
            d[key] = value
        elif key.startswith("_"):
            if key == "_ws.expert.message" and key in d:
                d[key] = f"{d[key]}; {value}"
            elif key not in _OUTER_PRIVATE or key not in d:
                d[key] = value
        elif key in d:
            if isinstance(value, list):
                for item in value:
                    _add(d, key, item)
            else:
                _add(d, key, value)
        else:
            d[key] = value


def views(d: dict) -> tuple[dict, dict]:
    """A tunnel frame's fields as two dicts: the outer layers', and the tunnelled packet's.

    The second holds what the analysis wrote after the merge too (``tcp.stream``, HTTP…):
    every field the outer layers do not have, and for a field both have, the inner value.
    """
    outer, inner = d["_tunnel.outer"], d["_tunnel.inner"]
    return outer, {k: (inner[k] if k in outer or k in _OWN else v) for k, v in d.items()
                   if k in inner or (k not in outer and k not in _OWN)}


#: The keys :func:`merge_inner` adds: a view of the inner packet has them only when that
#: packet is itself a tunnel.
_OWN = frozenset({"_tunnel.outer", "_tunnel.inner"})


def detail_lines(d: dict) -> list[str]:
    """The detail-pane lines of the L2TP and PPP headers, in Wireshark's layout."""
    ind = "    "
    flags = d["l2tp.flags"]
    kind = "Control Message" if flags & _l2tp.FLAG_TYPE else "Data Message"
    lines = ["Layer 2 Tunneling Protocol", f"{ind}Flags: 0x{flags:04x}, Type: {kind}",
             f"{ind * 2}Version: {d['l2tp.version']}"]
    for name, label in (("l2tp.length", "Length"), ("l2tp.tunnel", "Tunnel ID"),
                        ("l2tp.session", "Session ID"), ("l2tp.Ns", "Ns"), ("l2tp.Nr", "Nr"),
                        ("l2tp.offset", "Offset Size")):
        if name in d:
            lines.append(f"{ind}{label}: {d[name]}")
    types = d.get("l2tp.avp.type")
    for i, avp_type in enumerate(types if isinstance(types, list) else [] if types is None else [types]):
        length = _nth(d.get("l2tp.avp.length"), i)
        lines.append(f"{ind}AVP: type {avp_type}, vendor {_nth(d.get('l2tp.avp.vendor_id'), i)}, "
                     f"length {length}")
    if "l2tp.avp.message_type" in d:
        message = _network._first(d["l2tp.avp.message_type"])
        lines.append(f"{ind}Message Type: {_l2tp.MESSAGE_TYPES.get(message, 'Unknown')} ({message})")
    if d.get("l2tp.zero_length_body_message"):
        lines.append(f"{ind}Zero Length Body message")
    protocols = d.get("ppp.protocol")
    if isinstance(protocols, list):  # PPPoE's PPP first, then the tunnel's
        protocols = protocols[-1]
    if protocols is not None and not flags & _l2tp.FLAG_TYPE:
        lines.append("Point-to-Point Protocol")
        if "ppp.address" in d:
            lines.append(f"{ind}Address: 0x{_network._first(d['ppp.address']):02x}")
            lines.append(f"{ind}Control: 0x{_network._first(d['ppp.control']):02x}")
        name = _ppp.PPP_NAMES.get(protocols, "Unknown")
        lines.append(f"{ind}Protocol: {name} (0x{protocols:04x})")
        if "ppp.code" in d:
            lines += [f"PPP {name}", f"{ind}Code: {d.get('_ws.col.Info', '')} ({d['ppp.code']})",
                      f"{ind}Identifier: {d['ppp.identifier']} (0x{d['ppp.identifier']:02x})",
                      f"{ind}Length: {d['ppp.length']}"]
            if "lcp.magic_number" in d:
                lines.append(f"{ind}Magic Number: 0x{d['lcp.magic_number']:08x}")
    return lines


def _nth(value: Any, i: int) -> Any:
    return value[i] if isinstance(value, list) else value
